/**
 * One end of a tunnel (docs/protocol.md): what the bridge and a proxy-side
 * session both are. It outlives its WebSockets: it owns one at a time and
 * moves onto the next on a resume, and it owns everything that must survive
 * the move or must not be written twice:
 *
 * - the reliable channel (sequence numbers, acks, the outbox re-sent on attach);
 * - control frames: `ack` (a well-formed count only), `fatal` (a known error
 *   code only; anything else is ignored), the `hello` the proxy side sends;
 * - keepalive pings and dead-peer detection, on an injectable clock;
 * - frames that arrived before it took the socket (a FrameHold), handled in order;
 * - `fatal` + close code both ways: `close(err)` sends the reason and the
 *   catalogue's close code; a socket that closes becomes a `disconnect`
 *   event carrying the AccessError its fatal frame or close code stands for;
 * - the reading pause (the consumer is blocked: stdout on the bridge, the
 *   server's stdin on the proxy side), which a socket attached while paused
 *   inherits at once.
 *
 * It does not care which side of the TCP connection it is on: a remote agent
 * that dialled out to the proxy plays the proxy's side on its socket.
 *
 * Shaped like the MCP SDK's Transport: `attach` starts it on a socket,
 * `send` queues a data frame, `close` ends it; `message`, `writable` and
 * `disconnect` are its events. `close()` is graceful and memoised,
 * `destroy()` abrupt.
 */
import { EventEmitter } from 'node:events';
import { AccessError, isErrorCode } from '../errors.js';
import { realClock, type Clock } from './clock.js';
import { CLOSE, errorCodeForClose } from './close-codes.js';
import { decodeControl, encodeControl, type ControlFrame } from './control.js';
import type { FrameHold } from './frame-hold.js';
import { Keepalive } from './keepalive.js';
import { refuseTunnel } from './refuse.js';
import { ReliableChannel } from './reliable-channel.js';
import { OPEN, type TunnelSocket } from './socket.js';

export interface TunnelEndpointOptions {
  /** Outbox (or socket buffer) size above which `send` returns false; 'writable' follows. */
  highWaterBytes: number;
  /** Ping interval; a peer that missed the previous ping when the next is due is dead. 0: no keepalive. */
  keepaliveMs: number;
  /** Who is at the other end, for messages ("the proxy closed the tunnel …"). */
  peerName?: string;
  /** How long `close()` waits for the peer's close frame before cutting the connection (default 1 s). */
  closeTimeoutMs?: number;
  /** Acknowledge after this many frames (default 64)… */
  ackEvery?: number;
  /** …or this long after the first unacknowledged one (default 20 ms). */
  ackDelayMs?: number;
  clock?: Clock;
  /** Socket errors and keepalive verdicts, for a debug log. */
  debug?: (line: string) => void;
}

export interface TunnelEndpointEvents {
  /** A data frame from the peer (counted, acknowledged in due course). */
  message: [data: Buffer];
  /** `send` returned false before; the outbox has room again. */
  writable: [];
  /**
   * The socket went away without `close`/`detach`/`release` on this side: the
   * peer closed it (`err`: what its fatal frame or close code stands for,
   * undefined for a normal close or a drop), the connection broke (1006), or
   * the peer stopped answering keepalives (1006, reason says so). The
   * endpoint keeps its state and may be attached to another socket (resume).
   */
  disconnect: [err: AccessError | undefined, code: number, reason: string];
}

type Hello = Extract<ControlFrame, { type: 'hello' }>;

interface Listeners {
  message: (data: Buffer, isBinary: boolean) => void;
  close: (code: number, reason: Buffer) => void;
  error: (err: Error) => void;
}

/** 1006: the connection ended without a close frame (WebSocket's value; never sent). */
const ABNORMAL = 1006;
/** WebSocket readyState of a closed socket. */
const CLOSED = 3;

