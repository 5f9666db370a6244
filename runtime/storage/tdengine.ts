/**
 * TDengine backend over its REST API (taosAdapter `/rest/sql`, @tdengine/rest): one super table per
 * product whose columns come from the thing model (plus metrics first seen in data), a `device_id`
 * tag, and one sub-table per device created on first insert with `INSERT … USING … TAGS`.
 * Verified against TDengine's documented REST protocol (test/storage/tdengine-server.ts), not a live server.
 */
import td from '@tdengine/rest';
import type { AggRow, AggregateQuery, Point, RangeQuery, Sample, StoreInfo, TimeSeriesStore, Value } from './types.ts';
import { DataError } from './types.ts';
import { tdengineEvents } from './tdengine-events.ts';

/** TDengine error codes (taosError.h) the adapter reacts to; the REST body carries them without the 0x8000 prefix. */
export const TD = {
  SYNTAX_ERROR: 0x2600,
  INVALID_COLUMN: 0x2602,
  TABLE_NOT_EXIST: 0x2603,
  COLUMN_ALREADY_EXIST: 0x036b,
  DB_NOT_EXIST: 0x0388,
  AUTH_FAILURE: 0x0357,
} as const;

export class TdError extends Error {
  readonly code: number;
  constructor(code: number, desc: string) {
    super(`TDengine error 0x${code.toString(16)}: ${desc}`);
    this.name = 'TdError';
    this.code = code;
  }
}

type ColType = 'DOUBLE' | 'BIGINT' | 'BOOL' | 'NCHAR(1024)';

/** Identifier encoding: [a-z0-9] kept, every other character as _xx (hex), so names are injective and case-safe. */
export function encodeName(s: string): string {
  let out = '';
  for (const ch of s) {
    if (/[a-z0-9]/.test(ch)) out += ch;
    else out += [...Buffer.from(ch, 'utf8')].map((b) => '_' + b.toString(16).padStart(2, '0')).join('');
  }
  return out;
}

