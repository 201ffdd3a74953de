/** A Clock (src/tunnel/clock.ts) that moves only when a test says so. */
import type { Clock } from '../../src/tunnel/clock.js';

interface Timer {
  at: number;
  every?: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  now = 0;
  private timers: Timer[] = [];

  setTimeout(fn: () => void, ms: number): () => void {
    return this.add({ at: this.now + ms, fn, cancelled: false });
  }
  setInterval(fn: () => void, ms: number): () => void {
    return this.add({ at: this.now + ms, every: ms, fn, cancelled: false });
  }

  /** Move time forward, running every timer that falls due, in time order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const next = this.timers.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.now = next.at;
      if (next.every) next.at += next.every;
      else next.cancelled = true;
      next.fn();
    }
    this.now = end;
    this.timers = this.timers.filter((t) => !t.cancelled);
  }

  /** Timers still waiting. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  private add(t: Timer): () => void {
    this.timers.push(t);
    return () => {
      t.cancelled = true;
    };
  }
}
