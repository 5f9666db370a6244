/**
 * The stream key kept in the data dir (`stream.key`, 32 random bytes, mode 0600): it encrypts the
 * camera and push URLs at rest (AES-256-GCM) and signs short-lived playback URLs (HMAC-SHA256).
 * A database dump alone therefore reveals no camera password.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export interface StreamKeys {
  encrypt(plain: string): string;
  /** throws when the text was not made with this key */
  decrypt(sealed: string): string;
  /** `EXPIRY.MAC` for `scope` (a stream id), valid until `expiresAt` (ms) */
  sign(scope: string, expiresAt: number): string;
  verify(scope: string, sig: string, now?: number): boolean;
}

export function loadStreamKeys(dataDir: string): StreamKeys {
  const file = path.join(dataDir, 'stream.key');
  let master: Buffer;
  try {
    master = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    master = randomBytes(32);
    // wx: two processes starting together must not each write a different key
    try {
      fs.writeFileSync(file, master, { mode: 0o600, flag: 'wx' });
    } catch {
      master = fs.readFileSync(file);
    }
  }
  if (master.length !== 32) throw new Error(`${file} is not a 32-byte stream key`);
  const encKey = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'flux stream url encryption', 32));
  const macKey = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'flux stream url signing', 32));
  const mac = (scope: string, exp: number) => createHmac('sha256', macKey).update(`${scope}\n${exp}`).digest();
  return {
    encrypt(plain) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', encKey, iv);
      const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
      return `v1.${iv.toString('base64url')}.${c.getAuthTag().toString('base64url')}.${body.toString('base64url')}`;
    },
    decrypt(sealed) {
      const [v, iv, tag, body] = sealed.split('.');
      if (v !== 'v1' || !iv || !tag || body === undefined) throw new Error('not an encrypted stream secret');
      const d = createDecipheriv('aes-256-gcm', encKey, Buffer.from(iv, 'base64url'));
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(body, 'base64url')), d.final()]).toString('utf8');
    },
    sign(scope, expiresAt) {
      const exp = Math.floor(expiresAt / 1000);
      return `${exp}.${mac(scope, exp).toString('base64url')}`;
    },
    verify(scope, sig, now = Date.now()) {
      const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(sig);
      if (!m) return false;
      const exp = Number(m[1]);
      if (exp * 1000 < now) return false;
      const given = Buffer.from(m[2]!, 'base64url');
      const expected = mac(scope, exp);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
