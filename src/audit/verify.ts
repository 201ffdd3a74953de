/**
 * `audit verify`: walk the chain and report the first line that breaks it.
 *
 * A line breaks the chain when it is not a complete event, when its hash
 * does not match its bytes (edited), or when its `prev` is not the hash of
 * the event before it (an event was deleted, or events were reordered).
 * Incomplete lines are accepted only when the very next event is the
 * writer's `audit.recovered` event naming their sizes (see ./log.ts).
 *
 * Streams the file: memory is bounded by the longest line plus one short
 * entry per event (to tell "reordered" from "deleted").
 */
import { createReadStream } from 'node:fs';
import { AccessError } from '../errors.js';
import { checkLine, GENESIS } from './chain.js';

export type VerifyResult =
  { ok: true; events: number; head: string } | { ok: false; events: number; line: number; problem: string };

export async function verifyAuditFile(path: string): Promise<VerifyResult> {
  let prevHash = GENESIS;
  let events = 0;
  let lineNo = 0;
  const seen = new Map<string, number>(); // hash → line, to name a reordering
  let torn: Array<{ line: number; bytes: number; problem: string; terminated: boolean }> = [];

  const fail = (line: number, problem: string): VerifyResult => ({ ok: false, events, line, problem });

  const onLine = (buf: Buffer, terminated: boolean): VerifyResult | undefined => {
    lineNo++;
    const c = checkLine(buf);
    if (!c.ok) {
      torn.push({ line: lineNo, bytes: buf.length, problem: c.problem, terminated });
      return undefined;
    }
    if (torn.length > 0) {
      const names =
        c.event.type === 'audit.recovered' &&
        sameSizes(
          c.event.torn,
          torn.map((t) => t.bytes),
        );
      if (!names || c.prev !== prevHash) return fail(torn[0]!.line, torn[0]!.problem);
      torn = [];
    }
    if (c.prev !== prevHash) {
      const at = seen.get(c.prev);
      if (lineNo === 1 || prevHash === GENESIS) {
        return fail(lineNo, 'the first event does not start the chain: events before it were deleted');
      }
      return fail(
        lineNo,
        at !== undefined
          ? `events are out of order: this event follows the event on line ${at}, not the one on line ${lineNo - 1}`
          : `the event before this one is missing (deleted) or out of order: its prev hash matches no earlier event`,
      );
    }
    seen.set(c.hash, lineNo);
    prevHash = c.hash;
    events++;
    return undefined;
  };

  let result: VerifyResult | undefined;
  try {
    result = await eachLine(path, onLine);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AccessError(
      'AUDIT_UNAVAILABLE',
      `audit log ${path} cannot be read (${code === 'ENOENT' ? 'it does not exist' : (code ?? (err as Error).message)})`,
    );
  }
  if (result) return result;
  if (torn.length > 0) {
    const first = torn[0]!;
    const problem = first.terminated
      ? first.problem
      : 'the file ends in the middle of an event: it was truncated, or the writer was interrupted';
    return fail(first.line, problem);
  }
  return { ok: true, events, head: prevHash };
}

function sameSizes(recorded: unknown, actual: number[]): boolean {
  return Array.isArray(recorded) && recorded.length === actual.length && recorded.every((n, i) => n === actual[i]);
}

/**
 * Calls `onLine` with each line's exact bytes (without the newline); a final
 * line without a newline is passed too. Stops early when `onLine` returns a result.
 */
export async function eachLine<T>(
  path: string,
  onLine: (line: Buffer, terminated: boolean) => T | undefined,
): Promise<T | undefined> {
  const stream = createReadStream(path, { highWaterMark: 256 * 1024 });
  let parts: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl < 0) break;
        const piece = chunk.subarray(start, nl);
        const line = parts.length ? Buffer.concat([...parts, piece]) : piece;
        parts = [];
        const r = onLine(line, true);
        if (r !== undefined) return r;
        start = nl + 1;
      }
      if (start < chunk.length) parts.push(chunk.subarray(start));
    }
    if (parts.length) return onLine(Buffer.concat(parts), false);
    return undefined;
  } finally {
    stream.destroy();
  }
}
