/**
 * @module users — users with roles (viewer < operator < admin), their login sessions and personal
 * API tokens, and the audit log. The break-glass admin token (runtime/app/admin-token.ts) always
 * acts as admin under the name `admin-token`.
 *
 * On the first start (no users yet) it creates the user `admin` with FLUX_ADMIN_PASSWORD, or with a
 * generated password the CLI prints once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuditRepository, TokenRepository, UserRepository } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';
import type { FluxModule } from '../app/context.ts';
import { createAccounts, type Accounts } from './accounts.ts';
import { createAuditLog, type AuditLog, type AuditOptions } from './audit.ts';
import { ADMIN_TOKEN_PRINCIPAL, type Principal } from './roles.ts';

export { ROLES, isRole, roleAtLeast, lesserRole, bearerToken, ADMIN_TOKEN_PRINCIPAL, type Role, type Principal } from './roles.ts';
export { MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH } from './passwords.ts';
export { MAX_TOKENS_PER_USER, type User, type ApiToken, type Accounts } from './accounts.ts';
export type { AuditLog, AuditEvent, AuditEntry } from './audit.ts';

export const FIRST_ADMIN = 'admin';

export interface UsersOptions {
  /** where users, their tokens and the audit log are kept (the registry's repositories) */
  store: { users: UserRepository; tokens: TokenRepository; audit: AuditRepository };
  adminToken: string;
  /** FLUX_ADMIN_PASSWORD: the first admin's password (else one is generated and printed once) */
  adminPassword?: string;
  /** how long a login session lasts */
  sessionTtlMs: number;
  log: Logger;
  audit?: AuditOptions;
}

export interface Users extends FluxModule {
  readonly accounts: Accounts;
  readonly audit: AuditLog;
  readonly sessionTtlMs: number;
  /** the first admin's password when this start generated it (the CLI prints it once) */
  readonly generatedAdminPassword: string | undefined;
  /** who a bearer token stands for: the admin token, a login session or a personal token; null if none */
  authenticate(token: string): Promise<Principal | null>;
  /** true when `token` is the break-glass admin token */
  isAdminToken(token: string): boolean;
  /** calls `fn` after a token was revoked or a user changed or deleted (the live feed checks its clients again); answers the unsubscribe */
  onChange(fn: () => void): () => void;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function createUsers(opts: UsersOptions): Users {
  const listeners = new Set<() => void>();
  const accounts = createAccounts(opts.store, () => {
    for (const fn of listeners) fn();
  });
  const audit = createAuditLog(opts.store.audit, opts.log, opts.audit);
  const adminDigest = digest(opts.adminToken);
  let generated: string | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;

  const isAdminToken = (token: string) => timingSafeEqual(digest(token), adminDigest);

  return {
    name: 'users',
    accounts,
    audit,
    sessionTtlMs: opts.sessionTtlMs,
    get generatedAdminPassword() {
      return generated;
    },
    async start() {
      if ((await accounts.count()) === 0) {
        const password = opts.adminPassword ?? randomBytes(15).toString('base64url');
        await accounts.create({ username: FIRST_ADMIN, password, role: 'admin' });
        if (!opts.adminPassword) generated = password;
        opts.log.info({ username: FIRST_ADMIN }, 'created the first admin user');
        audit.record({ username: null, action: 'user.create', target: FIRST_ADMIN, detail: 'first start' });
      }
      await Promise.all([audit.prune(), accounts.pruneSessions()]);
      // Expired sessions and old audit rows go hourly.
      pruneTimer = setInterval(() => {
        Promise.all([audit.prune(), accounts.pruneSessions()]).catch((err: unknown) => opts.log.warn({ err }, 'users: pruning failed'));
      }, 3_600_000);
      pruneTimer.unref();
    },
    async stop() {
      clearInterval(pruneTimer);
      await audit.flush();
    },
    isAdminToken,
    onChange(fn) {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    async authenticate(token) {
      if (!token) return null;
      if (isAdminToken(token)) return { username: ADMIN_TOKEN_PRINCIPAL, role: 'admin', via: 'admin-token' };
      return accounts.resolve(token);
    },
  };
}
