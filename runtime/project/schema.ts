/**
 * The project document `flux export` writes and `flux import` reads (docs/operations.md "Moving a
 * project"): products, devices without secrets, rules, the active build of each plugin with its
 * bytes, and the flows. Everything in it is validated as hostile input: bounded counts and sizes,
 * ids by the registry's patterns and the slug rule (runtime/safe-id), wasm bytes against their sha256.
 */
import { z } from 'zod';
import { schemas } from '../api/index.ts';
import { ruleCreate } from '../rules/index.ts';
import { deviceTransportSchema, productTransportSchema } from '../modbus/index.ts';

export const PROJECT_FORMAT = 'flux-project';
export const PROJECT_FORMAT_VERSION = 1;
/** the largest import body: eight plugins at the 8 MiB module limit, base64, plus the rest */
export const PROJECT_IMPORT_LIMIT = '96mb';

export const MAX_PRODUCTS = 10_000;
export const MAX_DEVICES = 100_000;
export const MAX_RULES = 10_000;
export const MAX_PLUGINS = 64;
export const MAX_FLOW_NODES = 20_000;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
/** the source instance's product id: only a reference inside the document, never written */
const ref = z.string().min(1).max(64);

export const projectProduct = z
  .object({
    id: ref,
    key: schemas.productKey,
    name: z.string().min(1).max(200),
    description: z.string().max(1000).nullable().optional(),
    protocol_plugin_id: schemas.pluginId.nullable().optional(),
    metadata: schemas.thingModel.optional(),
    transport: productTransportSchema.optional(),
    auto_register_children: z.boolean().optional(),
    child_product_id: ref.nullable().optional(),
  })
  .strict();

export const projectDevice = z
  .object({
    id: schemas.deviceId,
    product_id: ref,
    name: z.string().min(1).max(200).optional(),
    enabled: z.boolean().optional(),
    tags: z.record(z.string(), z.unknown()).optional(),
    is_gateway: z.boolean().optional(),
    gateway_id: schemas.deviceId.nullable().optional(),
    transport: deviceTransportSchema.nullable().optional(),
  })
  .strict();

export const projectPlugin = z
  .object({
    id: schemas.pluginId,
    /** the version number on the source instance (the target numbers its own) */
    version: z.number().int().min(1),
    sha256,
    limits: z.object({ deadline_ms: z.number().int().min(1).max(10_000).optional(), memory_mib: z.number().int().min(1).max(1024).optional() }).strict().optional(),
    /** the module, base64 */
    wasm: z.string().min(8).max(12 * 2 ** 20),
  })
  .strict();

const flowNode = z
  .object({ id: z.string().min(1).max(64), type: z.string().min(1).max(200) })
  .loose();

export const projectDocument = z
  .object({
    format: z.literal(PROJECT_FORMAT),
    format_version: z.literal(PROJECT_FORMAT_VERSION),
    flux_version: z.string().max(64).optional(),
    exported_at: z.string().max(64).optional(),
    products: z.array(projectProduct).max(MAX_PRODUCTS).default([]),
    devices: z.array(projectDevice).max(MAX_DEVICES).default([]),
    rules: z.array(ruleCreate).max(MAX_RULES).default([]),
    plugins: z.array(projectPlugin).max(MAX_PLUGINS).default([]),
    /** Node-RED flow JSON; absent: the target's flows stay as they are */
    flows: z.array(flowNode).max(MAX_FLOW_NODES).optional(),
  })
  .strict();

export type ProjectDocument = z.output<typeof projectDocument>;
export type ProjectProduct = z.output<typeof projectProduct>;
export type ProjectDevice = z.output<typeof projectDevice>;
export type ProjectPlugin = z.output<typeof projectPlugin>;
