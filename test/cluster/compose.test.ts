/**
 * docker/compose.yaml and docker/haproxy.cfg, as far as they can be checked without Docker (which does
 * not run on these machines): the YAML parses with its merge keys, it has the services docs/cluster.md
 * describes, every node's environment loads as FLUX settings, HAProxy's configuration is valid
 * (`haproxy -c`) and names exactly the FLUX nodes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { loadSettings } from '../../settings.ts';
import { ROOT } from '../helpers/flux-process.ts';

interface Service {
  image?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, unknown> | string[];
  ports?: string[];
  volumes?: string[];
  command?: string[];
}

/** Compose's `${VAR:-default}` and `${VAR:?message}`, with a stand-in value for the required ones. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z_]+)(?::([-?])([^}]*))?\}/g, (_m, _name: string, kind: string | undefined, rest: string) => (kind === '-' ? rest : 'stand-in-0123456789abcdef'));
}

describe('docker/compose.yaml and docker/haproxy.cfg', function () {
  const compose = parse(fs.readFileSync(path.join(ROOT, 'docker', 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
  const services = compose.services;
  const nodes = Object.keys(services).filter((s) => s.startsWith('flux-'));

  it('runs three FLUX nodes, HAProxy, Redis, NATS with JetStream and MariaDB', () => {
    assert.deepEqual(nodes, ['flux-a', 'flux-b', 'flux-c']);
    for (const s of ['haproxy', 'redis', 'nats', 'mariadb']) assert.ok(services[s], `service ${s}`);
    assert.ok(services.nats!.command!.includes('--jetstream'), 'NATS runs JetStream');
    assert.deepEqual(services.haproxy!.ports!.filter((p) => /^"?(1880|1883):/.test(p)).sort(), ['1880:1880', '1883:1883']);
    for (const n of nodes) assert.equal(services[n]!.ports, undefined, `${n} is reached through HAProxy only`);
  });

  it('gives each node its own id and data volume, and the same Redis, database and token', () => {
    const envs = nodes.map((n) => services[n]!.environment!);
    assert.equal(new Set(envs.map((e) => e.FLUX_NODE_ID)).size, 3);
    for (const key of ['FLUX_REDIS_URL', 'FLUX_DB_URL', 'FLUX_TS_URL', 'FLUX_ADMIN_TOKEN', 'FLUX_CREDENTIAL_SECRET']) assert.equal(new Set(envs.map((e) => e[key])).size, 1, `${key} is shared`);
    const volumes = nodes.map((n) => services[n]!.volumes![0]!.split(':')[0]!);
    assert.equal(new Set(volumes).size, 3);
    for (const v of Object.values(services).flatMap((s) => s.volumes ?? []).map((v) => v.split(':')[0]!)) {
      if (!v.startsWith('.')) assert.ok(v in compose.volumes, `volume ${v} is declared`);
    }
    for (const [name, s] of Object.entries(services)) {
      for (const dep of Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {})) assert.ok(services[dep], `${name} depends on ${dep}, which exists`);
    }
  });

  it("loads every node's environment as FLUX settings in cluster mode", () => {
    for (const n of nodes) {
      const env = Object.fromEntries(Object.entries(services[n]!.environment!).map(([k, v]) => [k, interpolate(String(v))]));
      const s = loadSettings(env, '/app');
      assert.equal(s.redisUrl, 'redis://redis:6379');
      assert.equal(s.cluster.nodeId, n);
      assert.equal(s.db.dialect, 'mysql');
      assert.ok(2 * s.cluster.heartbeatMs <= 20_000, 'a dead node is noticed within 20 s');
    }
  });

  it('has an HAProxy configuration haproxy accepts, with exactly the FLUX nodes behind 1883 (TCP) and 1880 (HTTP)', async () => {
    const file = path.join(ROOT, 'docker', 'haproxy.cfg');
    const { stdout, stderr } = await promisify(execFile)('haproxy', ['-c', '-f', file]);
    assert.match(stdout + stderr, /Configuration file is valid/);
    const cfg = fs.readFileSync(file, 'utf8');
    for (const backend of ['flux_mqtt', 'flux_http']) {
      const block = new RegExp(`backend ${backend}\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(cfg)![1]!;
      assert.deepEqual([...block.matchAll(/^\s+server (\S+)/gm)].map((m) => m[1]), nodes, backend);
      assert.match(block, backend === 'flux_mqtt' ? /mode tcp/ : /mode http/);
    }
  });
});
