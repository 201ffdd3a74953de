/**
 * The hash chain's line format, shared by the writer and the verifier.
 *
 * An event is serialised once, `body = JSON.stringify(event)`, where the
 * event's last member is `prev` (the previous event's hash, or 64 zeros for
 * the first). Its hash is SHA-256 over the UTF-8 bytes of `body`. The stored
 * line is `body` with `,"hash":"<hex>"` inserted before the final `}`:
 *
 *   {"time":…,"id":…,"type":…,…,"prev":"<64 hex>","hash":"<64 hex>"}\n
 *
 * So the verifier needs no canonical JSON: it hashes the line's own bytes
 * minus the fixed-length hash member.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';

export const GENESIS = '0'.repeat(64);
/** `,"hash":"` + 64 hex + `"}` */
export const HASH_SUFFIX_BYTES = 9 + 64 + 2;
const SUFFIX_RE = /,"hash":"([0-9a-f]{64})"\}$/;

/**
 * The stored line (without its newline) of an event serialised as `json`,
 * chained to `prev`, and its hash: `json` with `prev` and then `hash` as its
 * last members.
 */
export function seal(json: string, prev: string): { line: string; hash: string } {
  const open = `${json.slice(0, -1)},"prev":"${prev}"`;
  const hash = oneShotHash('sha256', `${open}}`, 'hex');
  return { line: `${open},"hash":"${hash}"}`, hash };
}

export type LineCheck =
  { ok: true; event: Record<string, unknown>; hash: string; prev: string } | { ok: false; problem: string };

/** Check one line (without its newline): well-formed, and its hash matches its bytes. */
export function checkLine(line: Buffer): LineCheck {
  if (line.length === 0) return { ok: false, problem: 'the line is empty' };
  const tail = line.subarray(Math.max(0, line.length - HASH_SUFFIX_BYTES)).toString('latin1');
  const m = SUFFIX_RE.exec(tail);
  if (m === null || line.length <= HASH_SUFFIX_BYTES) {
    return {
      ok: false,
      problem: 'the line is not a complete audit event (no hash at its end): it was cut short or edited',
    };
  }
  const hash = m[1]!;
  const body = line.subarray(0, line.length - HASH_SUFFIX_BYTES);
  const actual = createHash('sha256').update(body).update('}').digest('hex');
  if (actual !== hash)
    return { ok: false, problem: 'the event was edited after it was written (its hash does not match its content)' };
  let event: unknown;
  try {
    event = JSON.parse(line.toString('utf8'));
  } catch {
    return { ok: false, problem: 'the line is not valid JSON' };
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event))
    return { ok: false, problem: 'the line is not an event object' };
  const prev = (event as Record<string, unknown>).prev;
  if (typeof prev !== 'string' || !/^[0-9a-f]{64}$/.test(prev))
    return { ok: false, problem: 'the event has no valid prev hash' };
  return { ok: true, event: event as Record<string, unknown>, hash, prev };
}

/** The hash at the end of a complete line's text, if it has one (no verification). */
export function trailingHash(text: string): string | undefined {
  return SUFFIX_RE.exec(text)?.[1];
}
