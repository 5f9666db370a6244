/** The per-message trace: bounded, ordered, per device. */
import assert from 'node:assert/strict';
import { createTracer } from '../../runtime/trace/index.ts';
import { messageIdOf, messageSeq, newMessageId } from '../../runtime/bus/index.ts';
import type { MessageTrace, TraceSpan } from '../../runtime/trace/index.ts';

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

  it('keeps every field of an uplink id\'s spans, past the inline ones up to maxSpans, and starts clean when a slot is reused', function () {
    const t = createTracer({ maxMessages: 2, maxSpans: 9 });
    const [a, b, c] = [newMessageId(), newMessageId(), newMessageId()];
    t.begin({ ...start(a, 'A'), topic: 'up/A', ts: 1000, bytes: 7 });
    t.span(a, { stage: 'decode', ok: true, took_ms: 0.25, detail: { plugin: 'modbus', version: 2, messages: 1 }, at: 1001 });
    t.span(a, { stage: 'rule', ok: false, error: 'boom', at: 1002 });
    for (let i = 0; i < 8; i++) t.span(a, { stage: `s${i}`, ok: true, took_ms: i, at: 1003 + i });
    const got = t.get(a)!;
    assert.deepEqual(
      { ...got, spans: got.spans.slice(0, 3) },
      {
        id: a, device_id: 'A', product_key: 'p', transport: 'mqtt', topic: 'up/A', received_at: 1000, bytes: 7, dropped_spans: 2,
        spans: [
          { stage: 'ingress', at: 1000, ok: true },
          { stage: 'decode', at: 1001, ok: true, took_ms: 0.25, detail: { plugin: 'modbus', version: 2, messages: 1 } },
          { stage: 'rule', at: 1002, ok: false, error: 'boom' },
        ],
      },
    );
    assert.deepEqual(got.spans.map((s) => s.stage), ['ingress', 'decode', 'rule', 's0', 's1', 's2', 's3', 's4', 's5'], '9 spans: 6 in the columns, 3 past them');
    assert.deepEqual(got.spans.slice(3).map((s) => [s.took_ms, s.at]), [[0, 1003], [1, 1004], [2, 1005], [3, 1006], [4, 1007], [5, 1008]]);
    t.begin(start(b, 'B'));
    t.begin({ ...start(c, 'C'), ts: 2000 });
    assert.equal(t.get(a), undefined, 'c took the slot of a');
    const reused = t.get(c)!;
    assert.deepEqual(reused.spans, [{ stage: 'ingress', at: 2000, ok: true }]);
    assert.equal(reused.dropped_spans, undefined);
    assert.deepEqual(t.byDevice('C', 5).map((m) => m.id), [c]);
  });

  it('messageIdOf is the inverse of messageSeq for this process\'s ids', function () {
    for (let i = 0; i < 3; i++) {
      const id = newMessageId();
      assert.equal(messageIdOf(messageSeq(id)), id);
    }
  });

  it('shows an observer each trace as it begins and each span as it is added, for both kinds of ids', function () {
    const t = createTracer({ maxSpans: 3 });
    const seen: string[] = [];
    t.observe({
      begin: (m: MessageTrace) => seen.push(`begin ${m.id} ${m.device_id} ${m.spans.length}`),
      span: (m: MessageTrace, s: TraceSpan) => seen.push(`span ${m.id} ${s.stage} ${s.ok} ${JSON.stringify(s.detail ?? null)} ${m.spans.length}`),
    });
    const id = newMessageId();
    for (const x of [id, 'own-id']) {
      t.begin(start(x, 'D'));
      t.span(x, { stage: 'decode', ok: true, detail: { plugin: 'm' } });
      t.span(x, { stage: 'store', ok: false });
      t.span(x, { stage: 'dropped', ok: true });
    }
    t.observe(undefined);
    t.span(id, { stage: 'unseen', ok: true });
    assert.deepEqual(seen, [
      `begin ${id} D 1`, `span ${id} decode true {"plugin":"m"} 2`, `span ${id} store false null 3`,
      'begin own-id D 1', 'span own-id decode true {"plugin":"m"} 2', 'span own-id store false null 3',
    ]);
  });
});
