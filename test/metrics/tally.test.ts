/**
 * `tallyCounter` (runtime/metrics): per-uplink counts kept as plain numbers and handed to the
 * prom-client counter when it is read, so what /api/metrics shows is exact at every scrape.
 */
import assert from 'node:assert/strict';
import { Counter, Registry } from 'prom-client';
import { tallyCounter } from '../../runtime/metrics/index.ts';

describe('tally counter', () => {
  it('shows every add at each read, per label set, and counts on from there', async () => {
    const registry = new Registry();
    const { counter, tally } = tallyCounter(registry, 'things_total', 'h', ['outcome']);
    const done = tally({ outcome: 'done' });
    const failed = tally({ outcome: 'failed' });
    for (let i = 0; i < 1000; i++) done.add();
    failed.add(3);
    const text = await registry.metrics();
    assert.match(text, /things_total\{outcome="done"\} 1000/);
    assert.match(text, /things_total\{outcome="failed"\} 3/);
    done.add(5);
    const values = (await counter.get()).values;
    assert.deepEqual(Object.fromEntries(values.map((v) => [v.labels.outcome, v.value])), { done: 1005, failed: 3 });
    // nothing added since: a read does not count anything twice
    assert.match(await registry.metrics(), /things_total\{outcome="done"\} 1005/);
  });

  it('counts straight into a counter someone else registered under the name', async () => {
    const registry = new Registry();
    const first = new Counter({ name: 'shared_total', help: 'h', registers: [registry] });
    first.inc(2);
    const { counter, tally } = tallyCounter(registry, 'shared_total', 'h');
    assert.equal(counter, first);
    tally().add(4);
    assert.equal((await first.get()).values[0]!.value, 6);
  });
});
