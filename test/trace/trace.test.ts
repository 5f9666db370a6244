/** The per-message trace: bounded, ordered, per device. */
import assert from 'node:assert/strict';
import { createTracer } from '../../runtime/trace/index.ts';
import { newMessageId } from '../../runtime/bus/index.ts';

const start = (id: string, deviceId = 'd1') => ({ id, deviceId, productKey: 'p', transport: 'mqtt', topic: `/p/${deviceId}/properties/report`, ts: Date.now(), bytes: 7 });

describe('trace', function () {
  it('records ingress at begin and appends later stages in order', function () {
    const t = createTracer();
    t.begin(start('m1'));
    t.span('m1', { stage: 'decode', ok: true, took_ms: 0.2, detail: { plugin: 'modbus', version: 2 } });
    t.span('m1', { stage: 'rule', ok: false, error: 'deadline exceeded' });
    assert.deepEqual(t.get('m1')!.spans.map((s) => [s.stage, s.ok]), [['ingress', true], ['decode', true], ['rule', false]]);
  });

  it('keeps only the newest maxMessages traces and ignores spans of evicted ones', function () {
    const t = createTracer({ maxMessages: 3 });
    for (let i = 0; i < 5; i++) t.begin(start(`m${i}`));
    assert.equal(t.size, 3);
    assert.equal(t.get('m0'), undefined);
    t.span('m0', { stage: 'decode', ok: true });
    assert.ok(t.get('m4'));
  });

  it('caps spans per message and counts the dropped ones', function () {
    const t = createTracer({ maxSpans: 3 });
    t.begin(start('m'));
    for (let i = 0; i < 5; i++) t.span('m', { stage: 'rule', ok: true });
    assert.equal(t.get('m')!.spans.length, 3);
    assert.equal(t.get('m')!.dropped_spans, 3);
  });

  it("answers a device's newest traces first, at most `last`", function () {
    const t = createTracer();
    for (let i = 0; i < 5; i++) t.begin(start(`a${i}`, 'A'));
    t.begin(start('b0', 'B'));
    assert.deepEqual(t.byDevice('A', 2).map((m) => m.id), ['a4', 'a3']);
    assert.deepEqual(t.byDevice('B', 10).map((m) => m.id), ['b0']);
    assert.deepEqual(t.byDevice('C', 10), []);
  });

  it('keeps uplink ids (from the bus) in their ring slots: newest maxMessages, found by id, per device newest first', function () {
    const t = createTracer({ maxMessages: 4 });
    const ids = Array.from({ length: 6 }, () => newMessageId());
    ids.forEach((id, i) => t.begin(start(id, i % 2 ? 'odd' : 'even')));
    assert.equal(t.size, 4);
    assert.equal(t.get(ids[0]!), undefined, 'the oldest two were evicted');
    assert.equal(t.get(ids[1]!), undefined);
    t.span(ids[1]!, { stage: 'decode', ok: true });
    t.span(ids[5]!, { stage: 'decode', ok: true });
    assert.deepEqual(t.get(ids[5]!)!.spans.map((s) => s.stage), ['ingress', 'decode']);
    assert.deepEqual(t.byDevice('odd', 10).map((m) => m.id), [ids[5], ids[3]]);
    assert.deepEqual(t.byDevice('even', 1).map((m) => m.id), [ids[4]]);
    t.begin(start(ids[5]!, 'odd'));
    assert.equal(t.get(ids[5]!)!.spans.length, 2, 'a second begin of the same id keeps its trace');
  });

  it('answers a device across both kinds of ids, newest first', function () {
    const t = createTracer();
    const a = { ...start(newMessageId(), 'D'), ts: 1000 };
    const b = { ...start('own-id', 'D'), ts: 2000 };
    t.begin(a);
    t.begin(b);
    assert.deepEqual(t.byDevice('D', 10).map((m) => m.id), ['own-id', a.id]);
  });
});
