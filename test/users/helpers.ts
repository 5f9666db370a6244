/** An in-process FLUX (no Node-RED) and a `call` helper for the users tests. */
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

export interface Answer {
  status: number;
  body: any;
}

export interface TestFlux {
  flux: Flux;
  base: string;
  call(method: string, path: string, body?: unknown, token?: string | null): Promise<Answer>;
  /** creates a user with `role` and logs in: its session token */
  userToken(username: string, role: string, password?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startTestFlux(env: Record<string, string> = {}, dataDir = tempDir()): Promise<TestFlux> {
  const settings = loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN, ...env });
  const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
  const ports = await flux.start();
  const base = `http://127.0.0.1:${ports.http}/api`;
  const call = async (method: string, path: string, body?: unknown, token: string | null = TEST_TOKEN): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON (CSV, metrics) */
    }
    return { status: res.status, body: parsed };
  };
  return {
    flux,
    base,
    call,
    async userToken(username, role, password = `${username}-password-1`) {
      const created = await call('POST', '/users', { username, password, role });
      if (created.status !== 201) throw new Error(`creating ${username}: ${created.status} ${JSON.stringify(created.body)}`);
      const login = await call('POST', '/auth/login', { username, password }, null);
      if (login.status !== 200) throw new Error(`logging in ${username}: ${login.status} ${JSON.stringify(login.body)}`);
      return login.body.token as string;
    },
    stop: () => flux.stop(),
  };
}
