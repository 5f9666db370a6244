/**
 * Two admins deploying at the same moment on two nodes (docs/cluster.md "Flows"): both
 * editors loaded the same revision, both deploys reach their node at once. The write to the shared
 * database is conditional on what the node loaded, so exactly one deploy is stored (200) and the
 * other gets Node-RED's 409 `version_mismatch`, the answer its editor turns into the merge dialog;
 * afterwards both nodes run the winner's flows and credentials (an `http request` node's basic-auth
 * user, seen by a local HTTP server), and show the winner's revision.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawSql } from '../helpers/databases.ts';
import { startCluster, until, type TestCluster, type TestNode, editorFlows } from './cluster.ts';

const TAB = 'race-tab';
const ROUNDS = 3;

function flows(side: string, round: number, echoUrl: string) {
  return [
    { id: TAB, type: 'tab', label: 'race' },
    { id: 'who-in', type: 'http in', z: TAB, url: '/race/who', method: 'get', wires: [['who-fn']] },
    { id: 'who-fn', type: 'function', z: TAB, outputs: 1, func: `msg.payload = '${side}-${round}'; return msg;`, wires: [['who-out']] },
    { id: 'who-out', type: 'http response', z: TAB, statusCode: '', headers: {}, wires: [] },
    { id: 'creds-in', type: 'http in', z: TAB, url: '/race/creds', method: 'get', wires: [['creds-req']] },
    { id: 'creds-req', type: 'http request', z: TAB, method: 'GET', ret: 'txt', url: echoUrl, authType: 'basic', credentials: { user: `${side}-${round}`, password: `secret-of-${side}` }, wires: [['creds-out']] },
    { id: 'creds-out', type: 'http response', z: TAB, statusCode: '', headers: {}, wires: [] },
  ];
}

describe('cluster: two deploys at the same moment on two nodes', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let a: TestNode, b: TestNode;
  let echo: http.Server;
  let echoUrl: string;

  const loaded = async (node: TestNode) => (await (await editorFlows(node, 'GET')).json()) as { flows: { id: string; z?: string }[]; rev: string };
  /** a flow endpoint's text; null while the flows (re)start (sync.test.ts: a request may then get no answer) */
  const call = async (node: TestNode, path: string) => {
    const r = await fetch(`${node.url}/flows${path}`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
    return r?.status === 200 ? r.text() : null;
  };

  before(async function () {
    this.timeout(180_000);
    echo = http.createServer((req, res) => res.end(`auth=${req.headers.authorization ?? ''}`));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/echo`;
    c = await startCluster(2, {}, 'credtake_race');
    [a, b] = c.nodes as [TestNode, TestNode];
  });
  after(async () => {
    await c?.stop();
    echo?.close();
  });

  for (let round = 1; round <= ROUNDS; round++) {
    it(`round ${round}: exactly one deploy is stored, the other gets 409 version_mismatch, and both nodes run the winner's flows`, async () => {
      // both editors loaded the same revision
      const [onA, onB] = await until(async () => {
        const both = await Promise.all([loaded(a), loaded(b)]);
        return both[0].rev === both[1].rev ? both : undefined;
      }, 'A and B showing the same revision', 20_000, 200);
      const others = onA.flows.filter((n) => n.id !== TAB && n.z !== TAB);
      const [ra, rb] = await Promise.all([
        editorFlows(a, 'POST', { flows: [...others, ...flows('a', round, echoUrl)], rev: onA.rev }),
        editorFlows(b, 'POST', { flows: [...others, ...flows('b', round, echoUrl)], rev: onB.rev }),
      ]);
      const answers = [
        { side: 'a', status: ra.status, body: (await ra.json()) as { rev?: string; code?: string; message?: string } },
        { side: 'b', status: rb.status, body: (await rb.json()) as { rev?: string; code?: string; message?: string } },
      ];
      assert.deepEqual(answers.map((x) => x.status).sort(), [200, 409], JSON.stringify(answers));
      const winner = answers.find((x) => x.status === 200)!;
      const loser = answers.find((x) => x.status === 409)!;
      assert.equal(loser.body.code, 'version_mismatch');
      // which check refused it: Node-RED's own (the winner's notice came first) or the database's
      console.log(`      round ${round}: ${winner.side} won; ${loser.side} refused by ${loser.body.message === 'Error' ? "Node-RED's revision check" : 'the conditional write'}`);

      const want = `${winner.side}-${round}`;
      const auth = `auth=Basic ${Buffer.from(`${want}:secret-of-${winner.side}`).toString('base64')}`;
      for (const node of [a, b]) {
        await until(async () => (await call(node, '/race/who')) === want, `${node.id} running ${want}'s flows`, 15_000, 200);
        await until(async () => (await call(node, '/race/creds')) === auth, `${node.id} sending ${want}'s credentials`, 15_000, 200);
        assert.equal((await loaded(node)).rev, winner.body.rev, `${node.id} shows the winner's revision`);
      }
      const sql = await rawSql(c.db.url);
      try {
        const [row] = await sql.query<{ rev: string }>(`SELECT rev FROM shared_flows WHERE id = 'flows'`);
        assert.equal(row?.rev, winner.body.rev);
      } finally {
        await sql.close();
      }
    });
  }
});
