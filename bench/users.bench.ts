/**
 * Users and roles: what a login costs (scrypt, N=2^14) and what checking a token costs per API
 * request: the admin token (compared in memory) against a login session and a personal token
 * (a SHA-256 lookup in the metadata database plus the owner's role, cached 10 s). In-process FLUX on SQLite.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { createFlux } from '../runtime/app/index.ts';
import { createLogger } from '../runtime/log/index.ts';
import { loadSettings } from '../settings.ts';
import type { Bench, BenchRow } from './types.ts';
import { tempDir } from './lib/flux.ts';

const TOKEN = 'bench-admin-token-0123456789abcdef';

const bench: Bench = async ({ quick }) => {
  const rows: BenchRow[] = [];
  const settings = loadSettings({ FLUX_DATA_DIR: tempDir('flux-bench-users-'), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TOKEN, FLUX_ADMIN_PASSWORD: 'bench-admin-password' });
  const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
  const { http } = await flux.start();
  const base = `http://127.0.0.1:${http}/api`;
  const post = (p: string, body: unknown, token?: string) =>
    fetch(base + p, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  try {
    const logins = quick ? 10 : 40;
    let t0 = performance.now();
    let session = '';
    for (let i = 0; i < logins; i++) session = ((await (await post('/auth/login', { username: 'admin', password: 'bench-admin-password' })).json()) as { token: string }).token;
    const loginMs = (performance.now() - t0) / logins;
    rows.push({ group: 'users', name: 'POST /api/auth/login (scrypt N=2^14, r=8), sequential', value: loginMs, unit: 'ms', note: `mean of ${logins}; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores` });
    const personal = ((await (await post('/tokens', { name: 'bench', role: 'viewer' }, session)).json()) as { token: string }).token;

    const n = quick ? 300 : 2000;
    const tokens = [TOKEN, session, personal];
    const spent = [0, 0, 0];
    const ROUNDS = 10;
    // Interleaved rounds, so a change in the machine's load falls on all three alike.
    for (let round = -1; round < ROUNDS; round++) {
      for (const [k, token] of tokens.entries()) {
        t0 = performance.now();
        for (let i = 0; i < n / ROUNDS; i++) {
          const r = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
          if (r.status !== 200) throw new Error(`GET /api/auth/me answered ${r.status}`);
          await r.arrayBuffer();
        }
        if (round >= 0) spent[k]! += performance.now() - t0; // round -1 warms up
      }
    }
    const [admin, sess, pers] = spent.map((ms) => (ms * 1000) / n) as [number, number, number];
    rows.push({ group: 'users', name: 'GET /api/auth/me with the admin token, sequential', value: admin, unit: 'µs/request', note: `${n} requests over keep-alive` });
    rows.push({ group: 'users', name: 'GET /api/auth/me with a login session', value: sess, unit: 'µs/request', note: `+${Math.round(sess - admin)} µs to resolve the token (cached 10 s, a SQLite lookup on a miss)` });
    rows.push({ group: 'users', name: 'GET /api/auth/me with a personal token', value: pers, unit: 'µs/request', note: `+${Math.round(pers - admin)} µs to resolve the token (cached 10 s, a SQLite lookup on a miss)` });
  } finally {
    await flux.stop();
  }
  return rows;
};

export default bench;
