/**
 * Users and their tokens in the registry's database: login sessions (expiring) and personal API
 * tokens (until revoked) are random strings of which only the SHA-256 is kept.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { DataTypes, Op, UniqueConstraintError, type Model, type ModelStatic, type Sequelize } from 'sequelize';
import { FluxError, conflict, notFound } from '../errors/index.ts';
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
const iso = (d: unknown) => (d ? new Date(d as string).toISOString() : null);

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

export function defineAccountModels(sequelize: Sequelize): { User: ModelStatic<Model>; Token: ModelStatic<Model> } {
  const User = sequelize.define(
    'User',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      username: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      password_hash: { type: DataTypes.STRING(200), allowNull: false },
      role: { type: DataTypes.STRING(16), allowNull: false },
      last_login_at: { type: DataTypes.DATE, allowNull: true },
    },
    { underscored: true, timestamps: true, createdAt: 'created_at', updatedAt: 'updated_at', tableName: 'users' },
  );
  const Token = sequelize.define(
    'ApiToken',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      kind: { type: DataTypes.STRING(16), allowNull: false },
      token_hash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      name: { type: DataTypes.STRING(100), allowNull: true },
      role: { type: DataTypes.STRING(16), allowNull: false },
      username: { type: DataTypes.STRING(64), allowNull: true },
      expires_at: { type: DataTypes.DATE, allowNull: true },
      last_used_at: { type: DataTypes.DATE, allowNull: true },
      revoked_at: { type: DataTypes.DATE, allowNull: true },
    },
    { underscored: true, timestamps: true, createdAt: 'created_at', updatedAt: false, tableName: 'api_tokens' },
  );
  return { User, Token };
}

function plainUser(r: Model): User {
  const v = r.get({ plain: true }) as Record<string, unknown>;
  return { id: v.id as string, username: v.username as string, role: v.role as Role, last_login_at: iso(v.last_login_at), created_at: iso(v.created_at)!, updated_at: iso(v.updated_at)! };
}

function plainToken(r: Model): ApiToken {
  const v = r.get({ plain: true }) as Record<string, unknown>;
  return { id: v.id as string, name: (v.name as string) ?? '', role: v.role as Role, username: (v.username as string | null) ?? null, last_used_at: iso(v.last_used_at), revoked_at: iso(v.revoked_at), created_at: iso(v.created_at)! };
}

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
export function createAccounts(sequelize: Sequelize, onChange: () => void = () => undefined): Accounts {
  const { User, Token } = defineAccountModels(sequelize);
  /** token hash → who it stands for, until when (the cache's time, and the session's expiry) */
  const cache = new Map<string, { principal: Principal; until: number; expires: number }>();
  const forget = () => {
    cache.clear();
    onChange();
  };
  const row = async (username: string) => {
    const r = await User.findOne({ where: { username } });
    if (!r) throw notFound('user', username);
    return r;
  };
  const tokenRow = async (id: string) => {
    const r = /^[0-9a-f-]{36}$/i.test(id) ? await Token.findOne({ where: { id, kind: 'personal' } }) : null;
    if (!r) throw notFound('token', id);
    return r;
  };

  return {
    count: (role) => User.count(role ? { where: { role } } : {}),
    async create({ username, password, role }) {
      checkUsername(username);
      const password_hash = await hashPassword(checkPassword(password));
      try {
        return plainUser(await User.create({ id: randomUUID(), username, password_hash, role }));
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`user '${username}' already exists`);
        throw err;
      }
    },
    async list({ limit, offset }) {
      const { rows, count } = await User.findAndCountAll({ order: [['username', 'ASC']], limit, offset });
      return { items: rows.map(plainUser), total: count, limit, offset };
    },
    get: async (username) => plainUser(await row(username)),
    async find(username) {
      const r = await User.findOne({ where: { username } });
      return r ? plainUser(r) : null;
    },
    async update(username, patch) {
      const r = await row(username);
      const changes: Record<string, unknown> = {};
      if (patch.role) changes.role = patch.role;
      if (patch.password !== undefined) changes.password_hash = await hashPassword(checkPassword(patch.password));
      await r.update(changes);
      forget();
      // A new password ends the user's login sessions (personal tokens stay: they are revoked one by one).
      if (patch.password !== undefined) await Token.destroy({ where: { username, kind: 'session' } });
      return plainUser(r);
    },
    async delete(username) {
      const r = await row(username);
      await Token.destroy({ where: { username } });
      await r.destroy();
      forget();
    },
    async verify(username, password) {
      const r = username.length <= 64 ? await User.findOne({ where: { username } }) : null;
      const ok = await verifyPassword(password, r ? (r.get('password_hash') as string) : DUMMY_HASH);
      if (!r || !ok) return null;
      await r.update({ last_login_at: new Date() });
      return plainUser(r);
    },
    async startSession(user, ttlMs) {
      const token = newToken('fls');
      const expires = new Date(Date.now() + ttlMs);
      const r = await Token.create({ id: randomUUID(), kind: 'session', token_hash: sha256(token), role: user.role, username: user.username, expires_at: expires });
      return { token, expires_at: expires.toISOString(), id: r.get('id') as string };
    },
    async createToken(owner, { name, role }) {
      const username = owner.via === 'admin-token' ? null : owner.username;
      if (username && (await Token.count({ where: { username, kind: 'personal' } })) >= MAX_TOKENS_PER_USER) {
        throw new FluxError('too_many', `a user may hold at most ${MAX_TOKENS_PER_USER} tokens; delete revoked or unused ones`, 409);
      }
      const token = newToken('flx');
      const r = await Token.create({ id: randomUUID(), kind: 'personal', token_hash: sha256(token), name, role: lesserRole(role, owner.role), username });
      return { ...plainToken(r), token };
    },
    async listTokens({ username, limit, offset }) {
      const where: Record<string, unknown> = { kind: 'personal' };
      if (username !== undefined) where.username = username;
      const { rows, count } = await Token.findAndCountAll({ where, order: [['created_at', 'DESC']], limit, offset });
      return { items: rows.map(plainToken), total: count, limit, offset };
    },
    getToken: async (id) => plainToken(await tokenRow(id)),
    async revokeToken(id) {
      const r = await tokenRow(id);
      if (!r.get('revoked_at')) await r.update({ revoked_at: new Date() });
      forget();
      return plainToken(r);
    },
    async endSession(id) {
      await Token.destroy({ where: { id, kind: 'session' } });
      forget();
    },
    async resolve(token) {
      if (token.length > 200) return null;
      const hash = sha256(token);
      const now = Date.now();
      const hit = cache.get(hash);
      if (hit && hit.until > now && hit.expires > now) return hit.principal;
      if (hit) cache.delete(hash);
      const r = await Token.findOne({ where: { token_hash: hash } });
      if (!r || r.get('revoked_at')) return null;
      const expires = r.get('expires_at') as Date | null;
      if (expires && new Date(expires).getTime() <= Date.now()) return null;
      const tokenRole = r.get('role') as Role;
      const username = r.get('username') as string | null;
      const kind = r.get('kind') as string;
      let role = tokenRole;
      if (username !== null) {
        // The owner's current role counts: a demoted or deleted user's tokens shrink or stop with them.
        const owner = await User.findOne({ where: { username }, attributes: ['role'] });
        if (!owner || !isRole(owner.get('role'))) return null;
        role = kind === 'session' ? (owner.get('role') as Role) : lesserRole(tokenRole, owner.get('role') as Role);
      }
      const used = r.get('last_used_at') as Date | null;
      if (!used || Date.now() - new Date(used).getTime() > TOUCH_EVERY_MS) void r.update({ last_used_at: new Date() }).catch(() => undefined);
      const principal: Principal = { username: username ?? ADMIN_TOKEN_PRINCIPAL, role, via: kind === 'session' ? 'session' : 'token', token_id: r.get('id') as string };
      if (expires) principal.expires_at = new Date(expires).getTime();
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
      cache.set(hash, { principal, until: now + CACHE_MS, expires: expires ? new Date(expires).getTime() : Infinity });
      return principal;
    },
    async pruneSessions() {
      await Token.destroy({ where: { kind: 'session', expires_at: { [Op.lt]: new Date() } } });
    },
  };
}
