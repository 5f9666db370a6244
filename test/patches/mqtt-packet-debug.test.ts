/**
 * quietMqttPacketDebug() (runtime/patches/mqtt-packet-debug.ts): registered as runtime/cli.ts does,
 * before FLUX's modules load, mqtt-packet gets loggers that stay off; with DEBUG set when it loads,
 * the real ones. Each case runs in a child process, so that mqtt-packet loads there for the first time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/flux-process.ts';

/** the debug package's file as mqtt-packet resolves it (by path: inside the child, \`require('debug')\` from mqtt-packet's folder may answer the hook's stub) */
const DEBUG_FILE = createRequire(createRequire(import.meta.resolve('aedes')).resolve('mqtt-packet')).resolve('debug');
const url = (rel: string) => JSON.stringify(pathToFileURL(path.join(ROOT, rel)).href);

/**
 * Loads FLUX's app modules the way runtime/cli.ts does (with or without the hook), then turns every
 * mqtt-packet logger on through the debug package and parses one PUBLISH with aedes' mqtt-packet.
 * Prints `loggers=N parsed=TOPIC` on stdout; the debug package writes its lines to stderr.
 */
function child(hook: boolean, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  const script = `
    import { createRequire } from 'node:module';
    await import(${url('runtime/app/startup-deferrals.ts')});
    const { quietMqttPacketDebug } = await import(${url('runtime/patches/index.ts')});
    const quieting = ${hook} ? quietMqttPacketDebug() : undefined;
    await import(${url('runtime/app/index.ts')});
    const loggers = quieting ? quieting.deregister() : -1;
    const aedesRequire = createRequire(import.meta.resolve('aedes', ${url('package.json')}));
    const mqttPacket = aedesRequire('mqtt-packet');
    createRequire(import.meta.url)(${JSON.stringify(DEBUG_FILE)}).enable('mqtt-packet:*');
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let topic = '';
    parser.on('packet', (p) => { topic = p.topic; });
    parser.parse(mqttPacket.generate({ cmd: 'publish', topic: 'up/dev-1', payload: Buffer.from('hi'), qos: 0, retain: false, dup: false }));
    console.log('loggers=' + loggers + ' parsed=' + topic);
  `;
  const { DEBUG: _, ...base } = process.env;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: { ...base, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

describe('patches: mqtt-packet loggers that cost nothing while off', function () {
  this.timeout(120_000);

  it('hooked before the app loads: both loggers come through the hook and stay off when debug is enabled later', async () => {
    const r = await child(true);
    assert.match(r.stdout, /loggers=2 parsed=up\/dev-1/);
    assert.doesNotMatch(r.stderr, /mqtt-packet:/);
  });

  it('without the hook (control): the same enable makes mqtt-packet log, so the case above can fail', async () => {
    const r = await child(false);
    assert.match(r.stdout, /parsed=up\/dev-1/);
    assert.match(r.stderr, /mqtt-packet:parser/);
  });

  it('with DEBUG=mqtt-packet:parser when mqtt-packet loads: the real logger, not a quiet one', async () => {
    const r = await child(true, { DEBUG: 'mqtt-packet:parser' });
    assert.match(r.stdout, /loggers=2 parsed=up\/dev-1/);
    assert.match(r.stderr, /mqtt-packet:parser/);
    assert.doesNotMatch(r.stderr, /mqtt-packet:writeToStream/);
  });
});
