/** The three roles, in order of what they may do; each includes the ones before it. */
export type Role = 'viewer' | 'operator' | 'admin';

export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** True when `has` may do what `needs` may. */
export function roleAtLeast(has: Role, needs: Role): boolean {
  return ROLES.indexOf(has) >= ROLES.indexOf(needs);
}

/** The lesser of two roles (a personal token never outranks its owner). */
export function lesserRole(a: Role, b: Role): Role {
  return ROLES.indexOf(a) <= ROLES.indexOf(b) ? a : b;
}

/** Who made a request: a user (by login session or personal token) or the break-glass admin token. */
export interface Principal {
  username: string;
  role: Role;
  via: 'admin-token' | 'session' | 'token';
  /** the session or personal token's id (not for the admin token) */
  token_id?: string;
  /** when a login session ends (ms since the epoch); none for personal tokens and the admin token */
  expires_at?: number;
}

/** The name the break-glass admin token acts under (in the audit log, the editor); no user may take it. */
export const ADMIN_TOKEN_PRINCIPAL = 'admin-token';

/** The token of an `Authorization: Bearer <token>` header value (REST, GraphQL, the live feed). */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}
