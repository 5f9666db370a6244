/**
 * The broker on a state shared with the other nodes of a cluster (runtime/cluster implements it on
 * Redis; docs/cluster.md). Without one, aedes keeps its state in memory, as on a single node.
 */
import type { EventEmitter } from 'node:events';
import { Aedes, type AedesOptions } from 'aedes';
import type { Logger } from '../log/index.ts';
import { keepSessionsTakenOverElsewhere } from '../patches/index.ts';

/** The broker's state shared with the other nodes of a cluster. */
export interface SharedBrokerState {
  /** this node's id, used as the aedes broker id (`$SYS/<id>/…`) */
  readonly nodeId: string;
  /** the aedes heartbeat (ms): the wills of a dead node's clients are published about 3× it after it died */
  readonly heartbeatMs: number;
  /** A persistence and an emitter for one aedes instance; `close` once aedes closed. */
  open(): { persistence: unknown; mq: unknown; close(): Promise<void> };
  /** false while the shared state is unreachable: new connections are refused with "server unavailable" */
  available(): boolean;
}

export interface StartedAedes {
  aedes: Aedes;
  /** closes what the shared state opened for this instance (after aedes closed) */
  release(): Promise<void>;
}

/** Makes and starts aedes, on the shared state when there is one. */
export async function startAedes(options: AedesOptions, shared: SharedBrokerState | undefined, log: Logger): Promise<StartedAedes> {
  const backing = shared?.open();
  if (shared && backing) Object.assign(options, { id: shared.nodeId, heartbeatInterval: shared.heartbeatMs, persistence: backing.persistence, mq: backing.mq });
  const aedes = new Aedes(options);
  // aedes emits 'error' when its persistence fails outside a client (Redis unreachable in a cluster:
  // the wills sweep, an offline enqueue); unheard, an EventEmitter's 'error' ends the process
  (aedes as unknown as EventEmitter).on('error', (err: Error) => log.error({ err: err.message }, 'MQTT broker: shared state operation failed'));
  try {
    await aedes.listen();
  } catch (err) {
    await backing?.close();
    throw err;
  }
  if (shared && !keepSessionsTakenOverElsewhere(aedes)) {
    log.warn('aedes no longer has the shape runtime/patches/aedes-cluster-takeover.ts relies on: an MQTT 5 session taken over by another node may expire here');
  }
  return { aedes, release: async () => backing?.close() };
}
