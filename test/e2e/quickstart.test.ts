/** The README's walkthrough script (docs/quickstart.sh) run as a user would, against a real FLUX. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startFlux, ROOT, type FluxProcess } from '../helpers/flux-process.ts';

describe('the README quickstart script', function () {
  this.timeout(90_000);
  let flux: FluxProcess;

  before(async function () {
    flux = await startFlux();
  });

  after(async function () {
    await flux?.stop();
  });

  it('is the script shown in the README', function () {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const script = fs.readFileSync(path.join(ROOT, 'docs', 'quickstart.sh'), 'utf8');
    assert.ok(readme.includes('```bash\n' + script + '```'), 'README.md shows docs/quickstart.sh verbatim');
  });

  it('shows stored telemetry, the alarm, the live feed, the trace of one message and a command arriving at mosquitto_sub', async function () {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('bash', [path.join(ROOT, 'docs', 'quickstart.sh')], {
        cwd: ROOT,
        env: { ...process.env, FLUX_API: `${flux.url}/api`, FLUX_MQTT_PORT: String(flux.mqtt), FLUX_ADMIN_TOKEN: flux.token, NODE: process.execPath },
      });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.stderr.on('data', (d) => (text += d));
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`quickstart exited ${code}:\n${text}`))));
    });
    const section = (n: number) => out.split(`# ${n}.`)[1]?.split(/\n# \d\./)[0] ?? '';
    assert.match(section(6), /"values":\{"temperature":45\.3\}/, 'the decoded temperature is stored');
    assert.match(section(7), /"level":"critical"/, 'the rule raised its alarm');
    assert.match(out, /feed: \{"type":"telemetry","device_id":"sensor_1"[^\n]*"temperature":45\.3/, 'the live feed showed the telemetry');
    assert.match(out, /feed: \{"type":"alarm"/, 'the live feed showed the alarm');
    for (const stage of ['ingress', 'decode', 'rule', 'store']) assert.match(section(8), new RegExp(`"stage":"${stage}"`), `the trace has the ${stage} stage`);
    // the command: answered delivered, encoded by the plugin, and the frame seen by mosquitto_sub
    assert.match(section(9), /"status":"delivered"[^\n]*"device_id":"sensor_1"|"device_id":"sensor_1"[^\n]*"status":"delivered"/, 'the command was delivered');
    assert.match(section(9), /"encoding":"plugin"/, 'the plugin encoded the command');
    assert.match(section(9), /^mosquitto_sub received on \/boiler\/sensor_1\/command: 0106000101f4d81d$/m, 'mosquitto_sub got the write-single-register frame');
  });
});
