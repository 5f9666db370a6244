/**
 * The alarms repository (registry.alarms), one contract suite on SQLite, MariaDB and PostgreSQL: at
 * most one open alarm per rule and device, also when two processes raise and clear it at once, and
 * migration 010 on a database that holds open alarms already.
 */
import assert from 'node:assert/strict';
import type { Alarm, AlarmLevel, Registry } from '../../runtime/registry/index.ts';
import { rawSql } from '../helpers/databases.ts';
import { describeOnDialects, near, openRegistry, refusal, sortedBy } from './dialects.ts';

const RULE = '11111111-1111-4111-8111-111111111111';
const OTHER_RULE = '22222222-2222-4222-8222-222222222222';

describeOnDialects('alarms repository', (suite) => {
  let first: Alarm;

  const raise = (r: Registry, ruleId: string | null, deviceId: string | null, level: AlarmLevel = 'warning', message = 'hot', at = new Date()) =>
    r.alarms.raise({ rule_id: ruleId, device_id: deviceId, level, message, at });

  it('opens an active alarm with count 1', async function () {
    const at = new Date();
    const { alarm, repeated } = await raise(suite.registry, RULE, 'dev_1', 'warning', 'temperature 50', at);
    assert.equal(repeated, false);
    assert.match(alarm.id, /^[0-9a-f-]{36}$/);
    assert.equal(alarm.state, 'active');
    assert.equal(alarm.count, 1);
    assert.equal(alarm.level, 'warning');
    assert.equal(alarm.message, 'temperature 50');
    assert.ok(near(alarm.first_at, at) && near(alarm.last_at, at));
    for (const k of ['acked_at', 'acked_by', 'ack_note', 'cleared_at'] as const) assert.equal(alarm[k], null, k);
    assert.equal('open_key' in alarm, false, 'the key is the repository\'s own');
    const back = (await suite.registry.alarms.find(alarm.id))!;
    // times as stored: MariaDB's DATETIME keeps whole seconds
    const times = { first_at: back.first_at, last_at: back.last_at, created_at: back.created_at, updated_at: back.updated_at };
    assert.deepEqual(back, { ...alarm, ...times });
    assert.ok(near(back.first_at, at));
    first = alarm;
  });

  it('counts a repeated trigger into the open alarm, replacing level, message and last_at', async function () {
    const later = new Date(Date.now() + 5000);
    const { alarm, repeated } = await raise(suite.registry, RULE, 'dev_1', 'critical', 'temperature 60', later);
    assert.equal(repeated, true);
    assert.equal(alarm.id, first.id);
    assert.equal(alarm.count, 2);
    assert.equal(alarm.level, 'critical');
    assert.equal(alarm.message, 'temperature 60');
    assert.ok(near(alarm.last_at, later), 'last_at moved');
    assert.ok(near(alarm.first_at, new Date(first.first_at)), 'first_at stays');
  });

  it('keeps pairs apart, a missing rule or device included', async function () {
    const other = await raise(suite.registry, RULE, 'dev_2');
    const noRule = await raise(suite.registry, null, 'dev_1');
    const noDevice = await raise(suite.registry, OTHER_RULE, null);
    const again = await raise(suite.registry, null, 'dev_1');
    assert.equal(other.repeated || noRule.repeated || noDevice.repeated, false);
    assert.equal(again.repeated, true);
    assert.equal(again.alarm.id, noRule.alarm.id);
    const pairs = (await suite.registry.alarms.openPairs()).map((p) => `${p.rule_id}/${p.device_id}`).sort();
    assert.deepEqual(pairs, [`${OTHER_RULE}/null`, `${RULE}/dev_1`, `${RULE}/dev_2`, 'null/dev_1'].sort());
  });

  it('acknowledges an active alarm once, keeping who and the note', async function () {
    const at = new Date();
    const ack = await suite.registry.alarms.acknowledge(first.id, { username: 'olga', note: 'on my way' }, at);
    assert.equal(ack.changed, true);
    assert.equal(ack.alarm.state, 'acknowledged');
    assert.equal(ack.alarm.acked_by, 'olga');
    assert.equal(ack.alarm.ack_note, 'on my way');
    assert.ok(near(ack.alarm.acked_at, at));
    const again = await suite.registry.alarms.acknowledge(first.id, { username: 'pat', note: null }, new Date());
    assert.equal(again.changed, false);
    assert.equal(again.alarm.acked_by, 'olga', 'the first acknowledgement stays');
    const repeated = await raise(suite.registry, RULE, 'dev_1');
    assert.equal(repeated.alarm.id, first.id, 'an acknowledged alarm is still open');
    assert.equal(repeated.alarm.state, 'acknowledged');
  });

  it('clears an open alarm once; the next trigger opens a new one', async function () {
    const at = new Date();
    const c = await suite.registry.alarms.clear(first.id, at);
    assert.equal(c.changed, true);
    assert.equal(c.alarm.state, 'cleared');
    assert.ok(near(c.alarm.cleared_at, at));
    assert.equal((await suite.registry.alarms.clear(first.id, new Date())).changed, false);
    const ack = await suite.registry.alarms.acknowledge(first.id, { username: 'x', note: null }, new Date());
    assert.equal(ack.changed, false);
    assert.equal(ack.alarm.state, 'cleared', 'a cleared alarm is not acknowledged');
    const next = await raise(suite.registry, RULE, 'dev_1');
    assert.equal(next.repeated, false);
    assert.notEqual(next.alarm.id, first.id);
    assert.equal(next.alarm.count, 1);
  });

  it('clears the open alarm of a pair, and answers null when there is none', async function () {
    const cleared = await suite.registry.alarms.clearOpen(RULE, 'dev_2', new Date());
    assert.equal(cleared?.state, 'cleared');
    assert.equal(cleared?.device_id, 'dev_2');
    assert.equal(await suite.registry.alarms.clearOpen(RULE, 'dev_2', new Date()), null);
    assert.equal(await suite.registry.alarms.clearOpen(RULE, 'dev_never', new Date()), null);
  });

  it('answers 404 for unknown ids and null from find', async function () {
    assert.equal(await suite.registry.alarms.find('00000000-0000-4000-8000-000000000000'), null);
    assert.equal(await suite.registry.alarms.find('nope'), null);
    assert.equal(await suite.registry.alarms.find('-'.repeat(36)), null, 'the shape of a UUID is not enough (PostgreSQL refuses it)');
    assert.equal(await refusal(suite.registry.alarms.acknowledge('00000000-0000-4000-8000-000000000000', { username: null, note: null }, new Date())), '404 not_found');
    assert.equal(await refusal(suite.registry.alarms.clear('nope', new Date())), '404 not_found');
  });

  it('lists newest first with filters and totals over the whole filter', async function () {
    for (let i = 0; i < 7; i++) await raise(suite.registry, OTHER_RULE, `page_${i}`, i % 2 ? 'info' : 'critical', `n${i}`, new Date(Date.now() + (i + 10) * 60_000));
    const all = await suite.registry.alarms.list({ limit: 1000 });
    assert.deepEqual(all.items, sortedBy(all.items, (a) => [-new Date(a.last_at).getTime(), a.id]), 'last_at descending, then id');
    const page = await suite.registry.alarms.list({ rule_id: OTHER_RULE, limit: 3, offset: 2 });
    assert.equal(page.total, 8, 'seven pages plus the one without a device');
    assert.deepEqual([page.limit, page.offset], [3, 2]);
    assert.deepEqual(page.items.map((a) => a.message), ['n4', 'n3', 'n2']);
    assert.equal((await suite.registry.alarms.list({ level: 'info', rule_id: OTHER_RULE })).total, 3);
    assert.equal((await suite.registry.alarms.list({ state: 'cleared' })).total, 2);
    assert.equal((await suite.registry.alarms.list({ device_id: 'dev_1' })).total, 3);
    const clamped = await suite.registry.alarms.list({ limit: 100_000, offset: -5 });
    assert.deepEqual([clamped.limit, clamped.offset], [1000, 0]);
  });

  it('answers the newest alarms of many devices, at most so many each, by state', async function () {
    const m = await suite.registry.alarms.byDevices(['dev_1', 'page_3', 'nobody'], { limitEach: 1 });
    assert.deepEqual([...m.keys()], ['dev_1', 'page_3', 'nobody']);
    assert.equal(m.get('dev_1')!.length, 1);
    assert.equal(m.get('page_3')![0]!.message, 'n3');
    assert.deepEqual(m.get('nobody'), []);
    const cleared = await suite.registry.alarms.byDevices(['dev_1', 'dev_2'], { state: 'cleared', limitEach: 10 });
    assert.deepEqual([cleared.get('dev_1')!.length, cleared.get('dev_2')!.length], [1, 1]);
    assert.equal((await suite.registry.alarms.byDevices([], { limitEach: 5 })).size, 0);
  });

  it('keeps one open alarm per pair while two processes raise it at once, counting every trigger', async function () {
    const other = await openRegistry(suite.db); // a second process on the same database
    try {
      const raises = Array.from({ length: 40 }, (_, i) => raise(i % 2 ? suite.registry : other, RULE, 'dev_race'));
      const answers = await Promise.all(raises);
      assert.equal(new Set(answers.map((a) => a.alarm.id)).size, 1, 'every raise went into one alarm');
      assert.equal(answers.filter((a) => !a.repeated).length, 1, 'one of them opened it');
      const open = await suite.registry.alarms.list({ device_id: 'dev_race', limit: 100 });
      assert.equal(open.total, 1);
      assert.equal(open.items[0]!.count, 40);
    } finally {
      await other.stop();
    }
  });

  it('never has two open alarms of a pair while one process raises and another clears', async function () {
    const other = await openRegistry(suite.db);
    try {
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 30; i++) {
        ops.push(raise(suite.registry, RULE, 'dev_flap'));
        if (i % 3 === 0) ops.push(other.alarms.clearOpen(RULE, 'dev_flap', new Date()));
      }
      await Promise.all(ops);
      const rows = (await suite.registry.alarms.list({ device_id: 'dev_flap', limit: 1000 })).items;
      assert.ok(rows.filter((a) => a.state !== 'cleared').length <= 1, `open: ${rows.filter((a) => a.state !== 'cleared').length}`);
      assert.equal(rows.reduce((n, a) => n + a.count, 0), 30, 'every trigger counted once');
    } finally {
      await other.stop();
    }
  });
}, { timeout: 60_000 });

