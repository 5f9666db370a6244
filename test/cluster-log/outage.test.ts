/**
 * The log engine restarted mid-load: while NATS is down, appends are refused at once with
 * log_unavailable (never acknowledged, never piling up in memory); once it is back they are
 * acknowledged again, and every uplink acknowledged before, during or after is processed.
 * A nats-server of the test's own (JetStream, file storage in a temp dir) is stopped and started.
 */
import assert from 'node:assert/strict';
import { REFUSE } from '../../runtime/cluster-log/appender.ts';
import { until } from '../helpers/wait.ts';
import { accept, dropCluster, ownNatsServer, startNode, uniqueName, uplink, type TestNode } from './nodes.ts';

describe('cluster log: the log engine restarted mid-load', function () {
  this.timeout(60_000);
  let node: TestNode | undefined;
  let server: Awaited<ReturnType<typeof ownNatsServer>> | undefined;
  afterEach(async () => {
    await node?.m.stop();
    node = undefined;
    await server?.dispose();
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`refuses with log_unavailable while NATS is down (${signal}), then acknowledges again; nothing acknowledged is lost`, async () => {
      server = await ownNatsServer();
      const name = uniqueName('outage');
      node = await startNode(name, {}, server.url);
      const handled = new Set<string>();
      node.bus.on('uplink', {}, async (up) => {
        await new Promise((r) => setImmediate(r));
        handled.add(up.id);
      });
      await node.m.replay();
      const acked: string[] = [];
      const refusals = new Map<string, number>();
      let phase: 'before' | 'down' | 'after' = 'before';
      const ackedIn = { before: 0, down: 0, after: 0 };
      let maxPending = 0;
      let n = 0;
      const load = setInterval(() => {
        for (let i = 0; i < 40; i++) {
          const up = uplink(`dev${n % 25}`, n++);
          const at = phase;
          void accept(node!, up).then((err) => {
            if (err) refusals.set(err.code, (refusals.get(err.code) ?? 0) + 1);
            else {
              acked.push(up.id);
              ackedIn[at]++;
            }
          });
        }
        maxPending = Math.max(maxPending, node!.m.health().pending as number);
      }, 5);
      try {
        await until('acknowledged before the outage', () => (acked.length > 500 ? true : undefined), 10_000);
        await server.stop(signal);
        phase = 'down';
        const refusedBefore = refusals.get('log_unavailable') ?? 0;
        await until('refusals while down', () => ((refusals.get('log_unavailable') ?? 0) > refusedBefore + 200 ? true : undefined), 10_000);
        assert.ok(node.m.health().ok === false, 'health says the log is down');
        // the raw traffic API answers 503 log_unavailable, not a 500
        await assert.rejects(node.m.log.read({ deviceId: 'dev1', limit: 5 }), (err: Error & { code?: string; status?: number }) => err.code === 'log_unavailable' && err.status === 503);
        await server.start();
        phase = 'after';
        const ackedBefore = acked.length;
        await until('acknowledged again after the restart', () => (acked.length > ackedBefore + 500 ? true : undefined), 20_000);
      } finally {
        clearInterval(load);
      }
      await until('every acknowledged uplink handled', () => (acked.every((id) => handled.has(id)) ? true : undefined), 20_000);
      assert.deepEqual([...refusals.keys()], ['log_unavailable'], `refusals: ${JSON.stringify([...refusals])}`);
      assert.ok(maxPending <= REFUSE, `at most ${REFUSE} uplinks waiting (${maxPending})`);
      assert.ok(ackedIn.before > 0 && ackedIn.after > 0, JSON.stringify(ackedIn));
      await node.m.stop();
      node = undefined;
      await dropCluster(name, server.url);
    });
  }
});
