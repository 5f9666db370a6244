/**
 * A local HTTP server speaking TDengine 3's documented REST protocol (taosAdapter `POST /rest/sql[/db]`,
 * Basic auth, `{code, column_meta, data, rows}` answers, `{code, desc}` errors with TDengine's error
 * codes, RFC 3339 UTC timestamps) over an in-memory engine for the SQL subset FLUX sends: CREATE
 * DATABASE/STABLE, ALTER STABLE ADD COLUMN, DESCRIBE, INSERT … USING … TAGS, SELECT with WHERE
 * (=, <, >, <=, >=, IN, IS [NOT] NULL; on a super table also its tags and `tbname`), ORDER BY ts,
 * LIMIT, INTERVAL(…a) and COUNT/AVG/MIN/MAX/SUM/FIRST/LAST, DELETE. Like TDengine, a sub-table keeps
 * one row per timestamp (the last written). It stands in for a
 * server that cannot run here: the adapter is verified against the protocol, not a live TDengine.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CODES, Parser, TdFail, coerce, condition, literal, typeDef, type ColDef, type Cond } from './tdengine-sql.ts';

interface Stable {
  columns: ColDef[];
  tags: ColDef[];
}

interface Table {
  stable: string;
  tags: unknown[];
  /** ts → column → value */
  rows: Map<number, Map<string, unknown>>;
}

interface Database {
  stables: Map<string, Stable>;
  tables: Map<string, Table>;
}

interface Result {
  column_meta: [string, string, number][];
  data: unknown[][];
  rows: number;
}

const affected = (n: number): Result => ({ column_meta: [['affected_rows', 'INT', 4]], data: [[n]], rows: 1 });
const iso = (ts: number) => new Date(ts).toISOString();

export interface TdengineServer {
  url: string;
  port: number;
  /** every SQL statement received, in order */
  statements: string[];
  /** false: answer 503 to everything (taosAdapter up, cluster unavailable) */
  available: boolean;
  close(): Promise<void>;
}

