/** The `flux command` node in a deployed flow: an `http in` request makes it send a command that a subscribed MQTT device receives. */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

describe('flux command node', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async function () {
    flux = await startFlux();
    const flows = [
      { id: 'cmd-tab', type: 'tab', label: 'commands' },
      { id: 'cmd-http', z: 'cmd-tab', type: 'http in', url: '/light/:id/on', method: 'post', wires: [['cmd-prep']] },
      { id: 'cmd-prep', z: 'cmd-tab', type: 'change', rules: [{ t: 'set', p: 'device', pt: 'msg', to: '{}', tot: 'json' }, { t: 'set', p: 'device.id', pt: 'msg', to: 'req.params.id', tot: 'msg' }, { t: 'set', p: 'params', pt: 'msg', to: '{"brightness":100}', tot: 'json' }], wires: [['cmd-node']] },
      { id: 'cmd-node', z: 'cmd-tab', type: 'flux command', name: '', device: '', command: 'TurnOn', wires: [['cmd-res']] },
      { id: 'cmd-res', z: 'cmd-tab', type: 'http response', statusCode: '', headers: {}, wires: [] },
      { id: 'cmd-catch', z: 'cmd-tab', type: 'catch', scope: ['cmd-node'], wires: [['cmd-err']] },
      { id: 'cmd-err', z: 'cmd-tab', type: 'change', rules: [{ t: 'set', p: 'statusCode', pt: 'msg', to: '500', tot: 'num' }, { t: 'set', p: 'payload', pt: 'msg', to: 'error.message', tot: 'msg' }], wires: [['cmd-res']] },
    ];
    const res = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(res.status, 204);
  });

  after(async function () {
    await flux?.stop();
  });

  it('delivers the command to the connected device and answers delivered; an offline device answers offline', async function () {
    assert.equal((await flux.api('POST', '/api/products', { key: 'lamp', name: 'Lamp' })).status, 201);
    const dev = await flux.api('POST', '/api/devices', { id: 'light_switch_01', product_id: 'lamp' });
    await flux.api('POST', '/api/devices', { id: 'light_switch_02', product_id: 'lamp' });
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'light_switch_01', username: 'light_switch_01', password: dev.body.secret, reconnectPeriod: 0 });
    const got = new Promise<{ topic: string; payload: unknown }>((resolve) => device.on('message', (topic, payload) => resolve({ topic, payload: JSON.parse(String(payload)) })));
    await device.subscribeAsync('/lamp/light_switch_01/command/#', { qos: 1 });
    await device.subscribeAsync('/lamp/light_switch_01/command', { qos: 1 });

    let answer: { status?: string } = {};
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`${flux.url}/flows/light/light_switch_01/on`, { method: 'POST' });
      if (r.status !== 404) {
        answer = await r.json();
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(answer.status, 'delivered');
    const msg = await got;
    assert.equal(msg.topic, '/lamp/light_switch_01/command');
    assert.match(JSON.stringify(msg.payload), /TurnOn/);
    assert.match(JSON.stringify(msg.payload), /"brightness":100/);
    await device.endAsync();

    const offline = await (await fetch(`${flux.url}/flows/light/light_switch_02/on`, { method: 'POST' })).json();
    assert.equal(offline.status, 'offline');
  });
});
