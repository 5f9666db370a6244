/**
 * The audit log repository: rows appended with an increasing id, read newest first, pruned by age
 * and by count. Bounding what is written is runtime/users/audit.ts's. test/registry/audit.test.ts
 * runs it on SQLite, MariaDB and PostgreSQL.
 */
import { Op, type WhereOptions } from 'sequelize';
import { iso, type Db, type Page } from '../rows.ts';

export interface AuditRow {
  id: number;
  at: string;
  username: string | null;
  role: string | null;
  action: string;
  target: string | null;
  status: number | null;
  address: string | null;
  detail: string | null;
}

export interface AuditRepository {
  append(row: Omit<AuditRow, 'id' | 'at'> & { at: Date }): Promise<void>;
  /** newest first */
  list(opts: { limit: number; offset: number; username?: string; action?: string }): Promise<Page<AuditRow>>;
  /** Deletes the rows older than `olderThan`, then all but the newest `keep` (by id). */
  prune(opts: { olderThan: Date; keep: number }): Promise<void>;
}

export function createAuditRepository(db: Db): AuditRepository {
  const { AuditEntry } = db.models;
  return {
    async append(row) {
      await AuditEntry.create(row);
    },
    async list({ limit, offset, username, action }) {
      const where: WhereOptions = {};
      if (username) Object.assign(where, { username });
      if (action) Object.assign(where, { action });
      const { rows, count } = await AuditEntry.findAndCountAll({ where, order: [['id', 'DESC']], limit, offset });
      const items = rows.map((r) => {
        const v = r.get({ plain: true }) as Record<string, unknown>;
        return {
          id: Number(v.id),
          at: iso(v.at)!,
          username: (v.username as string | null) ?? null,
          role: (v.role as string | null) ?? null,
          action: v.action as string,
          target: (v.target as string | null) ?? null,
          status: v.status === null || v.status === undefined ? null : Number(v.status),
          address: (v.address as string | null) ?? null,
          detail: (v.detail as string | null) ?? null,
        };
      });
      return { items, total: count, limit, offset };
    },
    async prune({ olderThan, keep }) {
      await AuditEntry.destroy({ where: { at: { [Op.lt]: olderThan } } });
      // Ids only grow: the newest id minus `keep` is where the kept rows begin (a gap in the ids keeps fewer).
      const newest = (await AuditEntry.max('id')) as number | null;
      if (newest !== null && newest > keep) await AuditEntry.destroy({ where: { id: { [Op.lte]: newest - keep } } });
    },
  };
}
