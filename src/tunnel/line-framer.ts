/**
 * Splits a byte stream into newline-delimited messages.
 *
 * - Works on bytes, so a multi-byte character split across chunks is never
 *   corrupted; decoding happens once per whole line.
 * - Each byte is scanned once: a new chunk is searched for '\n' only in
 *   itself, never the growing buffer again, so time is linear in line length.
 * - A line that fits in one chunk is returned as a view of that chunk (no copy).
 * - CRLF is accepted; blank (whitespace-only) lines are skipped.
 * - A line longer than `maxLine` is discarded as it streams past (memory stays
 *   bounded) and reported as `oversize` with its size and, where it can be
 *   found, its top-level JSON-RPC id.
 */
import { TopLevelScanner } from './top-level-scanner.js';

export type FramedLine =
  { kind: 'line'; bytes: Buffer } | { kind: 'oversize'; size: number; id: string | number | null | undefined };

export class LineFramer {
  private readonly maxLine: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding: { size: number; scanner: TopLevelScanner } | undefined;

  constructor(maxLine: number) {
    this.maxLine = maxLine;
  }

  /** Bytes held for an unfinished line. */
  get buffered(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer, out: (line: FramedLine) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) {
        this.hold(chunk.subarray(start));
        return;
      }
      // The common case, a whole line in this chunk: no copy, nothing held.
      if (this.pendingBytes === 0 && this.discarding === undefined && nl - start <= this.maxLine)
        emitLine(chunk.subarray(start, nl), out);
      else {
        this.hold(chunk.subarray(start, nl));
        this.finishLine(out);
      }
      start = nl + 1;
    }
  }

  /** End of input: a final line without a newline still counts. */
  end(out: (line: FramedLine) => void): void {
    if (this.pendingBytes > 0 || this.discarding) this.finishLine(out);
  }

  private hold(part: Buffer): void {
    if (part.length === 0) return;
    if (this.discarding) {
      this.discarding.size += part.length;
      this.discarding.scanner.push(part);
      return;
    }
    if (this.pendingBytes + part.length > this.maxLine) {
      const scanner = new TopLevelScanner();
      for (const p of this.pending) scanner.push(p);
      scanner.push(part);
      this.discarding = { size: this.pendingBytes + part.length, scanner };
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    this.pending.push(part);
    this.pendingBytes += part.length;
  }

  private finishLine(out: (line: FramedLine) => void): void {
    if (this.discarding) {
      const { size, scanner } = this.discarding;
      scanner.end();
      this.discarding = undefined;
      out({ kind: 'oversize', size, id: scanner.id });
      return;
    }
    const line = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    emitLine(line, out);
  }
}

/** A whole line (without its LF): CR dropped, blank lines skipped. */
function emitLine(line: Buffer, out: (line: FramedLine) => void): void {
  if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
  if (isBlank(line)) return;
  out({ kind: 'line', bytes: line });
}

function isBlank(line: Buffer): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}
