/** The streams repository (registry.streams), one contract suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import type { StreamColumns } from '../../runtime/registry/index.ts';
import { describeOnDialects, refusal, withoutTimes } from './dialects.ts';

const columns = (over: Partial<StreamColumns> = {}): StreamColumns => ({
  name: 'Gate camera',
  url: 'rtsp://10.0.0.7:554/ch1',
  secrets: 'v1:sealed-bytes',
  device_id: null,
  on_demand: true,
  record: false,
  retention_hours: 24,
  transcode: 'copy',
  audio: 'copy',
  rtmp_push: [],
  tags: {},
  ...over,
});

describeOnDialects('streams repository', (suite) => {
  it('creates a stream and reads back every column, lists and JSON included', async function () {
    const s = await suite.registry.streams.create({ id: 'cam-b', ...columns({ device_id: 'dev1', record: true, on_demand: false, retention_hours: 48, transcode: 'h264', audio: 'off', rtmp_push: ['rtmp://push.example/live/***'], tags: { site: 'north', floor: 2 } }) });
    assert.equal(s.id, 'cam-b');
    assert.deepEqual(withoutTimes((await suite.registry.streams.find('cam-b'))!), withoutTimes(s));
    const back = (await suite.registry.streams.find('cam-b'))!;
    assert.equal(back.record, true);
    assert.equal(back.on_demand, false);
    assert.equal(back.retention_hours, 48);
    assert.deepEqual(back.rtmp_push, ['rtmp://push.example/live/***']);
    assert.deepEqual(back.tags, { site: 'north', floor: 2 });
    assert.equal(back.secrets, 'v1:sealed-bytes');
    assert.match(back.created_at, /^\d{4}-\d\d-\d\dT/);
  });

  it('refuses a second stream with the same id as a 409 conflict', async function () {
    assert.equal(await refusal(suite.registry.streams.create({ id: 'cam-b', ...columns() })), '409 conflict');
  });

  it('lists by id, filtered by device, at most the limit', async function () {
    await suite.registry.streams.create({ id: 'cam-a', ...columns({ device_id: 'dev1' }) });
    await suite.registry.streams.create({ id: 'cam-c', ...columns() });
    assert.deepEqual((await suite.registry.streams.list({}, 100)).map((s) => s.id), ['cam-a', 'cam-b', 'cam-c']);
    assert.deepEqual((await suite.registry.streams.list({ device_id: 'dev1' }, 100)).map((s) => s.id), ['cam-a', 'cam-b']);
    assert.deepEqual((await suite.registry.streams.list({}, 2)).map((s) => s.id), ['cam-a', 'cam-b']);
    assert.deepEqual(await suite.registry.streams.list({ device_id: 'none' }, 100), []);
  });

  it('updates only the columns given', async function () {
    const u = await suite.registry.streams.update('cam-c', { record: true, secrets: 'v1:other', rtmp_push: ['rtmp://a/b/***'], device_id: 'dev2' });
    assert.equal(u.record, true);
    assert.equal(u.secrets, 'v1:other');
    assert.deepEqual(u.rtmp_push, ['rtmp://a/b/***']);
    assert.equal(u.device_id, 'dev2');
    assert.equal(u.name, 'Gate camera', 'untouched');
    assert.deepEqual(withoutTimes((await suite.registry.streams.find('cam-c'))!), withoutTimes(u));
    assert.equal((await suite.registry.streams.update('cam-c', { device_id: null })).device_id, null);
  });

  it('deletes a stream; unknown ids answer null or 404', async function () {
    await suite.registry.streams.delete('cam-a');
    assert.equal(await suite.registry.streams.find('cam-a'), null);
    assert.equal(await refusal(suite.registry.streams.delete('cam-a')), '404 not_found');
    assert.equal(await refusal(suite.registry.streams.update('cam-a', { name: 'x' })), '404 not_found');
  });
});
