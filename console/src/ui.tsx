/** Shared pieces of every page: links, async loading, pager, messages, role checks. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { BASE, linkClick } from './router.ts';
import { errorText, session } from './api.ts';
import { signal, useSignal } from './state.ts';
import { t } from './i18n.ts';

export function Link(p: { to: string; class?: string; children: ComponentChildren; title?: string }) {
  return (
    <a href={BASE + p.to.replace(/^\/+/, '')} class={p.class} title={p.title} onClick={linkClick}>
      {p.children}
    </a>
  );
}

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload(): void;
}

/** Runs `load` when deps change (the previous run is aborted) and on reload(). */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(ac.signal).then(
      (data) => !ac.signal.aborted && setState({ data, loading: false }),
      (error) => !ac.signal.aborted && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ac.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Calls fn every ms while mounted (and the tab is visible). */
export function useInterval(fn: () => void, ms: number): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const id = setInterval(() => document.visibilityState === 'visible' && ref.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

export function ErrorBox(p: { error: unknown }) {
  if (!p.error) return null;
  return (
    <div class="error" role="alert">
      {errorText(p.error)}
    </div>
  );
}

export function Pager(p: { total: number; limit: number; offset: number; onChange(offset: number): void }) {
  const page = Math.floor(p.offset / p.limit) + 1;
  const pages = Math.max(1, Math.ceil(p.total / p.limit));
  return (
    <div class="pager">
      <button type="button" disabled={page <= 1} onClick={() => p.onChange(Math.max(0, p.offset - p.limit))}>
        ‹ {t('Previous')}
      </button>
      <span>{t('Page {page} of {pages} · {total} in all', { page, pages, total: p.total })}</span>
      <button type="button" disabled={page >= pages} onClick={() => p.onChange(p.offset + p.limit)}>
        {t('Next')} ›
      </button>
    </div>
  );
}

export function Card(p: { title?: ComponentChildren; children: ComponentChildren; actions?: ComponentChildren; class?: string; id?: string }) {
  return (
    <section class={`card ${p.class ?? ''}`} id={p.id}>
      {(p.title || p.actions) && (
        <header>
          <h2>{p.title}</h2>
          <div class="actions">{p.actions}</div>
        </header>
      )}
      {p.children}
    </section>
  );
}

export function Status(p: { status: string }) {
  return <span class={`status status-${p.status}`}>{t(p.status)}</span>;
}

export function Level(p: { level: string }) {
  return <span class={`level level-${p.level}`}>{t(p.level)}</span>;
}

/** What the signed-in role may do: viewers see no write buttons (the API refuses them anyway). */
export function useRole(): { write: boolean; admin: boolean; role: string } {
  const s = useSignal(session);
  const role = s?.role ?? 'viewer';
  return { role, write: role === 'admin' || role === 'operator', admin: role === 'admin' };
}

interface Toast {
  id: number;
  text: string;
  kind: 'ok' | 'error';
}
const toasts = signal<Toast[]>([]);
let toastId = 0;

export function toast(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const id = ++toastId;
  toasts.value = [...toasts.value.slice(-4), { id, text, kind }];
  setTimeout(() => (toasts.value = toasts.value.filter((x) => x.id !== id)), kind === 'error' ? 8000 : 3500);
}

export function toastError(err: unknown): void {
  toast(errorText(err), 'error');
}

export function Toasts() {
  const list = useSignal(toasts);
  return (
    <div class="toasts" aria-live="polite">
      {list.map((x) => (
        <div key={x.id} class={`toast toast-${x.kind}`}>
          {x.text}
        </div>
      ))}
    </div>
  );
}

/** Runs an action, reports its failure as a toast and its success (when given a text). */
export async function act<T>(fn: () => Promise<T>, ok?: string): Promise<T | undefined> {
  try {
    const r = await fn();
    if (ok) toast(ok);
    return r;
  } catch (err) {
    toastError(err);
    return undefined;
  }
}

export function Json(p: { value: unknown }) {
  return <pre class="json">{JSON.stringify(p.value, null, 2)}</pre>;
}

/** A one-time secret (device secret, API token): shown once with a copy button. */
export function Secret(p: { label: string; value: string }) {
  return (
    <div class="secret">
      <strong>{p.label}</strong> <code data-secret>{p.value}</code>
      <button type="button" onClick={() => navigator.clipboard?.writeText(p.value).then(() => toast(t('Copied')))}>
        {t('Copy')}
      </button>
      <div class="hint">{t('Shown only this once: store it now.')}</div>
    </div>
  );
}

export function Empty(p: { children: ComponentChildren }) {
  return <div class="empty">{p.children}</div>;
}
