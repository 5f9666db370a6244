/**
 * The SQL side of the stand-in TDengine server (tdengine-server.ts): TDengine's error codes, the
 * tokenizer and parser of the SQL subset FLUX sends, column types, literals and their coercion to a
 * column's type, and WHERE conditions compiled to predicates over a row.
 */

export const CODES = {
  SYNTAX_ERROR: 0x2600,
  INVALID_COLUMN: 0x2602,
  TABLE_NOT_EXIST: 0x2603,
  COLUMN_ALREADY_EXIST: 0x036b,
  DB_NOT_EXIST: 0x0388,
  AUTH_FAILURE: 0x0357,
  NO_AUTH: 0xffff,
};

export class TdFail extends Error {
  readonly code: number;
  constructor(code: number, desc: string) {
    super(desc);
    this.code = code;
  }
}

export interface ColDef {
  name: string;
  type: string;
  length: number;
}

type Token = { t: 'id' | 'qid' | 'num' | 'str' | 'op'; v: string };

function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '`') {
      const j = sql.indexOf('`', i + 1);
      if (j < 0) throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error near "`" (unterminated identifier)');
      out.push({ t: 'qid', v: sql.slice(i + 1, j) });
      i = j + 1;
    } else if (c === "'" || c === '"') {
      let s = '';
      let j = i + 1;
      while (j < sql.length && sql[j] !== c) {
        if (sql[j] === '\\' && j + 1 < sql.length) {
          s += sql[j + 1];
          j += 2;
        } else s += sql[j++];
      }
      if (j >= sql.length) throw new TdFail(CODES.SYNTAX_ERROR, 'syntax error near "\'" (unterminated string)');
      out.push({ t: 'str', v: s });
      i = j + 1;
    } else if (/[0-9]/.test(c) || (c === '-' && /[0-9.]/.test(sql[i + 1] ?? '') && !['num', 'id', 'qid', 'str'].includes(out.at(-1)?.t ?? '') && out.at(-1)?.v !== ')')) {
      const m = /^-?(\d+\.?\d*(e[+-]?\d+)?|\.\d+)[a-z]?/i.exec(sql.slice(i))!;
      out.push({ t: 'num', v: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i))!;
      out.push({ t: 'id', v: m[0] });
      i += m[0].length;
    } else {
      const two = sql.slice(i, i + 2);
      if (['>=', '<=', '!=', '<>'].includes(two)) {
        out.push({ t: 'op', v: two });
        i += 2;
      } else {
        out.push({ t: 'op', v: c });
        i++;
      }
    }
  }
  return out;
}

export class Parser {
  readonly #tokens: Token[];
  #pos = 0;
  constructor(sql: string) {
    this.#tokens = tokenize(sql);
  }
  peek(offset = 0): Token | undefined {
    return this.#tokens[this.#pos + offset];
  }
  done(): boolean {
    return this.#pos >= this.#tokens.length || (this.peek()?.v === ';' && this.#pos === this.#tokens.length - 1);
  }
  fail(): never {
    const t = this.peek();
    throw new TdFail(CODES.SYNTAX_ERROR, `syntax error near "${t ? t.v : 'end of statement'}"`);
  }
  isKw(...words: string[]): boolean {
    return words.every((w, i) => {
      const t = this.peek(i);
      return t?.t === 'id' && t.v.toUpperCase() === w;
    });
  }
  kw(...words: string[]): void {
    if (!this.isKw(...words)) this.fail();
    this.#pos += words.length;
  }
  optKw(...words: string[]): boolean {
    if (!this.isKw(...words)) return false;
    this.#pos += words.length;
    return true;
  }
  op(v: string): void {
    if (this.peek()?.v !== v || this.peek()?.t !== 'op') this.fail();
    this.#pos++;
  }
  optOp(v: string): boolean {
    if (this.peek()?.t === 'op' && this.peek()?.v === v) {
      this.#pos++;
      return true;
    }
    return false;
  }
  /** A name: plain identifiers fold to lower case, back-quoted ones keep their case. */
  name(): string {
    const t = this.peek();
    if (!t || (t.t !== 'id' && t.t !== 'qid')) this.fail();
    this.#pos++;
    return t.t === 'qid' ? t.v : t.v.toLowerCase();
  }
  /** [db.]name */
  qualified(defaultDb: string | undefined): { db: string; name: string } {
    const a = this.name();
    if (this.optOp('.')) return { db: a, name: this.name() };
    if (!defaultDb) throw new TdFail(CODES.DB_NOT_EXIST, 'Database not specified or available');
    return { db: defaultDb, name: a };
  }
  num(): number {
    const t = this.peek();
    if (t?.t !== 'num') this.fail();
    this.#pos++;
    return Number(t.v);
  }
  next(): Token {
    const t = this.peek();
    if (!t) this.fail();
    this.#pos++;
    return t;
  }
}

