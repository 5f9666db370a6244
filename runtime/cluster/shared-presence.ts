/**
 * Presence on Redis (runtime/ingress/presence.ts `SharedPresence`): a node's first and last
 * connection of a device go through scripts.ts, which count the nodes holding it. A failure (Redis
 * unreachable) marks the node "out of step": its next heartbeat re-registers what it holds.
 */
import type { SharedPresence, Transport } from '../ingress/index.ts';
import type { ClusterScripts } from './scripts.ts';

export interface ClusterPresence extends SharedPresence {
  /** whether a call failed since the last `resynced()` */
  outOfStep(): boolean;
  resynced(): void;
  /** resolves once every call made so far has been answered (or failed) */
  settled(): Promise<void>;
}

export function createClusterPresence(nodeId: string, scripts: () => ClusterScripts): ClusterPresence {
  let failed = false;
  let inFlight = 0;
  let waiters: (() => void)[] = [];
  function track(p: Promise<boolean>): Promise<boolean> {
    inFlight++;
    return p
      .catch((err: Error) => {
        failed = true;
        throw err;
      })
      .finally(() => {
        if (--inFlight === 0) {
          const w = waiters;
          waiters = [];
          for (const f of w) f();
        }
      });
  }
  return {
    // (a call before the cluster started, or after it stopped, fails like one Redis could not answer)
    held: (deviceId: string, transport: Transport) => track(Promise.resolve().then(() => scripts().held(nodeId, transport, deviceId))),
    released: (deviceId: string, transport: Transport) => track(Promise.resolve().then(() => scripts().released(nodeId, transport, deviceId))),
    online: (deviceIds: string[]) => Promise.resolve().then(() => scripts().online(deviceIds)),
    outOfStep: () => failed,
    resynced() {
      failed = false;
    },
    settled: () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  };
}
