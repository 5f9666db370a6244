/** The operator console: login, the shell (navigation, user, language) and the page for the route. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, saveToken, session, storedToken, errorText, type Session } from './api.ts';
import { route } from './router.ts';
import { useSignal } from './state.ts';
import { lang, setLang, t, useLang } from './i18n.ts';
import { Link, Toasts } from './ui.tsx';
import { Overview } from './pages/overview.tsx';
import { Products } from './pages/products.tsx';
import { Devices } from './pages/devices.tsx';
import { DeviceDetail } from './pages/device-detail.tsx';
import { Plugins } from './pages/plugins.tsx';
import { Rules } from './pages/rules.tsx';
import { RuleEdit } from './pages/rule-edit.tsx';
import { Alarms } from './pages/alarms.tsx';
import { Reports } from './pages/reports.tsx';
import { Video } from './pages/video.tsx';
import { System } from './pages/system.tsx';
import './style.css';

const NAV: [string, string][] = [
  ['', 'Overview'],
  ['products', 'Products'],
  ['devices', 'Devices'],
  ['plugins', 'Plugins'],
  ['rules', 'Rules and scenes'],
  ['alarms', 'Alarm center'],
  ['reports', 'Reports'],
  ['video', 'Video wall'],
  ['system', 'System'],
];

/** Who a token belongs to. Before users exist (`/api/auth/me` absent), a token the API accepts is the admin token. */
async function whoAmI(token: string): Promise<Session> {
  try {
    const me = await api<{ username: string; role: Session['role'] }>('GET', '/auth/me', { token });
    return { token, username: me.username, role: me.role };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    await api('GET', '/products?limit=1', { token });
    return { token, username: 'admin', role: 'admin' };
  }
}

function Login(p: { onDone(s: Session, remember: boolean): void }) {
  useLang();
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    setError('');
    try {
      let token = String(f.get('token') ?? '').trim();
      if (mode === 'password') {
        const r = await api<{ token: string }>('POST', '/auth/login', { body: { username: f.get('username'), password: f.get('password') }, token: '' });
        token = r.token;
      }
      p.onDone(await whoAmI(token), f.get('remember') === 'on');
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? t('Wrong user name or password.') : errorText(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="login">
      <form onSubmit={submit} class="card">
        <h1>
          FLUX IOT <small>{t('Operator console')}</small>
        </h1>
        {mode === 'password' ? (
          <>
            <label>
              {t('User name')}
              <input name="username" autocomplete="username" required />
            </label>
            <label>
              {t('Password')}
              <input name="password" type="password" autocomplete="current-password" required />
            </label>
          </>
        ) : (
          <label>
            {t('API token')}
            <input name="token" type="password" autocomplete="off" required />
          </label>
        )}
        <label class="inline">
          <input type="checkbox" name="remember" /> {t('Stay signed in on this browser')}
        </label>
        {error && <div class="error" role="alert">{error}</div>}
        <button type="submit" class="primary" disabled={busy}>
          {t('Sign in')}
        </button>
        <button type="button" class="link" onClick={() => setMode(mode === 'password' ? 'token' : 'password')}>
          {mode === 'password' ? t('Sign in with an API token instead') : t('Sign in with a user name instead')}
        </button>
        <p class="hint">{t('The first admin password is printed once at the first start (or set FLUX_ADMIN_PASSWORD); the admin token works as an API token.')}</p>
        <LangSwitch />
      </form>
    </main>
  );
}

function LangSwitch() {
  const l = useLang();
  return (
    <select class="lang" aria-label="Language / 语言" value={l} onChange={(e) => setLang((e.currentTarget as HTMLSelectElement).value as 'en' | 'zh')}>
      <option value="en">English</option>
      <option value="zh">简体中文</option>
    </select>
  );
}

function Page(p: { path: string }) {
  const [head, id, sub] = p.path.split('/');
  switch (head) {
    case '':
      return <Overview />;
    case 'products':
      return <Products id={id} />;
    case 'devices':
      return id ? <DeviceDetail id={decodeURIComponent(id)} /> : <Devices />;
    case 'plugins':
      return <Plugins id={id && decodeURIComponent(id)} />;
    case 'rules':
      return id ? <RuleEdit id={id === 'new' ? undefined : decodeURIComponent(id)} /> : <Rules />;
    case 'alarms':
      return <Alarms />;
    case 'reports':
      return <Reports />;
    case 'video':
      return <Video />;
    case 'system':
      return <System tab={id} />;
    default:
      void sub;
      return <div class="card">{t('No such page.')}</div>;
  }
}

function Shell() {
  useLang();
  const s = useSignal(session)!;
  const path = useSignal(route);
  const head = path.split('/')[0] ?? '';
  useEffect(() => {
    document.title = `${t(NAV.find(([p]) => p === head)?.[1] ?? 'Overview')} · FLUX IOT`;
  }, [head, lang.value]);
  return (
    <div class="shell">
      <nav class="side">
        <div class="brand">
          FLUX IOT<small>{t('Operator console')}</small>
        </div>
        {NAV.map(([p, label]) => (
          <Link key={p} to={p} class={head === p ? 'active' : ''}>
            {t(label)}
          </Link>
        ))}
        {s.role === 'admin' && (
          // Only admins may use the flow editor (runtime/flow-engine/editor-auth.ts).
          <a href="/editor/" class="ext" target="_blank" rel="noopener">
            {t('Flow editor')} ↗
          </a>
        )}
      </nav>
      <div class="main">
        <header class="top">
          <span class="who">
            {s.username} · <span class={`role role-${s.role}`}>{t(s.role)}</span>
          </span>
          <LangSwitch />
          <button
            type="button"
            onClick={() => {
              void api('POST', '/auth/logout').catch(() => undefined);
              saveToken(null);
              session.value = null;
            }}
          >
            {t('Sign out')}
          </button>
        </header>
        <main class="content" key={head}>
          <Page path={path} />
        </main>
      </div>
    </div>
  );
}

function App() {
  const s = useSignal(session);
  const [checking, setChecking] = useState(!!storedToken());
  useEffect(() => {
    const token = storedToken();
    if (!token) return;
    whoAmI(token)
      .then((v) => (session.value = v))
      .catch(() => saveToken(null))
      .finally(() => setChecking(false));
  }, []);
  if (checking) return <div class="loading">…</div>;
  return (
    <>
      {s ? (
        <Shell />
      ) : (
        <Login
          onDone={(v, remember) => {
            saveToken(v.token, remember);
            session.value = v;
          }}
        />
      )}
      <Toasts />
    </>
  );
}

render(<App />, document.getElementById('app')!);
