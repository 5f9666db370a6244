/**
 * Shared configuration across three FLUX processes (docs/cluster.md "Shared
 * configuration"): a plugin installed, hot swapped, rolled back and removed on node A, and a rule
 * saved on A, are active on B and C within 5 s, shown by behaviour (C's live decoder answers, an
 * uplink through C is decoded by the swapped plugin and evaluated by the new rule version); a device
 * disabled or given a new secret on A is refused on C at once (C had it cached); alarms raised for
 * one device on two nodes at once make one alarm, and their events reach a third node's /api/ws; a
 * flow deployed on A runs on B and C, and a stale revision gets 409 on C.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { echo } from '../plugins/fixtures.ts';
import { startCluster, until, type TestCluster, type TestNode, editorFlows } from './cluster.ts';

const WASM = { 'content-type': 'application/wasm' };
/** the bound for a change on one node to be active on all */
const ACTIVE_WITHIN_MS = 5_000;

describe('cluster: rules, plugins and device changes on one node are active on all', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let a: TestNode, b: TestNode, cNode: TestNode;
  let secret: string;
  let ruleId: string;
  const latencies: Record<string, number> = {};

  /** what the live decoder of `node` answers for the echo plugin: its version, or null when it has none */
  const liveVersion = async (node: TestNode): Promise<number | null> => {
    const r = await node.api('POST', '/api/plugins/echo/decode', { hex: '31' });
    if (r.status === 404) return null;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.ok ? (r.body.plugin.version as number) : null;
  };
  /** ms until `check` holds on node, failing past the 5 s bound */
  const within = async (what: string, check: () => Promise<boolean>): Promise<number> => {
    const t0 = Date.now();
    await until(check, what, ACTIVE_WITHIN_MS, 25);
    return Date.now() - t0;
  };
  const uplink = (node: TestNode, digits: string, key = secret) =>
    node.api('POST', '/api/devices/d/uplink', Buffer.from(digits), { 'x-device-secret': key, 'content-type': 'application/octet-stream' });
  const alarms = async (node: TestNode) => (await node.api('GET', `/api/alarms?rule_id=${ruleId}&device_id=d`)).body.items as { id: string; count: number; state: string; message: string }[];

  before(async function () {
    this.timeout(180_000);
    c = await startCluster(3, {}, 'cluster_sync');
    [a, b, cNode] = c.nodes as [TestNode, TestNode, TestNode];
  });
  after(async () => {
    if (Object.keys(latencies).length) console.log('      change on A → active on C (ms):', JSON.stringify(latencies));
    await c?.stop();
  });

  it('a plugin installed on A decodes on B and C', async () => {
    const put = await a.api('PUT', '/api/plugins/echo', echo(1), WASM);
    assert.equal(put.status, 201, JSON.stringify(put.body));
    latencies.install = await within('echo v1 live on C', async () => (await liveVersion(cNode)) === 1);
    await within('echo v1 live on B', async () => (await liveVersion(b)) === 1);
  });

  it('a hot swap on A decodes uplinks through C with the new version, and a rule saved on A evaluates them on C', async () => {
    const p = await a.api('POST', '/api/products', { key: 'sync', name: 'sync', protocol_plugin_id: 'echo' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const d = await a.api('POST', '/api/devices', { id: 'd', product_id: 'sync' });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    secret = d.body.secret;
    // the rule triggers only on what version 2 of the plugin decodes
    const rule = await a.api('POST', '/api/rules', { name: 'v2 seq 1', product_id: 'sync', trigger_script: 'return msg.values.v === 2 && msg.values.seq === 1;', action_type: 'alarm', action_config: { level: 'warning', message: 'v2 on {{device_id}}' } });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    ruleId = rule.body.id;

    const swap = await a.api('PUT', '/api/plugins/echo', echo(2), WASM);
    assert.equal(swap.status, 201, JSON.stringify(swap.body));
    latencies.hot_swap = await within('echo v2 live on C', async () => (await liveVersion(cNode)) === 2);
    // through C: decoded by v2 there, evaluated by the rule there (the alarm is in the shared database)
    assert.equal((await uplink(cNode, '1')).status, 202);
    await until(async () => (await alarms(a)).length === 1, 'the alarm of the uplink through C', ACTIVE_WITHIN_MS);

    // a new version of the rule, saved on A: only it triggers on seq 2, so a second count proves it runs on C
    const save = await a.api('PATCH', `/api/rules/${ruleId}`, { trigger_script: 'return msg.values.v === 2 && msg.values.seq === 2;' });
    assert.equal(save.status, 200, JSON.stringify(save.body));
    latencies.rule_save = await within('the new rule version evaluating on C', async () => {
      assert.equal((await uplink(cNode, '2')).status, 202);
      await new Promise((r) => setTimeout(r, 100));
      return (await alarms(a))[0]?.count === 2;
    });
  });

  it('a rollback and a removal on A are live on C', async () => {
    assert.equal((await a.api('POST', '/api/plugins/echo/rollback')).status, 200);
    latencies.rollback = await within('echo v1 live again on C', async () => (await liveVersion(cNode)) === 1);
    assert.equal((await a.api('PUT', '/api/plugins/gone', echo(7), WASM)).status, 201);
    await until(async () => (await cNode.api('POST', '/api/plugins/gone/decode', { hex: '31' })).body?.ok === true, 'gone live on C', ACTIVE_WITHIN_MS);
    assert.equal((await a.api('DELETE', '/api/plugins/gone')).status, 204);
    latencies.remove = await within('gone unloaded on C', async () => (await cNode.api('POST', '/api/plugins/gone/decode', { hex: '31' })).status === 404);
  });

  it('a device disabled, then given a new secret, on A is refused on C at once (C had it cached)', async () => {
    assert.equal((await uplink(cNode, '3')).status, 202); // C caches the identity (30 s TTL)
    assert.equal((await a.api('PATCH', '/api/devices/d', { enabled: false })).status, 200);
    latencies.device_disabled = await within('C refusing the disabled device', async () => (await uplink(cNode, '3')).status === 403);
    assert.equal((await a.api('PATCH', '/api/devices/d', { enabled: true })).status, 200);
    await within('C accepting it again', async () => (await uplink(cNode, '3')).status === 202);
    const rotated = await a.api('POST', '/api/devices/d/secret', {});
    assert.equal(rotated.status, 200);
    latencies.secret_rotated = await within('C refusing the old secret', async () => (await uplink(cNode, '3')).status === 401);
    secret = rotated.body.secret;
    assert.equal((await uplink(cNode, '3')).status, 202);
  });

  it('alarms raised for one device on two nodes at once make one alarm, count 2, and both events reach the live feed of a third node', async () => {
    assert.equal((await a.api('PATCH', `/api/rules/${ruleId}`, { trigger_script: 'return msg.values.seq === 5;' })).status, 200);
    // every node runs the new version (a seq-5 uplink on A counts only once it does)
    for (const n of [b, cNode]) {
      await within(`the seq-5 rule on ${n.id}`, async () => {
        const before = (await alarms(a))[0]?.count ?? 0;
        assert.equal((await uplink(n, '9')).status, 202); // never triggers: the open alarm stays as it is
        return before === (await alarms(a))[0]?.count;
      });
    }
    const open = await alarms(a);
    assert.equal(open.length, 1);
    // clear it, then raise it from B and C at the same moment, with A's live feed open
    assert.equal((await a.api('POST', `/api/alarms/${open[0]!.id}/clear`)).status, 200);
    const feed: { event: string; alarm: { count: number; device_id: string } }[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${a.http}/api/ws?events=alarm`, { headers: { authorization: `Bearer ${a.token}` } });
    ws.on('message', (d) => {
      const m = JSON.parse(String(d));
      if (m.type === 'alarm') feed.push(m);
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const [rb, rc] = await Promise.all([uplink(b, '5'), uplink(cNode, '5')]);
    assert.equal(rb.status, 202);
    assert.equal(rc.status, 202);
    const raised = await until(async () => {
      const list = (await alarms(a)).filter((x) => x.state === 'active');
      return list.length === 1 && list[0]!.count === 2 ? list : undefined;
    }, 'one active alarm with count 2', ACTIVE_WITHIN_MS);
    assert.equal(raised.length, 1);
    assert.equal((await alarms(b)).filter((x) => x.state === 'active').length, 1);
    // A raised nothing itself; its feed shows what B and C did
    const seen = await until(() => {
      const ev = feed.filter((m) => m.event === 'raised' || m.event === 'repeated');
      return ev.length === 2 ? ev : undefined;
    }, 'the raised and repeated events on A\'s live feed', ACTIVE_WITHIN_MS);
    ws.close();
    // two nodes publish them: they may arrive in either order
    assert.deepEqual(seen.map((m) => [m.event, m.alarm.count, m.alarm.device_id]).sort((x, y) => Number(x[1]) - Number(y[1])), [['raised', 1, 'd'], ['repeated', 2, 'd']]);
  });

  it('a deploy on A runs on B and C, and a deploy from an editor on C that loaded the older revision gets 409', async () => {
    const current = (await (await editorFlows(a, 'GET')).json()) as { flows: Record<string, unknown>[]; rev: string };
    // C's editor shows the same revision as A's: every node runs the flows of the shared database
    const onC = (await (await editorFlows(cNode, 'GET')).json()) as { rev: string };
    assert.equal(onC.rev, current.rev);
    const probe = (answer: string) => [
      { id: 'sync-tab', type: 'tab', label: 'sync' },
      { id: 'sync-in', type: 'http in', z: 'sync-tab', url: '/sync/probe', method: 'get', wires: [['sync-fn']] },
      { id: 'sync-fn', type: 'function', z: 'sync-tab', outputs: 1, func: `msg.payload = { answer: '${answer}' }; return msg;`, wires: [['sync-out']] },
      { id: 'sync-out', type: 'http response', z: 'sync-tab', statusCode: '', headers: {}, wires: [] },
    ];
    const base = current.flows.filter((n) => !String(n.id).startsWith('sync-'));
    const deploy = await editorFlows(a, 'POST', { flows: [...base, ...probe('one')], rev: current.rev }, { 'Node-RED-Deployment-Type': 'full' });
    assert.equal(deploy.status, 200, await deploy.text());
    // A request that reaches an http in node while its flow restarts gets no answer (Node-RED):
    // each probe gives up after 2 s and the check asks again.
    const answer = async (node: TestNode) => {
      const r = await fetch(`${node.url}/flows/sync/probe`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      return r?.status === 200 ? ((await r.json()) as { answer: string }).answer : null;
    };
    latencies.flow_deploy = await within('the deployed flow answering on C', async () => (await answer(cNode)) === 'one');
    await within('the deployed flow answering on B', async () => (await answer(b)) === 'one');

    // an editor on C loaded this revision; A deploys again; C's editor deploys with its stale revision
    const stale = ((await (await editorFlows(cNode, 'GET')).json()) as { rev: string }).rev;
    const again = await editorFlows(a, 'POST', { flows: [...base, ...probe('two')], rev: stale }, { 'Node-RED-Deployment-Type': 'full' });
    assert.equal(again.status, 200);
    await within('the second deploy answering on C', async () => (await answer(cNode)) === 'two');
    const conflict = await editorFlows(cNode, 'POST', { flows: [...base, ...probe('three')], rev: stale }, { 'Node-RED-Deployment-Type': 'full' });
    assert.equal(conflict.status, 409, await conflict.text());
    assert.equal(await answer(a), 'two');
  });

  it('a rule\'s counters on any node are the sum of every node\'s', async () => {
    const r2 = await a.api('POST', '/api/rules', { name: 'seq 4', product_id: 'sync', trigger_script: 'return msg.values.seq === 4;', action_type: 'alarm', action_config: { level: 'info', message: 'seq 4' } });
    assert.equal(r2.status, 201);
    const openOf = async () => ((await a.api('GET', `/api/alarms?rule_id=${r2.body.id}&device_id=d`)).body.items as { count: number }[])[0]?.count ?? 0;
    // through B until it runs the new rule there, then through C likewise, then a few more on each
    for (const n of [b, cNode]) {
      const before = await openOf();
      await within(`the new rule running on ${n.id}`, async () => {
        assert.equal((await uplink(n, '4')).status, 202);
        await new Promise((r) => setTimeout(r, 50));
        return (await openOf()) > before;
      });
    }
    for (const n of [b, b, cNode]) assert.equal((await uplink(n, '4')).status, 202);
    // every trigger raised or repeated the one alarm: its count is what B and C ran; A ran none
    const triggers = await until(async () => {
      const count = await openOf();
      const views = await Promise.all([a, b, cNode].map(async (n) => (await n.api('GET', `/api/rules/${r2.body.id}`)).body.stats as { runs: number; triggers: number }));
      return count >= 4 && views.every((v) => v.triggers === count) ? views : undefined;
    }, 'every node showing the summed triggers', 8_000, 200);
    assert.ok(triggers[0]!.runs >= triggers[0]!.triggers);
    const listed = (await a.api('GET', '/api/rules?product_id=sync')).body as { id: string; stats: { triggers: number } }[] | { items: { id: string; stats: { triggers: number } }[] };
    const items = Array.isArray(listed) ? listed : listed.items;
    assert.equal(items.find((x) => x.id === r2.body.id)?.stats.triggers, triggers[0]!.triggers);
  });

  it('a rule\'s auto_clear on C clears the alarm B opened (C learnt of it from B\'s event)', async () => {
    const r3 = await a.api('POST', '/api/rules', { name: 'seq 6', product_id: 'sync', trigger_script: 'return msg.values.seq === 6;', action_type: 'alarm', action_config: { level: 'info', message: 'seq 6', auto_clear: true } });
    assert.equal(r3.status, 201);
    const stateOf = async () => ((await a.api('GET', `/api/alarms?rule_id=${r3.body.id}&device_id=d`)).body.items as { state: string }[])[0]?.state;
    // raised through B only (C never raises this rule), then evaluated false through C
    await within('C clearing the alarm B raised', async () => {
      assert.equal((await uplink(b, '6')).status, 202);
      if ((await until(async () => (await stateOf()) ?? null, 'the alarm raised on B', 2_000, 25)) !== 'active') return false;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((await uplink(cNode, '7')).status, 202);
      await new Promise((r) => setTimeout(r, 150));
      return (await stateOf()) === 'cleared';
    });
  });
});
