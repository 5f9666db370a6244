/** System: users and roles, personal API tokens, the audit log, your password, and the settings that are safe to show. */
import { useState } from 'preact/hooks';
import { ApiError, del, get, getOptional, patch, post, put, qs, saveToken, session } from '../api.ts';
import { fmtTime, t, useLang } from '../i18n.ts';
import { Card, Empty, ErrorBox, Json, Link, Pager, Secret, act, useAsync, useRole } from '../ui.tsx';

const ROLES = ['viewer', 'operator', 'admin'];

/** Lists from endpoints that may be missing on this server: null means "not available". */
function useOptionalList<T>(path: string, deps: unknown[]) {
  return useAsync(async () => {
    const r = await getOptional<{ items: T[]; total?: number } | T[]>(path);
    if (r === null) return null;
    return Array.isArray(r) ? { items: r, total: r.length } : { items: r.items, total: r.total ?? r.items.length };
  }, deps);
}

function NotAvailable() {
  return <Empty>{t('This server does not offer it yet.')}</Empty>;
}

interface User {
  id?: string;
  username: string;
  role: string;
  created_at?: string;
  last_login_at?: string | null;
}

function Users() {
  const list = useOptionalList<User>('/users', []);
  const key = (u: User) => encodeURIComponent(u.id ?? u.username);
  async function create(e: Event) {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const ok = await act(() => post('/users', { username: f.get('username'), password: f.get('password'), role: f.get('role') }), t('User created'));
    if (ok) {
      form.reset();
      list.reload();
    }
  }
  if (list.data === null) return <NotAvailable />;
  return (
    <>
      <ErrorBox error={list.error} />
      <form class="inline-form" onSubmit={create} data-testid="new-user">
        <label>
          {t('User name')}
          <input name="username" required autocomplete="off" />
        </label>
        <label>
          {t('Password')}
          <input name="password" type="password" required minLength={8} autocomplete="new-password" />
        </label>
        <label>
          {t('Role')}
          <select name="role">
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {t(r)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="primary">
          {t('Create user')}
        </button>
      </form>
      <table class="grid" data-testid="user-list">
        <thead>
          <tr>
            <th>{t('User name')}</th>
            <th>{t('Role')}</th>
            <th>{t('Created')}</th>
            <th>{t('Last sign-in')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.data?.items.map((u) => (
            <tr key={u.username}>
              <td>{u.username}</td>
              <td>
                <select aria-label={t('Role')} value={u.role} onChange={(e) => act(() => patch(`/users/${key(u)}`, { role: e.currentTarget.value }), t('Saved')).then(list.reload)}>
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {t(r)}
                    </option>
                  ))}
                </select>
              </td>
              <td>{fmtTime(u.created_at)}</td>
              <td>{fmtTime(u.last_login_at)}</td>
              <td>
                <button type="button" class="danger small" onClick={() => confirm(t('Delete user {name}?', { name: u.username })) && act(() => del(`/users/${key(u)}`), t('Deleted')).then(list.reload)}>
                  {t('Delete')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

interface Token {
  id: string;
  name: string;
  role: string;
  created_at?: string;
  last_used_at?: string | null;
  revoked_at?: string | null;
  username?: string;
}

function Tokens() {
  const list = useOptionalList<Token>('/tokens', []);
  const [fresh, setFresh] = useState<string | null>(null);
  async function create(e: Event) {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const r = await act(() => post<{ token: string }>('/tokens', { name: f.get('name'), role: f.get('role') }), t('Token created'));
    if (r) {
      setFresh(r.token);
      form.reset();
      list.reload();
    }
  }
  if (list.data === null) return <NotAvailable />;
  return (
    <>
      <ErrorBox error={list.error} />
      <form class="inline-form" onSubmit={create}>
        <label>
          {t('Token name')}
          <input name="name" required placeholder="grafana" />
        </label>
        <label>
          {t('Role')}
          <select name="role">
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {t(r)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="primary">
          {t('Create token')}
        </button>
      </form>
      {fresh && <Secret label={t('New token:')} value={fresh} />}
      <table class="grid">
        <thead>
          <tr>
            <th>{t('Token name')}</th>
            <th>{t('Role')}</th>
            <th>{t('Owner')}</th>
            <th>{t('Created')}</th>
            <th>{t('Last used')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.data?.items.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td>{t(k.role)}</td>
              <td>{k.username ?? '—'}</td>
              <td>{fmtTime(k.created_at)}</td>
              <td>{fmtTime(k.last_used_at)}</td>
              <td>
                {k.revoked_at ? (
                  t('revoked')
                ) : (
                  <button type="button" class="danger small" onClick={() => confirm(t('Revoke token {name}?', { name: k.name })) && act(() => del(`/tokens/${encodeURIComponent(k.id)}`), t('Revoked')).then(list.reload)}>
                    {t('Revoke')}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Audit() {
  const [offset, setOffset] = useState(0);
  const list = useOptionalList<Record<string, unknown>>(`/audit${qs({ limit: 50, offset })}`, [offset]);
  if (list.data === null) return <NotAvailable />;
  const s = (v: unknown) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return (
    <>
      <ErrorBox error={list.error} />
      <table class="grid" data-testid="audit">
        <thead>
          <tr>
            <th>{t('When')}</th>
            <th>{t('Who')}</th>
            <th>{t('What')}</th>
            <th>{t('Target')}</th>
            <th>{t('From')}</th>
            <th>{t('Result')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.items.map((a, i) => (
            <tr key={String(a.id ?? i)}>
              <td class="nowrap">{fmtTime((a.at ?? a.ts ?? a.created_at) as string)}</td>
              <td>{s(a.username ?? a.actor ?? a.who)}</td>
              <td>{s(a.action ?? a.what ?? `${s(a.method)} ${s(a.path)}`)}</td>
              <td>{s(a.target ?? a.resource ?? a.path)}</td>
              <td>{s(a.address ?? a.ip ?? a.from)}</td>
              <td>{s(a.status ?? a.result)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && <Pager total={list.data.total} limit={50} offset={offset} onChange={setOffset} />}
    </>
  );
}

/** Your own password; a new one ends your sessions, this one included: sign in again. */
function Password() {
  async function change(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const ok = await act(async () => {
      await put('/auth/password', { current_password: f.get('current'), password: f.get('password') });
      return true;
    }, t('Password changed: sign in again'));
    if (ok) {
      saveToken(null);
      session.value = null;
    }
  }
  return (
    <form class="form" onSubmit={change} data-testid="password">
      <label>
        {t('Current password')}
        <input name="current" type="password" required autocomplete="current-password" />
      </label>
      <label>
        {t('New password')}
        <input name="password" type="password" required minLength={8} maxLength={1024} autocomplete="new-password" />
      </label>
      <button type="submit" class="primary">
        {t('Change password')}
      </button>
    </form>
  );
}

function Settings() {
  const health = useAsync(async () => {
    try {
      return await get<{ status: string; version: string; uptime_s: number; components: Record<string, unknown> }>('/health');
    } catch (err) {
      // 503 still carries the components.
      if (err instanceof ApiError && err.status === 503) return { status: 'degraded', version: '?', uptime_s: 0, components: {} };
      throw err;
    }
  }, []);
  const settings = useAsync(() => getOptional<Record<string, unknown>>('/settings'), []);
  return (
    <>
      <ErrorBox error={health.error} />
      {health.data && (
        <dl class="facts">
          <dt>{t('Version')}</dt>
          <dd>{health.data.version}</dd>
          <dt>{t('Status')}</dt>
          <dd>{t(health.data.status)}</dd>
          <dt>{t('Uptime')}</dt>
          <dd>{t('{h} h {m} min', { h: Math.floor(health.data.uptime_s / 3600), m: Math.floor((health.data.uptime_s % 3600) / 60) })}</dd>
        </dl>
      )}
      <h3>{t('Components')}</h3>
      {health.data && <Json value={health.data.components} />}
      {settings.data && (
        <>
          <h3>{t('Settings')}</h3>
          <Json value={settings.data} />
        </>
      )}
      <p class="hint">{t('Settings are environment variables (FLUX_*), read at start; secrets are never shown here.')}</p>
    </>
  );
}

const TABS: [string, string, boolean][] = [
  ['users', 'Users and roles', true],
  ['tokens', 'API tokens', true],
  ['audit', 'Audit log', true],
  ['settings', 'Settings', false],
  ['password', 'My password', false],
];

export function System(p: { tab?: string }) {
  useLang();
  const { admin } = useRole();
  // The break-glass admin token is no user: it has no password to change.
  const isUser = session.value?.username !== 'admin-token';
  const tabs = TABS.filter(([id, , adminOnly]) => (admin || !adminOnly) && (id !== 'password' || isUser));
  const tab = tabs.find(([id]) => id === p.tab)?.[0] ?? tabs[0]![0];
  return (
    <div class="page">
      <h1>{t('System')}</h1>
      <div class="tabs">
        {tabs.map(([id, label]) => (
          <Link key={id} to={`system/${id}`} class={`button ${tab === id ? 'active' : ''}`}>
            {t(label)}
          </Link>
        ))}
      </div>
      <Card>
        {tab === 'users' && <Users />}
        {tab === 'tokens' && <Tokens />}
        {tab === 'audit' && <Audit />}
        {tab === 'settings' && <Settings />}
        {tab === 'password' && <Password />}
      </Card>
    </div>
  );
}
