/** History-API routing under /console/: `route` is the path after it ("devices/d1"), `query` its search params. */
import { signal } from './state.ts';

export const BASE = '/console/';

function current(): string {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : '';
  return p.replace(/\/+$/, '');
}

export const route = signal<string>(current());
export const query = signal<URLSearchParams>(new URLSearchParams(location.search));

export function navigate(to: string, replace = false): void {
  const url = BASE + to.replace(/^\/+/, '');
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  query.value = new URLSearchParams(location.search);
  route.value = current();
  if (!replace) scrollTo(0, 0);
}

/** Updates the query string of the current page without a history entry. */
export function setQuery(params: Record<string, string | undefined>): void {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
  query.value = q;
}

addEventListener('popstate', () => {
  query.value = new URLSearchParams(location.search);
  route.value = current();
});

/** Left-click on an in-console link: navigate without reloading. */
export function linkClick(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement) ?? null;
  if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const href = a.getAttribute('href') ?? '';
  if (!href.startsWith(BASE)) return;
  e.preventDefault();
  navigate(href.slice(BASE.length));
}
