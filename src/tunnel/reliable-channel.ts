/**
 * One direction-pair of a tunnel session that can outlive its WebSocket.
 *
 * Sequence numbers are implicit: the n-th data frame sent in a direction is
 * number n, so data frames stay verbatim. Each side acknowledges how many it
 * has received; unacknowledged frames stay in the outbox (bounded by bytes,
 * the caller pauses its input when `full`). After a reconnect each side tells
 * the other how many it received and re-sends exactly the rest: nothing lost,
 * nothing twice.
 */
import { realClock, type Clock } from './clock.js';
import { encodeControl } from './control.js';
import { OPEN, underlyingSocket, type TunnelSocket } from './socket.js';
import { holdWrites } from './write-batch.js';

export interface ReliableChannelOptions {
  /** Outbox size at which `full` becomes true (the caller stops reading). */
  highWaterBytes: number;
  /** Send an ack after this many unacknowledged received frames… */
  ackEvery?: number;
  /** …or this long after the first one. */
  ackDelayMs?: number;
  onWritable?: () => void;
  /** Timers for the delayed ack (tests pass a manual clock). */
  clock?: Clock;
}

interface Outgoing {
  seq: number;
  data: Buffer;
  transmitted: boolean;
}

/**
 * What a queued frame costs beyond its bytes (its objects, the socket's write
 * request): counted in the outbox, so that many small frames cannot hold far
 * more memory than the limit says (measured: scripts/untrusted-memory.mjs).
 */
const FRAME_OVERHEAD = 512;
/** `send`'s options for a data frame (one object for all, `ws` copies them). */
const BINARY = { binary: true } as const;

export class ReliableChannel {
  private socket: TunnelSocket | undefined;
  private outbox: Outgoing[] = [];
  private outboxHead = 0;
  private outboxBytes = 0;
  private sent = 0;
  private received = 0;
  private lastAckSent = 0;
  private cancelAck: (() => void) | undefined;
  private readonly opts: Required<Omit<ReliableChannelOptions, 'onWritable'>> &
    Pick<ReliableChannelOptions, 'onWritable'>;

  constructor(opts: ReliableChannelOptions) {
    this.opts = {
      ...opts,
      ackEvery: opts.ackEvery ?? 64,
      ackDelayMs: opts.ackDelayMs ?? 20,
      clock: opts.clock ?? realClock,
    };
  }

  /** Data frames received so far (what we tell the peer on resume). */
  get receivedCount(): number {
    return this.received;
  }
  get sentCount(): number {
    return this.sent;
  }
  get pendingBytes(): number {
    return this.outboxBytes;
  }
  get attached(): boolean {
    return this.socket !== undefined;
  }

  /** True when the caller should stop feeding `send` (outbox or socket buffer full). */
  get full(): boolean {
    const sock = this.socket;
    return (
      this.outboxBytes > this.opts.highWaterBytes ||
      (sock !== undefined && sock.bufferedAmount > this.opts.highWaterBytes)
    );
  }

  /** Queue a data frame; it goes out now when a socket is attached. */
  send(data: Buffer): void {
    const seq = ++this.sent;
    const entry: Outgoing = { seq, data, transmitted: false };
    this.outbox.push(entry);
    this.outboxBytes += data.length + FRAME_OVERHEAD;
    entry.transmitted = this.transmit(data);
  }

  /** Count a data frame from the peer; schedules an acknowledgement. */
  noteReceived(): void {
    this.received++;
    if (this.received - this.lastAckSent >= this.opts.ackEvery) this.sendAck();
    else if (!this.cancelAck) {
      this.cancelAck = this.opts.clock.setTimeout(() => {
        this.cancelAck = undefined;
        this.sendAck();
      }, this.opts.ackDelayMs);
    }
  }

  /** The peer has received `count` of our frames: drop them from the outbox. */
  acknowledge(count: number): void {
    const wasFull = this.full;
    while (this.outboxHead < this.outbox.length && this.outbox[this.outboxHead]!.seq <= count) {
      this.outboxBytes -= this.outbox[this.outboxHead]!.data.length + FRAME_OVERHEAD;
      this.outbox[this.outboxHead] = undefined as unknown as Outgoing;
      this.outboxHead++;
    }
    if (this.outboxHead > 1024 && this.outboxHead * 2 > this.outbox.length) {
      this.outbox = this.outbox.slice(this.outboxHead);
      this.outboxHead = 0;
    }
    if (wasFull && !this.full) this.opts.onWritable?.();
  }

  /**
   * Use this socket from now on. `peerReceived` is how many of our frames the
   * peer already has: those are dropped and the rest are sent again, in order.
   */
  attach(socket: TunnelSocket, peerReceived: number): void {
    this.socket = socket;
    this.acknowledge(peerReceived);
    for (let i = this.outboxHead; i < this.outbox.length; i++) {
      const entry = this.outbox[i]!;
      entry.transmitted = this.transmit(entry.data) || entry.transmitted;
    }
    if (this.received > this.lastAckSent) this.sendAck();
  }

  detach(): void {
    this.socket = undefined;
    this.cancelAck?.();
    this.cancelAck = undefined;
  }

  /**
   * Forget everything for a new session, returning the frames the old peer
   * never acknowledged: `transmitted` ones may or may not have arrived there.
   */
  reset(): Array<{ data: Buffer; transmitted: boolean }> {
    const unacked = this.outbox.slice(this.outboxHead).map(({ data, transmitted }) => ({ data, transmitted }));
    this.detach();
    this.outbox = [];
    this.outboxHead = 0;
    this.outboxBytes = 0;
    this.sent = 0;
    this.received = 0;
    this.lastAckSent = 0;
    return unacked;
  }

  private transmit(data: Buffer): boolean {
    const sock = this.socket;
    if (!sock || sock.readyState !== OPEN) return false;
    holdWrites(underlyingSocket(sock));
    sock.send(data, BINARY, this.afterWrite);
    return true;
  }

  private readonly afterWrite = (): void => {
    if (!this.full) this.opts.onWritable?.();
  };

  private sendAck(): void {
    this.cancelAck?.();
    this.cancelAck = undefined;
    const sock = this.socket;
    if (!sock || sock.readyState !== OPEN) return;
    this.lastAckSent = this.received;
    holdWrites(underlyingSocket(sock));
    sock.send(encodeControl({ type: 'ack', received: this.received }));
  }
}
