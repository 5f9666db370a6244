/** The committed REST API reference (docs/openapi.json, docs/api.md) matches the code's route table. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createFlux, VERSION } from '../../runtime/app/index.ts';
import { loadSettings, PROJECT_DIR } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { renderApiMarkdown } from '../../runtime/api/docs.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('REST API reference in docs/', function () {
  it('is up to date with the routes (run `npm run docs:api` after changing a route)', function () {
    const flux = createFlux({ settings: loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_ADMIN_TOKEN: TEST_TOKEN }), log: createLogger({ level: 'silent' }), flows: false });
    const openapi = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, 'docs', 'openapi.json'), 'utf8'));
    assert.deepEqual(openapi, JSON.parse(JSON.stringify(flux.api.routes.openapi({ title: 'FLUX IOT API', version: VERSION }))));
    assert.equal(fs.readFileSync(path.join(PROJECT_DIR, 'docs', 'api.md'), 'utf8'), renderApiMarkdown(flux.api.routes));
  });
});
