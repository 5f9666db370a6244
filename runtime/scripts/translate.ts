/** Rhai-flavoured script → JavaScript, by a tokenizer (strings, templates, regexes, comments respected), keeping line numbers. */

/**
 * The seed's scripts (test/rules/seed-scripts.ts) are Rhai: `if temp > 45.0 { … }` has no parentheses and
 * `#{ key: value }` is an object map. Both are rewritten on tokens, never by a regex over the
 * source, so `"#{"` in a string, a comment or a regex stays untouched. Insertions never add a
 * newline: line numbers in errors stay the user's; columns are mapped back with `originalOffset`.
 */

type Kind = 'trivia' | 'ident' | 'num' | 'str' | 'template' | 'regex' | 'punct' | 'map-open';

interface Token {
  kind: Kind;
  start: number;
  end: number;
  /** set on the `}` that closes a `#{` map */
  closesMap?: boolean;
  before?: string;
  after?: string;
  /** replacement text of the token itself */
  text?: string;
}

export interface Translation {
  code: string;
  /** maps an offset in `code` to the offset in the source it came from */
  originalOffset(offset: number): number;
}

export class TranslateError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'SyntaxError';
    this.offset = offset;
  }
}

const PUNCTUATORS = [
  '>>>=', '...', '===', '!==', '**=', '<<=', '>>=', '>>>', '&&=', '||=', '??=',
  '=>', '==', '!=', '<=', '>=', '&&', '||', '??', '?.', '++', '--', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '**', '<<', '>>',
  '{', '}', '(', ')', '[', ']', ';', ',', '<', '>', '+', '-', '*', '/', '%', '&', '|', '^', '!', '~', '?', ':', '=', '.', '@',
];

/** After these keywords an expression starts, so `/` begins a regex rather than a division. */
const REGEX_AFTER_WORDS = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

const isIdStart = (c: string) => /[A-Za-z_$\u0080-\uffff]/.test(c);
const isIdPart = (c: string) => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  /** what each open `{` is: a block/object, a `#{` map, or a template `${` substitution */
  const braces: ('code' | 'map' | 'template')[] = [];
  let i = 0;
  let lastSignificant: Token | undefined;

  const push = (t: Token) => {
    tokens.push(t);
    if (t.kind !== 'trivia') lastSignificant = t;
  };

  const regexAllowed = (): boolean => {
    const t = lastSignificant;
    if (!t) return true;
    if (t.kind === 'num' || t.kind === 'str' || t.kind === 'template' || t.kind === 'regex') return false;
    if (t.kind === 'ident') return REGEX_AFTER_WORDS.has(src.slice(t.start, t.end));
    const p = src.slice(t.start, t.end);
    return !(p === ')' || p === ']' || p === '}' || p === '++' || p === '--');
  };

  /** Scans template text from `i` (just after '`' or a closing '}') to its end or the next `${`. */
  const scanTemplate = (start: number) => {
    let j = i;
    for (;;) {
      if (j >= src.length) throw new TranslateError('unterminated template literal', start);
      const c = src[j]!;
      if (c === '\\') j += 2;
      else if (c === '`') {
        j++;
        break;
      } else if (c === '$' && src[j + 1] === '{') {
        j += 2;
        braces.push('template');
        break;
      } else j++;
    }
    push({ kind: 'template', start, end: j });
    i = j;
  };

  while (i < src.length) {
    const c = src[i]!;
    const start = i;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff' || c === '\u2028' || c === '\u2029') {
      while (i < src.length && /\s/.test(src[i]!)) i++;
      push({ kind: 'trivia', start, end: i });
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n' && src[i] !== '\r') i++;
      push({ kind: 'trivia', start, end: i });
    } else if (c === '/' && src[i + 1] === '*') {
      const close = src.indexOf('*/', i + 2);
      if (close < 0) throw new TranslateError('unterminated comment', start);
      i = close + 2;
      push({ kind: 'trivia', start, end: i });
    } else if (c === '"' || c === "'") {
      i++;
      while (i < src.length && src[i] !== c) {
        if (src[i] === '\\') i++;
        else if (src[i] === '\n') throw new TranslateError('unterminated string', start);
        i++;
      }
      if (i >= src.length) throw new TranslateError('unterminated string', start);
      i++;
      push({ kind: 'str', start, end: i });
    } else if (c === '`') {
      i++;
      scanTemplate(start);
    } else if (c === '#' && src[i + 1] === '{') {
      i += 2;
      braces.push('map');
      push({ kind: 'map-open', start, end: i, text: '({' });
    } else if (isIdStart(c) || c === '\\' || (c === '#' && isIdStart(src[i + 1] ?? ''))) {
      i++;
      while (i < src.length && (isIdPart(src[i]!) || src[i] === '\\')) i++;
      push({ kind: 'ident', start, end: i });
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      i++;
      while (i < src.length && /[0-9A-Za-z_.]/.test(src[i]!)) {
        if ((src[i] === 'e' || src[i] === 'E') && (src[i + 1] === '+' || src[i + 1] === '-')) i++;
        i++;
      }
      push({ kind: 'num', start, end: i });
    } else if (c === '/' && regexAllowed()) {
      i++;
      let inClass = false;
      while (i < src.length) {
        const r = src[i]!;
        if (r === '\n') throw new TranslateError('unterminated regular expression', start);
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      if (i >= src.length) throw new TranslateError('unterminated regular expression', start);
      i++;
      while (i < src.length && isIdPart(src[i]!)) i++;
      push({ kind: 'regex', start, end: i });
    } else if (c === '}') {
      const open = braces.pop();
      i++;
      if (open === 'template') scanTemplate(start);
      else push({ kind: 'punct', start, end: i, closesMap: open === 'map' });
    } else {
      const p = PUNCTUATORS.find((q) => src.startsWith(q, i));
      if (!p) throw new TranslateError(`unexpected character '${c}'`, start);
      if (p === '{') braces.push('code');
      i += p.length;
      push({ kind: 'punct', start, end: i });
    }
  }
  return tokens;
}

