/**
 * The messages between FLUX and its GraphQL WebSocket process (runtime/graphql/socket-process.ts
 * forks runtime/graphql/socket-child.ts), over the fork's IPC channel (structured clone).
 */
import type { FeedEvent } from '../feed/index.ts';
import type { HubInterest, HubStats } from './hub.ts';
import type { ForwardedOperation, SubscriptionServerOptions } from './subscriptions.ts';

/** What the process is started with (its first argument, as JSON). */
export interface SocketProcessInit {
  path: string;
  logLevel: string;
  limits: SubscriptionServerOptions;
}

/** The upgrade request, as far as ws and graphql-ws read it. */
export interface UpgradeRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  remoteAddress: string | null;
}

export type ToChild =
  /**
   * With the socket as the message's handle. The child answers the handshake only on `go`: Node
   * sends every message after a handle once the child acknowledged it and FLUX closed its own copy
   * (which reads and discards until then), so no byte the client sends after the 101 reaches FLUX.
   */
  | { t: 'upgrade'; id: number; req: UpgradeRequest; head: Uint8Array }
  | { t: 'go'; id: number }
  /** feed events the hub's interest asked for, in the order they were published */
  | { t: 'events'; events: FeedEvent[] }
  | { t: 'reply'; id: number; value?: unknown; error?: string }
  /** users or tokens changed: every connection's token is checked again */
  | { t: 'users-changed' }
  | { t: 'dispose' };

export type FromChild =
  | { t: 'ready' }
  | { t: 'authenticate'; id: number; token: string }
  | { t: 'run'; id: number; op: ForwardedOperation }
  /** which events to relay; sent before the stats that count the subscriptions it comes from */
  | { t: 'interest'; interest: HubInterest }
  | { t: 'stats'; stats: HubStats & { connections: number } };
