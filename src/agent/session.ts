/**
 * One MCP session in the proxy: a tunnel on one side, an upstream MCP server
 * on the other. The session outlives its WebSocket: when the tunnel drops
 * without a clean close, the upstream is kept for the grace period and the
 * bridge may resume (docs/protocol.md).
 */
import { AccessError, describeError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { CLOSE } from '../tunnel/close-codes.js';
import { TunnelEndpoint } from '../tunnel/endpoint.js';
import type { FrameHold } from '../tunnel/frame-hold.js';
import type { TunnelSocket } from '../tunnel/socket.js';
import type { ServerConfig, SessionSettings } from './servers.js';
import { isPromise, type ClientVerdict, type ServerVerdict, type SessionGate } from './gate.js';
import type { Peer } from '../identity/peer.js';
import type { Upstream } from './upstream/index.js';
import type { UpstreamFactory } from './upstream/spares.js';

/** Refuse a tunnel before any session exists: the full reason, then the close code. */
export { refuseTunnel } from '../tunnel/refuse.js';

/** Tunnel keepalive when the settings name none. */
const DEFAULT_KEEPALIVE_MS = 15_000;

/** Client messages being processed (gate + forward) before we stop reading the socket. */
const MAX_CLIENT_BACKLOG = 256;

/** One client message in the session's queue: its verdict once the gate has settled it. */
interface ClientSlot {
  settled: boolean;
  verdict: ClientVerdict | undefined;
  failed: boolean;
  error: unknown;
}

export class ProxySession {
  readonly id: string;
  readonly resumeToken: string;
  peer: Peer;
  readonly server: ServerConfig;
  /** The bridge's end of the tunnel, seen from here: it outlives each WebSocket. */
  private readonly tunnel: TunnelEndpoint;
  private readonly upstream: Upstream;
  private readonly log: Logger;
  private upstreamReady: Promise<void> | undefined;
  /** `starting` between start() and the upstream running: forwards wait (in order) for it. */
  private upstreamState: 'ready' | 'starting' | 'failed' = 'ready';
  /** Client messages judged or being judged, in arrival order: each leaves once its verdict is settled. */
  private readonly clientQueue: ClientSlot[] = [];
  /** Set while a server message's verdict has to wait: the messages after it wait behind it, in order. */
  private serverTail: Promise<void> | undefined;
  private clientBacklog = 0;
  private upstreamBlocked = false;
  /** We stopped reading the upstream because the tunnel's outbox is full. */
  private upstreamPaused = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private endedPromise: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      id: string;
      resumeToken: string;
      config: SessionSettings;
      server: ServerConfig;
      peer: Peer;
      gate: SessionGate;
      log: Logger;
      upstreams: UpstreamFactory;
      onEnded: (session: ProxySession) => void;
    },
  ) {
    this.id = deps.id;
    this.resumeToken = deps.resumeToken;
    this.peer = deps.peer;
    this.server = deps.server;
    this.log = deps.log.child(`proxy session ${this.id.slice(0, 8)}`);
    this.log.level = deps.log.level;
    this.tunnel = new TunnelEndpoint({
      highWaterBytes: Math.max(8 * 1024 * 1024, deps.config.maxMessageSize),
      keepaliveMs: deps.config.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
      peerName: 'the bridge',
      debug: (line) => this.log.debug(line),
    });
    this.tunnel.on('message', (data) => this.fromClient(data));
    this.tunnel.on('writable', () => {
      if (!this.upstreamPaused) return;
      this.upstreamPaused = false;
      this.upstream.resume();
    });
    this.tunnel.on('disconnect', (_err, code, reason) => {
      if (code === CLOSE.NORMAL) {
        this.log.info(`${this.peer.user} closed the session`);
        void this.end();
      } else {
        this.startGrace(`tunnel dropped (${code}${reason ? `: ${reason}` : ''})`);
      }
    });
    this.upstream = deps.upstreams.create(deps.server, {
      onMessage: (m) => this.fromServer(m),
      onClose: (reason) => this.upstreamClosed(reason),
      onDrain: () => {
        this.upstreamBlocked = false;
        this.updateReading();
      },
      identityAssertion: () => this.deps.gate.upstreamIdentity?.(),
    });
  }

  get isAttached(): boolean {
    return this.tunnel.attached;
  }
  /** Ending or ended (its upstream may still be stopping). */
  get isEnding(): boolean {
    return this.ended;
  }

  /** Start the upstream; messages from the client wait for it. */
  start(): void {
    this.log.info(`${this.peer.user} → ${this.server.name}: starting ${this.upstream.describe()}`);
    this.upstreamState = 'starting';
    this.upstreamReady = this.upstream.start().then(
      () => {
        this.log.debug(`${this.server.name} running (${this.upstream.describe()})`);
        this.upstreamState = 'ready';
        this.drainClient();
      },
      (err: AccessError) => {
        this.log.warn(describeError(err));
        this.upstreamState = 'failed';
        void this.end(err);
        this.drainClient();
        throw err;
      },
    );
    this.upstreamReady.catch(() => {});
  }

  /**
   * Use this WebSocket from now on: the first one, or one that resumes the
   * session (`peerReceived` = data frames the bridge already has). A socket
   * still attached is cut. Frames `held` since the socket arrived are handled
   * after the hello, in order.
   */
  attach(socket: TunnelSocket, peerReceived: number, resumed: boolean, peer?: Peer, held?: FrameHold): void {
    if (peer) {
      // From now on the session is judged by the certificate presented now.
      this.peer = peer;
      // Called synchronously: the gate takes the new roles before any frame of the new tunnel.
      try {
        Promise.resolve(this.deps.gate.resumed?.(peer)).catch((err) => this.log.error(`audit: ${describeError(err)}`));
      } catch (err) {
        this.log.error(`resume: ${describeError(err)}`);
      }
    }
    if (this.graceTimer) {
      clearTimeout(this.graceTimer);
      this.graceTimer = undefined;
    }
    if (resumed)
      this.log.info(
        `${this.peer.user} resumed the session (bridge has ${peerReceived}, proxy has ${this.tunnel.receivedCount})`,
      );
    this.tunnel.attach(socket, peerReceived, {
      hello: {
        type: 'hello',
        session: this.id,
        resumeToken: this.resumeToken,
        server: this.server.name,
        resumed,
        received: this.tunnel.receivedCount,
        graceMs: this.deps.config.gracePeriodMs,
      },
      held,
    });
    if (this.tunnel.attached) this.armExpiry();
  }

  /** End the session: stop the upstream, tell the bridge why. Idempotent. */
  end(reason?: AccessError): Promise<void> {
    if (this.endedPromise) return this.endedPromise;
    this.ended = true;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.endedPromise = (async () => {
      // Deliver what the server already said before saying goodbye.
      await this.serverTail;
      void this.tunnel.close(reason);
      await this.upstream.stop().catch(() => {});
      try {
        await this.deps.gate.end(reason ? reason.message : 'closed');
      } catch (err) {
        this.log.error(`audit: ${describeError(err)}`);
      }
      this.log.info(`session ended${reason ? `: ${reason.message}` : ''}`);
      this.deps.onEnded(this);
    })();
    return this.endedPromise;
  }

  private startGrace(why: string): void {
    if (this.ended) return;
    const grace = this.deps.config.gracePeriodMs;
    if (grace <= 0) {
      void this.end();
      return;
    }
    this.log.info(`${why}; keeping the session ${Math.round(grace / 1000)}s for a resume`);
    this.graceTimer = setTimeout(() => {
      this.log.info('grace period over; ending the session');
      void this.end();
    }, grace);
    this.graceTimer.unref();
  }

  /**
   * An expired certificate never keeps access: close the tunnel when it
   * expires, and end the session: the bridge answers 4402 by opening a new
   * session once a valid identity appears, never by resuming this one.
   * (A session waiting for a resume is left to its grace period: a renewed
   * certificate of the same identity may still resume it.)
   */
  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const ms = this.peer.notAfter.getTime() - Date.now();
    const fire = () => {
      if (!this.tunnel.attached) return;
      this.log.info(
        `${this.peer.user}'s certificate expired; closing the tunnel and ending the session (no resume can succeed)`,
      );
      void this.end(
        new AccessError(
          'IDENTITY_EXPIRED',
          `the certificate of ${this.peer.user} expired at ${this.peer.notAfter.toISOString()}`,
        ),
      );
    };
    if (ms <= 0) {
      fire();
      return;
    }
    this.expiryTimer = setTimeout(fire, Math.min(ms, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }

  /**
   * The gate starts judging at once: its audit event is queued now, in
   * arrival order, so concurrent requests share one log write. Only the
   * forwarding waits its turn (and for its event to be written). No promise
   * of our own per message: a verdict the gate gives synchronously is acted
   * on at once when nothing is ahead of it.
   */
  private fromClient(data: Buffer): void {
    this.clientBacklog++;
    this.updateReading();
    const slot: ClientSlot = { settled: false, verdict: undefined, failed: false, error: undefined };
    let judged: ClientVerdict | Promise<ClientVerdict>;
    try {
      judged = this.deps.gate.fromClient(data);
    } catch (err) {
      slot.settled = true;
      slot.failed = true;
      slot.error = err;
      this.clientQueue.push(slot);
      this.drainClient();
      return;
    }
    this.clientQueue.push(slot);
    if (isPromise(judged)) {
      judged.then(
        (verdict) => {
          slot.settled = true;
          slot.verdict = verdict;
          this.drainClient();
        },
        (err: unknown) => {
          slot.settled = true;
          slot.failed = true;
          slot.error = err;
          this.drainClient();
        },
      );
    } else {
      slot.settled = true;
      slot.verdict = judged;
      this.drainClient();
    }
  }

  /** Act on the settled verdicts at the head of the queue, in arrival order; a forward waits for the upstream. */
  private drainClient(): void {
    const queue = this.clientQueue;
    while (queue.length > 0) {
      const slot = queue[0]!;
      if (!slot.settled) return;
      if (this.upstreamState === 'starting' && !slot.failed && slot.verdict !== undefined && 'forward' in slot.verdict)
        return;
      queue.shift();
      try {
        if (slot.failed) throw slot.error;
        const verdict = slot.verdict!;
        if ('reply' in verdict) {
          this.toClient(verdict.reply);
        } else if ('forward' in verdict) {
          if (this.upstreamState === 'failed') throw new Error(`${this.server.name} did not start`);
          if (!this.upstream.send(verdict.forward)) this.upstreamBlocked = true;
        }
      } catch (err) {
        if (!this.ended) this.log.warn(`dropped a client message: ${describeError(err)}`);
      } finally {
        this.clientBacklog--;
        this.updateReading();
      }
    }
  }

  /** Server messages are judged one at a time, in order (a verdict may wait, e.g. for tool pins). */
  private fromServer(data: Buffer): void {
    const waiting = this.serverTail ? this.serverTail.then(() => this.judgeServer(data)) : this.judgeServer(data);
    if (waiting === undefined) return;
    const settled = () => {
      if (this.serverTail === tail) this.serverTail = undefined;
    };
    const tail: Promise<void> = waiting.then(settled, (err: unknown) => {
      this.log.warn(`dropped a server message: ${describeError(err)}`);
      settled();
    });
    this.serverTail = tail;
  }

  /** Judge one server message and deliver what the gate says; a promise when its verdict has to wait. */
  private judgeServer(data: Buffer): Promise<void> | undefined {
    let out: ServerVerdict | Promise<ServerVerdict>;
    try {
      out = this.deps.gate.fromServer(data);
    } catch (err) {
      this.log.warn(`dropped a server message: ${describeError(err)}`);
      return undefined;
    }
    if (!isPromise(out)) {
      this.deliverServer(out);
      return undefined;
    }
    return out.then(
      (verdict) => this.deliverServer(verdict),
      (err: unknown) => this.log.warn(`dropped a server message: ${describeError(err)}`),
    );
  }

  private deliverServer(out: ServerVerdict): void {
    if (out === undefined) return;
    if (Buffer.isBuffer(out)) {
      this.toClient(out);
      return;
    }
    // The proxy answered the server itself (e.g. roots/list).
    const send = () => {
      if (!this.upstream.send(out.toServer)) this.upstreamBlocked = true;
    };
    if (this.upstreamState === 'ready') send();
    else if (this.upstreamState === 'starting')
      this.upstreamReady?.then(send, () => {}).catch((err: unknown) => this.log.warn(describeError(err)));
  }

  /** A frame to the bridge; when the tunnel's outbox is full, stop reading the server until 'writable'. */
  private toClient(data: Buffer): void {
    if (this.tunnel.send(data) || this.upstreamPaused) return;
    this.upstreamPaused = true;
    this.upstream.pause();
  }

  private upstreamClosed(reason: AccessError): void {
    void this.end(reason);
  }

  /** Stop reading the tunnel while the upstream or our own queue is full. */
  private updateReading(): void {
    const stop = this.upstreamBlocked || this.clientBacklog > MAX_CLIENT_BACKLOG;
    if (stop && !this.tunnel.isPaused) this.tunnel.pause();
    else if (!stop && this.tunnel.isPaused) this.tunnel.resume();
  }
}