export async function startTdengineServer(opts: { user?: string; password?: string } = {}): Promise<TdengineServer> {
  const user = opts.user ?? 'root';
  const password = opts.password ?? 'taosdata';
  const dbs = new Map<string, Database>();
  const statements: string[] = [];

  const getDb = (name: string): Database => {
    const d = dbs.get(name);
    if (!d) throw new TdFail(CODES.DB_NOT_EXIST, 'Database not exist');
    return d;
  };

  /** Rows of a sub-table, or of every sub-table of a super table, as [ts, row]. */
  function source(db: Database, name: string): { columns: ColDef[]; rows: [number, Map<string, unknown>][] } {
    const table = db.tables.get(name);
    if (table) {
      const st = db.stables.get(table.stable)!;
      return { columns: st.columns, rows: [...table.rows].sort((a, b) => a[0] - b[0]) };
    }
    const st = db.stables.get(name);
    if (st) {
      // A super table's rows carry their sub-table's tags and name (`tbname`), as TDengine answers them.
      const rows: [number, Map<string, unknown>][] = [];
      for (const [tbname, t] of db.tables) {
        if (t.stable !== name) continue;
        const extra: [string, unknown][] = [['tbname', tbname], ...st.tags.map((c, i): [string, unknown] => [c.name, t.tags[i]])];
        for (const [ts, row] of t.rows) rows.push([ts, new Map([...row, ...extra])]);
      }
      return { columns: [...st.columns, ...st.tags, { name: 'tbname', type: 'VARCHAR', length: 192 }], rows: rows.sort((a, b) => a[0] - b[0]) };
    }
    throw new TdFail(CODES.TABLE_NOT_EXIST, `Table does not exist: ${name}`);
  }

  type Expr = { kind: 'ts' | 'wstart' | 'null' | 'col' | 'fn'; fn?: string; col?: string };

  function select(p: Parser, defaultDb: string | undefined): Result {
    if (p.isKw('SERVER_VERSION')) {
      p.kw('SERVER_VERSION');
      p.op('(');
      p.op(')');
      return { column_meta: [['server_version()', 'VARCHAR', 24]], data: [['3.3.6.0-protocol-test']], rows: 1 };
    }
    const exprs: Expr[] = [];
    do {
      if (p.isKw('_WSTART')) {
        p.kw('_WSTART');
        exprs.push({ kind: 'wstart' });
      } else if (p.isKw('NULL')) {
        p.kw('NULL');
        exprs.push({ kind: 'null' });
      } else if (p.peek()?.t === 'id' && p.peek(1)?.v === '(') {
        const fn = p.name().toUpperCase();
        if (!['COUNT', 'AVG', 'MIN', 'MAX', 'SUM', 'FIRST', 'LAST'].includes(fn)) throw new TdFail(0x2800, `Invalid function name: ${fn}`);
        p.op('(');
        const col = p.name();
        p.op(')');
        exprs.push({ kind: 'fn', fn, col });
      } else {
        const col = p.name();
        exprs.push(col === 'ts' ? { kind: 'ts' } : { kind: 'col', col });
      }
    } while (p.optOp(','));
    p.kw('FROM');
    const { db, name } = p.qualified(defaultDb);
    const src = source(getDb(db), name);
    const colType = (c: string) => {
      const def = src.columns.find((x) => x.name === c);
      if (!def) throw new TdFail(CODES.INVALID_COLUMN, `Invalid column name: ${c}`);
      return def;
    };
    let cond: Cond = () => true;
    if (p.optKw('WHERE')) cond = condition(p, src.columns);
    let interval: number | undefined;
    if (p.optKw('INTERVAL')) {
      p.op('(');
      const t = p.next();
      const m = /^(\d+)(a|s|m|h|d)?$/.exec(t.v);
      if (t.t !== 'num' || !m) p.fail();
      interval = Number(m[1]) * ({ a: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as Record<string, number>)[m[2] ?? 'a']!;
      p.op(')');
    }
    let desc = false;
    if (p.optKw('ORDER', 'BY')) {
      const c = p.name();
      if (c !== 'ts' && c !== '_wstart') p.fail();
      if (p.optKw('DESC')) desc = true;
      else p.optKw('ASC');
    }
    let limit = Infinity;
    let offset = 0;
    if (p.optKw('LIMIT')) limit = p.num();
    if (p.optKw('OFFSET')) offset = p.num();
    if (!p.done()) p.fail();

    const rows = src.rows.filter(([ts, r]) => cond(r, ts));
    if (desc) rows.reverse();
    const hasFn = exprs.some((e) => e.kind === 'fn');
    const meta: [string, string, number][] = exprs.map((e) => {
      if (e.kind === 'ts') return ['ts', 'TIMESTAMP', 8];
      if (e.kind === 'wstart') return ['_wstart', 'TIMESTAMP', 8];
      if (e.kind === 'null') return ['null', 'NULL', 0];
      const def = colType(e.col!);
      if (e.kind === 'col') return [def.name, def.type, def.length];
      if (e.fn === 'COUNT') return [`count(${def.name})`, 'BIGINT', 8];
      if (e.fn === 'AVG') {
        if (!['DOUBLE', 'BIGINT', 'INT', 'FLOAT'].includes(def.type)) throw new TdFail(0x2802, 'Invalid function para type');
        return [`avg(${def.name})`, 'DOUBLE', 8];
      }
      if (e.fn === 'SUM' || e.fn === 'MIN' || e.fn === 'MAX') {
        if (!['DOUBLE', 'BIGINT', 'INT', 'FLOAT'].includes(def.type)) throw new TdFail(0x2802, 'Invalid function para type');
      }
      return [`${e.fn!.toLowerCase()}(${def.name})`, e.fn === 'SUM' && def.type !== 'DOUBLE' && def.type !== 'FLOAT' ? 'BIGINT' : def.type, def.length];
    });

    const aggregate = (group: [number, Map<string, unknown>][], wstart: number | null): unknown[] =>
      exprs.map((e) => {
        if (e.kind === 'wstart') return wstart === null ? null : iso(wstart);
        if (e.kind === 'null') return null;
        if (e.kind === 'ts') return group.length ? iso(group[0]![0]) : null;
        const vals = group.map(([ts, r]) => [ts, r.get(e.col!)] as const).filter(([, v]) => v !== null && v !== undefined);
        if (e.kind === 'col') return vals[0]?.[1] ?? null;
        const nums = vals.map(([, v]) => Number(v));
        switch (e.fn) {
          case 'COUNT':
            return vals.length;
          case 'AVG':
            return nums.length ? nums.reduce((a, b) => a + b, 0) / nums.length : null;
          case 'SUM':
            return nums.length ? nums.reduce((a, b) => a + b, 0) : null;
          case 'MIN':
            return nums.length ? Math.min(...nums) : null;
          case 'MAX':
            return nums.length ? Math.max(...nums) : null;
          case 'FIRST':
            return vals.length ? vals.reduce((a, b) => (b[0] < a[0] ? b : a))[1] : null;
          default:
            return vals.length ? vals.reduce((a, b) => (b[0] > a[0] ? b : a))[1] : null;
        }
      });

    let data: unknown[][];
    if (interval !== undefined) {
      // Windows aligned to the epoch; only windows holding rows are answered (no FILL).
      const windows = new Map<number, [number, Map<string, unknown>][]>();
      for (const row of rows) {
        const w = Math.floor(row[0] / interval) * interval;
        let g = windows.get(w);
        if (!g) windows.set(w, (g = []));
        g.push(row);
      }
      data = [...windows.keys()].sort((a, b) => a - b).map((w) => aggregate(windows.get(w)!, w));
    } else if (hasFn) {
      data = [aggregate(rows, null)];
    } else {
      data = rows.map(([ts, r]) => exprs.map((e) => (e.kind === 'ts' ? iso(ts) : e.kind === 'col' ? (r.get(e.col!) ?? null) : null)));
    }
    data = data.slice(offset, offset + limit);
    return { column_meta: meta, data, rows: data.length };
  }

  function insert(p: Parser, defaultDb: string | undefined): Result {
    let n = 0;
    while (!p.done()) {
      const { db: dbName, name } = p.qualified(defaultDb);
      const db = getDb(dbName);
      let table = db.tables.get(name);
      if (p.optKw('USING')) {
        const st = p.qualified(defaultDb);
        if (st.db !== dbName) p.fail();
        const stable = db.stables.get(st.name);
        if (!stable) throw new TdFail(CODES.TABLE_NOT_EXIST, `Table does not exist: ${st.name}`);
        p.kw('TAGS');
        p.op('(');
        const tags: unknown[] = [];
        do tags.push(literal(p));
        while (p.optOp(','));
        p.op(')');
        if (tags.length !== stable.tags.length) throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error near "TAGS" (tags number not matched)');
        if (!table) db.tables.set(name, (table = { stable: st.name, tags: tags.map((t, i) => coerce(t, stable.tags[i]!)), rows: new Map() }));
      }
      if (!table) throw new TdFail(CODES.TABLE_NOT_EXIST, `Table does not exist: ${name}`);
      const stable = db.stables.get(table.stable)!;
      let cols = stable.columns.map((c) => c.name);
      if (p.peek()?.v === '(') {
        p.op('(');
        cols = [];
        do cols.push(p.name());
        while (p.optOp(','));
        p.op(')');
        if (cols[0] !== 'ts') throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error near "(" (primary timestamp column must be first)');
      }
      const defs = cols.map((c) => {
        const d = stable.columns.find((x) => x.name === c);
        if (!d) throw new TdFail(CODES.INVALID_COLUMN, `Invalid column name: ${c}`);
        return d;
      });
      p.kw('VALUES');
      do {
        p.op('(');
        const vals: unknown[] = [];
        do vals.push(literal(p));
        while (p.optOp(','));
        p.op(')');
        if (vals.length !== cols.length) throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error near "VALUES" (illegal number of columns)');
        const ts = coerce(vals[0], defs[0]!) as number;
        // A row at an existing timestamp updates the columns it names; the others keep their values.
        let row = table.rows.get(ts);
        if (!row) table.rows.set(ts, (row = new Map()));
        for (let i = 1; i < cols.length; i++) row.set(cols[i]!, coerce(vals[i], defs[i]!));
        n++;
      } while (p.peek()?.v === '(');
    }
    return affected(n);
  }

  function execute(sql: string, defaultDb: string | undefined): Result {
    const p = new Parser(sql);
    if (p.optKw('CREATE', 'DATABASE')) {
      const ifNot = p.optKw('IF', 'NOT', 'EXISTS');
      const name = p.name();
      while (!p.done()) p.next(); // options such as PRECISION 'ms', KEEP …
      if (dbs.has(name) && !ifNot) throw new TdFail(0x0386, 'Database already exists');
      if (!dbs.has(name)) dbs.set(name, { stables: new Map(), tables: new Map() });
      return affected(0);
    }
    if (p.optKw('CREATE', 'STABLE')) {
      const ifNot = p.optKw('IF', 'NOT', 'EXISTS');
      const { db, name } = p.qualified(defaultDb);
      const d = getDb(db);
      const defs = (): ColDef[] => {
        p.op('(');
        const out: ColDef[] = [];
        do {
          const n = p.name();
          out.push({ name: n, ...typeDef(p) });
        } while (p.optOp(','));
        p.op(')');
        return out;
      };
      const columns = defs();
      p.kw('TAGS');
      const tags = defs();
      if (!p.done()) p.fail();
      if (columns[0]?.name !== 'ts' || columns[0].type !== 'TIMESTAMP') throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error near "(" (first column must be timestamp)');
      if (columns.length < 2) throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error (at least one data column)');
      if (d.stables.has(name)) {
        if (!ifNot) throw new TdFail(0x0360, 'STable already exists');
      } else d.stables.set(name, { columns, tags });
      return affected(0);
    }
    if (p.optKw('ALTER', 'STABLE')) {
      const { db, name } = p.qualified(defaultDb);
      const st = getDb(db).stables.get(name);
      if (!st) throw new TdFail(CODES.TABLE_NOT_EXIST, `Table does not exist: ${name}`);
      p.kw('ADD', 'COLUMN');
      const col = p.name();
      const t = typeDef(p);
      if (!p.done()) p.fail();
      if (st.columns.some((c) => c.name === col)) throw new TdFail(CODES.COLUMN_ALREADY_EXIST, 'Column already exists');
      st.columns.push({ name: col, ...t });
      return affected(0);
    }
    if (p.optKw('DESCRIBE')) {
      const { db, name } = p.qualified(defaultDb);
      const d = getDb(db);
      const table = d.tables.get(name);
      const st = table ? d.stables.get(table.stable) : d.stables.get(name);
      if (!st) throw new TdFail(CODES.TABLE_NOT_EXIST, `Table does not exist: ${name}`);
      const data = [...st.columns.map((c) => [c.name, c.type, c.length, '']), ...st.tags.map((c) => [c.name, c.type, c.length, 'TAG'])];
      return { column_meta: [['field', 'VARCHAR', 64], ['type', 'VARCHAR', 32], ['length', 'INT', 4], ['note', 'VARCHAR', 8]], data, rows: data.length };
    }
    if (p.optKw('INSERT', 'INTO')) return insert(p, defaultDb);
    if (p.optKw('SELECT')) return select(p, defaultDb);
    if (p.optKw('DELETE', 'FROM')) {
      const { db, name } = p.qualified(defaultDb);
      const d = getDb(db);
      const tables = d.tables.has(name) ? [d.tables.get(name)!] : d.stables.has(name) ? [...d.tables.values()].filter((t) => t.stable === name) : null;
      if (!tables) throw new TdFail(CODES.TABLE_NOT_EXIST, `Table does not exist: ${name}`);
      let cond: Cond = () => true;
      if (p.optKw('WHERE')) cond = condition(p, d.stables.get(tables[0]?.stable ?? name)?.columns ?? []);
      if (!p.done()) p.fail();
      let n = 0;
      for (const t of tables) {
        for (const [ts, row] of t.rows) {
          if (cond(row, ts)) {
            t.rows.delete(ts);
            n++;
          }
        }
      }
      return affected(n);
    }
    return p.fail();
  }

  const server = http.createServer((req, res) => {
    const answer = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = /^\/rest\/sql(?:\/([^/]+))?\/?$/.exec(url.pathname);
    if (!m) return answer(404, { code: 404, desc: 'interface does not exist' });
    if (req.method !== 'POST') return answer(405, { code: 405, desc: 'method not allowed' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (!handle.available) return answer(503, { code: 0x000b, desc: 'Unable to establish connection' });
      const auth = req.headers.authorization ?? '';
      if (!auth) return answer(401, { code: CODES.NO_AUTH, desc: 'no auth info input' });
      const basic = /^Basic (.+)$/.exec(auth);
      const [u, pw] = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8').split(':') : [];
      if (u !== user || pw !== password) return answer(401, { code: CODES.AUTH_FAILURE, desc: 'Authentication failure' });
      statements.push(body);
      try {
        answer(200, { code: 0, ...execute(body, m[1]) });
      } catch (err) {
        if (err instanceof TdFail) answer(200, { code: err.code, desc: err.message });
        else answer(500, { code: 0xffff, desc: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const handle: TdengineServer = {
    url: `tdengine://${user}:${password}@127.0.0.1:${port}/flux`,
    port,
    statements,
    available: true,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return handle;
}
