/**
 * Field readers shared by the YAML configurations (proxy, agent): each names
 * the field and says what is wrong, through the caller's `fail`.
 */
import { parseDuration } from './duration.js';
import { parseSize } from './size.js';

/** Report a bad field: throws (CONFIG_INVALID, naming the file and field). */
export type Fail = (field: string, what: string) => never;

/** Names of clusters, servers, agents: 1-64 letters, digits, dot, dash, underscore. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function count(v: unknown, field: string, fail: Fail): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(field, 'must be a whole number of at least 1');
  return v;
}

export function str(v: unknown, field: string, fail: Fail): string {
  if (typeof v !== 'string' || v.length === 0)
    fail(field, v === undefined ? 'is required' : 'must be a non-empty string');
  return v;
}

export function stringMap(v: unknown, field: string, fail: Fail): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) fail(field, 'must be a mapping of names to strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean')
      fail(`${field}.${k}`, 'must be a string');
    out[k] = String(val);
  }
  return out;
}

export function duration(v: unknown, field: string, fail: Fail): number {
  try {
    return parseDuration(String(v), field);
  } catch {
    return fail(field, `"${String(v)}" is not a duration like 30s, 2m or 1h`);
  }
}

export function size(v: unknown, field: string, fail: Fail): number {
  const n = parseSize(String(v));
  if (n === undefined || n < 1024) fail(field, `"${String(v)}" must be a size like 64MiB (at least 1KiB)`);
  return n;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
