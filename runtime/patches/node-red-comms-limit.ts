/**
 * Fenced patch of Node-RED's editor comms (`/editor/comms`, @node-red/editor-api
 * lib/editor/comms.js): it creates its WebSocket server with ws' default maxPayload of 100 MiB,
 * and accepts messages before the client authenticated. The editor only ever sends small
 * messages (its auth token, subscriptions), so its private copy of `ws` gets a 64 KiB default;
 * larger frames close the socket with 1009. Nothing else uses that copy (FLUX's own WebSocket
 * servers import the top-level `ws` and set their own limits). test/patches/upstream-shape.test.ts
 * checks the shape, and test/security/unauthenticated-limits.test.ts that a 1 MiB frame is refused.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

export const EDITOR_COMMS_MAX_PAYLOAD = 64 * 1024;

type WsServerClass = (new (options: Record<string, unknown>, callback?: () => void) => object) & { fluxBounded?: boolean };

const commsFile = () => createRequire(import.meta.resolve('node-red')).resolve('@node-red/editor-api/lib/editor/comms.js');
const commsWs = () => createRequire(commsFile())('ws') as { Server: WsServerClass };

/** Applies the patch once per process; answers false when the shape differs. */
export function limitEditorComms(): boolean {
  const ws = commsWs();
  const Upstream = ws.Server;
  if (typeof Upstream !== 'function') return false;
  if (Upstream.fluxBounded) return true;
  class BoundedServer extends Upstream {
    static fluxBounded = true;
    constructor(options: Record<string, unknown>, callback?: () => void) {
      super({ maxPayload: EDITOR_COMMS_MAX_PAYLOAD, ...options }, callback);
    }
  }
  ws.Server = BoundedServer;
  return true;
}

/** What the patch needs and the installed Node-RED does not offer (empty: all there). */
export function editorCommsShape(): string[] {
  const missing: string[] = [];
  if (typeof commsWs().Server !== 'function') missing.push("the editor comms' ws has no Server class");
  const src = fs.readFileSync(commsFile(), 'utf8');
  if (!/new ws\.Server\(/.test(src)) missing.push('@node-red/editor-api/lib/editor/comms.js no longer creates its server with `new ws.Server(`');
  if (/maxPayload/.test(src)) missing.push('comms.js now sets its own maxPayload: this patch may be obsolete');
  return missing;
}
