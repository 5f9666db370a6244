/** zod schemas shared by the API routes. */
import { z } from 'zod';
import { DEVICE_ID_PATTERN, PRODUCT_KEY_PATTERN } from '../registry/index.ts';
import { q } from './routes.ts';
import { checkSlug, SLUG_MAX_LENGTH, SLUG_PATTERN } from '../safe-id/index.ts';

export const deviceId = z.string().regex(new RegExp(DEVICE_ID_PATTERN), `must match ${DEVICE_ID_PATTERN}`);
export const productKey = z.string().regex(new RegExp(PRODUCT_KEY_PATTERN), `must match ${PRODUCT_KEY_PATTERN}`);
export const idParam = z.object({ id: z.string().min(1).max(200) });
export const page = { limit: q.int(1, 1000).optional(), offset: q.int(0, 1_000_000_000).optional() };

const propertyType = z.enum(['int', 'float', 'double', 'number', 'bool', 'string', 'enum']);
export const thingModel = z
  .object({
    properties: z
      .array(z.object({ id: z.string().min(1).max(64), name: z.string().max(200).optional(), type: propertyType, unit: z.string().max(32).optional() }).loose())
      .max(1000)
      .optional(),
    events: z
      .array(
        z
          .object({
            id: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'an event id: letters, digits, _ . : - (at most 64)'),
            name: z.string().max(200).optional(),
            fields: z.array(z.object({ id: z.string().min(1).max(64), name: z.string().max(200).optional(), type: propertyType, required: z.boolean().optional() }).loose()).max(200).optional(),
          })
          .loose(),
      )
      .max(1000)
      .optional(),
    commands: z.array(z.object({ id: z.string().min(1).max(64), name: z.string().max(200).optional() }).loose()).max(1000).optional(),
  })
  .loose()
  .superRefine((m, ctx) => {
    const seen = new Set<string>();
    for (const p of m.properties ?? []) {
      if (seen.has(p.id)) ctx.addIssue({ code: 'custom', message: `duplicate property id '${p.id}'`, path: ['properties'] });
      seen.add(p.id);
    }
    const events = new Set<string>();
    for (const e of m.events ?? []) {
      if (events.has(e.id)) ctx.addIssue({ code: 'custom', message: `duplicate event id '${e.id}'`, path: ['events'] });
      events.add(e.id);
    }
  });
/**
 * An id that becomes a file or folder name: checked by the one slug rule (runtime/safe-id), which
 * answers 400 `invalid_id` naming `kind`. The pattern is published in the OpenAPI document.
 */
export const slug = (kind: string) =>
  z.string().meta({ pattern: SLUG_PATTERN, maxLength: SLUG_MAX_LENGTH, description: `${kind} id (a slug)` }).transform((id) => checkSlug(kind, id));
export const pluginId = slug('plugin');
export const secret = z.string().min(16, 'must be at least 16 characters').max(200);
