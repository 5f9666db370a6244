/** The body of a replay request, shared by the API (runtime/api/plugin-compare.ts) and the editor's endpoint (nodes/flux-plugin-admin.ts). */
import { z } from 'zod';
import { DEVICE_ID_PATTERN, PRODUCT_KEY_PATTERN } from '../registry/index.ts';
import { REPLAY_LIMIT_MAX } from './replay.ts';

const time = z.union([z.number().int().min(0).max(8.64e15), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))]);
export const versionNumber = z.number().int().min(1).max(1_000_000_000);

export const replayBody = z
  .object({
    version: versionNumber,
    from: time,
    to: time,
    devices: z.array(z.string().regex(new RegExp(DEVICE_ID_PATTERN), `must match ${DEVICE_ID_PATTERN}`)).max(1000).optional(),
    /** product ids or keys (both match the key pattern) */
    products: z.array(z.string().regex(new RegExp(PRODUCT_KEY_PATTERN), `must match ${PRODUCT_KEY_PATTERN}`)).max(100).optional(),
    limit: z.number().int().min(1).max(REPLAY_LIMIT_MAX).optional(),
    wait: z.boolean().optional(),
  })
  .strict();

export const shadowBody = z.object({ version: versionNumber, sample: z.number().gt(0).max(1).optional() }).strict();
