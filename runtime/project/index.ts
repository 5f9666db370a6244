/**
 * @module project — a whole project (products, devices without secrets, rules, plugins with their
 * bytes, flows) as one JSON document, to move it from one FLUX to another: `GET /api/project/export`,
 * `POST /api/project/import`, and the `flux export` / `flux import` commands (runtime/project/cli.ts)
 * that call them. docs/operations.md "Moving a project" describes the document and what an import does.
 */
import type { Logger } from '../log/index.ts';
import type { Registry } from '../registry/index.ts';
import type { RuleEngine } from '../rules/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import type { FlowEngine } from '../flow-engine/index.ts';
import { exportProject } from './export.ts';
import { importProject, type ImportReport } from './import.ts';
import type { ProjectDocument } from './schema.ts';

export { projectDocument, PROJECT_FORMAT, PROJECT_FORMAT_VERSION, PROJECT_IMPORT_LIMIT, type ProjectDocument } from './schema.ts';
export { stampPluginBuilds } from './export.ts';
export type { ImportReport } from './import.ts';
export { projectRoutes } from './routes.ts';

/** The modules a project is read from and written to, from the composition root. */
export interface ProjectDeps {
  registry: Registry;
  rules: RuleEngine;
  plugins: PluginHost;
  /** absent when FLUX runs without Node-RED (in-process API tests): flows are neither exported nor deployed */
  flows?: Pick<FlowEngine, 'flows' | 'deploy' | 'check'>;
  version: string;
  log: Logger;
}

export interface ProjectTransfer {
  export(): Promise<ProjectDocument>;
  /** One import at a time: a second waits for the first (their conflict checks see each other's writes). */
  import(doc: ProjectDocument): Promise<ImportReport>;
}

export function createProjectTransfer(deps: ProjectDeps): ProjectTransfer {
  let last: Promise<unknown> = Promise.resolve();
  return {
    export: () => exportProject(deps),
    import(doc) {
      const run = last.then(
        () => importProject(deps, doc),
        () => importProject(deps, doc),
      );
      last = run.catch(() => undefined);
      return run;
    },
  };
}