export class TunnelEndpoint extends EventEmitter<TunnelEndpointEvents> {
  private readonly channel: ReliableChannel;
  private readonly clock: Clock;
  private socket: TunnelSocket | undefined;
  private socketListeners: Listeners | undefined;
  private keepalive: Keepalive | undefined;
  /** The reason the current socket's peer sent, until its close code arrives. */
  private fatal: AccessError | undefined;
  private paused = false;
  /** `send` returned false: 'writable' is owed. */
  private waitingForRoom = false;
  private closed: Promise<void> | undefined;

  constructor(private readonly o: TunnelEndpointOptions) {
    super();
    this.clock = o.clock ?? realClock;
    this.channel = new ReliableChannel({
      highWaterBytes: o.highWaterBytes,
      ackEvery: o.ackEvery,
      ackDelayMs: o.ackDelayMs,
      clock: this.clock,
      onWritable: () => {
        if (!this.waitingForRoom) return;
        this.waitingForRoom = false;
        this.emit('writable');
      },
    });
  }

  get attached(): boolean {
    return this.socket !== undefined;
  }
  /** Reading is paused (by `pause`), whatever socket is attached. */
  get isPaused(): boolean {
    return this.paused;
  }
  /** `close` or `destroy` was called. */
  get isClosed(): boolean {
    return this.closed !== undefined;
  }
  /** Data frames received in this session (what a resume tells the peer). */
  get receivedCount(): number {
    return this.channel.receivedCount;
  }
  get sentCount(): number {
    return this.channel.sentCount;
  }
  /** Bytes (plus per-frame overhead) the peer has not acknowledged yet. */
  get pendingBytes(): number {
    return this.channel.pendingBytes;
  }
  /** True while `send` would return false. */
  get full(): boolean {
    return this.channel.full;
  }

  /**
   * Use this socket from now on (the first one, or a resume's). A socket
   * still attached is let go and terminated. `peerReceived` is how many of
   * our frames the peer already has: the rest are sent again, in order,
   * after `hello` when given. Frames a FrameHold kept are handled next, in
   * order, and its socket's close, if it closed (events may fire before
   * `attach` returns). After `close`/`destroy` the socket is terminated.
   */
  attach(socket: TunnelSocket, peerReceived: number, opts: { hello?: Hello; held?: FrameHold } = {}): void {
    const held = opts.held?.release();
    if (this.closed) {
      socket.terminate();
      return;
    }
    if (this.socket && this.socket !== socket) this.detach()?.terminate();
    if (this.socket === socket) return;
    this.socket = socket;
    this.fatal = undefined;
    const listeners: Listeners = {
      message: (data, isBinary) => this.received(socket, data, isBinary),
      close: (code, reason) => this.socketClosed(socket, code, reason.toString()),
      error: (err) => this.o.debug?.(`tunnel: ${err.message}`),
    };
    this.socketListeners = listeners;
    socket.on('message', listeners.message);
    socket.on('close', listeners.close);
    socket.on('error', listeners.error);
    // Before anything more is read: the consumer may still be blocked.
    if (this.paused && !socket.isPaused) socket.pause();
    if (opts.hello) this.sendControl(socket, opts.hello);
    this.channel.attach(socket, peerReceived);
    this.keepalive = new Keepalive(socket, this.o.keepaliveMs, () => this.dead(socket), this.clock);
    for (const f of held?.frames ?? []) {
      if (this.socket !== socket) return;
      this.received(socket, f.data, f.isBinary);
    }
    if (this.socket !== socket) return;
    if (held?.closed) this.socketClosed(socket, held.closed.code, held.closed.reason.toString());
    // Closed before anyone listened (its 'close' event is gone): a drop.
    else if (socket.readyState === CLOSED) this.socketClosed(socket, ABNORMAL, '');
  }

  /**
   * Let go of the socket without closing it (its frames from now on are
   * ignored: the peer re-sends them after a resume). Returns it, reading
   * again, so that it can still read its close frame.
   */
  detach(): TunnelSocket | undefined {
    const socket = this.socket;
    if (!socket) return undefined;
    this.socket = undefined;
    this.fatal = undefined;
    this.keepalive?.stop();
    this.keepalive = undefined;
    this.channel.detach();
    const l = this.socketListeners!;
    this.socketListeners = undefined;
    socket.off('message', l.message);
    socket.off('close', l.close);
    socket.off('error', l.error);
    socket.on('error', ignore);
    if (socket.isPaused) socket.resume();
    return socket;
  }

