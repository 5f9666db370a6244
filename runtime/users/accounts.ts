/**
 * Users and their tokens, kept by the registry's users and tokens repositories: login sessions
 * (expiring) and personal API tokens (until revoked) are random strings of which only the SHA-256 is kept.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { TokenRepository, TokenRow, UserRepository, UserRow } from '../registry/index.ts';
import { FluxError, notFound } from '../errors/index.ts';
import { checkSlug } from '../safe-id/index.ts';
import { DUMMY_HASH, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hashPassword, verifyPassword } from './passwords.ts';
import { ADMIN_TOKEN_PRINCIPAL, isRole, lesserRole, type Principal, type Role } from './roles.ts';

export interface User {
  id: string;
  username: string;
  role: Role;
  last_login_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface ApiToken {
  id: string;
  name: string;
  role: Role;
  /** the owner; null for a token made with the break-glass admin token */
  username: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

/** Personal tokens a user may hold (revoked ones count until deleted with their owner). */
export const MAX_TOKENS_PER_USER = 100;
/** last_used_at is written at most this often per token */
const TOUCH_EVERY_MS = 60_000;
/**
 * A resolved token is remembered this long, so a request costs no database lookup (~1.4 ms on a
 * loaded SQLite, bench/users.bench.ts); any change to a user or token empties the cache at once.
 */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;

const sha256 = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');
const newToken = (prefix: string) => `${prefix}_${randomBytes(32).toString('base64url')}`;

export function checkPassword(password: string): string {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new FluxError('bad_request', `password must have ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`, 400);
  }
  return password;
}

export function checkUsername(username: string): string {
  checkSlug('user', username);
  if (username === ADMIN_TOKEN_PRINCIPAL) throw new FluxError('invalid_id', `user name '${ADMIN_TOKEN_PRINCIPAL}' is reserved for the break-glass admin token`, 400);
  return username;
}

const userOf = (r: UserRow): User => ({ id: r.id, username: r.username, role: r.role as Role, last_login_at: r.last_login_at, created_at: r.created_at, updated_at: r.updated_at });

const tokenOf = (r: TokenRow): ApiToken => ({ id: r.id, name: r.name ?? '', role: r.role as Role, username: r.username, last_used_at: r.last_used_at, revoked_at: r.revoked_at, created_at: r.created_at });

export interface Accounts {
  /** users in all, or with `role` */
  count(role?: Role): Promise<number>;
  create(input: { username: string; password: string; role: Role }): Promise<User>;
  list(opts: { limit: number; offset: number }): Promise<{ items: User[]; total: number; limit: number; offset: number }>;
  get(username: string): Promise<User>;
  find(username: string): Promise<User | null>;
  update(username: string, patch: { role?: Role; password?: string }): Promise<User>;
  /** deletes the user and every token of theirs */
  delete(username: string): Promise<void>;
  /** the user when the password is theirs (as slow for an unknown name as for a known one) */
  verify(username: string, password: string): Promise<User | null>;
  /** a session token for a verified user, valid for `ttlMs` */
  startSession(user: User, ttlMs: number): Promise<{ token: string; expires_at: string; id: string }>;
  createToken(owner: Principal, input: { name: string; role: Role }): Promise<ApiToken & { token: string }>;
  listTokens(opts: { username?: string; limit: number; offset: number }): Promise<{ items: ApiToken[]; total: number; limit: number; offset: number }>;
  getToken(id: string): Promise<ApiToken>;
  revokeToken(id: string): Promise<ApiToken>;
  /** ends a login session (logout) */
  endSession(id: string): Promise<void>;
  /** the principal a session or personal token stands for, or null */
  resolve(token: string): Promise<Principal | null>;
  /** deletes expired sessions */
  pruneSessions(): Promise<void>;
}

