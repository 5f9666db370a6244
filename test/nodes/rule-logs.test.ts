/** The rule node's print/log lines in the debug sidebar: attributed to the node, warnings as warnings, bounded per second. */
import assert from 'node:assert/strict';
import { ruleLogSink } from '../../nodes/rule-logs.ts';
import type { Node, NodeAPI } from '../../nodes/red.ts';

function fakes() {
  const published: { topic: string; data: any }[] = [];
  const warnings: unknown[] = [];
  const RED = { comms: { publish: (topic: string, data: unknown) => published.push({ topic, data }) }, util: { generateId: () => 'x' } } as unknown as NodeAPI;
  const node = { id: 'rule-node', name: 'rules', z: 'tab1', _flow: { path: 'tab1' }, warn: (m: unknown) => warnings.push(m) } as unknown as Node;
  return { RED, node, published, warnings };
}

describe('rule log lines in the debug sidebar', function () {
  it('publishes print and log_info lines as debug messages of the rule node, log_warn as the node warning', function () {
    const { RED, node, published, warnings } = fakes();
    ruleLogSink(RED, node).show('too hot', [
      { level: 'print', message: 't=50' },
      { level: 'info', message: 'hot' },
      { level: 'warn', message: 'very hot' },
    ]);
    assert.deepEqual(
      published.map((p) => [p.topic, p.data.id, p.data.z, p.data.path, p.data.topic, p.data.msg]),
      [
        ['debug', 'rule-node', 'tab1', 'tab1', 'too hot', 't=50'],
        ['debug', 'rule-node', 'tab1', 'tab1', 'too hot', '[info] hot'],
      ],
    );
    assert.deepEqual(warnings, ['too hot: very hot']);
  });

  it('shows at most the bound a second, then says how many lines it left out', async function () {
    const { RED, node, published } = fakes();
    const sink = ruleLogSink(RED, node, 5);
    for (let i = 0; i < 12; i++) sink.show('r', [{ level: 'print', message: `line ${i}` }]);
    assert.equal(published.length, 5);
    await new Promise((r) => setTimeout(r, 1050));
    sink.show('r', [{ level: 'print', message: 'later' }]);
    assert.deepEqual(
      published.slice(5).map((p) => p.data.msg),
      ['… 7 log lines not shown (at most 5 a second)', 'later'],
    );
  });

  it('does nothing for a run without lines', function () {
    const { RED, node, published } = fakes();
    ruleLogSink(RED, node).show('r', null);
    ruleLogSink(RED, node).show('r', []);
    assert.equal(published.length, 0);
  });
});