export function typeDef(p: Parser): { type: string; length: number } {
  const base = p.name().toUpperCase();
  const sizes: Record<string, number> = { TIMESTAMP: 8, DOUBLE: 8, BIGINT: 8, BOOL: 1, INT: 4, FLOAT: 4 };
  if (base === 'NCHAR' || base === 'VARCHAR' || base === 'BINARY') {
    p.op('(');
    const n = p.num();
    p.op(')');
    return { type: base === 'BINARY' ? 'VARCHAR' : base, length: n };
  }
  if (!(base in sizes)) p.fail();
  return { type: base, length: sizes[base]! };
}

export type Cond = (row: Map<string, unknown>, ts: number) => boolean;


export function literal(p: Parser): unknown {
  const t = p.next();
  if (t.t === 'num') return Number(t.v);
  if (t.t === 'str') return t.v;
  if (t.t === 'id' && ['TRUE', 'FALSE'].includes(t.v.toUpperCase())) return t.v.toUpperCase() === 'TRUE';
  if (t.t === 'id' && t.v.toUpperCase() === 'NULL') return null;
  return p.fail();
}

export function coerce(v: unknown, col: ColDef): unknown {
  if (v === null) return null;
  switch (col.type) {
    case 'TIMESTAMP':
    case 'BIGINT':
    case 'INT':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new TdFail(CODES.SYNTAX_ERROR, `syntax error near "${v}" (invalid ${col.type} data)`);
      return v;
    case 'DOUBLE':
    case 'FLOAT':
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (typeof v !== 'number') throw new TdFail(CODES.SYNTAX_ERROR, `syntax error near "${v}" (invalid ${col.type} data)`);
      return v;
    case 'BOOL':
      if (typeof v === 'boolean') return v;
      if (typeof v === 'number') return v !== 0;
      throw new TdFail(CODES.SYNTAX_ERROR, `syntax error near "${v}" (invalid BOOL data)`);
    default:
      if (typeof v !== 'string') return String(v);
      if (v.length > col.length) throw new TdFail(0x2608, 'Value too long for column/tag');
      return v;
  }
}

export function condition(p: Parser, columns: ColDef[]): Cond {
  const primary = (): Cond => {
    if (p.optOp('(')) {
      const c = orExpr();
      p.op(')');
      return c;
    }
    const col = p.name();
    if (col !== 'ts' && !columns.some((c) => c.name === col)) throw new TdFail(CODES.INVALID_COLUMN, `Invalid column name: ${col}`);
    if (p.optKw('IS', 'NOT', 'NULL')) return (row) => row.get(col) !== null && row.get(col) !== undefined;
    if (p.optKw('IS', 'NULL')) return (row) => row.get(col) === null || row.get(col) === undefined;
    if (p.optKw('IN')) {
      p.op('(');
      const values: unknown[] = [];
      do values.push(literal(p));
      while (p.optOp(','));
      p.op(')');
      return (row, ts) => values.includes(col === 'ts' ? ts : row.get(col));
    }
    const op = p.next();
    if (op.t !== 'op') p.fail();
    const v = literal(p) as number;
    const get = (row: Map<string, unknown>, ts: number) => (col === 'ts' ? ts : (row.get(col) as number));
    switch (op.v) {
      case '>=':
        return (r, ts) => get(r, ts) >= v;
      case '>':
        return (r, ts) => get(r, ts) > v;
      case '<=':
        return (r, ts) => get(r, ts) <= v;
      case '<':
        return (r, ts) => get(r, ts) < v;
      case '=':
        return (r, ts) => get(r, ts) === v;
      default:
        return p.fail();
    }
  };
  const andExpr = (): Cond => {
    let c = primary();
    while (p.optKw('AND')) {
      const a = c, b = primary();
      c = (r, ts) => a(r, ts) && b(r, ts);
    }
    return c;
  };
  const orExpr = (): Cond => {
    let c = andExpr();
    while (p.optKw('OR')) {
      const a = c, b = andExpr();
      c = (r, ts) => a(r, ts) || b(r, ts);
    }
    return c;
  };
  return orExpr();
}
