/**
 * The pipeline tracker (runtime/flow-engine/pipeline.ts) with Node-RED's hooks driven by hand: it
 * finds this process's uplinks by sequence number in a ring, others (and those whose slot is still
 * held) in a Map, and finishes each once, by completion or by the deadline sweep, in any order.
 */
import assert from 'node:assert/strict';
import { Registry, Histogram } from 'prom-client';
import { tallyCounter } from '../../runtime/metrics/index.ts';
import { newMessageId } from '../../runtime/bus/index.ts';
import { createPipelineTracker } from '../../runtime/flow-engine/pipeline.ts';

type Hook = (ev: unknown) => unknown;

function harness(deadlineMs = 10_000) {
  const hooks = new Map<string, Hook>();
  const registry = new Registry();
  const latency = new Histogram({ name: 'latency', help: 'h', registers: [registry] });
  const finished = tallyCounter(registry, 'finished', 'h', ['outcome']);
  const tracker = createPipelineTracker({ add: (id, cb) => hooks.set(id, cb), remove: (id) => hooks.delete(id) }, { deadlineMs, latency, finished });
  const node = { type: 'flux store', receive() {} };
  const deliver = (msgid: string) => hooks.get('preDeliver.flux-pipeline')!({ msg: { _msgid: msgid }, destination: { node } });
  const complete = (msgid: string, error?: unknown) => hooks.get('onComplete.flux-pipeline')!({ msg: { _msgid: msgid }, error });
  const outcomes = async () => {
    const m = await finished.counter.get();
    return Object.fromEntries(m.values.map((v) => [v.labels.outcome, v.value]));
  };
  return { tracker, deliver, complete, outcomes };
}

describe('pipeline tracker', function () {
  it('finishes each uplink when its last delivery completes, in any order, for this process\'s ids and others', async function () {
    const { tracker, deliver, complete, outcomes } = harness();
    const ids = [newMessageId(), newMessageId(), 'node-b-0000001', newMessageId()];
    const settled: string[] = [];
    for (const id of ids) {
      tracker.track(id, Date.now()).then(() => settled.push(id));
      deliver(id);
      tracker.sent(id);
    }
    assert.equal(tracker.inFlight(), 4);
    // a second flux device in node on the same uplink shares its entry
    assert.equal(tracker.track(ids[0]!, Date.now()), tracker.track(ids[0]!, Date.now()));
    deliver(ids[1]!); // a second wire
    complete(ids[3]!);
    complete(ids[1]!);
    assert.deepEqual(settled, [ids[3]]);
    complete(ids[2]!, new Error('failed in a node'));
    complete(ids[1]!);
    complete(ids[0]!);
    assert.deepEqual(settled, [ids[3], ids[2], ids[1], ids[0]]);
    assert.equal(tracker.inFlight(), 0);
    assert.deepEqual(await outcomes(), { done: 3, failed: 1 });
    complete(ids[0]!); // late: nothing left to finish
    assert.deepEqual(await outcomes(), { done: 3, failed: 1 });
    tracker.close();
  });

  it('keeps more uplinks in flight than the ring holds, each found and finished once', async function () {
    const { tracker, deliver, complete, outcomes } = harness();
    const ids = Array.from({ length: 40_000 }, () => newMessageId());
    for (const id of ids) {
      tracker.track(id, Date.now());
      deliver(id);
    }
    assert.equal(tracker.inFlight(), 40_000);
    for (const id of ids.reverse()) complete(id);
    assert.equal(tracker.inFlight(), 0);
    assert.deepEqual(await outcomes(), { done: 40_000 });
    tracker.close();
  });

  it('expires what never completes at the deadline, and only that, with finished ones behind it', async function () {
    const { tracker, deliver, complete, outcomes } = harness(200);
    const stuck = newMessageId();
    tracker.track(stuck, Date.now());
    deliver(stuck);
    const later = Array.from({ length: 3000 }, () => newMessageId());
    for (const id of later) {
      tracker.track(id, Date.now());
      deliver(id);
      complete(id);
    }
    assert.equal(tracker.inFlight(), 1);
    let expired = false;
    tracker.track(stuck, Date.now()).then(() => (expired = true));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(expired, true);
    assert.equal(tracker.inFlight(), 0);
    assert.deepEqual(await outcomes(), { done: 3000, expired: 1 });
    tracker.close();
  });
});
