/** How long an issued identity may live. */
import { AccessError } from '../errors.js';
import { formatDuration, parseDuration } from '../util/duration.js';

/** Short enough for renewal tests, long enough for a TLS handshake. */
export const MIN_IDENTITY_TTL_MS = 5_000;
/** Short-lived is the point: beyond a month, revocation by expiry stops meaning much. */
export const MAX_IDENTITY_TTL_MS = 30 * 86_400_000;
export const DEFAULT_IDENTITY_TTL = '1h';

export function checkIdentityTtl(ttlMs: number, shown = formatDuration(ttlMs)): number {
  if (!Number.isFinite(ttlMs) || ttlMs < MIN_IDENTITY_TTL_MS) {
    throw new AccessError('USAGE', `TTL ${shown} is too short: the minimum is ${formatDuration(MIN_IDENTITY_TTL_MS)}`, {
      hint: 'a certificate must outlive a connection attempt; use e.g. --ttl 30s or --ttl 1h',
    });
  }
  if (ttlMs > MAX_IDENTITY_TTL_MS) {
    throw new AccessError('USAGE', `TTL ${shown} is too long: the maximum is ${formatDuration(MAX_IDENTITY_TTL_MS)}`, {
      hint: 'identities are meant to be short-lived; renew them with a bot instead of issuing long ones',
    });
  }
  return ttlMs;
}

/** `--ttl` text (`30s`, `10m`, `1h`) to ms, within the limits. */
export function parseIdentityTtl(text: string): number {
  return checkIdentityTtl(parseDuration(text, 'TTL'), String(text).trim());
}
