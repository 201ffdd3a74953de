/**
 * Writes messages to the MCP client, one per line, honouring backpressure:
 * when the stream's buffer is full, the tunnel is paused until 'drain'.
 */
import type { Writable } from 'node:stream';
import { writeLine } from '../tunnel/write-line.js';


export class StdoutWriter {
  private blocked = false;
  private broken = false;
  onError: (() => void) | undefined;

  constructor(private readonly stream: Writable, private readonly pause: () => void, private readonly resume: () => void) {
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

  write(message: Buffer): void {
    if (this.broken) return;
    const ok = writeLine(this.stream, message);
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
      this.stream.write('', () => { clearTimeout(t); resolve(); });
    });
  }
}
