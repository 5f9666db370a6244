/**
 * Replay and shadow mode through a started FLUX and real MQTT devices: 10,000 recorded frames
 * replayed through a changed version report exactly the frames it changes, and store nothing nor
 * run a rule; a shadow version counts differences on live traffic, then `promote` swaps it in
 * while uplinks flow, each stored exactly once.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { BASE_TS, digitsPlugin, frame, v2Outcome } from './fixtures.ts';

const DEVICES = 10;
const wasm = { 'content-type': 'application/wasm' };

describe('plugin replay and shadow mode', function () {
  this.timeout(300_000);
  let flux: FluxProcess;
  let clients: mqtt.MqttClient[] = [];
  let ruleId: string;
  let t0: number;

  /** A metric's value; one not exported yet (a counter never incremented) is 0 unless `required`. */
  const metric = async (re: RegExp, required = false): Promise<number> => {
    const text = String((await flux.api('GET', '/api/metrics')).body);
    const m = re.exec(text);
    if (required) assert.ok(m, `${re} in /api/metrics`);
    return m ? Number(m[1]) : 0;
  };
  const pipelineDone = () => metric(/^flux_pipeline_messages_total\{[^}]*outcome="done"[^}]*\} (\d+)/m);
  const pipelineFailed = () => metric(/^flux_pipeline_messages_total\{[^}]*outcome="failed"[^}]*\} (\d+)/m);
  /** Frame D comes from device m(D / 10 % DEVICES) */
  const deviceOf = (d: number) => Math.floor(d / 10) % DEVICES;
  /** Sends frames, each acknowledged (QoS 1: in the uplink log). */
  const send = (ds: number[]) => Promise.all(ds.map((d) => clients[deviceOf(d)]!.publishAsync(`/meter/m${deviceOf(d)}/properties/report`, frame(d, `m${deviceOf(d)}`), { qos: 1 })));
  /** Stored values of n with their receive-time keys, over every device. */
  const stored = async (from: number, to: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const r = await flux.api('GET', `/api/devices/m${i}/telemetry?metric=n&from=${from}&to=${to}&limit=100000`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      for (const p of r.body.items as { value: number }[]) out.push(p.value);
    }
    return out;
  };
  const rule = async () => (await flux.api('GET', `/api/rules/${ruleId}`)).body.stats.runs as number;

  before(async () => {
    flux = await startFlux({ FLUX_PLUGINS_DIR: tempDir('flux-plugins-dir-'), FLUX_LOG_LEVEL: 'warn' });
    assert.equal((await flux.api('PUT', '/api/plugins/digits', digitsPlugin(1), wasm)).status, 201);
    const stored2 = await flux.api('PUT', '/api/plugins/digits?activate=false', digitsPlugin(2), wasm);
    assert.equal(stored2.status, 201, JSON.stringify(stored2.body));
    assert.equal(stored2.body.active, false);
    assert.equal((await flux.api('GET', '/api/plugins/digits')).body.active_version, 1, 'activate=false keeps version 1 active');
    const p = await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', protocol_plugin_id: 'digits', metadata: { properties: [{ id: 'n', type: 'int' }] } });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const r = await flux.api('POST', '/api/rules', {
      name: 'negative', product_id: 'meter', trigger_script: 'if msg.values.n < 0 { return true; } else { return false; }',
      action_type: 'alarm', action_config: { level: 'critical', message: 'negative n on {{device_id}}' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ruleId = r.body.id;
    for (let i = 0; i < DEVICES; i++) {
      const d = await flux.api('POST', '/api/devices', { id: `m${i}`, product_id: 'meter' });
      clients.push(await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: `m${i}`, password: d.body.secret, clientId: `m${i}`, reconnectPeriod: 0 }));
    }
    t0 = Date.now();
  });

  after(async function () {
    await Promise.all(clients.map((c) => c.endAsync()));
    clients = [];
    const code = await flux?.stop();
    if (this.currentTest?.state === 'failed' || code !== 0) console.log(flux?.output().slice(-4000));
  });

  it('replays 10,000 recorded frames through a changed version and reports exactly the changed ones; nothing is stored, no rule runs', async () => {
    const ds = Array.from({ length: 10_000 }, (_, i) => i * 10);
    for (let i = 0; i < ds.length; i += 500) await send(ds.slice(i, i + 500));
    await until('10,000 uplinks through the flows', async () => ((await pipelineDone()) >= 10_000 ? true : undefined), 120_000);
    assert.equal((await stored(BASE_TS, BASE_TS + 100_000)).length, 10_000);
    const runs = await rule();
    assert.equal(runs, 10_000);
    const done = await pipelineDone();
    const expected = { same: 0, different: 0, failed: 0 };
    for (const d of ds) expected[v2Outcome(d)]++;
    assert.deepEqual(expected, { same: 8000, different: 1000, failed: 1000 });

    const r = await flux.api('POST', '/api/plugins/digits/replay', { version: 2, from: t0, to: Date.now() });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'done');
    assert.equal(r.body.total, 10_000);
    assert.deepEqual({ same: r.body.same, different: r.body.different, failed: r.body.failed }, expected);
    assert.equal(r.body.truncated, false);
    assert.equal(r.body.active_version, 1);
    assert.equal(r.body.diffs.length, 100, 'the diff list is capped; the counts are exact');
    for (const diff of r.body.diffs) {
      const n = diff.before.output.values.n as number;
      const d = n - BASE_TS;
      assert.notEqual(v2Outcome(d), 'same', `frame ${d} is not one version 2 changes`);
      assert.equal(diff.deviceId, `m${deviceOf(d)}`);
      assert.equal(typeof diff.msgId, 'string');
      assert.equal(typeof diff.ts, 'number');
      if (v2Outcome(d) === 'different') assert.deepEqual(diff.after, { output: { device_id: diff.deviceId, values: { n: -1 } } });
      else assert.equal(diff.after.error.cause, 'trap');
    }

    // the same version against itself, one device, a limit
    const self = await flux.api('POST', '/api/plugins/digits/replay', { version: 1, from: new Date(t0).toISOString(), to: new Date().toISOString(), devices: ['m3'] });
    assert.deepEqual([self.body.total, self.body.same, self.body.diffs.length], [1000, 1000, 0]);
    const limited = await flux.api('POST', '/api/plugins/digits/replay', { version: 2, from: t0, to: Date.now(), limit: 500 });
    assert.deepEqual([limited.body.total, limited.body.truncated], [500, true]);
    const none = await flux.api('POST', '/api/plugins/digits/replay', { version: 2, from: t0, to: Date.now(), products: ['meter'], devices: ['nobody'] });
    assert.deepEqual([none.body.total, none.body.state], [0, 'done']);

    // started without waiting: GET follows it to the end
    const started = await flux.api('POST', '/api/plugins/digits/replay', { version: 2, from: t0, to: Date.now(), wait: false });
    assert.equal(started.status, 202);
    assert.equal(started.body.state, 'running');
    const followed = await until('the replay done', async () => {
      const g = await flux.api('GET', '/api/plugins/digits/replay');
      return g.body.state === 'done' ? g.body : undefined;
    });
    assert.equal(followed.job, started.body.job);
    assert.equal(followed.different, 1000);

    // nothing of it stored, no rule ran, no alarm
    assert.equal(await rule(), runs);
    assert.equal(await pipelineDone(), done);
    assert.equal((await stored(0, Date.now() + 60_000)).filter((n) => n === -1).length, 0);
    assert.equal((await flux.api('GET', '/api/alarms')).body.total, 0);
  });

  it('runs one replay of a plugin at a time, shows its progress and cancels it', async () => {
    // version 3 loops on the first 1,000 logged frames: each is cut off at its 5 ms deadline and its worker replaced
    const v3 = await flux.api('PUT', '/api/plugins/digits?activate=false&deadline_ms=5', digitsPlugin(3), wasm);
    assert.equal(v3.status, 201, JSON.stringify(v3.body));
    const slow = await flux.api('POST', '/api/plugins/digits/replay', { version: v3.body.version, from: t0, to: Date.now(), limit: 20, wait: false });
    assert.equal(slow.status, 202, JSON.stringify(slow.body));
    const second = await flux.api('POST', '/api/plugins/digits/replay', { version: 2, from: t0, to: Date.now() });
    assert.equal(second.status, 409);
    assert.equal(second.body.error.code, 'replay_running');
    const progress = await flux.api('GET', '/api/plugins/digits/replay');
    assert.deepEqual([progress.body.job, progress.body.state], [slow.body.job, 'running']);
    const cancel = await flux.api('DELETE', '/api/plugins/digits/replay');
    assert.equal(cancel.status, 200);
    const ended = await until('the replay cancelled', async () => {
      const g = await flux.api('GET', '/api/plugins/digits/replay');
      return g.body.state !== 'running' ? g.body : undefined;
    });
    assert.equal(ended.state, 'cancelled');
    assert.ok(ended.total < 20, `a cancelled replay stopped early (${ended.total} of 20)`);
    const again = await flux.api('POST', '/api/plugins/digits/replay', { version: 2, from: t0, to: Date.now(), limit: 10 });
    assert.deepEqual([again.status, again.body.total], [200, 10], 'a new replay runs once the cancelled one ended');
  });

  it('answers hostile or impossible replays with 4xx and a code', async () => {
    const bad: [unknown, number, string][] = [
      [{ version: 99, from: 0, to: 1 }, 404, 'not_found'],
      [{ version: 2, from: 10, to: 1 }, 400, 'bad_range'],
      [{ version: 2, from: 0, to: 1, limit: 0 }, 400, 'bad_request'],
      [{ version: 2, from: 0, to: 1, limit: 100_001 }, 400, 'bad_request'],
      [{ version: 2, from: 0, to: 1, products: ['nope'] }, 400, 'unknown_product'],
      [{ version: 2, from: 0, to: 1, devices: ['../x'] }, 400, 'bad_request'],
      [{ version: 2, from: 0, to: 1, products: ['a\u0000b'] }, 400, 'bad_request'],
      [{ version: 2, from: 0, to: 1, products: ['x'.repeat(65)] }, 400, 'bad_request'],
      [{ version: 2, from: 0, to: 1, devices: Array(1001).fill('m1') }, 400, 'bad_request'],
      [{ version: 2, from: 'yesterday', to: 1 }, 400, 'bad_request'],
      [{ version: 2, from: 0, to: 1, extra: true }, 400, 'bad_request'],
      [{ version: -1, from: 0, to: 1 }, 400, 'bad_request'],
    ];
    for (const [body, status, code] of bad) {
      const r = await flux.api('POST', '/api/plugins/digits/replay', body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, code);
    }
    assert.equal((await flux.api('POST', '/api/plugins/nope/replay', { version: 1, from: 0, to: 1 })).body.error.code, 'not_found');
    assert.equal((await flux.api('POST', '/api/plugins/..%2Fx/replay', { version: 1, from: 0, to: 1 })).body.error.code, 'invalid_id');
    assert.equal((await flux.api('DELETE', '/api/plugins/digits/replay')).status, 404, 'no replay is running');
    assert.equal((await flux.api('GET', '/api/plugins/digits/shadow')).status, 404);
    assert.equal((await flux.api('POST', '/api/plugins/digits/shadow', { version: 2, sample: 0 })).status, 400);
    assert.equal((await flux.api('POST', '/api/plugins/digits/shadow', { version: 7 })).status, 404);
  });

  it('shadow mode counts differences on live traffic, then promote swaps with no uplink lost or stored twice', async () => {
    const s = await flux.api('POST', '/api/plugins/digits/shadow', { version: 2 });
    assert.equal(s.status, 201, JSON.stringify(s.body));
    assert.equal((await flux.api('POST', '/api/plugins/digits/shadow', { version: 2 })).body.error.code, 'shadow_running');
    const live = [
      ...Array.from({ length: 1000 }, (_, k) => 10_001 + 10 * k),
      ...Array.from({ length: 1000 }, (_, k) => 90_001 + 10 * k),
      ...Array.from({ length: 500 }, (_, k) => 80_001 + 10 * k),
    ];
    // paced so the shadow queue never fills: each batch compared before the next is sent
    for (let i = 0; i < live.length; i += 250) {
      await send(live.slice(i, i + 250));
      await until('the batch compared', async () => {
        const g = (await flux.api('GET', '/api/plugins/digits/shadow')).body;
        return g.same + g.different + g.failed + g.dropped >= Math.min(i + 250, live.length) ? true : undefined;
      }, 60_000);
    }
    const status = (await flux.api('GET', '/api/plugins/digits/shadow')).body;
    assert.deepEqual({ same: status.same, different: status.different, failed: status.failed, dropped: status.dropped }, { same: 1000, different: 1000, failed: 500, dropped: 0 });
    assert.equal(status.version, 2);
    assert.equal(status.active_version, 1);
    assert.equal(status.diffs.length, 50);
    const newest = status.diffs.at(-1);
    assert.equal(typeof newest.msgId, 'string', 'a live diff names its uplink');
    assert.equal((await flux.api('GET', `/api/trace/${newest.msgId}`)).status, 200);
    const m = String((await flux.api('GET', '/api/metrics')).body);
    assert.match(m, /^flux_plugin_shadow_frames\{[^}]*plugin="digits"[^}]*outcome="different"[^}]*\} 1000$/m);
    assert.match(m, /^flux_plugin_shadow_frames\{[^}]*plugin="digits"[^}]*outcome="failed"[^}]*\} 500$/m);
    // the live path stored what version 1 decoded, nothing of the shadow's
    await until('the live frames stored', async () => ((await stored(BASE_TS + 10_001, BASE_TS + 100_000)).filter((n) => (n - BASE_TS) % 10 === 1).length === 2500 ? true : undefined), 60_000);

    // promote while frames flow
    const doneBefore = await pipelineDone();
    const failedBefore = await pipelineFailed();
    const flow = Array.from({ length: 3000 }, (_, k) => 20_003 + 10 * k);
    const sending = (async () => {
      for (let i = 0; i < flow.length; i += 100) await send(flow.slice(i, i + 100));
    })();
    await until('some frames sent', async () => ((await pipelineDone()) > doneBefore + 300 ? true : undefined), 60_000);
    const p = await flux.api('POST', '/api/plugins/digits/shadow/promote');
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.promoted.version, 2);
    await sending;
    assert.equal((await flux.api('GET', '/api/plugins/digits')).body.active_version, 2);
    assert.equal((await flux.api('GET', '/api/plugins/digits/shadow')).status, 404, 'promote ends shadow mode');
    await until('every frame through the flows', async () => ((await pipelineDone()) >= doneBefore + flow.length ? true : undefined), 60_000);
    assert.equal(await pipelineDone(), doneBefore + flow.length);
    assert.equal(await pipelineFailed(), failedBefore);
    const got = (await stored(BASE_TS + 20_003, BASE_TS + 50_000)).filter((n) => (n - BASE_TS) % 10 === 3).sort((a, b) => a - b);
    assert.deepEqual(got, flow.map((d) => BASE_TS + d), 'every uplink stored exactly once');
    // version 2 decodes now
    const before = await pipelineDone();
    await send([90_007]);
    await until('the frame through the flows', async () => ((await pipelineDone()) > before ? true : undefined));
    assert.equal((await stored(Date.now() - 60_000, Date.now() + 1000)).filter((n) => n === -1).length, 1);
  });

  it('a shadow version that loops on every frame never restarts a live worker; live frames all go through', async () => {
    // version 3 (5 ms deadline) loops on frames starting with 0 (stored already by the cancel test when the whole file runs)
    const stored = await flux.api('PUT', '/api/plugins/digits?activate=false&deadline_ms=5', digitsPlugin(3), wasm);
    assert.ok([200, 201].includes(stored.status), JSON.stringify(stored.body));
    const v3 = stored.body.version;
    const restarts = () => metric(/^flux_plugin_worker_restarts\{[^}]*\} (\d+)/m, true);
    const restartsBefore = await restarts();
    assert.equal((await flux.api('POST', '/api/plugins/digits/shadow', { version: v3 })).status, 201);
    const doneBefore = await pipelineDone();
    const failedBefore = await pipelineFailed();
    const ds = Array.from({ length: 60 }, (_, k) => 5 + 10 * k);
    await send(ds);
    await until('the live frames through the flows', async () => ((await pipelineDone()) >= doneBefore + ds.length ? true : undefined), 60_000);
    assert.equal(await pipelineFailed(), failedBefore);
    const shadow = await until('the shadow done with them', async () => {
      const g = (await flux.api('GET', '/api/plugins/digits/shadow')).body;
      return g.failed + g.dropped + g.same + g.different === ds.length ? g : undefined;
    }, 120_000);
    assert.equal(shadow.same + shadow.different, 0);
    assert.ok(shadow.failed >= 1);
    // cut off at its deadline (calls of a batch whose worker keeps being replaced fail as `crashed`, naming the deadline)
    for (const d of shadow.diffs) assert.match(`${d.after.error.cause}: ${d.after.error.message}`, /^(deadline|crashed): .*deadline/);
    assert.equal(await restarts(), restartsBefore, 'the live workers were never replaced');
    assert.equal((await flux.api('DELETE', '/api/plugins/digits/shadow')).status, 200);
  });
});
