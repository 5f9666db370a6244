/**
 * FLUX_CREDENTIAL_SECRET on one node (docs/security.md "Flow credentials"): a real FLUX process
 * started with it encrypts the flows' credentials with it (Node-RED's `credentialSecret`) and keeps
 * no generated key in the data dir; without it Node-RED generates one there, as before. What
 * `decryptsWith` (runtime/flow-engine/shared-flows.ts) reads is checked against the file Node-RED
 * wrote, so a change of Node-RED's format shows here.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { decryptsWith } from '../../runtime/flow-engine/shared-flows.ts';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../cluster/cluster.ts';

const SECRET = 'single-node-credential-secret-0123';

async function deployWithCredentials(flux: FluxProcess): Promise<void> {
  const headers = { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': 'full' };
  const current = (await (await fetch(`${flux.url}/editor/flows`, { headers })).json()) as { flows: unknown[]; rev: string };
  const nodes = [
    { id: 'cred-tab', type: 'tab', label: 'credentials' },
    { id: 'cred-req', type: 'http request', z: 'cred-tab', method: 'GET', ret: 'txt', url: 'http://127.0.0.1:9/none', authType: 'basic', credentials: { user: 'u', password: 'single-node-password' }, wires: [] },
  ];
  const r = await fetch(`${flux.url}/editor/flows`, { method: 'POST', headers, body: JSON.stringify({ flows: [...current.flows, ...nodes], rev: current.rev }) });
  assert.equal(r.status, 200, await r.text());
}

const credentialsOf = (flux: FluxProcess) => JSON.parse(fs.readFileSync(path.join(flux.dataDir, 'node-red', 'flows_cred.json'), 'utf8')) as Record<string, unknown>;
const runtimeSettingsOf = (flux: FluxProcess) => {
  const file = path.join(flux.dataDir, 'node-red', '.config.runtime.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
};

describe('flow credentials on one node', function () {
  this.timeout(120_000);

  it('FLUX_CREDENTIAL_SECRET set: the credentials are encrypted with it, no key is generated in the data dir', async () => {
    const flux = await startFlux({ FLUX_CREDENTIAL_SECRET: SECRET });
    try {
      await deployWithCredentials(flux);
      const creds = await until(() => (fs.existsSync(path.join(flux.dataDir, 'node-red', 'flows_cred.json')) ? credentialsOf(flux) : null), 'flows_cred.json written');
      assert.equal(decryptsWith(creds, SECRET), true);
      assert.equal(decryptsWith(creds, 'another-secret-0123456789'), false);
      assert.ok(!JSON.stringify(creds).includes('single-node-password'));
      assert.equal(runtimeSettingsOf(flux)._credentialSecret, undefined);
    } finally {
      await flux.stop();
    }
  });

  it('unset: Node-RED generates its key in the data dir and encrypts with it, as before', async () => {
    const flux = await startFlux();
    try {
      await deployWithCredentials(flux);
      const creds = await until(() => (fs.existsSync(path.join(flux.dataDir, 'node-red', 'flows_cred.json')) ? credentialsOf(flux) : null), 'flows_cred.json written');
      const generated = runtimeSettingsOf(flux)._credentialSecret;
      assert.equal(typeof generated, 'string');
      assert.equal(decryptsWith(creds, generated as string), true);
      assert.equal(decryptsWith(creds, SECRET), false);
    } finally {
      await flux.stop();
    }
  });
});
