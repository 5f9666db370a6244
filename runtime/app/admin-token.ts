/** The admin token: FLUX_ADMIN_TOKEN, or one generated on first start and kept in the data dir (mode 0600). */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface AdminToken {
  token: string;
  /** true when it was generated just now (the CLI prints it once) */
  generated: boolean;
  file?: string;
}

export function resolveAdminToken(dataDir: string, fromEnv: string | undefined): AdminToken {
  if (fromEnv) return { token: fromEnv, generated: false };
  const file = path.join(dataDir, 'admin-token');
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token.length >= 16) return { token, generated: false, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(24).toString('base64url');
  fs.writeFileSync(file, token + '\n', { mode: 0o600 });
  return { token, generated: true, file };
}
