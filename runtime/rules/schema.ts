/** The shape of a rule and of each action's `action_config` (zod; the API and the engine share it). */
import { z } from 'zod';

export const ACTION_TYPES = ['webhook', 'command', 'alarm', 'flow'] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

const level = z.enum(['info', 'warning', 'critical']);

/** Options every action type accepts. */
const common = {
  /** send_command calls per second allowed for this rule (scene scripts); bursts up to twice that */
  commands_per_second: z.number().min(0.1).max(10_000).optional(),
  /** clear this rule's open alarm on a device when the rule evaluates false again there */
  auto_clear: z.boolean().optional(),
};

export const actionConfigs = {
  webhook: z
    .object({
      url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
      method: z.enum(['POST', 'PUT']).default('POST'),
      headers: z.record(z.string(), z.string()).optional(),
      timeout_ms: z.number().int().min(50).max(60_000).default(5000),
      retries: z.number().int().min(0).max(10).default(3),
      backoff_ms: z.number().int().min(0).max(60_000).default(500),
      ...common,
    })
    .strict(),
  command: z
    .object({
      /** default: the device whose message triggered the rule */
      device_id: z.string().min(1).max(64).optional(),
      command: z.string().min(1).max(64),
      params: z.record(z.string(), z.unknown()).default({}),
      ...common,
    })
    .strict(),
  alarm: z
    .object({
      level: level.default('warning'),
      /** `{{values.temperature}}`-style placeholders are filled from the message; default: the rule's name */
      message: z.string().max(1000).optional(),
      ...common,
    })
    .strict(),
  flow: z.object({ ...common }).strict(),
} as const;

export type WebhookAction = z.output<typeof actionConfigs.webhook>;
export type CommandAction = z.output<typeof actionConfigs.command>;
export type AlarmAction = z.output<typeof actionConfigs.alarm>;
export type ActionConfig = WebhookAction | CommandAction | AlarmAction | z.output<typeof actionConfigs.flow>;

export const ruleFields = {
  name: z.string().min(1).max(200),
  enabled: z.boolean(),
  trigger_script: z.string().min(1).max(200_000),
  action_type: z.enum(ACTION_TYPES),
  action_config: z.record(z.string(), z.unknown()),
  /** product id or key; null: every product */
  product_id: z.string().min(1).max(64).nullable(),
  device_id: z.string().min(1).max(64).nullable(),
  /** read-only settings the script sees as `env` */
  env: z.record(z.string(), z.unknown()),
};

export const ruleCreate = z
  .object({
    name: ruleFields.name,
    enabled: ruleFields.enabled.optional(),
    trigger_script: ruleFields.trigger_script,
    action_type: ruleFields.action_type,
    action_config: ruleFields.action_config.optional(),
    product_id: ruleFields.product_id.optional(),
    device_id: ruleFields.device_id.optional(),
    env: ruleFields.env.optional(),
  })
  .strict();
export type RuleInput = z.infer<typeof ruleCreate>;
export const rulePatch = ruleCreate.partial().strict();
export type RulePatch = z.infer<typeof rulePatch>;

export interface Rule {
  id: string;
  name: string;
  enabled: boolean;
  trigger_script: string;
  action_type: ActionType;
  action_config: ActionConfig & Record<string, unknown>;
  product_id: string | null;
  device_id: string | null;
  env: Record<string, unknown>;
  version: number;
  created_at: string;
  updated_at: string;
  /** set while the rule is quarantined (runtime/rules/engine.ts); saving clears them */
  quarantined_at?: string | null;
  quarantine_reason?: string | null;
}

/** Validates `config` for `type`; answers the config with defaults, or the zod error. */
export function parseActionConfig(type: ActionType, config: unknown): z.ZodSafeParseResult<ActionConfig> {
  return (actionConfigs[type] as z.ZodType<ActionConfig>).safeParse(config ?? {});
}