/** `onChange` is called after any change that may end or shrink a token (revocation, role, password, deletion). */
export function createAccounts(store: { users: UserRepository; tokens: TokenRepository }, onChange: () => void = () => undefined): Accounts {
  const { users, tokens } = store;
  /** token hash → who it stands for, until when (the cache's time, and the session's expiry) */
  const cache = new Map<string, { principal: Principal; until: number; expires: number }>();
  /** bumped by every change: a lookup that began before one does not cache what it read */
  let generation = 0;
  const forget = () => {
    generation++;
    cache.clear();
    onChange();
  };
  const user = async (username: string) => {
    const r = await users.find(username);
    if (!r) throw notFound('user', username);
    return r;
  };

  return {
    count: (role) => users.count(role),
    async create({ username, password, role }) {
      checkUsername(username);
      const password_hash = await hashPassword(checkPassword(password));
      return userOf(await users.create({ username, password_hash, role }));
    },
    async list(page) {
      const p = await users.list(page);
      return { ...p, items: p.items.map(userOf) };
    },
    get: async (username) => userOf(await user(username)),
    async find(username) {
      const r = await users.find(username);
      return r ? userOf(r) : null;
    },
    async update(username, patch) {
      await user(username);
      const password_hash = patch.password !== undefined ? await hashPassword(checkPassword(patch.password)) : undefined;
      const r = await users.update(username, { role: patch.role || undefined, password_hash });
      // A new password ends the user's login sessions (personal tokens stay: they are revoked one by one).
      // Ended before `forget()`: its listeners (the live feed) check their tokens again at once.
      if (patch.password !== undefined) await tokens.endSessionsOf(username);
      forget();
      return userOf(r);
    },
    async delete(username) {
      await user(username);
      await tokens.deleteOf(username);
      await users.delete(username);
      forget();
    },
    async verify(username, password) {
      const r = username.length <= 64 ? await users.find(username) : null;
      const ok = await verifyPassword(password, r ? r.password_hash : DUMMY_HASH);
      if (!r || !ok) return null;
      return userOf(await users.update(username, { last_login_at: new Date() }));
    },
    async startSession(u, ttlMs) {
      const token = newToken('fls');
      const expires = new Date(Date.now() + ttlMs);
      const r = await tokens.create({ kind: 'session', token_hash: sha256(token), role: u.role, username: u.username, expires_at: expires });
      return { token, expires_at: expires.toISOString(), id: r.id };
    },
    async createToken(owner, { name, role }) {
      const username = owner.via === 'admin-token' ? null : owner.username;
      if (username && (await tokens.countPersonal(username)) >= MAX_TOKENS_PER_USER) {
        throw new FluxError('too_many', `a user may hold at most ${MAX_TOKENS_PER_USER} tokens; delete revoked or unused ones`, 409);
      }
      const token = newToken('flx');
      const r = await tokens.create({ kind: 'personal', token_hash: sha256(token), name, role: lesserRole(role, owner.role), username });
      return { ...tokenOf(r), token };
    },
    async listTokens(opts) {
      const p = await tokens.listPersonal(opts);
      return { ...p, items: p.items.map(tokenOf) };
    },
    async getToken(id) {
      const r = await tokens.findPersonal(id);
      if (!r) throw notFound('token', id);
      return tokenOf(r);
    },
    async revokeToken(id) {
      const r = await tokens.revoke(id, new Date());
      forget();
      return tokenOf(r);
    },
    async endSession(id) {
      await tokens.endSession(id);
      forget();
    },
    async resolve(token) {
      if (token.length > 200) return null;
      const hash = sha256(token);
      const now = Date.now();
      const hit = cache.get(hash);
      if (hit && hit.until > now && hit.expires > now) return hit.principal;
      if (hit) cache.delete(hash);
      const seen = generation;
      const r = await tokens.findByHash(hash);
      if (!r || r.revoked_at) return null;
      const expires = r.expires_at ? new Date(r.expires_at).getTime() : undefined;
      if (expires !== undefined && expires <= Date.now()) return null;
      const tokenRole = r.role as Role;
      let role = tokenRole;
      if (r.username !== null) {
        // The owner's current role counts: a demoted or deleted user's tokens shrink or stop with them.
        const owner = await users.find(r.username);
        if (!owner || !isRole(owner.role)) return null;
        role = r.kind === 'session' ? owner.role : lesserRole(tokenRole, owner.role);
      }
      if (!r.last_used_at || Date.now() - new Date(r.last_used_at).getTime() > TOUCH_EVERY_MS) void tokens.touch(r.id, new Date()).catch(() => undefined);
      const principal: Principal = { username: r.username ?? ADMIN_TOKEN_PRINCIPAL, role, via: r.kind === 'session' ? 'session' : 'token', token_id: r.id };
      if (expires !== undefined) principal.expires_at = expires;
      if (seen !== generation) return principal;
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
      cache.set(hash, { principal, until: now + CACHE_MS, expires: expires ?? Infinity });
      return principal;
    },
    async pruneSessions() {
      await tokens.pruneSessions(new Date());
    },
  };
}
