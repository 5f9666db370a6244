/**
 * The audit log: who did what, when, from where. Rows are bounded by count and age; the oldest go
 * first (pruned at start and every PRUNE_EVERY writes). Writes never fail the request that caused
 * them: an error is logged.
 */
import type { AuditRepository } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';

export interface AuditEvent {
  username: string | null;
  role?: string | null;
  /** e.g. `POST /devices/:id/commands`, `login`, `login_failed`, `flows.deploy` */
  action: string;
  /** the resource, e.g. the request path */
  target?: string | null;
  status?: number | null;
  address?: string | null;
  detail?: string | null;
}

export interface AuditEntry extends Required<AuditEvent> {
  id: number;
  at: string;
}

export interface AuditLog {
  record(ev: AuditEvent): void;
  /** waits for the writes under way (tests, shutdown) */
  flush(): Promise<void>;
  list(opts: { limit: number; offset: number; username?: string; action?: string }): Promise<{ items: AuditEntry[]; total: number; limit: number; offset: number }>;
  prune(): Promise<void>;
}

export interface AuditOptions {
  /** rows kept at most (default 100,000) */
  maxRows?: number;
  /** rows older than this are deleted (default 90 days) */
  maxAgeMs?: number;
}

const PRUNE_EVERY = 1000;
const cut = (s: string | null | undefined, max: number) => (s === null || s === undefined ? null : s.length > max ? s.slice(0, max - 1) + '…' : s);

export function createAuditLog(store: AuditRepository, log: Logger, opts: AuditOptions = {}): AuditLog {
  const maxRows = opts.maxRows ?? 100_000;
  const maxAgeMs = opts.maxAgeMs ?? 90 * 86_400_000;
  const pending = new Set<Promise<unknown>>();
  let writes = 0;

  const audit: AuditLog = {
    record(ev) {
      const row = {
        at: new Date(),
        username: cut(ev.username, 64),
        role: cut(ev.role, 16),
        action: cut(ev.action, 100)!,
        target: cut(ev.target, 500),
        status: ev.status ?? null,
        address: cut(ev.address, 64),
        detail: cut(ev.detail, 1000),
      };
      const p = store
        .append(row)
        .then(() => (++writes % PRUNE_EVERY === 0 ? audit.prune() : undefined))
        .catch((err: unknown) => log.error({ err, action: row.action }, 'audit: could not record'))
        .finally(() => pending.delete(p));
      pending.add(p);
    },
    async flush() {
      await Promise.all([...pending]);
    },
    list: (o) => store.list(o),
    prune: () => store.prune({ olderThan: new Date(Date.now() - maxAgeMs), keep: maxRows }),
  };
  return audit;
}
