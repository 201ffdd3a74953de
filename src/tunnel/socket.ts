/**
 * What the tunnel needs of a WebSocket: the subset of `ws`'s WebSocket it
 * uses, whichever side of the TCP connection opened it (the bridge dials the
 * proxy; a remote agent dials the proxy too, yet plays the proxy's side of
 * the tunnel on that socket). Tests hand in a fake with the same shape.
 */
import type { Corkable } from './write-batch.js';

export interface TunnelSocket {
  /** 0 connecting, 1 open, 2 closing, 3 closed (WebSocket's values). */
  readonly readyState: number;
  /** Bytes queued by `send` that the OS has not taken yet. */
  readonly bufferedAmount: number;
  readonly isPaused: boolean;
  send(data: Buffer | string, options?: { binary?: boolean }, cb?: (err?: Error) => void): void;
  ping(): void;
  /** Stop reading from the network (no 'message', 'pong' or 'close' until `resume`). */
  pause(): void;
  resume(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
  on(event: 'pong', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown;
  off(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
  off(event: 'pong', listener: () => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
}

export const OPEN = 1;

/**
 * The TCP or TLS socket under a `ws` WebSocket (its `_socket`), so that the
 * frames of one turn of the event loop can leave in one write
 * (write-batch.ts); undefined for a socket without one (the tests' fakes).
 */
export function underlyingSocket(socket: TunnelSocket): Corkable | undefined {
  const raw = (socket as { _socket?: Corkable | null })._socket;
  return raw && typeof raw.cork === 'function' ? raw : undefined;
}
