/** The console's only way to the server: the REST API under /api with the session's bearer token. */
import { signal } from './state.ts';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const TOKEN_KEY = 'flux.console.token';

export interface Session {
  token: string;
  username: string;
  role: 'admin' | 'operator' | 'viewer';
}

/** The signed-in session (null: show the login page). */
export const session = signal<Session | null>(null);

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null, remember = false): void {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  if (token) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
}

function currentToken(): string | null {
  return session.value?.token ?? storedToken();
}

export interface RequestOptions {
  body?: unknown;
  raw?: BodyInit;
  contentType?: string;
  token?: string;
  signal?: AbortSignal;
}

async function send(method: string, path: string, o: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  const token = o.token ?? currentToken();
  if (token) headers.authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (o.raw !== undefined) {
    body = o.raw;
    headers['content-type'] = o.contentType ?? 'application/octet-stream';
  } else if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`/api${path}`, { method, headers, body, signal: o.signal });
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = res.statusText;
    try {
      const j = (await res.json()) as { error?: { code?: string; message?: string } };
      if (j.error) {
        code = j.error.code ?? code;
        message = j.error.message ?? message;
      }
    } catch {
      /* not JSON */
    }
    // A session that expired or was revoked: back to the login page.
    if (res.status === 401 && !o.token && session.value) {
      saveToken(null);
      session.value = null;
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

export async function api<T = any>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
  const res = await send(method, path, o);
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const get = <T = any>(path: string, signal?: AbortSignal) => api<T>('GET', path, { signal });
export const post = <T = any>(path: string, body?: unknown) => api<T>('POST', path, { body: body ?? {} });
export const patch = <T = any>(path: string, body: unknown) => api<T>('PATCH', path, { body });
export const put = <T = any>(path: string, body: unknown) => api<T>('PUT', path, { body });
export const del = (path: string) => api<void>('DELETE', path);

/** GET that answers null for 404 (endpoints that other parts of FLUX may not provide yet). */
export async function getOptional<T = any>(path: string): Promise<T | null> {
  try {
    return await get<T>(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** A response body as a Blob (downloads, snapshots), with the bearer token. */
export async function blob(path: string): Promise<Blob> {
  return (await send('GET', path)).blob();
}

/** `/api/ws` URL for the live feed; the browser WebSocket API cannot send headers, so the token rides in the query. */
export function feedUrl(params: Record<string, string>): string {
  const q = new URLSearchParams({ ...params, access_token: currentToken() ?? '' });
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws?${q}`;
}

export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function errorText(err: unknown): string {
  return err instanceof ApiError ? `${err.message} (${err.status} ${err.code})` : err instanceof Error ? err.message : String(err);
}
