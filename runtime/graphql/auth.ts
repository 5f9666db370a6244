/**
 * Who a GraphQL request or WebSocket connection is, and what it may do: the REST API's tokens and
 * roles (runtime/users), checked here in one place. HTTP sends `Authorization: Bearer <token>`; a
 * WebSocket sends it in `connectionParams` (`{ authorization: "Bearer …" }` or `{ token }`),
 * checked in `onConnect`. Queries and subscriptions need the viewer role, mutations the operator
 * role, like the REST routes they mirror.
 */
import { FluxError } from '../errors/index.ts';
import { bearerToken, roleAtLeast, type Principal, type Role, type Users } from '../users/index.ts';

export type { Principal } from '../users/index.ts';

/** The least role of a query or subscription (every role reads). */
export const READ_ROLE: Role = 'viewer';
/** The least role of a mutation (the REST writes' role). */
export const WRITE_ROLE: Role = 'operator';

/** The principal of a bearer token (a login session, an API token or FLUX_ADMIN_TOKEN), or null. */
export async function authenticate(users: Pick<Users, 'authenticate'>, token: string | undefined | null): Promise<Principal | null> {
  if (!token) return null;
  return users.authenticate(token);
}

/** Refuses (403 `forbidden` in extensions) a principal below `needs`. */
export function requireRole(principal: Principal | undefined, needs: Role): void {
  if (!principal) throw new FluxError('unauthorized', 'not authenticated', 401);
  if (!roleAtLeast(principal.role, needs)) throw new FluxError('forbidden', `this needs the ${needs} role; the token's role is ${principal.role}`, 403);
}

/** The token of an `Authorization` header value. */
export function tokenOfHeader(header: string | undefined | null): string | undefined {
  return bearerToken(header ?? undefined);
}

/** The token a WebSocket client sent in its connectionParams. */
export function tokenOfConnectionParams(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (!params) return undefined;
  const auth = params.authorization ?? params.Authorization;
  if (typeof auth === 'string') return bearerToken(auth) ?? auth;
  return typeof params.token === 'string' ? params.token : undefined;
}
