/**
 * An agent's connection to a proxy, always dialled OUT (the agent listens on
 * no port): one control WebSocket, kept up with backoff, and a small pool of
 * idle data WebSockets. When the proxy routes a bridge's tunnel to this
 * agent it sends `open` or `resume` on a data connection, which from then on
 * carries that session's tunnel (docs/protocol.md, "Agents").
 */
import WebSocket from 'ws';
import { AccessError, describeError, isAccessError } from '../errors.js';
import type { Peer } from '../identity/peer.js';
import type { Logger } from '../util/log.js';
import {
  AGENT_CONTROL_PATH,
  AGENT_DATA_PATH,
  AGENT_SUBPROTOCOL,
  WRONG_REPLICA,
  decodeAgentFrame,
  encodeAgentFrame,
  peerFromWire,
  parseAuditSettings,
  type AgentFrame,
  type AnnouncedServer,
} from '../tunnel/agent-protocol.js';
import { decodeControl } from '../tunnel/control.js';
import { classifyDialError, formatProxyAddress, type ProxyAddress } from '../tunnel/proxy-address.js';
import type { RoleDocument } from '../rbac/roles.js';
import type { AuditSpool } from './audit-spool.js';
import { refuseTunnel } from './session.js';
import type { SessionHost } from './host.js';
import type { ServerConfig } from './servers.js';

export interface ProxyLinkOptions {
  proxy: ProxyAddress;
  /** The agent's current host certificate (re-read for every connection: renewals apply to the next one). */
  tls: () => Promise<{ key: string; cert: string; ca: string[] }>;
  host: SessionHost;
  /** The servers this agent enrolls now. */
  servers: () => ServerConfig[];
  describe: (server: ServerConfig) => AnnouncedServer;
  /** Where the events of this agent's sessions wait for the proxy; it learns the proxy's audit settings here. */
  audit: Pick<AuditSpool, 'configure' | 'connected' | 'disconnected' | 'acknowledged' | 'refused' | 'append'>;
  onRoles: (documents: RoleDocument[], rbac: Record<string, unknown> | undefined) => void;
  /** Whether an identity may still reach a server (the roles the proxy sent). */
  mayReach: (peer: Peer, server: ServerConfig) => void;
  log: Logger;
  maxMessageSize: number;
  keepaliveMs: number;
  /** Idle data connections kept open. Default 2. */
  poolSize?: number;
  /** How often the servers are announced (the heartbeat). Default 5 s. */
  heartbeatMs?: number;
  /**
   * A probe (looking for another replica behind the same address) is not
   * retried if it fails or reaches a replica the agent already has.
   */
  probe?: boolean;
  /**
   * A welcome from proxy process `proxyId`: return false when the agent is
   * already connected to it (the link then ends).
   */
  onWelcome?: (link: ProxyLink, proxyId: string) => boolean;
  /** The link lost its proxy (it retries unless it was a probe or a duplicate). */
  onLost?: (link: ProxyLink, proxyId: string | undefined) => void;
  /** The link ended for good. */
  onEnded?: (link: ProxyLink) => void;
}

const BACKOFF_MS = [250, 500, 1000, 2000, 5000];

export class ProxyLink {
  private control: WebSocket | undefined;
  private readonly idle = new Set<WebSocket>();
  private readonly carrying = new Set<WebSocket>();
  private dialing = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed: Promise<void> | undefined;
  private welcomed = false;
  private renewing = false;
  private lastError = '';
  /** The proxy process this link reached (from its welcome). */
  proxyId: string | undefined;
  private probe: boolean;
  private readonly auditRoute = (frame: string): boolean => this.sendControlText(frame);
  /** Resolves at the first welcome (for `agent start` to report readiness). */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(private readonly o: ProxyLinkOptions) {
    this.ready = new Promise((r) => (this.markReady = r));
    this.probe = o.probe ?? false;
  }

  get where(): string {
    return formatProxyAddress(this.o.proxy);
  }

  get isConnected(): boolean {
    return this.welcomed;
  }

  start(): void {
    void this.connect();
  }

