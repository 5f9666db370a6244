/**
 * The rules repository: the rows the rule engine (runtime/rules) compiles, each with a version that
 * every save increments, and the quarantine a version may carry. test/registry/rules.test.ts runs it on
 * SQLite, MariaDB and PostgreSQL.
 */
import type { Model, WhereOptions } from 'sequelize';
import { notFound } from '../../errors/index.ts';
import { iso, isUuid, type Db } from '../rows.ts';

/** A stored rule; `action_type` and `action_config` are the rule engine's to check. */
export interface RuleRow {
  id: string;
  name: string;
  enabled: boolean;
  trigger_script: string;
  action_type: string;
  action_config: Record<string, unknown>;
  product_id: string | null;
  device_id: string | null;
  version: number;
  env: Record<string, unknown>;
  quarantined_at: string | null;
  quarantine_reason: string | null;
  created_at: string;
  updated_at: string;
}

/** What a save writes (the id, version, quarantine and times are the repository's). */
export type RuleColumns = Pick<RuleRow, 'name' | 'enabled' | 'trigger_script' | 'action_type' | 'action_config' | 'product_id' | 'device_id' | 'env'>;

export interface RuleRepository {
  /** in creation order (created_at, then id) */
  list(filter?: { enabled?: boolean; product_id?: string; device_id?: string }): Promise<RuleRow[]>;
  /** null for an unknown id (and for one that is not a UUID) */
  find(id: string): Promise<RuleRow | null>;
  /** every rule's id and version, to notice saves made by another process */
  versions(): Promise<{ id: string; version: number }[]>;
  /** a new rule at version 1, not quarantined */
  create(columns: RuleColumns): Promise<RuleRow>;
  /** Replaces the columns, increments the version in the same statement and ends any quarantine; 404 when gone. */
  update(id: string, columns: RuleColumns): Promise<RuleRow>;
  /** 404 when gone */
  delete(id: string): Promise<void>;
  /** Quarantines `version` of the rule only (a save that raced it wins); false when that version is no longer stored. */
  quarantine(id: string, version: number, at: Date, reason: string): Promise<boolean>;
}

function toRow(m: Model): RuleRow {
  const o = m.get({ plain: true }) as Record<string, unknown>;
  return {
    id: o.id as string,
    name: o.name as string,
    enabled: Boolean(o.enabled),
    trigger_script: o.trigger_script as string,
    action_type: o.action_type as string,
    action_config: o.action_config as Record<string, unknown>,
    product_id: (o.product_id as string | null) ?? null,
    device_id: (o.device_id as string | null) ?? null,
    version: Number(o.version),
    env: (o.env as Record<string, unknown> | null) ?? {},
    quarantined_at: iso(o.quarantined_at),
    quarantine_reason: (o.quarantine_reason as string | null) ?? null,
    created_at: iso(o.created_at)!,
    updated_at: iso(o.updated_at)!,
  };
}

export function createRuleRepository(db: Db): RuleRepository {
  const { Rule } = db.models;
  const versionPlusOne = db.sequelize.literal(`${db.sequelize.getQueryInterface().quoteIdentifier('version')} + 1`);
  const rules: RuleRepository = {
    async list(filter = {}) {
      const where: WhereOptions = {};
      if (filter.enabled !== undefined) Object.assign(where, { enabled: filter.enabled });
      if (filter.device_id) Object.assign(where, { device_id: filter.device_id });
      if (filter.product_id) Object.assign(where, { product_id: filter.product_id });
      return (await Rule.findAll({ where, order: [['created_at', 'ASC'], ['id', 'ASC']] })).map(toRow);
    },
    async find(id) {
      const row = isUuid(id) ? await Rule.findByPk(id) : null;
      return row ? toRow(row) : null;
    },
    async versions() {
      const rows = await Rule.findAll({ attributes: ['id', 'version'], raw: true });
      return (rows as unknown as { id: string; version: number }[]).map((r) => ({ id: r.id, version: Number(r.version) }));
    },
    async create(columns) {
      return toRow(await Rule.create({ ...columns, version: 1, quarantined_at: null, quarantine_reason: null }));
    },
    async update(id, columns) {
      // Saving a rule runs it again: a quarantine ends here.
      const [n] = isUuid(id) ? await Rule.update({ ...columns, version: versionPlusOne, quarantined_at: null, quarantine_reason: null }, { where: { id } }) : [0];
      const row = n > 0 ? await rules.find(id) : null;
      if (!row) throw notFound('rule', id);
      return row;
    },
    async delete(id) {
      const n = isUuid(id) ? await Rule.destroy({ where: { id } }) : 0;
      if (n === 0) throw notFound('rule', id);
    },
    async quarantine(id, version, at, reason) {
      const [n] = await Rule.update({ quarantined_at: at, quarantine_reason: reason }, { where: { id, version } });
      return n > 0;
    },
  };
  return rules;
}
