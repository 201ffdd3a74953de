/**
 * One-time join tokens. 256 random bits, so a plain SHA-256 is enough to store
 * them (no password hashing needed: nothing to brute-force). Only the hash is
 * ever written; the token itself is printed once by `bot add`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Recognisable prefix (secret scanners, logs): `mcpab_` + 43 base64url characters. */
export const TOKEN_PREFIX = 'mcpab_';

/** A new token; agents' start with `mcpag_` (kinds.ts). */
export function newJoinToken(prefix = TOKEN_PREFIX): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

export function tokenMatches(token: string, storedHash: string): boolean {
  const a = Buffer.from(hashToken(token));
  const b = Buffer.from(storedHash);
  return a.length === b.length && timingSafeEqual(a, b);
}