  /** Let go of the socket and close it with `code`; the endpoint stays, for a resume (a rotation: 4002). */
  release(code: number, reason?: string): void {
    this.detach()?.close(code, reason);
  }

  /** Queue a data frame (sent now when attached, else on the next attach). False: wait for 'writable'. */
  send(data: Buffer): boolean {
    if (this.closed) return false;
    this.channel.send(data);
    if (!this.channel.full) return true;
    this.waitingForRoom = true;
    return false;
  }

  /** Stop reading the peer's frames until `resume`, on this socket and any attached later. */
  pause(): void {
    this.paused = true;
    if (this.socket && !this.socket.isPaused) this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    if (this.socket?.isPaused) this.socket.resume();
  }

  /**
   * Forget the session (a new one starts): counts and outbox go, and the
   * frames the old peer never acknowledged are returned (`transmitted` ones
   * may or may not have arrived). A socket still attached is terminated.
   */
  reset(): Array<{ data: Buffer; transmitted: boolean }> {
    this.detach()?.terminate();
    return this.channel.reset();
  }

  /**
   * End the tunnel: with `err`, a `fatal` frame and the catalogue's close
   * code for it; without, 1000. Resolves once the socket has closed (it is
   * cut after `closeTimeoutMs`). Memoised; no `disconnect` follows.
   */
  close(err?: AccessError): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      const socket = this.detach();
      if (!socket || socket.readyState > OPEN) return resolve();
      const cancel = this.clock.setTimeout(() => {
        socket.terminate();
        resolve();
      }, this.o.closeTimeoutMs ?? 1000);
      socket.once('close', () => {
        cancel();
        resolve();
      });
      if (err) refuseTunnel(socket, err);
      else socket.close(CLOSE.NORMAL);
    });
    return this.closed;
  }

  /** End at once: the socket is cut, no close frame, no event. */
  destroy(err?: AccessError): void {
    if (err) this.o.debug?.(`tunnel destroyed: ${err.message}`);
    this.closed ??= Promise.resolve();
    this.detach()?.terminate();
  }

  private received(socket: TunnelSocket, data: Buffer, isBinary: boolean): void {
    if (socket !== this.socket) return;
    if (isBinary) {
      this.channel.noteReceived();
      this.emit('message', data);
      return;
    }
    const frame = decodeControl(data.toString('utf8'));
    // Anything else (unknown types, a count that is not a non-negative integer,
    // an error code the catalogue does not have) is ignored.
    if (frame?.type === 'ack') {
      if (Number.isSafeInteger(frame.received) && frame.received >= 0) this.channel.acknowledge(frame.received);
    } else if (frame?.type === 'fatal') {
      if (isErrorCode(frame.code) && typeof frame.message === 'string')
        this.fatal = new AccessError(
          frame.code,
          frame.message,
          typeof frame.hint === 'string' ? { hint: frame.hint } : {},
        );
    }
  }

  private socketClosed(socket: TunnelSocket, code: number, reason: string): void {
    if (socket !== this.socket) return;
    const fatal = this.fatal;
    this.detach();
    const ec = errorCodeForClose(code);
    const err =
      fatal ??
      (ec
        ? new AccessError(
            ec,
            `${this.o.peerName ?? 'the peer'} closed the tunnel (${code}${reason ? `: ${reason}` : ''})`,
          )
        : undefined);
    this.emit('disconnect', err, code, reason);
  }

  private dead(socket: TunnelSocket): void {
    if (socket !== this.socket) return;
    const why = `${this.o.peerName ?? 'the peer'} stopped answering keepalives`;
    this.o.debug?.(why);
    this.detach();
    socket.terminate();
    this.emit('disconnect', undefined, ABNORMAL, why);
  }

  private sendControl(socket: TunnelSocket, frame: ControlFrame): void {
    if (socket.readyState !== OPEN) return;
    try {
      socket.send(encodeControl(frame));
    } catch {
      /* closing: its close event follows */
    }
  }
}

function ignore(): void {}
