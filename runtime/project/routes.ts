/** /api/project: the whole project as one document, out of this instance and into another. */
import type { RouteTable } from '../api/index.ts';
import { projectDocument, PROJECT_IMPORT_LIMIT } from './schema.ts';
import type { ProjectTransfer } from './index.ts';

export function projectRoutes(routes: RouteTable, transfer: ProjectTransfer): void {
  routes
    .add({
      method: 'get', path: '/project/export', tag: 'project', role: 'admin',
      summary: 'The whole project as one JSON document: products, devices (without secrets), rules, the active build of each plugin (wasm as base64, with version and sha256) and the flows (docs/operations.md "Moving a project")',
      returns: '`{ format: "flux-project", format_version, products, devices, rules, plugins, flows }`',
      handler: async ({ res }) => {
        const doc = await transfer.export();
        res.setHeader('content-disposition', `attachment; filename="flux-project-${doc.exported_at?.slice(0, 10) ?? 'export'}.json"`);
        return doc;
      },
    })
    .add({
      method: 'post', path: '/project/import', tag: 'project', role: 'admin', status: 201, errors: [400, 409, 413],
      summary: `Import a project document (at most ${PROJECT_IMPORT_LIMIT}): checked whole before anything is written (409 when a product key, device id or plugin with other bytes exists here; 400 \`flow_path_reserved\` naming node and path when a flow's \`http in\` path is under \`/api\`, \`/editor\`, \`/console\` or \`/mqtt\`, as a deploy would be); devices get new secrets, answered once; the flows replace this instance's and are deployed; a failure undoes what it created`,
      body: projectDocument, bodyLimit: PROJECT_IMPORT_LIMIT,
      returns: '`{ products, devices: [{ id, secret }], rules, plugins: [{ id, version, sha256, installed }], flows, warnings }`',
      handler: ({ body }) => transfer.import(body),
    });
}
