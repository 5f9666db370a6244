/**
 * An existing single node becoming a cluster's first node keeps its flow credentials (docs/cluster.md
 * "Flows": when the shared database holds no credentials yet, the first node's own are used if they
 * decrypt with FLUX_CREDENTIAL_SECRET). A single FLUX process started with FLUX_CREDENTIAL_SECRET
 * deploys an `http request` node with basic-auth user and password, and stops; it starts again with
 * its data dir as node A of a cluster on an empty shared database; node B, started after it, sends
 * the same user and password (seen by a local HTTP server), and the database holds them encrypted.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawSql } from '../helpers/databases.ts';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { startCluster, until, type TestCluster, editorFlows } from './cluster.ts';

const TAB = 'take-tab';
const SECRET = 'cluster-test-credential-secret-0123';
const USER = 'single-user';
const PASSWORD = 'pa55-of-the-single-node';

describe('cluster: a single node that becomes the first node keeps its flow credentials', function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let single: FluxProcess | undefined;
  let echo: http.Server;
  let echoUrl: string;

  const call = async (node: FluxProcess) => {
    const r = await fetch(`${node.url}/flows/take/creds`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
    return r?.status === 200 ? r.text() : null;
  };
  const expected = `auth=Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

  before(async () => {
    echo = http.createServer((req, res) => res.end(`auth=${req.headers.authorization ?? ''}`));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/echo`;
  });
  after(async () => {
    await single?.stop();
    await c?.stop();
    echo?.close();
  });

  it("B sends the credentials deployed on the single node before it became A", async () => {
    const dataDir = tempDir();
    single = await startFlux({ FLUX_CREDENTIAL_SECRET: SECRET }, { dataDir });
    const current = (await (await editorFlows(single, 'GET')).json()) as { flows: { id: string; z?: string }[]; rev: string };
    const r = await editorFlows(single, 'POST', {
      rev: current.rev,
      flows: [
        ...current.flows.filter((n) => n.id !== TAB && n.z !== TAB),
        { id: TAB, type: 'tab', label: 'takeover' },
        { id: 'take-in', type: 'http in', z: TAB, url: '/take/creds', method: 'get', wires: [['take-req']] },
        { id: 'take-req', type: 'http request', z: TAB, method: 'GET', ret: 'txt', url: echoUrl, authType: 'basic', credentials: { user: USER, password: PASSWORD }, wires: [['take-out']] },
        { id: 'take-out', type: 'http response', z: TAB, statusCode: '', headers: {}, wires: [] },
      ],
    });
    assert.equal(r.status, 200, await r.text());
    assert.equal(await until(() => call(single!), 'the flow answering on the single node', 15_000, 200), expected);
    await single.stop();
    single = undefined;

    c = await startCluster(0, { FLUX_CREDENTIAL_SECRET: SECRET }, 'credtake_take');
    const a = await c.add('node-a', { FLUX_DATA_DIR: dataDir });
    assert.equal(await until(() => call(a), 'the flow answering on A', 15_000, 200), expected);
    const b = await c.add('node-b');
    assert.equal(await until(() => call(b), 'the flow answering on B', 15_000, 200), expected);

    const sql = await rawSql(c.db.url);
    try {
      const [row] = await sql.query<{ credentials: string | null }>(`SELECT credentials FROM shared_flows WHERE id = 'flows'`);
      assert.ok(row?.credentials, 'the shared database holds the credentials');
      assert.ok(!row.credentials.includes(PASSWORD), 'encrypted');
    } finally {
      await sql.close();
    }
  });
});
