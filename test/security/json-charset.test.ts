/**
 * JSON bodies in another charset than UTF-8. The depth limit (runtime/input-limits) scans the bytes
 * as they arrive, before body-parser decodes them: UTF-16 (`\"` is `5C 00 22 00`, the scanner skipped
 * the `00` and took the quote for the end of the string) or UTF-7 (`[` written `+AFs-`) hid a
 * 100,000-deep array from it, and storing it answered 500 (RangeError in JSON.stringify).
 */
import assert from 'node:assert/strict';
import { rawRequest } from '../helpers/raw-http.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';
import { startInstance, type Instance } from './helpers.ts';

const N = 100_000;
/** valid JSON whose escaped quotes desynchronise a byte scanner that reads UTF-16 as bytes */
const hidden = `{"tags":{"a":"\\"","b":${'['.repeat(N)}${']'.repeat(N)},"c":"\\""}}`;

describe('security: JSON bodies are UTF-8, so the depth limit sees what is parsed', function () {
  this.timeout(60_000);
  let flux: Instance;

  before(async () => {
    flux = await startInstance();
    assert.equal((await flux.api('POST', '/api/products', { key: 'cs', name: 'Charset' })).status, 201);
    assert.equal((await flux.api('POST', '/api/devices', { id: 'cs_1', product_id: 'cs' })).status, 201);
  });
  after(() => flux?.stop());

  const send = (charset: string, body: Buffer) =>
    rawRequest(flux.http, 'PATCH', '/api/devices/cs_1', { headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': `application/json; charset=${charset}` }, body, timeoutMs: 30_000 });

  for (const [charset, encode] of [
    ['utf-16le', (s: string) => Buffer.from(s, 'utf16le')],
    ['utf-16be', (s: string) => Buffer.from(s, 'utf16le').swap16()],
  ] as const) {
    it(`refuses a ${charset} body with 415 naming UTF-8, never 500, and the device is unchanged`, async () => {
      const r = await send(charset, encode(hidden));
      assert.equal(r.status, 415, r.text.slice(0, 300));
      assert.equal(r.body.error.code, 'unsupported_charset');
      assert.match(r.body.error.message, /UTF-8/);
      assert.deepEqual((await flux.api('GET', '/api/devices/cs_1')).body.tags, {});
    });
  }

  it('refuses a UTF-7 body (brackets written as +AFs-) with 415', async () => {
    const r = await send('utf-7', Buffer.from(`{"tags":{"b":${'+AFs-'.repeat(N)}${'+AF0-'.repeat(N)}}}`));
    assert.equal(r.status, 415, r.text.slice(0, 300));
  });

  it('still takes UTF-8, declared or not', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/json; charset=UTF-8']) {
      const r = await rawRequest(flux.http, 'PATCH', '/api/devices/cs_1', { headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': type }, body: JSON.stringify({ tags: { t: type } }) });
      assert.equal(r.status, 200, `${type}: ${r.text.slice(0, 300)}`);
      assert.equal(r.body.tags.t, type);
    }
  });
});
