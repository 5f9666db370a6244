/**
 * The users and API tokens repositories: users with their password hash and role, and the tokens
 * (login sessions and personal tokens) of which only the SHA-256 is kept. Hashing, roles and the
 * token cache are runtime/users'. test/registry/accounts.test.ts runs both on SQLite, MariaDB and
 * PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import { Op, UniqueConstraintError, type Model, type WhereOptions } from 'sequelize';
import { conflict, notFound } from '../../errors/index.ts';
import { iso, isUuid, type Db, type Page } from '../rows.ts';

export interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  role: string;
  last_login_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface UserRepository {
  /** users in all, or with `role` */
  count(role?: string): Promise<number>;
  /** 409 when the user name is taken */
  create(input: { username: string; password_hash: string; role: string }): Promise<UserRow>;
  /** by user name */
  list(page: { limit: number; offset: number }): Promise<Page<UserRow>>;
  find(username: string): Promise<UserRow | null>;
  /** 404 when there is no such user */
  update(username: string, patch: { role?: string; password_hash?: string; last_login_at?: Date }): Promise<UserRow>;
  /** 404 when there is no such user; their tokens stay (see TokenRepository.deleteOf) */
  delete(username: string): Promise<void>;
}

export type TokenKind = 'session' | 'personal';

export interface TokenRow {
  id: string;
  kind: TokenKind;
  token_hash: string;
  name: string | null;
  role: string;
  /** the owner; null for a token made with the break-glass admin token */
  username: string | null;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

export interface TokenRepository {
  /** 409 when the hash is stored already */
  create(input: { kind: TokenKind; token_hash: string; role: string; username: string | null; name?: string | null; expires_at?: Date | null }): Promise<TokenRow>;
  findByHash(tokenHash: string): Promise<TokenRow | null>;
  /** a personal token by id; null for a session's id, an unknown one, or one that is not a UUID */
  findPersonal(id: string): Promise<TokenRow | null>;
  countPersonal(username: string): Promise<number>;
  /** personal tokens, newest first; of one owner when `username` is given */
  listPersonal(opts: { username?: string; limit: number; offset: number }): Promise<Page<TokenRow>>;
  /** Sets revoked_at once (a revoked token keeps its first time); 404 for no such personal token. */
  revoke(id: string, at: Date): Promise<TokenRow>;
  /** records a use */
  touch(id: string, at: Date): Promise<void>;
  /** deletes one login session (no error when it is gone already) */
  endSession(id: string): Promise<void>;
  /** deletes the login sessions of a user */
  endSessionsOf(username: string): Promise<void>;
  /** deletes every token of a user */
  deleteOf(username: string): Promise<void>;
  /** deletes the login sessions that expired before `now`; answers how many */
  pruneSessions(now: Date): Promise<number>;
}


function userOf(m: Model): UserRow {
  const v = m.get({ plain: true }) as Record<string, unknown>;
  return { id: v.id as string, username: v.username as string, password_hash: v.password_hash as string, role: v.role as string, last_login_at: iso(v.last_login_at), created_at: iso(v.created_at)!, updated_at: iso(v.updated_at)! };
}

function tokenOf(m: Model): TokenRow {
  const v = m.get({ plain: true }) as Record<string, unknown>;
  return {
    id: v.id as string,
    kind: v.kind as TokenKind,
    token_hash: v.token_hash as string,
    name: (v.name as string | null) ?? null,
    role: v.role as string,
    username: (v.username as string | null) ?? null,
    expires_at: iso(v.expires_at),
    last_used_at: iso(v.last_used_at),
    revoked_at: iso(v.revoked_at),
    created_at: iso(v.created_at)!,
  };
}

export function createUserRepository(db: Db): UserRepository {
  const { User } = db.models;
  const byName = async (username: string) => {
    const r = await User.findOne({ where: { username } });
    if (!r) throw notFound('user', username);
    return r;
  };
  return {
    count: (role) => User.count(role ? { where: { role } } : {}),
    async create({ username, password_hash, role }) {
      try {
        return userOf(await User.create({ id: randomUUID(), username, password_hash, role }));
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`user '${username}' already exists`);
        throw err;
      }
    },
    async list({ limit, offset }) {
      const { rows, count } = await User.findAndCountAll({ order: [['username', 'ASC']], limit, offset });
      return { items: rows.map(userOf), total: count, limit, offset };
    },
    async find(username) {
      const r = await User.findOne({ where: { username } });
      return r ? userOf(r) : null;
    },
    async update(username, patch) {
      const r = await byName(username);
      const changes: Record<string, unknown> = {};
      if (patch.role !== undefined) changes.role = patch.role;
      if (patch.password_hash !== undefined) changes.password_hash = patch.password_hash;
      if (patch.last_login_at !== undefined) changes.last_login_at = patch.last_login_at;
      await r.update(changes);
      return userOf(r);
    },
    async delete(username) {
      const n = await User.destroy({ where: { username } });
      if (n === 0) throw notFound('user', username);
    },
  };
}

export function createTokenRepository(db: Db): TokenRepository {
  const { Token } = db.models;
  const personal = async (id: string) => (isUuid(id) ? await Token.findOne({ where: { id, kind: 'personal' } }) : null);
  return {
    async create(input) {
      try {
        return tokenOf(await Token.create({ id: randomUUID(), ...input, name: input.name ?? null, expires_at: input.expires_at ?? null }));
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict('a token with this hash exists already');
        throw err;
      }
    },
    async findByHash(tokenHash) {
      const r = await Token.findOne({ where: { token_hash: tokenHash } });
      return r ? tokenOf(r) : null;
    },
    async findPersonal(id) {
      const r = await personal(id);
      return r ? tokenOf(r) : null;
    },
    countPersonal: (username) => Token.count({ where: { username, kind: 'personal' } }),
    async listPersonal({ username, limit, offset }) {
      const where: WhereOptions = { kind: 'personal' };
      if (username !== undefined) Object.assign(where, { username });
      const { rows, count } = await Token.findAndCountAll({ where, order: [['created_at', 'DESC'], ['id', 'ASC']], limit, offset });
      return { items: rows.map(tokenOf), total: count, limit, offset };
    },
    async revoke(id, at) {
      if (isUuid(id)) await Token.update({ revoked_at: at }, { where: { id, kind: 'personal', revoked_at: null } });
      const r = await personal(id);
      if (!r) throw notFound('token', id);
      return tokenOf(r);
    },
    async touch(id, at) {
      await Token.update({ last_used_at: at }, { where: { id } });
    },
    async endSession(id) {
      if (isUuid(id)) await Token.destroy({ where: { id, kind: 'session' } });
    },
    async endSessionsOf(username) {
      await Token.destroy({ where: { username, kind: 'session' } });
    },
    async deleteOf(username) {
      await Token.destroy({ where: { username } });
    },
    pruneSessions: (now) => Token.destroy({ where: { kind: 'session', expires_at: { [Op.lt]: now } } }),
  };
}
