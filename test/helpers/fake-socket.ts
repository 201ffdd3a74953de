/**
 * A stand-in for a `ws` WebSocket in unit tests of the tunnel (as `ws` tests
 * its receiver with hand-made frames): frames go in by hand, and everything
 * the code under test does to the socket is recorded in order.
 */
import { EventEmitter } from 'node:events';
import type { TunnelSocket } from '../../src/tunnel/socket.js';

export type SocketCall =
  | { op: 'data'; text: string }
  | { op: 'control'; frame: unknown }
  | { op: 'close'; code?: number; reason?: string }
  | { op: 'ping' | 'pause' | 'resume' | 'terminate' };

export class FakeSocket extends EventEmitter implements TunnelSocket {
  readyState = 1;
  bufferedAmount = 0;
  readonly calls: SocketCall[] = [];
  private paused = false;

  get isPaused(): boolean {
    return this.paused;
  }

  send(data: Buffer | string, options?: { binary?: boolean }, cb?: (err?: Error) => void): void {
    if (this.readyState !== 1) throw new Error('fake socket: send on a socket that is not open');
    if (options?.binary) this.calls.push({ op: 'data', text: data.toString() });
    else this.calls.push({ op: 'control', frame: JSON.parse(data.toString()) as unknown });
    cb?.();
  }
  ping(): void {
    this.calls.push({ op: 'ping' });
  }
  pause(): void {
    this.paused = true;
    this.calls.push({ op: 'pause' });
  }
  resume(): void {
    this.paused = false;
    this.calls.push({ op: 'resume' });
  }
  close(code?: number, reason?: string): void {
    this.calls.push({ op: 'close', code, reason });
    if (this.readyState === 1) this.readyState = 2;
  }
  terminate(): void {
    this.calls.push({ op: 'terminate' });
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.emit('close', 1006, Buffer.alloc(0));
  }

  // ---- the peer's side ----------------------------------------------------

  /** A data frame from the peer. */
  peerData(text: string): void {
    this.emit('message', Buffer.from(text), true);
  }
  /** A control (text) frame from the peer: an object is JSON-encoded, a string sent as is. */
  peerControl(frame: unknown): void {
    this.emit('message', Buffer.from(typeof frame === 'string' ? frame : JSON.stringify(frame)), false);
  }
  peerPong(): void {
    this.emit('pong', Buffer.alloc(0));
  }
  /** The connection closed with this code (the peer's close frame, or 1006). */
  peerClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.emit('close', code, Buffer.from(reason));
  }

  // ---- what was sent --------------------------------------------------------

  /** The data frames sent, as text. */
  get dataSent(): string[] {
    return this.calls.flatMap((c) => (c.op === 'data' ? [c.text] : []));
  }
  /** The control frames sent. */
  get controlSent(): unknown[] {
    return this.calls.flatMap((c) => (c.op === 'control' ? [c.frame] : []));
  }
  /** Everything done to the socket, in order, as short strings ("data A", "control ack 3", "close 4404"). */
  get log(): string[] {
    return this.calls.map((c) => {
      if (c.op === 'data') return `data ${c.text}`;
      if (c.op === 'control') {
        const f = c.frame as { type: string; received?: number; code?: string };
        return `control ${f.type}${f.received !== undefined ? ` ${f.received}` : ''}${f.code ? ` ${f.code}` : ''}`;
      }
      if (c.op === 'close') return `close ${c.code ?? ''}`.trim();
      return c.op;
    });
  }
}
