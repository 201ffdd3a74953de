/** TTL rules for issued identities. */
import { describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import {
  MAX_IDENTITY_TTL_MS,
  MIN_IDENTITY_TTL_MS,
  checkIdentityTtl,
  parseIdentityTtl,
} from '../../src/identity/ttl.js';

function usage(fn: () => unknown): AccessError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AccessError);
    expect((err as AccessError).code).toBe('USAGE');
    return err as AccessError;
  }
  throw new Error('expected a USAGE error');
}

describe('identity TTL', () => {
  it('accepts 5s up to 30d', () => {
    expect(MIN_IDENTITY_TTL_MS).toBe(5_000);
    expect(MAX_IDENTITY_TTL_MS).toBe(30 * 86_400_000);
    expect(parseIdentityTtl('5s')).toBe(5_000);
    expect(parseIdentityTtl('30s')).toBe(30_000);
    expect(parseIdentityTtl('10m')).toBe(600_000);
    expect(parseIdentityTtl('1h30m')).toBe(5_400_000);
    expect(parseIdentityTtl('30d')).toBe(MAX_IDENTITY_TTL_MS);
  });

  it.each([
    ['4999ms', 'TTL 4999ms is too short: the minimum is 5s'],
    ['0s', 'TTL 0s is too short: the minimum is 5s'],
    ['31d', 'TTL 31d is too long: the maximum is 30d'],
    ['1 hour', 'TTL "1 hour" is not a duration'],
    ['60', 'TTL "60" has no unit'],
  ])('refuses %s: %s', (ttl, message) => {
    expect(usage(() => parseIdentityTtl(ttl)).message).toBe(message);
  });

  it('says why there is a maximum', () => {
    expect(usage(() => parseIdentityTtl('31d')).hint).toMatch(/short-lived/);
  });

  it('applies the same limits to a TTL given in ms', () => {
    expect(usage(() => checkIdentityTtl(NaN)).message).toMatch(/too short/);
    expect(checkIdentityTtl(5_000)).toBe(5_000);
  });
});
