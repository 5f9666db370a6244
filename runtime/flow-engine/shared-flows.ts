/**
 * Flows shared by a cluster's nodes (docs/cluster.md "Shared configuration"): a Node-RED storage
 * module that is Node-RED's own (localfilesystem: settings, sessions, library, and a copy of the
 * flows and credentials in the data dir) except for the flows and their credentials, which come
 * from and go to the shared database. Every node has the same `credentialSecret`
 * (FLUX_CREDENTIAL_SECRET), so the credentials Node-RED encrypted on one node decrypt on all. A deploy on one node stores them and tells the others (`changed`), which reload them
 * with Node-RED's runtime API (`setFlows({ deploymentType: 'reload' })`). Node-RED's revision is
 * the sha256 of the flow JSON, so every node that runs the same flows has the same `rev`, and an
 * editor that loaded an older revision on any node gets 409 `version_mismatch` (its merge dialog).
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { SharedFlowRepository } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';

type Flows = Record<string, unknown>[];
/** Node-RED's credentials document: `{ "$": iv + ciphertext }` when encrypted */
type Credentials = Record<string, unknown>;

interface NodeRedStorage {
  init(settings: unknown, runtime: unknown): Promise<void>;
  getFlows(): Promise<Flows>;
  saveFlows(flows: Flows, user?: unknown): Promise<void>;
  getCredentials(): Promise<Credentials>;
  saveCredentials(credentials: Credentials): Promise<void>;
  getSettings(): Promise<Record<string, unknown> | null>;
  [k: string]: unknown;
}

/** What cluster mode gives the flow engine: where the flows are, and how to tell the other nodes. */
export interface FlowSharing {
  store: SharedFlowRepository;
  /** called once a deploy of this node is stored */
  changed(): void;
  /** FLUX_CREDENTIAL_SECRET, Node-RED's `credentialSecret` on every node */
  credentialSecret: string;
}

/**
 * Node-RED's answer to a stale deploy (@node-red/runtime/lib/api/flows.js `setFlows`): the editor API
 * sends `err.status` with `{ code: err.code }` (@node-red/editor-api/lib/util.js `rejectHandler`), and
 * the editor offers to merge. A storage module's rejection reaches it unchanged, and Node-RED then
 * keeps its active flows (@node-red/runtime/lib/flows/index.js `setFlows`).
 */
export function versionMismatch(): Error & { code: string; status: number } {
  return Object.assign(new Error('another node deployed first: the flows changed since this node loaded them'), { code: 'version_mismatch', status: 409 });
}

/** The storage module, and the revision of the credentials it last loaded or saved (a deploy that changed only credentials keeps the flows' revision). */
export interface SharedStorage extends NodeRedStorage {
  credentialsRev(): string | undefined;
}

export const revisionOf = (json: string) => crypto.createHash('sha256').update(json).digest('hex');

/** Whether Node-RED's encrypted credentials decrypt with `secret` (its format: @node-red/runtime/lib/nodes/credentials.js, aes-256-ctr with the sha256 of the secret). */
export function decryptsWith(credentials: Credentials, secret: string): boolean {
  const box = credentials.$;
  if (typeof box !== 'string' || box.length < 32) return false;
  try {
    const decipher = crypto.createDecipheriv('aes-256-ctr', crypto.createHash('sha256').update(secret).digest(), Buffer.from(box.slice(0, 32), 'hex'));
    JSON.parse(decipher.update(box.slice(32), 'base64', 'utf8') + decipher.final('utf8'));
    return true;
  } catch {
    return false;
  }
}

