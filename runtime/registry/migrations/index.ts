/**
 * Versioned schema migrations, run on start by umzug (recorded in `flux_migrations`).
 * Append new files; never edit one that has shipped.
 */
import type { QueryInterface } from 'sequelize';
import { m001Initial } from './001-initial.ts';
import { m003Rules } from './003-rules.ts';
import { m004Gateways } from './004-gateways.ts';
import { m005Users } from './005-users.ts';
import { m006DeviceTransport } from './006-device-transport.ts';
import { m007Streams } from './007-streams.ts';
import { m009RuleQuarantine } from './009-rule-quarantine.ts';
import { m010AlarmOpenKey } from './010-alarm-open-key.ts';
import { m011PluginModules } from './011-plugin-modules.ts';
import { m012SharedFlows } from './012-shared-flows.ts';
import { m013SharedFlowCredentials } from './013-shared-flow-credentials.ts';

export interface Migration {
  name: string;
  up(qi: QueryInterface): Promise<void>;
  down(qi: QueryInterface): Promise<void>;
}

export const MIGRATIONS: readonly Migration[] = [m001Initial, m003Rules, m004Gateways, m005Users, m006DeviceTransport, m007Streams, m009RuleQuarantine, m010AlarmOpenKey, m011PluginModules, m012SharedFlows, m013SharedFlowCredentials];
