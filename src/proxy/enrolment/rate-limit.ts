/**
 * Per-source-address limit on join attempts: a token bucket per address (an
 * IPv6 address counts by its /64, what one host usually holds). A join that
 * succeeds gives its unit back (a token works once, so a success is no
 * guess); a refused one keeps it. A unit is taken before the token is looked
 * at, so parallel guesses cannot run ahead of the count.
 */
import { isIPv6 } from 'node:net';

export interface RateLimitOptions {
  /** Attempts an address may make at once. */
  burst: number;
  /** One attempt comes back every this many ms. */
  refillMs: number;
  /** Addresses tracked at most (the fullest buckets are forgotten first). */
  maxAddresses?: number;
  now?: () => number;
}

export const JOIN_RATE_LIMIT = { burst: 10, refillMs: 3000 } as const;

interface Bucket {
  units: number;
  at: number;
}

export class AddressRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;

  constructor(private readonly o: RateLimitOptions) {
    this.now = o.now ?? Date.now;
  }

  get burst(): number {
    return this.o.burst;
  }

  /** The key an address is counted under. */
  static keyOf(address: string | undefined): string {
    const a = (address ?? '?').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
    if (!isIPv6(a)) return a;
    const groups = expandIPv6(a);
    return `${groups.slice(0, 4).join(':')}::/64`;
  }

  /** Take one attempt; returns ms until the next one when none is left. */
  take(address: string | undefined): { ok: true } | { ok: false; retryAfterMs: number } {
    const key = AddressRateLimiter.keyOf(address);
    const b = this.refill(key);
    if (b.units < 1) return { ok: false, retryAfterMs: Math.max(1, Math.ceil((1 - b.units) * this.o.refillMs)) };
    b.units -= 1;
    return { ok: true };
  }

  /** Give back an attempt that turned out not to be a guess. */
  giveBack(address: string | undefined): void {
    const b = this.refill(AddressRateLimiter.keyOf(address));
    b.units = Math.min(this.o.burst, b.units + 1);
  }

  private refill(key: string): Bucket {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      this.trim();
      b = { units: this.o.burst, at: t };
      this.buckets.set(key, b);
      return b;
    }
    b.units = Math.min(this.o.burst, b.units + Math.max(0, t - b.at) / this.o.refillMs);
    b.at = t;
    return b;
  }

  private trim(): void {
    const max = this.o.maxAddresses ?? 10_000;
    if (this.buckets.size < max) return;
    // Forget buckets that are full again first, then the oldest.
    for (const [k, b] of this.buckets) {
      if (b.units + (this.now() - b.at) / this.o.refillMs >= this.o.burst) this.buckets.delete(k);
    }
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < max) break;
      this.buckets.delete(k);
    }
  }
}

function expandIPv6(a: string): string[] {
  const [head, tail] = a.includes('::') ? (a.split('::') as [string, string]) : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}
