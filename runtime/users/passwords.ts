/**
 * Passwords hashed with scrypt (node:crypto, no native dependency): `scrypt$N$r$p$salt$hash`.
 * Unlike device secrets (runtime/registry/secrets.ts), passwords are chosen by people, so the hash
 * is deliberately slow (~50 ms and 16 MiB per check at N=2^14).
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const N = 1 << 14;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

function scrypt(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, KEY_LENGTH, { ...opts, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))));
}

/** How a hash is stored: `scrypt$N$r$p$salt$key`. */
function stored(salt: Buffer, key: Buffer): string {
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  return stored(salt, await scrypt(password, salt, { N, r: R, p: P }));
}

/**
 * Checked against when the user name is unknown, so both cases cost one scrypt of the same work. No
 * password hashes to its random key, and it takes no hashing to make: a hash computed at start left
 * its 16 MiB working buffer in a malloc arena of an idle process (docs/operations.md "Memory").
 */
export const DUMMY_HASH = stored(randomBytes(16), randomBytes(KEY_LENGTH));

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64url');
  const cost = { N: Number(n), r: Number(r), p: Number(p) };
  if (![cost.N, cost.r, cost.p].every((v) => Number.isInteger(v) && v > 0) || cost.N > 1 << 20) return false;
  const actual = await scrypt(password, Buffer.from(salt, 'base64url'), cost);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
