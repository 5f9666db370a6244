/**
 * Fenced patch of the Node-RED editor's tip catalog (`GET /editor/locales/infotips`, served by
 * @node-red/editor-api/lib/editor/locales.js from @node-red/editor-client/locales/<lang>/infotips.json):
 * the tips that advertise the palette manager are dropped, because FLUX disables it
 * (`externalModules.palette.allowInstall: false` in settings.ts). The editor counts `info.tip0…N`
 * until one is missing, so the rest are renumbered. test/flow-engine/editor-tips.test.ts notices
 * when upstream changes the catalog's shape.
 */
import type { RequestHandler } from 'express';

export const TIPS_PATH = '/editor/locales/infotips';

/** Removes palette-manager tips from an infotips catalog `{ info: { tip0, tip1, … } }`, renumbering the rest. */
export function withoutPaletteTips(catalog: unknown): unknown {
  if (!catalog || typeof catalog !== 'object') return catalog;
  const info = (catalog as { info?: Record<string, unknown> }).info;
  if (!info || typeof info !== 'object') return catalog;
  const tips: unknown[] = [];
  const rest: Record<string, unknown> = {};
  for (let i = 0; `tip${i}` in info; i++) {
    const tip = info[`tip${i}`];
    if (!(typeof tip === 'string' && /\{\{\s*core:manage-palette\s*\}\}/.test(tip))) tips.push(tip);
  }
  for (const [k, v] of Object.entries(info)) if (!/^tip\d+$/.test(k)) rest[k] = v;
  tips.forEach((t, i) => (rest[`tip${i}`] = t));
  return { ...(catalog as object), info: rest };
}

/** Mounted at TIPS_PATH before Node-RED's editor: filters the catalog Node-RED answers. */
export function paletteTipFilter(): RequestHandler {
  return (_req, res, next) => {
    const json = res.json.bind(res);
    res.json = (body: unknown) => json(withoutPaletteTips(body));
    next();
  };
}
