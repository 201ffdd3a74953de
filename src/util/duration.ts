/** Parse and print durations such as `30s`, `10m`, `1h30m`, `250ms`, `2d`. */
import { AccessError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, what = 'duration'): number {
  const s = String(text).trim();
  if (/^\d+$/.test(s)) {
    throw new AccessError('USAGE', `${what} "${s}" has no unit`, { hint: 'write it like 30s, 10m, 1h or 1h30m' });
  }
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (s.length === 0 || pos !== s.length) {
    throw new AccessError('USAGE', `${what} "${s}" is not a duration`, { hint: 'write it like 30s, 10m, 1h or 1h30m' });
  }
  return Math.round(total);
}

/** `3m`, `1h5m`, `12s`, `450ms`: the two largest units. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  let rest = Math.floor(abs / 1000);
  const parts: string[] = [];
  const units: Array<[string, number]> = [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ];
  for (const [u, n] of units) {
    if (rest >= n) {
      parts.push(`${Math.floor(rest / n)}${u}`);
      rest %= n;
    }
    if (parts.length === 2) break;
  }
  return parts.join('');
}
