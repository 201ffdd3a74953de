/**
 * Token buckets for audit events that anyone can cause (refused connections
 * before a session exists): each key (`unauthenticated`, or one identity)
 * may record `burst` events at once and `perSecond` on average; what is over
 * the limit is counted, and one summary event says how many were suppressed
 * (written with the next recorded event of that key, or by `flush`).
 * The clock is injected so the limit can be tested without sleeping.
 */
export interface RateLimitOptions {
  burst: number;
  perSecond: number;
  /** Most keys tracked at once (oldest dropped first), so the limiter itself stays bounded. */
  maxKeys?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
  suppressed: number;
  firstSuppressedAt: number;
}

export class AuditRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private readonly maxKeys: number;

  constructor(private readonly opts: RateLimitOptions) {
    this.now = opts.now ?? Date.now;
    this.maxKeys = opts.maxKeys ?? 10_000;
  }

  /**
   * May an event of `key` be recorded now? When it may and earlier ones were
   * suppressed, `suppressed` says how many (the caller records a summary).
   */
  take(key: string): { allowed: boolean; suppressed: number; since?: number } {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      b = { tokens: this.opts.burst, at: t, suppressed: 0, firstSuppressedAt: 0 };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.at) / 1000) * this.opts.perSecond);
    b.at = t;
    if (b.tokens < 1) {
      if (b.suppressed === 0) b.firstSuppressedAt = t;
      b.suppressed++;
      return { allowed: false, suppressed: 0 };
    }
    b.tokens -= 1;
    const suppressed = b.suppressed;
    const since = b.firstSuppressedAt;
    b.suppressed = 0;
    return suppressed > 0 ? { allowed: true, suppressed, since } : { allowed: true, suppressed: 0 };
  }

  /** Counts suppressed and not yet summarised, per key; resets them. */
  drain(): Array<{ key: string; suppressed: number; since: number }> {
    const out: Array<{ key: string; suppressed: number; since: number }> = [];
    for (const [key, b] of this.buckets) {
      if (b.suppressed > 0) {
        out.push({ key, suppressed: b.suppressed, since: b.firstSuppressedAt });
        b.suppressed = 0;
      }
    }
    return out;
  }
}