describeOnDialects('alarms migration 010', (suite) => {
  it('gives the newest open alarm of each pair its key; a trigger counts into it', async function () {
    const old = await openRegistry(suite.db, { migrateUntil: '009-rule-quarantine' });
    await old.stop();
    const sql = await rawSql(suite.db);
    try {
      const insert = 'INSERT INTO alarms (id, rule_id, device_id, level, state, message, count, first_at, last_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
      const row = (id: string, state: string, count: number, at: string) => [id, RULE, 'dev_old', 'warning', state, 'old', count, at, at, at, at];
      await sql.query(insert, row('aaaaaaaa-0000-4000-8000-000000000001', 'active', 3, '2026-01-01 00:00:00'));
      await sql.query(insert, row('aaaaaaaa-0000-4000-8000-000000000002', 'acknowledged', 5, '2026-01-02 00:00:00'));
      await sql.query(insert, row('aaaaaaaa-0000-4000-8000-000000000003', 'cleared', 7, '2026-01-03 00:00:00'));
    } finally {
      await sql.close();
    }
    const registry = await openRegistry(suite.db);
    try {
      assert.ok((await registry.migrations()).includes('010-alarm-open-key'));
      const { alarm, repeated } = await registry.alarms.raise({ rule_id: RULE, device_id: 'dev_old', level: 'critical', message: 'new', at: new Date() });
      assert.equal(repeated, true);
      assert.equal(alarm.id, 'aaaaaaaa-0000-4000-8000-000000000002', 'the newest open one');
      assert.equal(alarm.count, 6);
      const cleared = await registry.alarms.clearOpen(RULE, 'dev_old', new Date());
      assert.equal(cleared?.id, 'aaaaaaaa-0000-4000-8000-000000000002');
      const fresh = await registry.alarms.raise({ rule_id: RULE, device_id: 'dev_old', level: 'critical', message: 'new', at: new Date() });
      assert.equal(fresh.repeated, false, 'the older duplicate keeps no key: a new alarm opens');
    } finally {
      await registry.stop();
    }
  });
}, { timeout: 60_000, open: false });
