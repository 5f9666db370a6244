/**
 * Bytes trickled into a raw TCP port before any login must cost little and be cut off early
 * (docs/broker.md "Before identification"): delimiter framing with a 16 MiB maximum frame, strangers
 * sending delimiter-less bytes in small paced writes. Measured on the real FLUX process: how many
 * bytes each connection got in before it was closed, and the process's CPU time (/proc/<pid>/stat).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

const CONNECTIONS = 8;
const WRITE = 512; // bytes per write
const ATTEMPT = 2 * 1024 * 1024; // bytes each stranger tries to send

/** user + system CPU seconds of a process so far */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** Writes `ATTEMPT` bytes without a delimiter in small paced writes; answers how many were written before the server closed. */
function trickle(port: number): Promise<{ written: number; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    const chunk = Buffer.alloc(WRITE, 0x41);
    let written = 0;
    let closed = false;
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
    });
    const next = () => {
      if (closed || s.destroyed) return resolve({ written, closedByServer: true });
      if (written >= ATTEMPT) {
        s.destroy();
        return resolve({ written, closedByServer: false });
      }
      s.write(chunk);
      written += chunk.length;
      setTimeout(next, 1);
    };
    s.once('connect', next);
  });
}

describe('security: raw TCP bytes before login', function () {
  this.timeout(180_000);
  let flux: FluxProcess;
  let port: number;
  let secret: string;

  before(async function () {
    flux = await startFlux({}, { timeoutMs: 60_000 });
    const p = await flux.api('POST', '/api/products', { key: 'lines', name: 'Lines', transport: { tcp: { port: 0, framing: { type: 'delimiter', delimiter: '0a', max: 16 * 1024 * 1024 } } } });
    assert.equal(p.status, 201);
    secret = (await flux.api('POST', '/api/devices', { id: 'line_1', product_id: 'lines' })).body.secret;
    for (let i = 0; i < 100 && !port; i++) {
      port = (await flux.api('GET', '/api/health')).body.components?.ingress?.ports?.lines;
      if (!port) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(port, 'the product has a TCP port');
  });

  after(async function () {
    await flux?.stop();
  });

  it('closes strangers after a few KiB and spends little CPU on them, whatever the maximum frame', async function () {
    const cpu0 = cpuSeconds(flux.child.pid!);
    const results = await Promise.all(Array.from({ length: CONNECTIONS }, () => trickle(port)));
    const cpu = cpuSeconds(flux.child.pid!) - cpu0;
    for (const r of results) {
      assert.ok(r.closedByServer, `a stranger sent ${r.written} bytes without a login and was not closed`);
      // what the client wrote before it saw the close: the 16 KiB budget plus socket buffers in flight
      assert.ok(r.written <= 1024 * 1024, `a stranger got ${r.written} bytes in before it was closed`);
    }
    // Before the fix this attack cost seconds of CPU (a copy of everything buffered per read);
    // bounded, it is a few milliseconds of work per connection. Generous for a loaded machine.
    assert.ok(cpu < 2, `FLUX spent ${cpu.toFixed(2)} s of CPU on ${CONNECTIONS} strangers`);
    const log = flux.output();
    assert.match(log, /no delimiter within 4096 bytes/, 'closed by the frame limit before login');
  });

  it('closes a stranger sending only empty frames after 16 KiB', async function () {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    let closed = false;
    s.on('close', () => (closed = true));
    let written = 0;
    while (!closed && written < 1024 * 1024) {
      s.write(Buffer.alloc(1024, 0x0a));
      written += 1024;
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(closed, true, `${written} bytes of empty frames and still open`);
    assert.match(flux.output(), /without a login or a decodable device_id \(at most 16384 before identification\)/);
  });

  it('refuses a frame over 4 KiB before login, and takes large frames once the device logged in', async function () {
    const big = net.connect({ port, host: '127.0.0.1' });
    big.on('error', () => {});
    await new Promise((r) => big.once('connect', r));
    big.write(Buffer.alloc(5000, 0x42));
    await new Promise((r) => big.once('close', r));
    assert.match(flux.output(), /no delimiter within 4096 bytes/);

    // a device that logs in and sends 200 KiB at once in the same write is not a stranger
    const dev = net.connect({ port, host: '127.0.0.1' });
    dev.on('error', () => {});
    const got: Buffer[] = [];
    dev.on('data', (d) => got.push(d));
    await new Promise((r) => dev.once('connect', r));
    let closed = false;
    dev.on('close', () => (closed = true));
    const line = (n: number) => `{"values":{"n":${n},"pad":"${'x'.repeat(100_000)}"}}\n`;
    dev.write(`{"device_id":"line_1","secret":"${secret}"}\n${line(1)}${line(2)}`);
    for (let i = 0; i < 100 && !Buffer.concat(got).includes('"login":"ok"'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(Buffer.concat(got).toString(), /"login":"ok"/);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(closed, false, 'the logged-in device was closed');
    const trace = await flux.api('GET', '/api/devices/line_1/trace');
    assert.ok((trace.body.items ?? []).length >= 2, `both large frames reached the bus: ${JSON.stringify(trace.body).slice(0, 200)}`);
    dev.destroy();
  });
});
