/** `npm run docs:api`: regenerates docs/openapi.json and docs/api.md from the route table, and docs/schema.graphql from the GraphQL schema. */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { loadSettings, PROJECT_DIR } from '../../settings.ts';
import { createFlux, VERSION } from '../app/index.ts';
import { createLogger } from '../log/index.ts';
import { writeApiDocs } from './docs.ts';
import { loadGraphqlEngine } from '../graphql/index.ts';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-docs-'));
const flux = createFlux({ settings: loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_ADMIN_TOKEN: 'docs-token-0123456789abcdef' }), log: createLogger({ level: 'silent' }), flows: false });
writeApiDocs(flux.api.routes, VERSION, path.join(PROJECT_DIR, 'docs'));
fs.writeFileSync(path.join(PROJECT_DIR, 'docs', 'schema.graphql'), (await loadGraphqlEngine()).schemaText());
fs.rmSync(dataDir, { recursive: true, force: true });
console.log('wrote docs/openapi.json, docs/api.md and docs/schema.graphql');
