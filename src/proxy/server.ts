/**
 * The mcp-access proxy: HTTPS with client certificates from the cluster CA,
 * a WebSocket tunnel per MCP session, and a few JSON endpoints.
 *
 *   GET /v1/ping      version, cluster, time (no client certificate needed)
 *   GET /v1/servers   the servers the caller may reach
 *   GET /v1/tunnel    WebSocket upgrade: ?server=NAME[&resume=TOKEN&received=N]
 *
 * Routes that need no client certificate are listed in `OPEN_ROUTES`; every
 * other request without a valid one is refused.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AccessError, describeError, isAccessError } from '../errors.js';
import { VERSION } from '../version.js';
import type { Logger } from '../util/log.js';
import { SUBPROTOCOL, TUNNEL_PATH } from '../tunnel/control.js';
import type { ProxyConfig, ServerConfig } from './config.js';
import type { GateFactory } from './gate.js';
import { peerFromSocket, type Peer } from './peer.js';
import { ProxySession, refuseTunnel } from './session.js';
import { SparePool } from './upstream/spares.js';
import { commandProblem } from './upstream/command-check.js';

export interface ProxyRoutes {
  /** Extra HTTP routes (the bot service). Return true when handled. */
  handle?(req: IncomingMessage, res: ServerResponse, peer: Peer | undefined): Promise<boolean>;
  /** Paths that may be called without a client certificate. */
  openPaths?: string[];
}

export interface ProxyTls { key: string; cert: string; ca: string[] }

/** What the proxy asks of policy when someone connects or lists. */
export interface AccessDecider {
  /** Throws AccessError('ACCESS_DENIED') when the peer may not reach the server. */
  checkServer(peer: Peer, server: ServerConfig): void;
  /** Extra per-server facts for `ls` (e.g. tool patterns). */
  describeServer?(peer: Peer, server: ServerConfig): Record<string, unknown>;
  /** Audit a refusal that happens outside a session (e.g. a resume by someone else). */
  recordRefusal?(peer: Peer, server: ServerConfig, reason: string): void;
}


export class ProxyServer {
  private readonly https: Server;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, ProxySession>();
  private readonly byToken = new Map<string, ProxySession>();
  private keepalive: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly upstreams: SparePool;

