/** Settings from the environment: defaults, parsing, one-line errors naming the variable, the README table. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadSettings, SETTINGS, PROJECT_DIR } from '../settings.ts';
import { ConfigError } from '../runtime/errors/index.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadSettings(env, '/srv/flux');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('settings', function () {
  it('defaults to the contract values with SQLite files in the data dir', function () {
    const s = loadSettings({}, '/srv/flux');
    assert.equal(s.httpPort, 1880);
    assert.equal(s.mqttPort, 1883);
    assert.equal(s.dataDir, '/srv/flux/data');
    assert.deepEqual(s.db, { dialect: 'sqlite', url: 'sqlite:', file: '/srv/flux/data/flux.db' });
    assert.equal(s.ts.file, '/srv/flux/data/telemetry.db');
    assert.equal(s.adminToken, undefined);
    assert.equal(s.redisUrl, undefined);
    assert.deepEqual(s.cluster, { nodeId: undefined, redisPrefix: 'flux:', heartbeatMs: 5000 });
  });

  it('parses every database scheme of the contract', function () {
    const s = loadSettings({ FLUX_DB_URL: 'mariadb://u:p@db:3306/flux', FLUX_TS_URL: 'tdengine://root:taosdata@td:6041/flux' }, '/x');
    assert.equal(s.db.dialect, 'mysql');
    assert.equal(s.db.url, 'mysql://u:p@db:3306/flux');
    assert.equal(s.ts.dialect, 'tdengine');
    assert.equal(loadSettings({ FLUX_DB_URL: 'postgresql://db/flux' }, '/x').db.dialect, 'postgres');
    assert.equal(loadSettings({ FLUX_DB_URL: 'sqlite:meta.db' }, '/x').db.file, path.resolve('meta.db'));
    assert.equal(loadSettings({ FLUX_DB_URL: 'sqlite:///var/lib/flux/meta.db' }, '/x').db.file, '/var/lib/flux/meta.db');
  });

  it('cluster mode\'s shared log is off unless FLUX_NATS_URL is set', function () {
    assert.equal(loadSettings({}, '/x').clusterLog, undefined);
    assert.deepEqual(loadSettings({ FLUX_NATS_URL: 'nats://n1:4222, nats://u:p@n2:4222' }, '/x').clusterLog, { servers: ['nats://n1:4222', 'nats://u:p@n2:4222'], name: 'flux', partitions: 16, leaseMs: 6000, replicas: 1 });
  });

  it('names the variable in one line for each invalid value', function () {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ FLUX_MQTT_PORT: '70000' }, 'FLUX_MQTT_PORT', /not a port number/],
      [{ FLUX_HTTP_PORT: '-1' }, 'FLUX_HTTP_PORT', /not a port number/],
      [{ FLUX_DB_URL: 'tdengine://h:6041/db' }, 'FLUX_DB_URL', /unsupported scheme 'tdengine:'/],
      [{ FLUX_DB_URL: 'postgres://host' }, 'FLUX_DB_URL', /names no database/],
      [{ FLUX_TS_URL: 'influx://h/db' }, 'FLUX_TS_URL', /unsupported scheme/],
      [{ FLUX_ADMIN_TOKEN: 'short' }, 'FLUX_ADMIN_TOKEN', /shorter than 16/],
      [{ FLUX_TLS_CERT: 'cert.pem' }, 'FLUX_TLS_KEY', /set together/],
      [{ FLUX_REDIS_URL: 'localhost:6379' }, 'FLUX_REDIS_URL', /not a redis:\/\/ URL/],
      [{ FLUX_REDIS_URL: 'redis://127.0.0.1:6379' }, 'FLUX_CREDENTIAL_SECRET', /required in cluster mode/],
      [{ FLUX_CREDENTIAL_SECRET: 'short' }, 'FLUX_CREDENTIAL_SECRET', /16 to 1024 characters/],
      [{ FLUX_LOG_LEVEL: 'loud' }, 'FLUX_LOG_LEVEL', /not one of/],
      [{ FLUX_NODE_ID: 'node a' }, 'FLUX_NODE_ID', /not a node id/],
      [{ FLUX_REDIS_PREFIX: 'flux prod' }, 'FLUX_REDIS_PREFIX', /letters, digits/],
      [{ FLUX_CLUSTER_HEARTBEAT_MS: '100' }, 'FLUX_CLUSTER_HEARTBEAT_MS', /from 500 to 60000/],
      [{ FLUX_NATS_URL: 'localhost:4222' }, 'FLUX_NATS_URL', /not a list of nats:\/\/host:port URLs/],
      [{ FLUX_NATS_URL: 'nats://n:4222', FLUX_NATS_NAME: 'a.b' }, 'FLUX_NATS_NAME', /letters, digits/],
      [{ FLUX_NATS_URL: 'nats://n:4222', FLUX_LOG_PARTITIONS: '0' }, 'FLUX_LOG_PARTITIONS', /from 1 to 1024/],
      [{ FLUX_NATS_URL: 'nats://n:4222', FLUX_LOG_LEASE: '200ms' }, 'FLUX_LOG_LEASE', /from 1s to 10m/],
    ];
    for (const [env, variable, re] of cases) {
      const err = configError(env);
      assert.equal(err.variable, variable);
      assert.match(err.message, re);
      assert.ok(err.message.includes(variable));
      assert.ok(!err.message.includes('\n'));
    }
  });

  it('never prints a database password in an error', function () {
    const err = configError({ FLUX_DB_URL: 'mysql://root:hunter2@db:99999/flux' });
    assert.doesNotMatch(err.message, /hunter2/);
  });

  it("is documented: every variable is in the README's configuration table", function () {
    const readme = fs.readFileSync(path.join(PROJECT_DIR, 'README.md'), 'utf8');
    for (const s of SETTINGS) assert.match(readme, new RegExp(`\\| \`${s.variable}\` \\|`), `${s.variable} is in the README`);
  });
});
