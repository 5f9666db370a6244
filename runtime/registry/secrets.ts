/**
 * Device secrets: generated with 32 random bytes, stored as a salted HMAC-SHA256, compared in
 * constant time. A fast hash is deliberate: secrets are machine-generated (or at least 16 chars),
 * so stretching buys nothing while a reconnect storm of 10k devices must authenticate in
 * milliseconds, not minutes (docs/operations.md).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const MIN_SECRET_LENGTH = 16;

export function generateSecret(): string {
  return randomBytes(24).toString('base64url');
}

export function hashSecret(secret: string): string {
  const salt = randomBytes(16).toString('base64url');
  const digest = createHmac('sha256', salt).update(secret, 'utf8').digest('base64url');
  return `hs256$${salt}$${digest}`;
}

export function verifySecret(secret: string, stored: string): boolean {
  const [scheme, salt, digest] = stored.split('$');
  if (scheme !== 'hs256' || !salt || !digest) return false;
  const expected = Buffer.from(digest, 'base64url');
  const actual = createHmac('sha256', salt).update(secret, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
