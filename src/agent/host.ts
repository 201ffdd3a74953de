/**
 * Where sessions live: the sessions of one agent (in the proxy's process, or
 * a remote `mcp-access agent`), their resume tokens, the limits on them, and
 * the warm spare processes of its stdio servers.
 *
 * A host is handed WebSockets that already carry an authenticated identity
 * allowed to reach the server (the proxy checked the certificate and the
 * server's labels): a bridge's tunnel in single-process mode, or a data
 * connection the agent dialled to the proxy, spliced to a bridge's tunnel.
 * Either way the session speaks the tunnel protocol (docs/protocol.md) over it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AccessError, describeError, isAccessError } from '../errors.js';
import type { Peer } from '../identity/peer.js';
import type { Logger } from '../util/log.js';
import { FrameHold } from '../tunnel/frame-hold.js';
import type { TunnelSocket } from '../tunnel/socket.js';
import type { GateFactory } from './gate.js';
import type { ServerConfig, SessionSettings } from './servers.js';
import { ProxySession, refuseTunnel } from './session.js';
import { SparePool } from './upstream/spares.js';

export interface SessionHostOptions {
  settings: SessionSettings;
  gates: GateFactory;
  log: Logger;
  /**
   * Resume tokens start with this (a remote agent's name and ':'), so that a
   * proxy finds the agent holding a session from the token alone, even after
   * it restarted. Empty for the in-process host.
   */
  tokenPrefix?: string;
}

export class SessionHost {
  private readonly sessions = new Map<string, ProxySession>();
  private readonly byToken = new Map<string, ProxySession>();
  /** Sessions whose gate is being opened: they count against the limits already. */
  private readonly opening = new Set<{ peer: Peer; server: ServerConfig }>();
  private readonly upstreams: SparePool;
  private settings: SessionSettings;
  private gates: GateFactory;
  private closed: Promise<void> | undefined;

