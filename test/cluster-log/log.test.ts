/**
 * Cluster mode's shared uplink log (runtime/cluster-log) on a real NATS JetStream, in process: an
 * uplink is acknowledged once stored, read back by device; each device's uplinks are processed in
 * order and acknowledged to JetStream only once handled; a second node takes its share and a leaving
 * one hands its partitions over; a full stream refuses with log_full.
 */
import assert from 'node:assert/strict';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { partitionOf } from '../../runtime/cluster-log/index.ts';
import { until } from '../helpers/wait.ts';
import { accept, dropCluster, NATS_URL, startNode, uniqueName, uplink, type TestNode } from './nodes.ts';

/** the partitions a node holds, from its health */
const held = (n: TestNode) => n.m.health().partitions as number[];

describe('cluster log: the shared uplink log on NATS JetStream', function () {
  this.timeout(30_000);
  const names: string[] = [];
  let nodes: TestNode[] = [];
  const cluster = (what: string) => {
    const n = uniqueName(what);
    names.push(n);
    return n;
  };
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.m.stop()));
    nodes = [];
  });
  after(async () => {
    for (const n of names) await dropCluster(n);
  });

  it("acknowledges an uplink once JetStream stored it in its device's partition; raw reads by device, oldest or newest first, with cursors", async () => {
    const name = cluster('read');
    const a = await startNode(name);
    nodes.push(a);
    const sent = Array.from({ length: 300 }, (_, i) => uplink(`dev${i % 10}`, Math.floor(i / 10)));
    const refusals = await Promise.all(sent.map((up) => accept(a, up)));
    assert.deepEqual(refusals.filter(Boolean), []);
    // stored where a reader on its own connection sees it: in the stream of the device's partition
    const nc = await connect({ servers: NATS_URL.replace('nats://', '') });
    const jsm = await jetstreamManager(nc);
    const perPartition = new Array<number>(8).fill(0);
    for (const up of sent) perPartition[partitionOf(up.deviceId, 8)]! += up.payload.length;
    for (let p = 0; p < 8; p++) {
      const s = (await jsm.streams.info(`${name}_uplinks_${p}`)).state;
      assert.equal(s.messages > 0, perPartition[p]! > 0, `partition ${p}`);
      assert.ok(s.bytes >= perPartition[p]!, `partition ${p} holds its devices' payloads`);
    }
    await nc.close();

    const dev3 = sent.filter((u) => u.deviceId === 'dev3').map((u) => u.id);
    const asc = await a.m.log.read({ deviceId: 'dev3', limit: 100 });
    assert.deepEqual(asc.map((r) => r.id), dev3);
    assert.ok(asc.every((r, i) => i === 0 || r.seq > asc[i - 1]!.seq), 'seqs increase');
    // pages, oldest first, by the `after` cursor
    const firstPage = await a.m.log.read({ deviceId: 'dev3', limit: 7 });
    const second = await a.m.log.read({ deviceId: 'dev3', limit: 7, afterSeq: firstPage.at(-1)!.seq });
    assert.deepEqual([...firstPage, ...second].map((r) => r.id), dev3.slice(0, 14));
    // newest first, by the `before` cursor, to the beginning
    const desc: string[] = [];
    for (let before: number | undefined, i = 0; i < 10; i++) {
      const page = await a.m.log.read({ deviceId: 'dev3', limit: 7, order: 'desc', beforeSeq: before });
      desc.push(...page.map((r) => r.id));
      if (page.length < 7) break;
      before = page.at(-1)!.seq;
    }
    assert.deepEqual(desc, [...dev3].reverse());
    assert.deepEqual(
      (await a.m.log.read({ deviceId: 'dev3', limit: 100, from: Date.now() + 60_000 })).map((r) => r.id),
      [],
      'nothing after now',
    );
    let scanned = 0;
    for await (const batch of a.m.log.scan({ from: Date.now() - 60_000, to: Date.now() })) scanned += batch.length;
    assert.equal(scanned, 300);
    // the payload comes back byte for byte
    assert.deepEqual(asc[0]!.payload, sent.find((u) => u.id === dev3[0])!.payload);
  });

  it("processes each device's uplinks in order, and acknowledges them to JetStream only once handled", async () => {
    const name = cluster('order');
    const a = await startNode(name);
    nodes.push(a);
    const seen = new Map<string, number[]>();
    let gate: (() => void) | undefined;
    const gated = new Promise<void>((r) => (gate = r));
    let held = 0;
    a.bus.on('uplink', {}, async (up) => {
      const n = JSON.parse(up.payload.toString()).values.n as number;
      let l = seen.get(up.deviceId);
      if (!l) seen.set(up.deviceId, (l = []));
      l.push(n);
      if (up.deviceId === 'slow0') {
        held++;
        await gated; // handled only when the test says so
      } else await new Promise((r) => setTimeout(r, Math.random() * 3));
    });
    const sent = Array.from({ length: 2000 }, (_, i) => uplink(i % 20 === 0 ? 'slow0' : `dev${i % 20}`, Math.floor(i / 20)));
    assert.deepEqual((await Promise.all(sent.map((up) => accept(a, up)))).filter(Boolean), []);
    await a.m.replay();
    await until('every uplink delivered', () => [...seen.values()].reduce((n, l) => n + l.length, 0) === 2000 || undefined, 20_000);
    for (const [d, l] of seen) assert.deepEqual(l, [...l].sort((x, y) => x - y), `${d}: in order`);
    assert.equal(seen.get('slow0')!.length, 100);
    assert.equal(held, 100);
    // the slow device's partition is not acknowledged past its first unhandled message
    const nc = await connect({ servers: NATS_URL.replace('nats://', '') });
    const jsm = await jetstreamManager(nc);
    const pending = async () => {
      let n = 0;
      for (let p = 0; p < 8; p++) for await (const ci of jsm.consumers.list(`${name}_uplinks_${p}`)) n += ci.num_pending + ci.num_ack_pending;
      return n;
    };
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await pending()) > 0, 'not acknowledged while unhandled');
    gate!();
    await until('all acknowledged', async () => ((await pending()) === 0 ? true : undefined), 10_000);
    await nc.close();
  });

  it('a second node takes its share of the partitions; a node leaving hands its partitions and their unhandled uplinks over', async () => {
    const name = cluster('share');
    const [a, b] = [await startNode(name), await startNode(name)];
    nodes.push(a, b);
    const handledBy = new Map<string, string[]>();
    const listen = (n: TestNode, who: string, hold: () => boolean) =>
      n.bus.on('uplink', {}, async (up) => {
        if (hold()) await new Promise(() => {}); // never handled: stuck in this node's flows
        handledBy.set(up.id, [...(handledBy.get(up.id) ?? []), who]);
      });
    let bStuck = false;
    listen(a, 'a', () => false);
    listen(b, 'b', () => bStuck);
    await a.m.replay();
    await until('a holds all', () => (held(a).length === 8 ? true : undefined), 10_000);
    await b.m.replay();
    await until('4 and 4', () => {
      const [pa, pb] = [a, b].map(held);
      return pa!.length === 4 && pb!.length === 4 && new Set([...pa!, ...pb!]).size === 8 ? true : undefined;
    }, 15_000);
    const first = Array.from({ length: 400 }, (_, i) => uplink(`dev${i % 40}`, i));
    assert.deepEqual((await Promise.all(first.map((up) => accept(a, up)))).filter(Boolean), []);
    await until('all handled', () => (first.every((u) => handledBy.has(u.id)) ? true : undefined), 10_000);
    assert.ok(first.some((u) => handledBy.get(u.id)![0] === 'b') && first.some((u) => handledBy.get(u.id)![0] === 'a'), 'both nodes processed');
    assert.ok(first.every((u) => handledBy.get(u.id)!.length === 1), 'each once');
    // b's flows stop handling; b leaves: what it could not handle is processed by a
    bStuck = true;
    const second = Array.from({ length: 400 }, (_, i) => uplink(`dev${i % 40}`, 1000 + i));
    assert.deepEqual((await Promise.all(second.map((up) => accept(a, up)))).filter(Boolean), []);
    await new Promise((r) => setTimeout(r, 500));
    await b.m.stop();
    nodes = [a];
    await until('a holds all again', () => (held(a).length === 8 ? true : undefined), 10_000);
    await until('the rest handled by a', () => (second.every((u) => handledBy.has(u.id)) ? true : undefined), 10_000);
    assert.ok(second.every((u) => handledBy.get(u.id)!.length === 1));
  });

  it('purges handled uplinks older than FLUX_RAW_RETENTION, never one not yet handled', async () => {
    const name = cluster('retention');
    const a = await startNode(name, { FLUX_RAW_RETENTION: '1s' }, undefined, 300);
    nodes.push(a);
    const other = Array.from({ length: 50 }, (_, i) => `dev${i}`).find((d) => partitionOf(d, 8) !== partitionOf('stuck', 8))!;
    a.bus.on('uplink', {}, async (up) => {
      if (up.deviceId === 'stuck') await new Promise(() => {}); // never leaves the flows
    });
    const sent = Array.from({ length: 100 }, (_, i) => uplink(i % 2 ? 'stuck' : other, i));
    assert.deepEqual((await Promise.all(sent.map((up) => accept(a, up)))).filter(Boolean), []);
    await a.m.replay();
    await until('the handled device purged', async () => ((await a.m.log.read({ deviceId: other, limit: 100 })).length === 0 ? true : undefined), 10_000);
    assert.equal((await a.m.log.read({ deviceId: 'stuck', limit: 100 })).length, 50, 'the unhandled device kept whole');
  });

  it('purges handled uplinks past three quarters of FLUX_RAW_MAX_BYTES, so the stream keeps taking new ones', async () => {
    const name = cluster('budget');
    const a = await startNode(name, { FLUX_RAW_MAX_BYTES: '512KiB' }, undefined, 200);
    nodes.push(a);
    a.bus.on('uplink', {}, async () => {});
    await a.m.replay();
    const acked: string[] = [];
    for (let i = 0; i < 150; i++) {
      const up = { ...uplink('dev1', i), payload: Buffer.alloc(1024, 1) };
      for (let tries = 0; (await accept(a, up)) !== null; tries++) {
        assert.ok(tries < 50, 'the stream makes room within 5 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      acked.push(up.id);
      await new Promise((r) => setTimeout(r, 5));
    }
    const kept = (await a.m.log.read({ deviceId: 'dev1', limit: 1000 })).map((r) => r.id);
    assert.ok(kept.length < 64, `${kept.length} kept within the partition's 64 KiB`);
    assert.deepEqual(kept, acked.slice(-kept.length), 'the newest kept, the oldest purged');
  });

  it('refuses to start a node whose partition count differs from its cluster\'s', async () => {
    const name = cluster('config');
    nodes.push(await startNode(name, { FLUX_LOG_PARTITIONS: '8' }));
    await assert.rejects(startNode(name, { FLUX_LOG_PARTITIONS: '4' }), (err: Error & { variable?: string }) => err.variable === 'FLUX_LOG_PARTITIONS' && /made with 8 partitions/.test(err.message));
  });

  it('a stream at its budget refuses with log_full; what it acknowledged stays', async () => {
    const name = cluster('full');
    const a = await startNode(name, { FLUX_RAW_MAX_BYTES: '256KiB' });
    nodes.push(a);
    const results: (string | null)[] = [];
    for (let i = 0; i < 60; i++) results.push((await accept(a, { ...uplink('dev1', i), payload: Buffer.alloc(1024, 1) }))?.code ?? null);
    const acked = results.filter((r) => r === null).length;
    assert.ok(acked > 10 && acked < 40, `${acked} acknowledged within the partition's 32 KiB`);
    assert.deepEqual([...new Set(results.slice(acked))], ['log_full']);
    assert.equal((await a.m.log.read({ deviceId: 'dev1', limit: 100 })).length, acked);
    assert.equal(a.m.health().full, true);
  });
});
