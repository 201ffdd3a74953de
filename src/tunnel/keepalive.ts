/**
 * WebSocket keepalive: a ping every interval; a peer that has not answered the
 * previous ping when the next is due is dead, and `onDead` is called (once).
 * While the socket is paused its pongs cannot be read, so no verdict is made
 * then: a reader that stops because its consumer is slow is not a dead peer.
 */
import type { Clock } from './clock.js';
import type { TunnelSocket } from './socket.js';

export class Keepalive {
  private alive = true;
  private stopTimer: (() => void) | undefined;

  constructor(
    private readonly socket: TunnelSocket,
    intervalMs: number,
    private readonly onDead: () => void,
    clock: Clock,
  ) {
    socket.on('pong', this.onPong);
    if (intervalMs > 0) this.stopTimer = clock.setInterval(this.tick, intervalMs);
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
    this.socket.off('pong', this.onPong);
  }

  private readonly onPong = (): void => {
    this.alive = true;
  };

  private readonly tick = (): void => {
    if (this.socket.isPaused) {
      this.alive = true;
      return;
    }
    if (!this.alive) {
      this.stop();
      this.onDead();
      return;
    }
    this.alive = false;
    try {
      this.socket.ping();
    } catch {
      /* closing */
    }
  };
}
