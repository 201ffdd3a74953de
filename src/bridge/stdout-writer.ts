/**
 * Writes messages to the MCP client, one per line, honouring backpressure:
 * when the stream's buffer is full, the tunnel is paused until 'drain'.
 * A message is never more than one line (see `oneLine`).
 */
import type { Writable } from 'node:stream';
import { writeLine } from '../tunnel/write-line.js';

export class StdoutWriter {
  private blocked = false;
  private broken = false;
  onError: (() => void) | undefined;

  constructor(
    private readonly stream: Writable,
    private readonly pause: () => void,
    private readonly resume: () => void,
  ) {
    stream.on('error', () => {
      this.broken = true;
      this.onError?.();
    });
    stream.on('drain', () => {
      if (!this.blocked) return;
      this.blocked = false;
      this.resume();
    });
  }

  /** `isOneLine`: the caller knows the message has no raw CR or LF (a strict scan of it found none). */
  write(message: Buffer, isOneLine = false): void {
    if (this.broken) return;
    const ok = writeLine(this.stream, isOneLine ? message : oneLine(message));
    if (!ok && !this.blocked) {
      this.blocked = true;
      this.pause();
    }
  }

  /** Resolves when everything written has been handed to the OS (or after `timeoutMs`). */
  flush(timeoutMs: number): Promise<void> {
    if (this.broken || this.stream.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.stream.write('', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/**
 * The message as one line. In JSON a raw CR or LF can only be whitespace
 * between tokens (inside strings they must be escaped), so turning each into
 * a space leaves the JSON value exactly as it was, while the client, which
 * reads its input line by line, can no longer be handed two messages in one
 * frame. (A frame that is not JSON stays one line too.) The common case costs
 * two byte searches and no copy.
 */
export function oneLine(message: Buffer): Buffer {
  if (!message.includes(0x0a) && !message.includes(0x0d)) return message;
  const out = Buffer.from(message);
  for (let i = 0; i < out.length; i++) if (out[i] === 0x0a || out[i] === 0x0d) out[i] = 0x20;
  return out;
}
