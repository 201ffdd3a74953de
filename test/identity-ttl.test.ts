/** TTL rules for issued identities. */
import { describe, expect, it } from 'vitest';
import { AccessError } from '../src/errors.js';
import { MAX_IDENTITY_TTL_MS, MIN_IDENTITY_TTL_MS, checkIdentityTtl, parseIdentityTtl } from '../src/identity/ttl.js';

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

  it('refuses shorter than 5s, saying the minimum', () => {
    expect(usage(() => parseIdentityTtl('4999ms')).message).toBe('TTL 4999ms is too short: the minimum is 5s');
    expect(usage(() => parseIdentityTtl('0s')).message).toBe('TTL 0s is too short: the minimum is 5s');
  });

  it('refuses longer than 30d, saying the maximum and why', () => {
    const err = usage(() => parseIdentityTtl('31d'));
    expect(err.message).toBe('TTL 31d is too long: the maximum is 30d');
    expect(err.hint).toMatch(/short-lived/);
  });

  it('refuses text that is not a duration', () => {
    expect(usage(() => parseIdentityTtl('1 hour')).message).toBe('TTL "1 hour" is not a duration');
    expect(usage(() => parseIdentityTtl('60')).message).toBe('TTL "60" has no unit');
  });

  it('applies the same limits to a TTL given in ms', () => {
    expect(usage(() => checkIdentityTtl(NaN)).message).toMatch(/too short/);
    expect(checkIdentityTtl(5_000)).toBe(5_000);
  });
});
