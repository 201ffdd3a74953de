/**
 * Frames a WebSocket delivers before anyone owns it. `ws` emits every frame
 * of a TCP chunk at once, so the frames that follow the proxy's `hello` in
 * its chunk (the bridge side), or that a bridge sends while its session's
 * gate is being opened (the proxy side), arrive before the tunnel endpoint
 * takes the socket. A hold keeps them, and whether the socket closed, for the
 * endpoint to handle in order (TunnelEndpoint.attach).
 */
import type { TunnelSocket } from './socket.js';

export interface HeldFrames {
  frames: Array<{ data: Buffer; isBinary: boolean }>;
  closed?: { code: number; reason: Buffer };
}

export class FrameHold {
  private readonly held: HeldFrames = { frames: [] };
  private released = false;

  constructor(private readonly socket: TunnelSocket) {
    socket.on('message', this.onMessage);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  /** Stop holding; what arrived so far, in order. */
  release(): HeldFrames {
    if (!this.released) {
      this.released = true;
      this.socket.off('message', this.onMessage);
      this.socket.off('close', this.onClose);
      this.socket.off('error', this.onError);
    }
    return this.held;
  }

  private readonly onMessage = (data: Buffer, isBinary: boolean): void => {
    this.held.frames.push({ data, isBinary });
  };

  private readonly onClose = (code: number, reason: Buffer): void => {
    this.held.closed = { code, reason };
  };

  /** An error is followed by 'close', which is what counts. */
  private readonly onError = (): void => {};
}
