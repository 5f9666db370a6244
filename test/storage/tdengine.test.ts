/**
 * The store contract on the TDengine backend, against test/storage/tdengine-server.ts: a local server
 * implementing TDengine 3's documented REST protocol (/rest/sql, Basic auth, JSON results, error
 * codes). No TDengine can run on these machines, so this verifies the adapter against the protocol,
 * not against a live server. Also checks the SQL it sends (super table per product, INSERT … USING …
 * TAGS, ALTER when the thing model gains a property) and how it reads errors.
 */
import assert from 'node:assert/strict';
import { createStore, DataError, type DeviceEvent } from '../../runtime/storage/index.ts';
import { startTdengineServer, type TdengineServer } from './tdengine-server.ts';
import { runStoreContract } from './store.contract.ts';

runStoreContract('tdengine (REST protocol server, not a live TDengine)', async () => {
  const server = await startTdengineServer();
  const store = createStore({ dialect: 'tdengine', url: server.url });
  await store.open();
  return { store, cleanup: () => server.close() };
});

describe('TDengine adapter: the SQL it sends and the answers it reads (protocol server)', function () {
  let server: TdengineServer;
  beforeEach(async () => {
    server = await startTdengineServer();
  });
  afterEach(() => server.close());

  it('creates the database, one super table per product from its thing model, and sub-tables with INSERT … USING … TAGS', async () => {
    const store = createStore({ dialect: 'tdengine', url: server.url });
    await store.open();
    await store.defineProduct!('meter', [{ id: 'voltage', type: 'int' }, { id: 'current', type: 'float' }, { id: 'ok', type: 'bool' }, { id: 'mode', type: 'enum' }]);
    await store.write([
      { device: 'm-1', product: 'meter', metric: 'voltage', ts: 1000, value: 220 },
      { device: 'm-1', product: 'meter', metric: 'current', ts: 1000, value: 1.5 },
      { device: 'm-2', product: 'meter', metric: 'ok', ts: 2000, value: true },
    ]);
    const s = server.statements;
    assert.equal(s[0], "CREATE DATABASE IF NOT EXISTS flux PRECISION 'ms'");
    assert.ok(s.includes('CREATE STABLE IF NOT EXISTS flux.p_meter (ts TIMESTAMP, `m_voltage` BIGINT, `m_current` DOUBLE, `m_ok` BOOL, `m_mode` NCHAR(1024)) TAGS (device_id NCHAR(64))'), s.join('\n'));
    assert.equal(
      s.at(-1),
      "INSERT INTO flux.d_m_2d1 USING flux.p_meter TAGS ('m-1') (ts, `m_current`, `m_voltage`) VALUES (1000, 1.5, 220) flux.d_m_2d2 USING flux.p_meter TAGS ('m-2') (ts, `m_ok`) VALUES (2000, true)",
    );
    assert.deepEqual(await store.latest('m-1'), [
      { metric: 'current', ts: 1000, value: 1.5 },
      { metric: 'voltage', ts: 1000, value: 220 },
    ]);
    await store.close();
  });

  it('adds a column with ALTER STABLE when the model (or the data) gains a property', async () => {
    const store = createStore({ dialect: 'tdengine', url: server.url });
    await store.open();
    await store.write([{ device: 'd1', product: 'p', metric: 'temp', ts: 1, value: 20 }]);
    await store.defineProduct!('p', [{ id: 'temp', type: 'float' }, { id: 'door', type: 'bool' }]);
    await store.write([{ device: 'd1', product: 'p', metric: 'label', ts: 2, value: 'north' }]);
    const alters = server.statements.filter((x) => x.startsWith('ALTER'));
    assert.deepEqual(alters, ['ALTER STABLE flux.p_p ADD COLUMN `m_door` BOOL', 'ALTER STABLE flux.p_p ADD COLUMN `m_label` NCHAR(1024)']);
    // A second process (empty caches) learns the columns with DESCRIBE instead of altering again.
    const other = createStore({ dialect: 'tdengine', url: server.url });
    await other.open();
    await other.write([{ device: 'd2', product: 'p', metric: 'door', ts: 3, value: false }]);
    assert.equal(server.statements.filter((x) => x.startsWith('ALTER')).length, 2);
    assert.deepEqual(await other.range({ device: 'd1', from: 0, to: 10 }), [
      { metric: 'temp', ts: 1, value: 20 },
      { metric: 'label', ts: 2, value: 'north' },
    ]);
    await store.close();
    await other.close();
  });

  it('puts a second event of a device in the same millisecond in the next slot sub-table, and reads every slot through the super table', async () => {
    const store = createStore({ dialect: 'tdengine', url: server.url });
    await store.open();
    const ev = (event: string, msg_id: string): DeviceEvent => ({ device: 'door-1', product: 'lock', event, ts: 5000, payload: { open: true }, msg_id, flagged: false, problem: null });
    await store.writeEvents([ev('door', 'a'), ev('door', 'b')]);
    await store.writeEvents([ev('door', 'b'), ev('bell', 'c')]);
    const inserts = server.statements.filter((x) => x.startsWith('INSERT'));
    assert.match(inserts[0]!, /^INSERT INTO flux\.e_door_2d1 USING flux\.ev_lock TAGS \('door-1'\) .* flux\.e_door_2d1_s1 USING flux\.ev_lock /);
    assert.match(inserts[1]!, /^INSERT INTO flux\.e_door_2d1_s1 USING .* flux\.e_door_2d1_s2 USING /, 'the retried event keeps its slot; the new one takes the next');
    assert.ok(server.statements.includes("SELECT ts, event_id, msg_id, device_id, tbname FROM flux.ev_lock WHERE device_id IN ('door-1') AND ts >= 5000 AND ts <= 5000"), server.statements.join('\n'));
    assert.deepEqual((await store.events({ device: 'door-1', product: 'lock', from: 0, to: 10_000 })).map((e) => `${e.event}/${e.msg_id}`), ['bell/c', 'door/a', 'door/b']);
    assert.match(server.statements.at(-1)!, /FROM flux\.ev_lock WHERE device_id = 'door-1' AND ts >= 0 AND ts < 10000 ORDER BY ts ASC/);
    await store.close();
  });

  it('reports a wrong password (HTTP 401) and an unavailable server as errors', async () => {
    const bad = createStore({ dialect: 'tdengine', url: server.url.replace(':taosdata@', ':wrong@') });
    await assert.rejects(bad.open(), /Authentication failed/);
    const store = createStore({ dialect: 'tdengine', url: server.url });
    await store.open();
    server.available = false;
    await assert.rejects(store.ping());
    server.available = true;
    await store.ping();
  });

  it('turns a value that does not fit its column into a DataError carrying TDengine\'s code', async () => {
    const store = createStore({ dialect: 'tdengine', url: server.url });
    await store.open();
    await store.defineProduct!('q', [{ id: 'n', type: 'int' }]);
    await assert.rejects(store.write([{ device: 'x', product: 'q', metric: 'n', ts: 1, value: 'text' }]), DataError);
    await assert.rejects(store.write([{ device: 'x', product: 'q', metric: 'n', ts: 1, value: 1.5 }]), DataError);
  });
});