/** Tokens that continue an expression after `if (a)`: then the parentheses were only part of a Rhai condition. */
const CONTINUES_EXPRESSION = new Set([
  '.', '?.', '[', '(', '?', '==', '===', '!=', '!==', '<', '>', '<=', '>=', '&&', '||', '??', '+', '-', '*', '/', '%', '**', '&', '|', '^', '<<', '>>', '>>>', 'in', 'instanceof',
]);

export function translateScript(src: string): Translation {
  const tokens = tokenize(src);
  const text = (t: Token) => src.slice(t.start, t.end);
  const sig: number[] = [];
  tokens.forEach((t, idx) => t.kind !== 'trivia' && sig.push(idx));
  const at = (s: number) => (s < sig.length ? tokens[sig[s]!]! : undefined);
  const isPunct = (t: Token | undefined, p: string) => t !== undefined && t.kind === 'punct' && text(t) === p;
  const opens = (t: Token) => t.kind === 'map-open' || (t.kind === 'punct' && (text(t) === '(' || text(t) === '[' || text(t) === '{')) || (t.kind === 'template' && text(t).startsWith('`') && text(t).endsWith('${'));
  const closes = (t: Token) => (t.kind === 'punct' && (text(t) === ')' || text(t) === ']' || text(t) === '}')) || (t.kind === 'template' && text(t).startsWith('}') && !text(t).endsWith('${'));

  for (let s = 0; s < sig.length; s++) {
    const t = at(s)!;
    if (t.closesMap) t.after = ')';
    if (t.kind !== 'ident') continue;
    const word = text(t);
    const prev = at(s - 1);
    if (prev && (isPunct(prev, '.') || isPunct(prev, '?.'))) continue;
    // Rhai `fn name(a, b) { … }` is a function declaration.
    if (word === 'fn' && at(s + 1)?.kind === 'ident' && isPunct(at(s + 2), '(')) {
      t.text = 'function';
      continue;
    }
    if (word !== 'if' && word !== 'while') continue;
    const first = at(s + 1);
    if (!first) continue;
    if (isPunct(first, '(')) {
      // Find the matching ')' and look at what follows it.
      let depth = 0;
      let k = s + 1;
      for (; k < sig.length; k++) {
        const u = at(k)!;
        if (opens(u)) depth++;
        else if (closes(u) && --depth === 0) break;
      }
      const next = at(k + 1);
      if (!next || !(next.kind === 'punct' || next.kind === 'ident') || !CONTINUES_EXPRESSION.has(text(next))) continue;
    }
    // Rhai condition: everything up to the `{` that opens the block, at bracket depth 0.
    let depth = 0;
    let k = s + 1;
    for (; k < sig.length; k++) {
      const u = at(k)!;
      if (depth === 0 && isPunct(u, '{')) break;
      if (opens(u)) depth++;
      else if (closes(u)) depth--;
      if (depth < 0 || (depth === 0 && isPunct(u, ';'))) break;
    }
    if (k >= sig.length || !isPunct(at(k), '{') || k === s + 1) continue;
    first.before = (first.before ?? '') + '(';
    const last = at(k - 1)!;
    last.after = (last.after ?? '') + ')';
  }

  // Emit, recording (translated offset → source offset) at every token start.
  let code = '';
  const outAt: number[] = [];
  const srcAt: number[] = [];
  for (const t of tokens) {
    if (t.before) code += t.before;
    outAt.push(code.length);
    srcAt.push(t.start);
    code += t.text ?? src.slice(t.start, t.end);
    if (t.after) code += t.after;
  }
  return {
    code,
    originalOffset(offset) {
      // Binary search for the last token starting at or before `offset`.
      let lo = 0;
      let hi = outAt.length - 1;
      if (hi < 0) return Math.min(offset, src.length);
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (outAt[mid]! <= offset) lo = mid;
        else hi = mid - 1;
      }
      const tok = tokens[lo]!;
      const within = offset - outAt[lo]!;
      return Math.min(srcAt[lo]! + Math.max(0, Math.min(within, tok.end - tok.start)), src.length);
    },
  };
}

/** 1-based line and column of a source offset. */
export function lineColumn(src: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < src.length; i++) {
    if (src[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** Source offset of a 1-based line and column. */
export function offsetOf(src: string, line: number, column: number): number {
  let l = 1;
  let i = 0;
  while (l < line && i < src.length) {
    if (src[i] === '\n') l++;
    i++;
  }
  return i + column - 1;
}
