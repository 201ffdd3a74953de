/**
 * Timers, injectable: the tunnel's acknowledgements, keepalive and close
 * deadlines run on a `Clock`, so tests drive them by hand instead of sleeping.
 * The real clock's timers never keep the process alive.
 */
export interface Clock {
  /** Calls `fn` once after `ms`; returns a function that cancels it. */
  setTimeout(fn: () => void, ms: number): () => void;
  /** Calls `fn` every `ms`; returns a function that stops it. */
  setInterval(fn: () => void, ms: number): () => void;
}

export const realClock: Clock = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};