  constructor(private readonly o: SessionHostOptions) {
    this.settings = o.settings;
    this.gates = o.gates;
    this.upstreams = new SparePool(
      o.log,
      { maxMessageSize: o.settings.maxMessageSize, stopGraceMs: o.settings.stopGraceMs },
      o.settings.prestart,
    );
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Servers (for warm spares), settings and gates for the next sessions; running ones keep going. */
  reconfigure(servers: ServerConfig[], settings: SessionSettings, gates: GateFactory): void {
    this.settings = settings;
    this.gates = gates;
    this.upstreams.refresh(servers, settings.prestart);
  }

  /** A new resume token for a session of this host. */
  newToken(): string {
    return `${this.o.tokenPrefix ?? ''}${randomBytes(32).toString('base64url')}`;
  }

  /**
   * Open a new session on this socket. Throws LIMIT_REACHED (sync) when a
   * limit forbids it; later refusals (the gate's first decision, an upstream
   * that cannot start) are sent on the socket as `fatal` + close code.
   * `held`: a FrameHold the caller put on the socket before handing it over
   * (frames that arrived meanwhile are handled in order); else one starts now.
   */
  open(ws: TunnelSocket, peer: Peer, server: ServerConfig, held?: FrameHold): void {
    if (this.closed) throw new AccessError('PROXY_GOING_AWAY', 'the agent is shutting down');
    this.checkLimits(peer, server);
    const slot = { peer, server };
    this.opening.add(slot);
    // Whether the peer may reach it is the gate's first decision (audited).
    void this.startSession(ws, peer, server, held ?? new FrameHold(ws)).finally(() => this.opening.delete(slot));
  }

  /**
   * Resume the session a token names on this socket. Throws SESSION_LOST (no
   * such session: the bridge opens a new one) or IDENTITY_REJECTED (another
   * identity's session); `mayReach` is the caller's check that the identity
   * may still reach the server. `held`: as for `open` (on a refusal the
   * caller still owns the socket: `refuseTunnel` it).
   */
  resume(
    ws: TunnelSocket,
    token: string,
    received: number,
    peer: Peer,
    mayReach: (peer: Peer, server: ServerConfig) => void,
    held?: FrameHold,
  ): string {
    const session = this.byToken.get(token);
    if (!session || !Number.isSafeInteger(received) || received < 0) {
      throw new AccessError('SESSION_LOST', 'the session to resume no longer exists', {
        hint: 'a new session will be opened',
      });
    }
    if (session.peer.user !== peer.user || session.peer.bot?.name !== peer.bot?.name) {
      this.o.log.warn(`resume refused: ${peer.user} tried to resume a session of ${session.peer.user}`);
      // The owner's name is for the audit trail, not for the one who tried.
      throw new AccessError('IDENTITY_REJECTED', 'only the identity that opened a session can resume it', {
        detail: {
          auditReason: `tried to resume session ${session.id} of ${session.peer.user}`,
          server: session.server.name,
        },
      });
    }
    mayReach(peer, session.server);
    session.attach(ws, received, true, peer, held);
    return session.server.name;
  }

  /** End every session whose identity matches (a lock, a removed bot); returns how many. */
  endSessionsWhere(match: (peer: Peer) => boolean, reason: AccessError): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (match(s.peer)) {
        n++;
        void s.end(reason);
      }
    }
    return n;
  }

  /** End every session with `reason` and stop every upstream. Memoised. */
  close(reason: AccessError): Promise<void> {
    this.closed ??= (async () => {
      await Promise.all([...this.sessions.values()].map((s) => s.end(reason)));
      await this.upstreams.close();
    })();
    return this.closed;
  }

  /**
   * Sessions per identity and per host, processes per stdio server
   * (docs/configuration.md, "Limits"). Sessions waiting for a resume count:
   * they hold a process. When an identity is at its limit, its oldest
   * session that waits for a resume is ended to make room (a client that
   * drops and reconnects does not lock itself out); otherwise the refusal
   * names the limit, and is audited.
   */
  private checkLimits(peer: Peer, server: ServerConfig): void {
    const { limits } = this.settings;
    const same = (p: Peer) => p.user === peer.user && p.bot?.name === peer.bot?.name;
    const refuse = (what: string, key: string, n: number): never => {
      const message = `${what} (${n}, sessions.${key}); ${peer.user} cannot open another session to "${server.name}" now`;
      this.o.log.warn(`session refused: ${message}`);
      throw new AccessError('LIMIT_REACHED', message);
    };
    const all = [...[...this.sessions.values()].filter((s) => !s.isEnding), ...this.opening];
    const mine = all.filter((s) => same(s.peer));
    if (mine.length >= limits.perIdentity) {
      const idle = mine.find((s): s is ProxySession => s instanceof ProxySession && !s.isAttached);
      if (!idle)
        refuse(`the identity ${peer.user} has reached its limit of sessions`, 'max_per_identity', limits.perIdentity);
      this.o.log.info(`${peer.user} is at sessions.max_per_identity; ending its oldest session waiting for a resume`);
      void idle!.end(
        new AccessError(
          'LIMIT_REACHED',
          `the session was ended to make room for a new session of ${peer.user} (sessions.max_per_identity)`,
        ),
      );
    }
    if (all.length >= limits.total) refuse('the proxy has reached its limit of sessions', 'max_total', limits.total);
    if (server.transport === 'stdio') {
      const running = all.filter((s) => s.server.name === server.name).length + (this.settings.prestart ? 1 : 0);
      if (running + 1 > limits.processesPerServer)
        refuse(
          `MCP server "${server.name}" has reached its limit of processes`,
          'max_processes_per_server',
          limits.processesPerServer,
        );
    }
  }

  private async startSession(ws: TunnelSocket, peer: Peer, server: ServerConfig, hold: FrameHold): Promise<void> {
    // Client frames (and a close) are held until the gate (and its audit log) is open.
    let session: ProxySession;
    try {
      const id = randomUUID();
      const gate = await this.gates.open({ sessionId: id, peer, server });
      session = new ProxySession({
        id,
        resumeToken: this.newToken(),
        config: this.settings,
        server,
        peer,
        gate,
        log: this.o.log,
        // The session's own upstream factory: an in-agent upstream (a database) gets the session's gate.
        upstreams: { create: (s, events) => this.upstreams.create(s, events, { sessionId: id, gate }) },
        onEnded: (s) => {
          this.sessions.delete(s.id);
          this.byToken.delete(s.resumeToken);
        },
      });
    } catch (err) {
      hold.release();
      const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error).message);
      this.o.log.warn(`session refused: ${describeError(e)}`);
      refuseTunnel(ws, e);
      return;
    }
    this.sessions.set(session.id, session);
    this.byToken.set(session.resumeToken, session);
    // Started first: the held frames are handled as the socket is attached.
    session.start();
    session.attach(ws, 0, false, undefined, hold);
  }
}