  /**
   * Move onto a renewed certificate without disturbing sessions: a second
   * control connection with the new certificate; once the same proxy welcomes
   * it, it announces (the proxy hands it the agent's tunnels and lets the old
   * connection go) and becomes this link's control connection. Reaching
   * another replica behind the address: tried again shortly.
   */
  async renew(attempt = 0): Promise<void> {
    if (this.closed || !this.welcomed || this.renewing) return;
    this.renewing = true;
    try {
      const tls = await this.o.tls();
      const ws = this.dial(AGENT_CONTROL_PATH, tls);
      const outcome = await new Promise<'swapped' | 'elsewhere' | 'failed'>((resolve) => {
        ws.on('error', () => resolve('failed'));
        ws.on('unexpected-response', () => resolve('failed'));
        ws.once('close', () => resolve('failed'));
        ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary || ws === this.control) return;
          const frame = decodeAgentFrame(data.toString('utf8'));
          if (frame?.type !== 'welcome') return;
          if (String(frame.proxy) !== this.proxyId || !this.control) return resolve('elsewhere');
          const old = this.control;
          this.adoptControl(ws);
          this.alive.set(ws, true);
          this.o.onRoles(frame.roles as RoleDocument[], frame.rbac);
          this.announce();
          this.startTimers();
          // The proxy closes the old one once the new one announced; this is the backstop.
          setTimeout(() => old.close(1000, 'renewed'), 5000).unref();
          resolve('swapped');
        });
      });
      if (outcome === 'swapped') {
        this.o.log.info(`moved the connection to the proxy at ${this.where} onto the renewed certificate`);
        return;
      }
      ws.terminate();
      if (attempt < 10) setTimeout(() => void this.renew(attempt + 1), 500).unref();
      else this.o.log.warn(`could not move onto the renewed certificate at ${this.where}; the next reconnect will`);
    } catch (err) {
      this.o.log.warn(`renewal of the connection to ${this.where}: ${describeError(err)}`);
    } finally {
      this.renewing = false;
    }
  }

  /** Announce now (the servers changed). */
  announce(): void {
    if (!this.control || !this.welcomed) return;
    this.sendControl({
      type: 'announce',
      servers: this.o.servers().map((s) => this.o.describe(s)),
      sessions: this.o.host.sessionCount,
    });
  }

  /** Stop dialling; close the control and idle connections. Sessions' connections are the host's to end. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.retry) clearTimeout(this.retry);
      this.stopTimers();
      for (const ws of this.idle) ws.terminate();
      this.idle.clear();
      const control = this.control;
      this.control = undefined;
      if (control && control.readyState === WebSocket.OPEN) {
        const gone = new Promise<void>((r) => control.once('close', () => r()));
        control.close(1000);
        await Promise.race([gone, new Promise((r) => setTimeout(r, 1000).unref())]);
      }
      control?.terminate();
      this.o.audit.disconnected(this.auditRoute);
    })();
    return this.closed;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let tls;
    try {
      tls = await this.o.tls();
    } catch (err) {
      this.report(`cannot load the agent's certificate: ${describeError(err)}`);
      this.scheduleRetry();
      return;
    }
    this.adoptControl(this.dial(AGENT_CONTROL_PATH, tls));
  }

  /** Use this socket as the control connection from now on. */
  private adoptControl(ws: WebSocket): void {
    this.control = ws;
    let fatal: AccessError | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const text = data.toString('utf8');
      if (ws !== this.control) {
        // A connection being replaced may still carry the answers to audit frames sent on it.
        const late = decodeAgentFrame(text);
        if (late?.type === 'audit-ack' || late?.type === 'audit-nack') this.controlFrame(late);
        return;
      }
      const control = decodeControl(text);
      if (control?.type === 'fatal') {
        fatal = new AccessError(control.code, control.message, control.hint ? { hint: control.hint } : {});
        return;
      }
      const frame = decodeAgentFrame(text);
      if (frame) this.controlFrame(frame);
    });
    ws.on('pong', () => this.alive.set(ws, true));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (t: string) => {
        if (body.length < 8192) body += t;
      });
      res.on('end', () => {
        let message = `HTTP ${res.statusCode}`;
        try {
          const e = (JSON.parse(body) as { error?: { message?: string } }).error;
          if (e?.message) message = e.message;
        } catch {
          /* not JSON */
        }
        fatal = new AccessError('IDENTITY_REJECTED', `the proxy at ${this.where} refused the agent: ${message}`);
        ws.terminate();
      });
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      if (!fatal) fatal = classifyDialError(err, this.where);
    });
    ws.on('close', (code: number) => {
      if (ws !== this.control && this.control !== undefined) return;
      this.control = undefined;
      const wasWelcomed = this.welcomed;
      this.welcomed = false;
      this.stopTimers();
      this.o.audit.disconnected(this.auditRoute);
      // Sessions keep their upstreams for the grace period; their tunnels went with the proxy.
      for (const d of [...this.idle, ...this.carrying]) d.terminate();
      this.idle.clear();
      this.carrying.clear();
      if (wasWelcomed) this.o.onLost?.(this, this.proxyId);
      if (this.closed) return;
      if (this.probe) {
        void this.close();
        this.o.onEnded?.(this);
        return;
      }
      this.report(
        wasWelcomed
          ? `lost the connection to the proxy at ${this.where} (${fatal?.message ?? `code ${code}`}); reconnecting`
          : `cannot connect to the proxy at ${this.where}: ${fatal?.message ?? `closed (${code})`}`,
      );
      this.scheduleRetry();
    });
  }

  private readonly alive = new WeakMap<WebSocket, boolean>();

  private dial(path: string, tls: { key: string; cert: string; ca: string[] }): WebSocket {
    return new WebSocket(`wss://${this.where}${path}`, AGENT_SUBPROTOCOL, {
      key: tls.key,
      cert: tls.cert,
      ca: tls.ca,
      rejectUnauthorized: true,
      maxPayload: this.o.maxMessageSize + 1024,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      followRedirects: false,
    });
  }

  private controlFrame(frame: AgentFrame): void {
    switch (frame.type) {
      case 'welcome':
        if (this.o.onWelcome && !this.o.onWelcome(this, String(frame.proxy))) {
          // Already connected to that replica: this connection is not needed.
          this.o.log.debug(`${this.where} led to proxy ${String(frame.proxy)} again; closing the duplicate`);
          void this.close();
          this.o.onEnded?.(this);
          return;
        }
        this.proxyId = String(frame.proxy);
        this.probe = false;
        this.welcomed = true;
        this.attempt = 0;
        this.lastError = '';
        this.o.log.info(
          `connected to the proxy at ${this.where} (cluster ${frame.cluster}, proxy ${this.proxyId.slice(0, 8)}) as agent ${frame.agent}`,
        );
        this.o.onRoles(frame.roles as RoleDocument[], frame.rbac);
        this.o.audit.configure(parseAuditSettings(frame.audit));
        this.o.audit.connected(this.auditRoute);
        this.announce();
        this.startTimers();
        this.fillPool();
        this.markReady();
        return;
      case 'roles':
        this.o.onRoles(frame.roles as RoleDocument[], frame.rbac);
        this.o.audit.configure(parseAuditSettings(frame.audit));
        return;
      case 'audit-ack':
        this.o.audit.acknowledged(frame.seq, frame.ids);
        return;
      case 'audit-nack':
        this.o.audit.refused(frame.seq, frame.code, frame.message);
        return;
      case 'refused-servers':
        for (const s of frame.servers ?? [])
          this.o.log.error(`the proxy refused to route to server "${s.name}": ${s.reason}`);
        return;
      case 'end-sessions': {
        const n = this.o.host.endSessionsWhere(
          (p) => p.user === frame.user && (frame.bot === undefined || p.bot?.name === frame.bot),
          new AccessError(frame.code, frame.message),
        );
        this.o.log.info(`the proxy ended ${n} session(s) of ${frame.user}: ${frame.message}`);
        return;
      }
      case 'dial':
        this.fillPool(Math.min(8, Math.max(1, Number(frame.count) || 1)));
        return;
      default:
        return;
    }
  }

  /** Keep `poolSize` idle data connections (plus `extra` asked for by the proxy). */
  private fillPool(extra = 0): void {
    const want = (this.o.poolSize ?? 2) + extra - this.idle.size - this.dialing;
    for (let i = 0; i < want; i++) void this.openData();
  }

  private async openData(): Promise<void> {
    if (this.closed || !this.welcomed) return;
    this.dialing++;
    let tls;
    try {
      tls = await this.o.tls();
    } catch {
      this.dialing--;
      return;
    }
    const ws = this.dial(`${AGENT_DATA_PATH}?proxy=${encodeURIComponent(this.proxyId ?? '')}`, tls);
    let taken = false;
    const first = (data: Buffer, isBinary: boolean) => {
      taken = true;
      ws.off('message', first);
      this.idle.delete(ws);
      this.carrying.add(ws);
      this.fillPool();
      const frame = isBinary ? undefined : decodeAgentFrame(data.toString('utf8'));
      this.take(ws, frame);
    };
    ws.on('open', () => {
      this.dialing--;
      this.idle.add(ws);
    });
    ws.on('message', first);
    ws.on('error', (err) => this.o.log.debug(`data connection: ${err.message}`));
    ws.on('unexpected-response', () => ws.terminate());
    ws.on('close', (code: number) => {
      if (this.carrying.delete(ws)) return;
      if (!this.idle.delete(ws)) this.dialing = Math.max(0, this.dialing - 1);
      // An idle connection lost, or one that reached another replica behind the same address: dial again.
      if (!taken && this.welcomed && !this.closed) {
        const again = setTimeout(() => this.fillPool(), code === WRONG_REPLICA ? 20 : 100);
        again.unref();
      }
    });
  }

  /** The proxy routed a tunnel here: hand the connection to the session host. */
  private take(ws: WebSocket, frame: AgentFrame | undefined): void {
    try {
      if (frame?.type === 'open') {
        const peer = peerFromWire(frame.peer);
        if (!peer) throw new AccessError('PROXY_PROTOCOL', 'the proxy sent a malformed identity');
        const server = this.o.servers().find((s) => s.name === frame.server);
        if (!server)
          throw new AccessError(
            'UNKNOWN_SERVER',
            `no MCP server named "${String(frame.server)}" is enrolled on this agent`,
          );
        this.o.host.open(ws, peer, server);
      } else if (frame?.type === 'resume') {
        const peer = peerFromWire(frame.peer);
        if (!peer) throw new AccessError('PROXY_PROTOCOL', 'the proxy sent a malformed identity');
        this.o.host.resume(ws, String(frame.token), Number(frame.received), peer, this.o.mayReach);
      } else {
        throw new AccessError('PROXY_PROTOCOL', 'a data connection must start with open or resume');
      }
    } catch (err) {
      const e = isAccessError(err) ? err : new AccessError('INTERNAL', describeError(err));
      this.o.log.info(`session refused: ${e.message}`);
      // Refused before a session (and its gate) existed: audited here, as the proxy audits its own refusals.
      const peer = frame && (frame.type === 'open' || frame.type === 'resume') ? peerFromWire(frame.peer) : undefined;
      const detail = (e.detail ?? {}) as { auditReason?: string; server?: string };
      this.o.audit
        .append({
          type: 'mcp.session.start',
          outcome: 'denied',
          error: e.code,
          reason: detail.auditReason ? `${e.message}: ${detail.auditReason}` : e.message,
          ...(peer ? { user: peer.user, roles: peer.roles, remoteAddr: peer.remoteAddr } : {}),
          ...(peer?.bot ? { bot: peer.bot.name } : {}),
          ...(detail.server ? { server: detail.server } : frame?.type === 'open' ? { server: frame.server } : {}),
        })
        .catch((auditErr: unknown) => this.o.log.error(`audit: ${describeError(auditErr)}`));
      refuseTunnel(ws, e);
    }
  }

  private startTimers(): void {
    this.stopTimers();
    this.heartbeat = setInterval(() => this.announce(), this.o.heartbeatMs ?? 5000);
    this.heartbeat.unref();
    const control = this.control;
    if (!control) return;
    this.alive.set(control, true);
    this.keepalive = setInterval(() => {
      if (this.alive.get(control) === false) {
        this.o.log.warn(`the proxy at ${this.where} stopped answering keepalives; reconnecting`);
        control.terminate();
        return;
      }
      this.alive.set(control, false);
      try {
        control.ping();
      } catch {
        /* closing */
      }
    }, this.o.keepaliveMs);
    this.keepalive.unref();
  }

  private stopTimers(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.keepalive) clearInterval(this.keepalive);
    this.heartbeat = undefined;
    this.keepalive = undefined;
  }

  private scheduleRetry(): void {
    if (this.closed) return;
    const base = BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)]!;
    const wait = Math.round(base * (0.75 + Math.random() * 0.5));
    // Not unref'd: while it waits to reconnect, this timer is what keeps the agent running.
    this.retry = setTimeout(() => void this.connect(), wait);
  }

  /** One line per distinct problem (a proxy down for an hour is not 10,000 lines). */
  private report(line: string): void {
    if (line === this.lastError) return;
    this.lastError = line;
    this.o.log.warn(line);
  }

  private sendControl(frame: AgentFrame): boolean {
    return this.sendControlText(encodeAgentFrame(frame));
  }

  private sendControlText(text: string): boolean {
    const c = this.control;
    if (!c || c.readyState !== WebSocket.OPEN) return false;
    c.send(text);
    return true;
  }
}
