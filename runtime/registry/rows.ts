/** What every repository shares: the connection it works on, pages, and rows made plain. */
import { Op, type Model, type ModelStatic, type Sequelize } from 'sequelize';
import type { DbUrl } from '../../settings.ts';
import type { Models } from './models.ts';

/** The database a repository works on; it never leaves runtime/registry/. */
export interface Db {
  readonly sequelize: Sequelize;
  readonly models: Models;
  readonly dialect: DbUrl['dialect'];
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface ListOptions {
  limit?: number;
  offset?: number;
}

/** limit 1…1000 (default 50), offset ≥ 0 */
export function clampPage(o: ListOptions): { limit: number; offset: number } {
  return { limit: Math.min(Math.max(o.limit ?? 50, 1), 1000), offset: Math.max(o.offset ?? 0, 0) };
}

/** Case-insensitive LIKE on every dialect (PostgreSQL's LIKE is case-sensitive). */
export function likeOp(dialect: string): typeof Op.like | typeof Op.iLike {
  return dialect === 'postgres' ? Op.iLike : Op.like;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** true for a UUID in its canonical form: anything else is no id of a UUID column (PostgreSQL would refuse it with an error) */
export const isUuid = (id: string): boolean => UUID_RE.test(id);

/** A date column as ISO 8601 (drivers answer Date objects or strings), or null. */
export function iso(v: unknown): string | null {
  return v === null || v === undefined ? null : new Date(v as string | Date).toISOString();
}

/** A model's columns as a plain object: dates as ISO strings, the named columns as booleans, `omit` left out. */
export function plainRow(m: Model, booleans: readonly string[] = [], omit?: string): Record<string, unknown> {
  const src = m.get({ plain: true }) as Record<string, unknown>;
  // A fresh object rather than `delete`: a deleted property turns an object into a dictionary
  // (~830 bytes instead of ~150), and device identities stay cached for every connected device.
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    if (k === omit) continue;
    const v = src[k];
    o[k] = v instanceof Date ? v.toISOString() : v;
  }
  for (const k of booleans) if (k in o) o[k] = Boolean(o[k]);
  return o;
}

/**
 * Reads rows the way `plainRow` shows them without a model instance per row: a list of hundreds
 * spent most of its time in Sequelize's instance building (bench/graphql.bench.ts, docs/benchmarks.md).
 * `attributes` is what to select (the model's columns but `omit`); `row` turns a raw row (findAll
 * with `raw: true`) into what `plainRow` gives: the columns' own getters (JSON text columns), dates
 * as ISO strings (drivers answer Date objects or strings), the named columns as booleans.
 */
export function rawReader(model: ModelStatic<Model>, booleans: readonly string[] = [], omit?: string): { attributes: string[]; row(r: Record<string, unknown>): Record<string, unknown> } {
  const attrs = model.getAttributes();
  const attributes = Object.keys(attrs).filter((k) => k !== omit);
  const bools = new Set(booleans);
  const cols = attributes.map((k) => {
    const a = attrs[k]!;
    const type = String((a.type as { key?: string }).key ?? '');
    const kind = a.get ? 'get' : bools.has(k) ? 'bool' : type === 'DATE' ? 'date' : 'plain';
    return { k, kind, get: a.get };
  });
  // the getters read their column through getDataValue, as on a model instance
  let current: Record<string, unknown> = {};
  const self = { getDataValue: (k: string) => current[k] };
  return {
    attributes,
    row(r) {
      current = r;
      const o: Record<string, unknown> = {};
      // the getter columns first: plainRow (Model#get with plain) lists them first too
      for (const c of cols) if (c.kind === 'get') o[c.k] = c.get!.call(self as never);
      for (const c of cols) {
        if (c.kind === 'get') continue;
        const v = r[c.k];
        o[c.k] = c.kind === 'bool' ? (v === null || v === undefined ? v : Boolean(v)) : c.kind === 'date' ? iso(v) : v instanceof Date ? v.toISOString() : v;
      }
      return o;
    },
  };
}
