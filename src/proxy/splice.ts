/**
 * A bridge's tunnel joined to an agent's data connection: every frame is
 * relayed verbatim both ways (binary data frames and text control frames
 * alike: the session at the agent and the bridge speak the tunnel protocol
 * end to end). The proxy reads nothing in them.
 *
 * Backpressure: when one side's send buffer passes HIGH_WATER, the other side
 * stops being read until it drains, so a slow bridge slows the agent's session
 * (whose channel then stops reading its server), and the other way round.
 *
 * Closing: a close on one side closes the other with the same code when it
 * can be sent on the wire (1000, 4000–4999); an abnormal end (1005, 1006: the
 * peer vanished) becomes 4001, "going away": the bridge reconnects and
 * resumes, and the agent keeps the session for its grace period.
 */
import type { WebSocket } from 'ws';
import { CLOSE } from '../tunnel/close-codes.js';
import { underlyingSocket } from '../tunnel/socket.js';
import { holdWrites } from '../tunnel/write-batch.js';

const HIGH_WATER = 4 * 1024 * 1024;

export class Splice {
  private closed = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    readonly bridge: WebSocket,
    readonly agent: WebSocket,
    private readonly onClosed?: (splice: Splice) => void,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.pipe(bridge, agent);
    this.pipe(agent, bridge);
  }

  /** End both sides with this code (a sendable one) and reason. */
  close(code: number, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    for (const ws of [this.bridge, this.agent]) {
      if (ws.isPaused) ws.resume();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
    }
    this.finish();
  }

  /** Send a text frame to the bridge (a `fatal` before `close`). */
  tellBridge(text: string): void {
    if (this.bridge.readyState === this.bridge.OPEN) this.bridge.send(text);
  }

  private pipe(from: WebSocket, to: WebSocket): void {
    from.on('message', (data: Buffer, isBinary: boolean) => {
      if (to.readyState !== to.OPEN) return;
      // The frames of one read leave in one write (write-batch.ts).
      holdWrites(underlyingSocket(to));
      to.send(data, { binary: isBinary }, () => {
        if (from.isPaused && to.bufferedAmount < HIGH_WATER / 2) from.resume();
      });
      if (to.bufferedAmount > HIGH_WATER && !from.isPaused) from.pause();
    });
    from.on('close', (code: number, reason: Buffer) => {
      if (this.closed) return;
      this.closed = true;
      if (to.isPaused) to.resume();
      const sendable = code === CLOSE.NORMAL || (code >= 4000 && code <= 4999);
      if (to.readyState === to.OPEN || to.readyState === to.CONNECTING)
        to.close(sendable ? code : CLOSE.GOING_AWAY, sendable ? truncate(reason) : 'the other end dropped');
      this.finish();
    });
    from.on('error', () => {
      /* the close event follows */
    });
  }

  private finish(): void {
    this.onClosed?.(this);
    this.resolveDone();
  }
}

/** A close reason is at most 123 bytes. */
function truncate(reason: Buffer): string {
  return reason
    .subarray(0, 120)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}
