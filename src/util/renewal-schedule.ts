/**
 * When the bot renews. The next renewal is due after the renewal interval or
 * half the remaining lifetime, whichever is sooner, minus up to 10 % jitter
 * (so a fleet started together does not renew in lockstep). Half the lifetime
 * leaves the other half for retries: a 1 h certificate with the default 20 m
 * interval is renewed at 18–20 m; a 5 s one every 2.25–2.5 s.
 */
export const JITTER = 0.1;

export function renewalDelay(msLeft: number, intervalMs: number, random: () => number = Math.random): number {
  const base = Math.min(intervalMs, Math.max(0, msLeft) / 2);
  return Math.max(0, Math.floor(base * (1 - JITTER * random())));
}

/**
 * Pause before retry number `attempt` (0-based) after a failure: doubling from
 * 500 ms up to 30 s, never more than a fifth of what is left of the
 * certificate (so several tries fit before it expires), at least 200 ms.
 */
export function retryDelay(attempt: number, msLeft: number, random: () => number = Math.random): number {
  const backoff = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
  const capped = Math.min(backoff, Math.max(200, msLeft / 5));
  return Math.max(200, Math.floor(capped * (1 - JITTER * random())));
}
