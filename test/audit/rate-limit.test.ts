/** The token buckets that bound refused-connection events, on an injected clock. */
import { describe, expect, it } from 'vitest';
import { AuditRateLimiter } from '../../src/audit/rate-limit.js';

describe('AuditRateLimiter', () => {
  it('a burst, then the average rate; what is over it is counted and reported once', () => {
    let now = 0;
    const rl = new AuditRateLimiter({ burst: 3, perSecond: 1, now: () => now });
    expect([1, 2, 3, 4, 5].map(() => rl.take('anon').allowed)).toEqual([true, true, true, false, false]);
    now += 1000;
    expect(rl.take('anon')).toEqual({ allowed: true, suppressed: 2, since: 0 });
    expect(rl.take('anon').allowed).toBe(false);
    expect(rl.drain()).toEqual([{ key: 'anon', suppressed: 1, since: 1000 }]);
    expect(rl.drain()).toEqual([]);
  });

  it('keys are independent, and the number of keys is bounded', () => {
    const rl = new AuditRateLimiter({ burst: 1, perSecond: 1, maxKeys: 2, now: () => 0 });
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('a').allowed).toBe(false);
    expect(rl.take('b').allowed).toBe(true);
    expect(rl.take('c').allowed).toBe(true); // 'a' (oldest) dropped
    expect(rl.take('a').allowed).toBe(true);
  });
});