  constructor(
    private config: ProxyConfig,
    tls: ProxyTls,
    private gates: GateFactory,
    private access: AccessDecider,
    private readonly log: Logger,
    private readonly routes: ProxyRoutes = {},
  ) {
    this.https = createServer({
      key: tls.key,
      cert: tls.cert,
      ca: tls.ca,
      requestCert: true,
      // Checked per route, so that the open routes work without a certificate
      // and an expired one gets its own, specific answer.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxMessageSize + 1024,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.https.on('request', (req, res) => { void this.request(req, res); });
    this.https.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.https.on('tlsClientError', (err) => this.log.debug(`TLS handshake failed: ${err.message}`));
    this.upstreams = new SparePool(log, { maxMessageSize: config.maxMessageSize, stopGraceMs: config.stopGraceMs }, config.prestart);
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'the address is already in use (another proxy running?)'
          : err.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
          : err.code === 'EADDRNOTAVAIL' ? 'no network interface has that address' : err.message;
        reject(new AccessError('CONFIG_INVALID', `${this.config.path}: listen: cannot listen on ${host}:${port}: ${why}`, { hint: 'change listen, or stop what uses the port', cause: err }));
      };
      this.https.once('error', failed);
      this.https.listen(port, host, () => { this.https.off('error', failed); resolve(); });
    });
    this.keepalive = setInterval(() => this.ping(), this.config.keepaliveMs);
    this.keepalive.unref();
    this.upstreams.refresh(this.config.servers, this.config.prestart);
    const addr = this.address();
    this.log.info(`listening on ${addr.host}:${addr.port} (cluster ${this.config.cluster}, ${this.config.servers.length} servers)`);
    return addr;
  }

  address(): { host: string; port: number } {
    const a = this.https.address();
    if (a && typeof a === 'object') return { host: a.address, port: a.port };
    return this.config.listen;
  }

  get sessionCount(): number { return this.sessions.size; }

  /** New servers, roles and gates for the next requests; running sessions keep going. */
  reconfigure(config: ProxyConfig, gates: GateFactory, access: AccessDecider): void {
    this.config = config;
    this.gates = gates;
    this.access = access;
    this.upstreams.refresh(config.servers, config.prestart);
  }

  /** End every session of a user or bot (lock); returns how many. */
  endSessionsWhere(match: (peer: Peer) => boolean, reason: AccessError): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (match(s.peer)) { n++; void s.end(reason); }
    }
    return n;
  }

  /** Graceful stop: refuse new work, close every session with "going away", stop upstreams. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.keepalive) clearInterval(this.keepalive);
    const closed = new Promise<void>((resolve) => this.https.close(() => resolve()));
    const goingAway = new AccessError('PROXY_GOING_AWAY', 'the proxy is shutting down');
    await Promise.all([...this.sessions.values()].map((s) => s.end(goingAway)));
    await this.upstreams.close();
    for (const ws of this.wss.clients) ws.terminate();
    this.https.closeAllConnections();
    await closed;
  }

  private async request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://proxy');
    try {
      if (this.closing) throw new AccessError('PROXY_GOING_AWAY', 'the proxy is shutting down');
      if (req.method === 'GET' && url.pathname === '/v1/ping') {
        return json(res, 200, { version: VERSION, cluster: this.config.cluster, time: new Date().toISOString() });
      }
      const open = this.routes.openPaths?.includes(url.pathname) ?? false;
      const peer = open ? tryPeer(req.socket as TLSSocket) : peerFromSocket(req.socket as TLSSocket);
      if (req.method === 'GET' && url.pathname === '/v1/servers') {
        return json(res, 200, { cluster: this.config.cluster, servers: this.visibleServers(peer!) });
      }
      if (this.routes.handle && (await this.routes.handle(req, res, peer))) return;
      json(res, 404, { error: { code: 'NOT_FOUND', message: `no such endpoint: ${req.method} ${url.pathname}` } });
    } catch (err) {
      const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error).message);
      if (!isAccessError(err)) this.log.error(`${req.method} ${url.pathname}: ${describeError(err)}`);
      const status = e.code.startsWith('IDENTITY') ? 401 : e.code === 'PROXY_GOING_AWAY' ? 503 : e.exitCode === 5 ? 403 : e.code === 'INTERNAL' ? 500 : 400;
      json(res, status, { error: { code: e.code, message: e.message, hint: e.hint } });
    }
  }

  private visibleServers(peer: Peer): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const s of this.config.servers) {
      try {
        this.access.checkServer(peer, s);
      } catch {
        continue;
      }
      out.push({
        name: s.name,
        description: s.description,
        transport: s.transport,
        labels: s.labels,
        ...(commandProblem(s) ? { problem: commandProblem(s) } : {}),
        ...(this.access.describeServer?.(peer, s) ?? {}),
      });
    }
    return out;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'https://proxy');
    if (url.pathname !== TUNNEL_PATH || this.closing) {
      socket.end(`HTTP/1.1 ${this.closing ? '503 Service Unavailable' : '404 Not Found'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.log.debug(`tunnel: ${err.message}`));
      this.alive.set(ws, true);
      ws.on('pong', () => this.alive.set(ws, true));
      try {
        this.openTunnel(ws, req, url);
      } catch (err) {
        const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error).message);
        this.log.info(`tunnel refused: ${e.message}`);
        refuseTunnel(ws, e);
      }
    });
  }

  private openTunnel(ws: WebSocket, req: IncomingMessage, url: URL): void {
    const peer = peerFromSocket(req.socket as TLSSocket);
    const token = url.searchParams.get('resume');
    if (token) {
      const session = this.byToken.get(token);
      const received = Number(url.searchParams.get('received') ?? 'NaN');
      if (!session || !Number.isSafeInteger(received) || received < 0) {
        throw new AccessError('SESSION_LOST', 'the session to resume no longer exists on this proxy', { hint: 'a new session will be opened' });
      }
      if (session.peer.user !== peer.user || session.peer.bot?.name !== peer.bot?.name) {
        this.log.warn(`resume refused: ${peer.user} tried to resume a session of ${session.peer.user}`);
        this.access.recordRefusal?.(peer, session.server, `tried to resume session ${session.id} of ${session.peer.user}`);
        throw new AccessError('IDENTITY_REJECTED', 'only the identity that opened a session can resume it');
      }
      this.access.checkServer(peer, session.server);
      session.attach(ws, received, true, peer);
      return;
    }
    const name = url.searchParams.get('server') ?? '';
    const server = this.config.servers.find((s) => s.name === name);
    if (!server) throw new AccessError('UNKNOWN_SERVER', `no MCP server named "${name}" is enrolled on this proxy`);
    // Whether the peer may reach it is the gate's first decision (audited).
    void this.startSession(ws, peer, server);
  }

  private async startSession(ws: WebSocket, peer: Peer, server: ServerConfig): Promise<void> {
    // Hold client frames until the gate (and its audit log) is open.
    const early: Buffer[] = [];
    const hold = (data: Buffer) => early.push(data);
    ws.on('message', hold);
    let session: ProxySession;
    try {
      const id = randomUUID();
      const gate = await this.gates.open({ sessionId: id, peer, server });
      session = new ProxySession({
        id, config: this.config, server, peer, gate, log: this.log, upstreams: this.upstreams,
        onEnded: (s) => { this.sessions.delete(s.id); this.byToken.delete(s.resumeToken); },
      });
    } catch (err) {
      ws.off('message', hold);
      const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error).message);
      this.log.warn(`session refused: ${describeError(e)}`);
      refuseTunnel(ws, e);
      return;
    }
    ws.off('message', hold);
    this.sessions.set(session.id, session);
    this.byToken.set(session.resumeToken, session);
    session.attach(ws, 0, false);
    session.start();
    for (const data of early) ws.emit('message', data, true);
  }

  private ping(): void {
    for (const ws of this.wss.clients) {
      if (this.alive.get(ws) === false) {
        this.log.debug('tunnel did not answer keepalive; dropping it');
        ws.terminate();
        continue;
      }
      this.alive.set(ws, false);
      try { ws.ping(); } catch { /* closing */ }
    }
  }
}

function tryPeer(socket: TLSSocket): Peer | undefined {
  try { return peerFromSocket(socket); } catch { return undefined; }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
