/**
 * Flows shared by a cluster's nodes (docs/cluster.md "Shared configuration"): a Node-RED storage
 * module that is Node-RED's own (localfilesystem: credentials, settings, sessions, library, and a
 * copy of the flows in the data dir) except for the flows, which come from and go to the shared
 * database. A deploy on one node stores them and tells the others (`changed`), which reload them
 * with Node-RED's runtime API (`setFlows({ deploymentType: 'reload' })`). Node-RED's revision is
 * the sha256 of the flow JSON, so every node that runs the same flows has the same `rev`, and an
 * editor that loaded an older revision on any node gets 409 `version_mismatch` (its merge dialog).
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { SharedFlowRepository } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';

type Flows = Record<string, unknown>[];

interface NodeRedStorage {
  init(settings: unknown, runtime: unknown): Promise<void>;
  getFlows(): Promise<Flows>;
  saveFlows(flows: Flows, user?: unknown): Promise<void>;
  [k: string]: unknown;
}

/** What cluster mode gives the flow engine: where the flows are, and how to tell the other nodes. */
export interface FlowSharing {
  store: SharedFlowRepository;
  /** called once a deploy of this node is stored */
  changed(): void;
}

export const revisionOf = (json: string) => crypto.createHash('sha256').update(json).digest('hex');

/** Node-RED's storage module with the flows in the shared database. */
export function sharedStorageModule(sharing: FlowSharing, log: Logger): NodeRedStorage {
  const local = createRequire(import.meta.url)('@node-red/runtime/lib/storage/localfilesystem') as NodeRedStorage;
  return {
    ...local,
    async getFlows() {
      const stored = await sharing.store.read();
      if (stored) return JSON.parse(stored.json) as Flows;
      // the first node of a new cluster: its flows (the default flow on a first start) become the
      // cluster's, unless another node starting at the same time stored its own first
      const flows = await local.getFlows();
      const json = JSON.stringify(flows);
      if (await sharing.store.writeFirst(json, revisionOf(json))) {
        log.info("stored this node's flows as the cluster's");
        return flows;
      }
      const first = await sharing.store.read();
      return first ? (JSON.parse(first.json) as Flows) : flows;
    },
    async saveFlows(flows, user) {
      await local.saveFlows(flows, user);
      const json = JSON.stringify(flows);
      await sharing.store.write(json, revisionOf(json));
      sharing.changed();
    },
  };
}
