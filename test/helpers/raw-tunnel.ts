/**
 * A raw tunnel client: speaks docs/protocol.md directly over mTLS + WebSocket,
 * as an attacker's own client would, instead of the stock bridge. It sends
 * any bytes as a data frame (line breaks included), resumes with any
 * certificate, and records everything the proxy sends back.
 */
import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { parseIdentityFile } from '../../src/identity/identity-file.js';

export interface RawHello {
  type: 'hello';
  session: string;
  resumeToken: string;
  server: string;
  resumed: boolean;
  received: number;
  graceMs: number;
}

export class RawTunnel {
  /** Data frames from the proxy, parsed (undefined when not JSON). */
  readonly messages: Array<Record<string, unknown>> = [];
  readonly controls: Array<Record<string, unknown>> = [];
  hello: RawHello | undefined;
  closed: { code: number; reason: string } | undefined;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        try {
          this.messages.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
        } catch {
          this.messages.push({ notJson: data.toString('utf8') });
        }
      } else {
        const frame = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (frame.type === 'hello') this.hello = frame as unknown as RawHello;
        this.controls.push(frame);
      }
      this.wake();
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    socket.on('error', () => this.wake());
  }

  /** Open a tunnel (`server`), or resume one (`resume`), with the identity file's certificate. */
  static async open(
    address: string,
    identityPath: string,
    target: { server: string } | { resume: string; received: number },
  ): Promise<RawTunnel> {
    const parts = parseIdentityFile(await readFile(identityPath, 'utf8'), identityPath);
    const qs = new URLSearchParams(
      'server' in target ? { server: target.server } : { resume: target.resume, received: String(target.received) },
    );
    const socket = new WebSocket(`wss://${address}/v1/tunnel?${qs.toString()}`, 'mcp-access.v1', {
      key: parts.keyPem,
      cert: parts.certPem,
      ca: parts.caPems,
      rejectUnauthorized: false,
      perMessageDeflate: false,
    });
    const t = new RawTunnel(socket);
    await t.until(() => t.hello !== undefined || t.closed !== undefined, 'hello or close');
    return t;
  }

  /** Send these exact bytes as one data frame. */
  sendRaw(bytes: string | Buffer): void {
    this.socket.send(typeof bytes === 'string' ? Buffer.from(bytes) : bytes, { binary: true });
  }

  send(msg: unknown): void {
    this.sendRaw(JSON.stringify(msg));
  }

  async response(id: unknown, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await this.until(
      () => (found = this.messages.find((m) => m.id === id && ('result' in m || 'error' in m))) !== undefined,
      `response ${JSON.stringify(id)}`,
      timeoutMs,
    );
    return found!;
  }

  async next(
    match: (m: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs = 20_000,
  ): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await this.until(() => (found = this.messages.find(match)) !== undefined, what, timeoutMs);
    return found!;
  }

  /** Drop the connection without a clean close (the session waits for a resume). */
  drop(): void {
    this.socket.terminate();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.socket.close(1000);
    await this.until(() => this.closed !== undefined, 'close', 10_000).catch(() => this.socket.terminate());
  }

  async until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline)
        throw new Error(
          `raw tunnel: no ${what} (messages: ${JSON.stringify(this.messages).slice(-800)}, closed: ${JSON.stringify(this.closed)})`,
        );
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
