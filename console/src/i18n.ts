/**
 * English and Simplified Chinese. Texts are written in English in the code (`t('Devices')`); `zh.ts`
 * maps each to Chinese. The language follows the browser (navigator.languages) unless the user picks
 * one in the header. test/console/i18n.test.ts checks that every `t('…')` text has a translation.
 */
import { signal, useSignal } from './state.ts';
import { zh } from './zh.ts';

export type Lang = 'en' | 'zh';
const LANG_KEY = 'flux.console.lang';

export function browserLang(): Lang {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved === 'en' || saved === 'zh') return saved;
  for (const l of navigator.languages ?? [navigator.language]) {
    if (/^zh\b/i.test(l)) return 'zh';
    if (/^en\b/i.test(l)) return 'en';
  }
  return 'en';
}

export const lang = signal<Lang>(browserLang());

export function setLang(l: Lang): void {
  localStorage.setItem(LANG_KEY, l);
  lang.value = l;
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}
document.documentElement.lang = lang.value === 'zh' ? 'zh-CN' : 'en';

/** Translates an English text; `{name}` placeholders are filled from vars. */
export function t(text: string, vars?: Record<string, string | number>): string {
  let s = lang.value === 'zh' ? (zh[text] ?? text) : text;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** Count-aware English ("1 device", "2 devices"); Chinese has one form. */
export function tn(n: number, one: string, many: string): string {
  return t(n === 1 ? one : many, { n });
}

/** Re-renders a component when the language changes. */
export function useLang(): Lang {
  return useSignal(lang);
}

export function fmtTime(v: string | number | null | undefined): string {
  if (v === null || v === undefined || v === '') return '—';
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toLocaleString(lang.value === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

export function fmtNumber(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 3 : 2).replace(/\.?0+$/, '');
  if (v === null || v === undefined) return '—';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