export function decodeName(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '_') {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(s.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

const stableName = (product: string) => `p_${encodeName(product)}`;
const tableName = (device: string) => `d_${encodeName(device)}`;
const colName = (metric: string) => `m_${encodeName(metric)}`;
const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function colTypeOf(declared: string | undefined, v: Value | undefined): ColType {
  switch (declared) {
    case 'int':
      return 'BIGINT';
    case 'float':
    case 'double':
    case 'number':
      return 'DOUBLE';
    case 'bool':
      return 'BOOL';
    case 'string':
    case 'enum':
      return 'NCHAR(1024)';
  }
  if (typeof v === 'boolean') return 'BOOL';
  if (typeof v === 'string') return 'NCHAR(1024)';
  return 'DOUBLE';
}

function literal(v: Value, type: string): string {
  if (type === 'BOOL') {
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (v === 0 || v === 1) return v ? 'true' : 'false';
    throw new DataError(`value ${JSON.stringify(v)} does not fit a BOOL column`);
  }
  if (type.startsWith('NCHAR') || type.startsWith('VARCHAR') || type.startsWith('BINARY')) return quote(String(v));
  if (typeof v === 'number' && Number.isFinite(v)) {
    if (type === 'BIGINT' && !Number.isInteger(v)) throw new DataError(`value ${v} does not fit a BIGINT column`);
    return String(v);
  }
  if (typeof v === 'boolean') return v ? '1' : '0';
  throw new DataError(`value ${JSON.stringify(v)} does not fit a ${type} column`);
}

function parseTs(v: unknown): number {
  if (typeof v === 'number') return v;
  const t = Date.parse(String(v));
  if (Number.isNaN(t)) throw new Error(`TDengine answered an unreadable timestamp ${JSON.stringify(v)}`);
  return t;
}

function fromColumn(v: unknown, type: string): Value | null {
  if (v === null || v === undefined) return null;
  if (type === 'BOOL') return v === true || v === 1 || v === 'true';
  if (typeof v === 'number') return v;
  if (type.startsWith('NCHAR') || type.startsWith('VARCHAR') || type.startsWith('BINARY')) return String(v);
  return Number(v);
}

const NUMERIC = (type: string) => type === 'DOUBLE' || type === 'BIGINT' || type === 'FLOAT' || type === 'INT';

export interface TdengineOptions {
  url: string;
}

interface Column {
  name: string;
  type: string;
}

export function createTdengineStore(opts: TdengineOptions): TimeSeriesStore {
  const u = new URL(opts.url);
  const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'flux';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(db)) throw new Error(`TDengine database name '${db}' is not a plain identifier`);
  const conn = td.connect({
    scheme: 'http',
    host: u.hostname,
    port: Number(u.port || 6041),
    path: '/rest/sql',
    user: decodeURIComponent(u.username || 'root'),
    passwd: decodeURIComponent(u.password || 'taosdata'),
  });
  /** product → its super table's columns (name → type) */
  const stables = new Map<string, Map<string, string>>();
  /** device → product of its sub-table; reads find columns through it */
  const devices = new Map<string, string>();
  /** device → sub-table columns, for reads */
  const deviceCols = new Map<string, Column[]>();
  const info: StoreInfo = { dialect: 'tdengine', layout: `super table per product in database ${db} (REST)` };

  async function sql(statement: string): Promise<{ meta: [string, string, number][]; data: unknown[][] }> {
    const res = await conn.cursor().query(statement);
    const code = res.getErrCode() ?? 0;
    if (code !== 0) {
      const err = new TdError(code, res.getErrStr() ?? 'unknown error');
      if (code === TD.SYNTAX_ERROR || code === TD.INVALID_COLUMN) throw new DataError(err.message, { cause: err });
      throw err;
    }
    const meta = (res.getMeta() ?? []).map((m) => [m.columnName, String(m.typeName), m.size] as [string, string, number]);
    return { meta, data: res.getData() ?? [] };
  }

  async function describe(table: string): Promise<Column[] | null> {
    try {
      const r = await sql(`DESCRIBE ${db}.${table}`);
      return r.data.filter((row) => String(row[3] ?? '') !== 'TAG').map((row) => ({ name: String(row[0]), type: String(row[1]).toUpperCase() }));
    } catch (err) {
      if (err instanceof TdError && err.code === TD.TABLE_NOT_EXIST) return null;
      throw err;
    }
  }

  /** Makes sure the product's super table has a column for each metric, creating or altering it. */
  async function ensureColumns(product: string, wanted: Map<string, ColType>): Promise<Map<string, string>> {
    const st = stableName(product);
    let cols = stables.get(product);
    if (!cols) {
      const described = await describe(st);
      if (described) cols = new Map(described.filter((c) => c.name !== 'ts').map((c) => [c.name, c.type]));
    }
    if (!cols) {
      if (wanted.size === 0) return new Map();
      const defs = [...wanted].map(([m, t]) => `\`${colName(m)}\` ${t}`).join(', ');
      await sql(`CREATE STABLE IF NOT EXISTS ${db}.${st} (ts TIMESTAMP, ${defs}) TAGS (device_id NCHAR(64))`);
      cols = new Map([...wanted].map(([m, t]) => [colName(m), t]));
    } else {
      for (const [m, t] of wanted) {
        const c = colName(m);
        if (cols.has(c)) continue;
        try {
          await sql(`ALTER STABLE ${db}.${st} ADD COLUMN \`${c}\` ${t}`);
        } catch (err) {
          // Another writer added it first: fine.
          if (!(err instanceof TdError && err.code === TD.COLUMN_ALREADY_EXIST)) throw err;
        }
        cols.set(c, t);
        for (const [d, p] of devices) if (p === product) deviceCols.delete(d);
      }
    }
    stables.set(product, cols);
    return cols;
  }

  async function columnsOf(device: string): Promise<Column[]> {
    let cols = deviceCols.get(device);
    if (!cols) {
      const d = await describe(tableName(device));
      if (!d) return [];
      cols = d.filter((c) => c.name.startsWith('m_'));
      deviceCols.set(device, cols);
    }
    return cols;
  }

  async function selected(device: string, metrics?: string[]): Promise<{ metric: string; col: string; type: string }[]> {
    const cols = await columnsOf(device);
    const all = cols.map((c) => ({ metric: decodeName(c.name.slice(2)), col: c.name, type: c.type }));
    return metrics && metrics.length ? all.filter((c) => metrics.includes(c.metric)) : all;
  }

  const events = tdengineEvents({ db, encodeName, sql, quote, parseTs, missingTable: (err) => err instanceof TdError && err.code === TD.TABLE_NOT_EXIST });

  const where = (q: RangeQuery) => `ts >= ${Math.trunc(q.from)} AND ts < ${Math.trunc(q.to)}`;

  return {
    info,
    async open() {
      await sql(`CREATE DATABASE IF NOT EXISTS ${db} PRECISION 'ms'`);
    },
    async close() {
      events.forget();
      stables.clear();
      devices.clear();
      deviceCols.clear();
    },
    async ping() {
      await sql('SELECT SERVER_VERSION()');
    },
    async defineProduct(product, properties) {
      const wanted = new Map<string, ColType>();
      for (const p of properties) wanted.set(p.id, colTypeOf(p.type, undefined));
      await ensureColumns(product, wanted);
    },
    async write(points: Point[]) {
      if (points.length === 0) return;
      // Group: product → device → ts → metric → value (last write in the batch wins).
      const byProduct = new Map<string, Map<string, Map<number, Map<string, Value>>>>();
      for (const p of points) {
        let devs = byProduct.get(p.product);
        if (!devs) byProduct.set(p.product, (devs = new Map()));
        let rows = devs.get(p.device);
        if (!rows) devs.set(p.device, (rows = new Map()));
        let row = rows.get(p.ts);
        if (!row) rows.set(p.ts, (row = new Map()));
        row.set(p.metric, p.value);
      }
      const clauses: string[] = [];
      for (const [product, devs] of byProduct) {
        const wanted = new Map<string, ColType>();
        for (const rows of devs.values()) for (const row of rows.values()) for (const [m, v] of row) if (!wanted.has(m)) wanted.set(m, colTypeOf(undefined, v));
        const cols = await ensureColumns(product, wanted);
        for (const [device, rows] of devs) {
          devices.set(device, product);
          // Rows of one device grouped by the set of metrics they carry: each group names only its own
          // columns, so a row never overwrites another metric stored at the same timestamp with NULL.
          const groups = new Map<string, string[]>();
          for (const [ts, row] of rows) {
            const metrics = [...row.keys()].sort();
            const sig = metrics.join('\0');
            let g = groups.get(sig);
            if (!g) groups.set(sig, (g = []));
            g.push(`(${ts}, ${metrics.map((m) => literal(row.get(m)!, cols.get(colName(m)) ?? 'DOUBLE')).join(', ')})`);
          }
          for (const [sig, values] of groups) {
            const names = sig.split('\0').map((m) => `\`${colName(m)}\``).join(', ');
            clauses.push(`${db}.${tableName(device)} USING ${db}.${stableName(product)} TAGS (${quote(device)}) (ts, ${names}) VALUES ${values.join(' ')}`);
          }
        }
      }
      // One INSERT per ~1 MB keeps each request well under taosAdapter's body limits.
      let stmt = '';
      for (const c of clauses) {
        if (stmt && stmt.length + c.length > 1_000_000) {
          await sql(stmt);
          stmt = '';
        }
        stmt = stmt ? `${stmt} ${c}` : `INSERT INTO ${c}`;
      }
      if (stmt) await sql(stmt);
    },
    async metrics(device) {
      const cols = await selected(device);
      if (cols.length === 0) return [];
      const r = await sql(`SELECT ${cols.map((c) => `COUNT(\`${c.col}\`)`).join(', ')} FROM ${db}.${tableName(device)}`);
      const counts = r.data[0] ?? [];
      return cols.filter((_, i) => Number(counts[i] ?? 0) > 0).map((c) => c.metric).sort();
    },
    async latest(device): Promise<Sample[]> {
      const cols = await selected(device);
      // One small query per column: LAST(col) ignores NULLs but cannot answer that value's own timestamp.
      const out = await Promise.all(
        cols.map(async (c) => {
          const r = await sql(`SELECT ts, \`${c.col}\` FROM ${db}.${tableName(device)} WHERE \`${c.col}\` IS NOT NULL ORDER BY ts DESC LIMIT 1`);
          const row = r.data[0];
          if (!row) return null;
          return { metric: c.metric, ts: parseTs(row[0]), value: fromColumn(row[1], c.type)! };
        }),
      );
      return out.filter((s): s is Sample => s !== null).sort((a, b) => (a.metric < b.metric ? -1 : 1));
    },
    async latestMany(list) {
      // No cross-table LAST with per-value timestamps over REST: one latest() per device, in parallel.
      return new Map(await Promise.all(list.map(async (d) => [d, await this.latest(d)] as [string, Sample[]])));
    },
    async range(q): Promise<Sample[]> {
      const cols = await selected(q.device, q.metrics);
      if (cols.length === 0) return [];
      const limit = Math.max(1, Math.min(q.limit ?? 10_000, 1_000_000));
      const notNull = cols.map((c) => `\`${c.col}\` IS NOT NULL`).join(' OR ');
      const r = await sql(
        `SELECT ts, ${cols.map((c) => `\`${c.col}\``).join(', ')} FROM ${db}.${tableName(q.device)} WHERE ${where(q)} AND (${notNull}) ORDER BY ts ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ${limit}${q.offset ? ` OFFSET ${Math.trunc(q.offset)}` : ''}`,
      );
      const order = cols.map((c, i) => ({ c, i })).sort((a, b) => (a.c.metric < b.c.metric ? -1 : 1));
      const out: Sample[] = [];
      for (const row of r.data) {
        const ts = parseTs(row[0]);
        for (const { c, i } of order) {
          const v = fromColumn(row[i + 1], c.type);
          if (v !== null) out.push({ metric: c.metric, ts, value: v });
        }
      }
      return out.slice(0, limit);
    },
    async aggregate(q: AggregateQuery): Promise<AggRow[]> {
      const cols = await selected(q.device, q.metrics);
      if (cols.length === 0) return [];
      const exprs: string[] = ['_wstart'];
      for (const c of cols) {
        const n = `\`${c.col}\``;
        exprs.push(`COUNT(${n})`);
        for (const a of q.aggs) {
          if (a === 'count') continue;
          if (a === 'first' || a === 'last') exprs.push(`${a.toUpperCase()}(${n})`);
          else if (NUMERIC(c.type)) exprs.push(`${a.toUpperCase()}(${n})`);
          else exprs.push('NULL');
        }
      }
      const r = await sql(`SELECT ${exprs.join(', ')} FROM ${db}.${tableName(q.device)} WHERE ${where(q)} INTERVAL(${Math.trunc(q.interval)}a)`);
      const out: AggRow[] = [];
      for (const row of r.data) {
        const ts = parseTs(row[0]);
        let i = 1;
        for (const c of cols) {
          const count = Number(row[i++] ?? 0);
          const agg: AggRow = { metric: c.metric, ts };
          for (const a of q.aggs) {
            if (a === 'count') {
              agg.count = count;
              continue;
            }
            const v = row[i++];
            if (a === 'first' || a === 'last') agg[a] = fromColumn(v, c.type);
            else agg[a] = v === null || v === undefined ? null : Number(v);
          }
          if (count > 0) out.push(agg);
        }
      }
      out.sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : a.ts - b.ts));
      return q.limit !== undefined && out.length > q.limit ? out.slice(0, q.limit) : out;
    },
    ...events,
    async deleteBefore(product, before) {
      try {
        const r = await sql(`DELETE FROM ${db}.${stableName(product)} WHERE ts < ${Math.trunc(before)}`);
        return Number(r.data[0]?.[0] ?? -1);
      } catch (err) {
        if (err instanceof TdError && err.code === TD.TABLE_NOT_EXIST) return 0;
        throw err;
      }
    },
  };
}
