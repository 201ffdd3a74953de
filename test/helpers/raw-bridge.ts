/**
 * `mcp-access connect` driven byte by byte, for what an SDK client would
 * never send: bad lines, split chunks, CRLF, over-size messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export class RawBridge {
  readonly messages: Array<Record<string, unknown>> = [];
  stdoutText = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(readonly proc: ChildProcess) {
    proc.stdout!.setEncoding('utf8');
    let partial = '';
    proc.stdout!.on('data', (t: string) => {
      this.stdoutText += t;
      const lines = (partial + t).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) this.messages.push(JSON.parse(l) as Record<string, unknown>);
      this.wake();
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (t: string) => {
      this.stderr += t;
      this.wake();
    });
    this.exited = new Promise((r) =>
      proc.once('exit', (code) => {
        this.wake();
        r(code);
      }),
    );
  }

  static spawn(args: string[], env: NodeJS.ProcessEnv = {}): RawBridge {
    return new RawBridge(
      spawn(process.execPath, args, {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      }),
    );
  }

  write(data: string | Buffer): void {
    this.proc.stdin!.write(data);
  }

  send(msg: unknown): void {
    this.write(`${JSON.stringify(msg)}\n`);
  }

  end(): Promise<number | null> {
    this.proc.stdin!.end();
    return this.exited;
  }

  /** The first message (in arrival order) that matches, waiting for it (bounded). */
  async next(match: (m: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(
          `no matching message (${this.messages.length} so far, last: ${JSON.stringify(this.messages.at(-1))?.slice(0, 300)}); stderr: ${this.stderr.slice(-3000)}`,
        );
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  async response(id: unknown, timeoutMs?: number): Promise<Record<string, unknown>> {
    return this.next((m) => m.id === id && ('result' in m || 'error' in m), timeoutMs);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export const INIT = (id: number | string = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
