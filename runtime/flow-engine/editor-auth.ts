/**
 * The editor's sign-in, backed by FLUX's users (runtime/users): only admins use the editor.
 *  - The login form takes an admin user's name and password; an operator, a viewer or an unknown
 *    name is refused. Break-glass: the user name `admin` with the admin token as password; Node-RED
 *    then uses the admin token itself as the editor's token (`user.token`), so it keeps working
 *    whatever happened to the users.
 *  - The editor's admin API also takes `Authorization: Bearer` with the admin token or an API token
 *    (login session or personal token) whose role is admin.
 *  - A user demoted or deleted loses the editor at once: Node-RED looks the user up on every request.
 * Logins (API and editor) and flow deploys go to the audit log.
 */
import type { Request, RequestHandler } from 'express';
import type { EditorAuth, EditorUser } from '../../settings.ts';
import { ADMIN_TOKEN_PRINCIPAL, type Users } from '../users/index.ts';

/** The user name the break-glass login takes (with the admin token as password). */
export const BREAK_GLASS_USER = 'admin';

const admin = (username: string): EditorUser => ({ username, permissions: '*' });

export function editorAuth(users: Users): EditorAuth {
  return {
    async users(username) {
      if (typeof username !== 'string' || username.length > 64) return null;
      const u = await users.accounts.find(username);
      return u?.role === 'admin' ? admin(u.username) : null;
    },
    async authenticate(username, password) {
      if (typeof username !== 'string' || typeof password !== 'string') return null;
      if (username === BREAK_GLASS_USER && users.isAdminToken(password)) return { ...admin(ADMIN_TOKEN_PRINCIPAL), token: password } as EditorUser;
      const u = await users.accounts.verify(username, password);
      return u?.role === 'admin' ? admin(u.username) : null;
    },
    async tokens(token) {
      if (typeof token !== 'string') return null;
      const p = await users.authenticate(token);
      return p?.role === 'admin' ? admin(p.username) : null;
    },
  };
}

/** Records each editor login attempt (after the limiter and the bounds of editor-guard.ts). */
export function auditEditorLogin(users: Users): RequestHandler {
  return (req: Request, res, next) => {
    const body = (req.body ?? {}) as { username?: unknown; grant_type?: unknown };
    if (body.grant_type === 'password') {
      const name = typeof body.username === 'string' ? body.username : '';
      res.once('finish', () => {
        const ok = res.statusCode >= 200 && res.statusCode < 300;
        users.audit.record({ username: name, action: ok ? 'login' : 'login_failed', target: 'editor', status: res.statusCode, address: req.ip ?? req.socket.remoteAddress ?? null });
      });
    }
    next();
  };
}

/** Node-RED audit events worth keeping: changes to the flows (who deployed what). */
const FLOW_EVENTS: Record<string, string> = { 'flows.set': 'flows.deploy', 'flow.add': 'flow.add', 'flow.update': 'flow.update', 'flow.remove': 'flow.remove' };

/** Takes Node-RED's audit records (level 98); true when it was one (so it is not logged as well). */
export function auditFlowEvent(users: Users, rec: { level: number; event?: string; user?: unknown; ip?: string; path?: string; type?: string; id?: string }): boolean {
  if (rec.level !== 98) return false;
  const action = rec.event ? FLOW_EVENTS[rec.event] : undefined;
  if (action) {
    const user = rec.user as { username?: string } | undefined;
    users.audit.record({ username: user?.username ?? null, role: 'admin', action, target: `/editor${rec.path ?? ''}`, status: 200, address: rec.ip ?? null, detail: rec.type ?? rec.id ?? null });
  }
  return true;
}