/** Node-RED's storage module with the flows in the shared database. */
export function sharedStorageModule(sharing: FlowSharing, log: Logger, conflict: () => void): SharedStorage {
  const local = createRequire(import.meta.url)('@node-red/runtime/lib/storage/localfilesystem') as NodeRedStorage;
  let credentialsRev: string | undefined;
  /** what this node last loaded or stored: the condition of its next write (undefined: not loaded yet) */
  let loaded: { rev: string; credentials: string | null } | undefined;
  /** the credentials of the deploy under way: Node-RED saves them just before the flows (@node-red/runtime/lib/storage/index.js `saveFlows`), and both go in one conditional write */
  let pendingCredentials: Credentials | undefined;
  return {
    ...local,
    credentialsRev: () => credentialsRev,
    async getSettings() {
      const settings = await local.getSettings();
      // A key Node-RED generated on this node before cluster mode would be tried first on the
      // cluster's credentials and fail (credentials.js `load`): every node uses credentialSecret.
      if (settings && '_credentialSecret' in settings) {
        const { _credentialSecret: _dropped, ...rest } = settings;
        return rest;
      }
      return settings;
    },
    async getCredentials() {
      const stored = await sharing.store.readCredentials();
      if (loaded) loaded.credentials = stored;
      if (stored !== null) {
        credentialsRev = revisionOf(stored);
        return JSON.parse(stored) as Credentials;
      }
      // None stored yet: this node's own, when they go with the stored flows (this node's flows became
      // the cluster's) and are encrypted with the cluster's key; stored now, since a deploy stores
      // credentials only when it changes them (@node-red/runtime/lib/storage/index.js `saveFlows`).
      const own = await local.getCredentials();
      if (Object.keys(own).length === 0) return own;
      if (!decryptsWith(own, sharing.credentialSecret)) {
        log.warn("this node's flow credentials are not encrypted with FLUX_CREDENTIAL_SECRET and cannot be shared: enter them again in the editor and deploy");
        return {};
      }
      const ownRev = revisionOf(JSON.stringify(await local.getFlows()));
      if (!loaded || loaded.rev !== ownRev) {
        log.warn("this node's flow credentials belong to flows other than the cluster's and are not used");
        return {};
      }
      const json = JSON.stringify(own);
      if (await sharing.store.writeFirstCredentials(json, ownRev)) log.info("stored this node's flow credentials as the cluster's");
      // written, or another node's came first: what is stored
      const now = await sharing.store.readCredentials();
      loaded.credentials = now;
      credentialsRev = now === null ? undefined : revisionOf(now);
      return now === null ? {} : (JSON.parse(now) as Credentials);
    },
    async saveCredentials(credentials) {
      pendingCredentials = credentials;
    },
    async getFlows() {
      const stored = await sharing.store.read();
      // Node-RED reads the credentials right after the flows (storage/index.js `getFlows`)
      loaded = stored ? { rev: stored.rev, credentials: null } : undefined;
      if (stored) return JSON.parse(stored.json) as Flows;
      // the first node of a new cluster: its flows (the default flow on a first start) become the
      // cluster's, unless another node starting at the same time stored its own first
      const flows = await local.getFlows();
      const json = JSON.stringify(flows);
      if (await sharing.store.writeFirst(json, revisionOf(json))) {
        log.info("stored this node's flows as the cluster's");
        loaded = { rev: revisionOf(json), credentials: null };
        return flows;
      }
      const first = await sharing.store.read();
      if (first) loaded = { rev: first.rev, credentials: null };
      return first ? (JSON.parse(first.json) as Flows) : flows;
    },
    async saveFlows(flows, user) {
      const pending = pendingCredentials;
      pendingCredentials = undefined;
      const credentials = pending && JSON.stringify(pending);
      const json = JSON.stringify(flows);
      const rev = revisionOf(json);
      if (!loaded || !(await sharing.store.writeIf(loaded, json, rev, credentials))) {
        // Node-RED keeps running what it ran, but its credentials in memory may hold this deploy's:
        // the node loads the stored flows and credentials again (after this deploy, Node-RED runs one at a time)
        log.warn('a deploy on this node was refused: another node deployed first (409 version_mismatch)');
        credentialsRev = undefined;
        conflict();
        throw versionMismatch();
      }
      loaded = { rev, credentials: credentials ?? loaded.credentials };
      if (pending && credentials !== undefined) {
        credentialsRev = revisionOf(credentials);
        await local.saveCredentials(pending);
      }
      await local.saveFlows(flows, user);
      sharing.changed();
    },
  };
}
