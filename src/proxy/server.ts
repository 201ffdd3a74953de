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
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AccessError, CATALOGUE, describeError, httpStatusFor, isAccessError } from '../errors.js';
import { VERSION } from '../version.js';
import type { Logger } from '../util/log.js';
import { SUBPROTOCOL, TUNNEL_PATH } from '../tunnel/control.js';
import { AGENT_CONTROL_PATH, AGENT_DATA_PATH, AGENT_SUBPROTOCOL, agentOfToken } from '../tunnel/agent-protocol.js';
import type { ServerRef } from '../rbac/policy.js';
import { AgentDirectory, type AgentDirectoryOptions } from './agents.js';
import { Keepalive } from '../tunnel/keepalive.js';
import { realClock } from '../tunnel/clock.js';
import type { ProxyConfig } from './config.js';
import type { GateFactory } from '../agent/gate.js';
import { peerFromSocket, type Peer } from '../identity/peer.js';
import { refuseTunnel } from '../agent/session.js';
import { SessionHost } from '../agent/host.js';
import { commandProblem } from '../agent/upstream/command-check.js';

export interface ProxyRoutes {
  /** Extra HTTP routes (the bot service). Return true when handled. */
  handle?(req: IncomingMessage, res: ServerResponse, peer: Peer | undefined): Promise<boolean>;
  /** Paths that may be called without a client certificate. */
  openPaths?: string[];
}

export interface ProxyTls {
  key: string;
  cert: string;
  ca: string[];
}

/** What the proxy asks of policy when someone connects or lists. */
export interface AccessDecider {
  /** Throws AccessError('ACCESS_DENIED') when the peer may not reach the server. */
  checkServer(peer: Peer, server: ServerRef): void;
  /**
   * Throws when the identity may open or resume no session at all now (a
   * locked or removed bot): checked for a resume routed to a remote agent,
   * where the proxy does not know the session's server.
   */
  checkPeer?(peer: Peer): void;
  /** Extra per-server facts for `ls` (e.g. tool patterns). */
  describeServer?(peer: Peer, server: ServerRef): Record<string, unknown>;
  /** Facts about the caller for `ls` (roles the proxy does not define, warnings). */
  describePeer?(peer: Peer): Record<string, unknown>;
  /**
   * Audit a refusal that happens outside a session: an unauthenticated
   * upgrade, an unknown server, a bad resume token, a resume by someone else.
   * Rate-limited by the implementation (see docs/audit.md).
   */
  recordRefusal?(refusal: Refusal): void;
}

/** A connection refused before a session existed. */
export interface Refusal {
  /** The verified identity, when there was one. */
  peer?: Peer;
  remoteAddr: string;
  server?: string;
  code: string;
  reason: string;
}

/** Small limits and deadlines before a client has authenticated (docs/protocol.md). */
export const PRE_AUTH = {
  /** TLS handshake. */
  handshakeTimeoutMs: 10_000,
  /** From the TLS handshake's end to the first request. */
  firstRequestMs: 10_000,
  /** A request's headers, from its first byte. */
  headersTimeoutMs: 10_000,
  /** A whole request (headers and body). */
  requestTimeoutMs: 30_000,
  /** All request headers together. */
  maxHeaderBytes: 16 * 1024,
} as const;

export class ProxyServer {
  private readonly https: Server;
  private readonly wss: WebSocketServer;
  /** This process, among replicas behind one address. */
  readonly id = randomUUID();
  /** The in-process agent: sessions to the servers in this proxy's own configuration. */
  private readonly local: SessionHost;
  /** Remote agents: the servers they announce, routing to them. */
  readonly agents: AgentDirectory;
  private closing = false;
  /** Connections that sent a first request (the pre-auth deadline no longer applies). */
  private readonly spoken = new WeakSet<object>();

  constructor(
    private config: ProxyConfig,
    tls: ProxyTls,
    private gates: GateFactory,
    private access: AccessDecider,
    private readonly log: Logger,
    private readonly routes: ProxyRoutes = {},
    agentOptions: Pick<
      AgentDirectoryOptions,
      'audit' | 'auditSettings' | 'roles' | 'rbac' | 'checkAgent' | 'dialTimeoutMs' | 'agentWaitMs'
    > = {
      audit: () => undefined,
      roles: () => [],
    },
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
      handshakeTimeout: PRE_AUTH.handshakeTimeoutMs,
      headersTimeout: PRE_AUTH.headersTimeoutMs,
      requestTimeout: PRE_AUTH.requestTimeoutMs,
      maxHeaderSize: PRE_AUTH.maxHeaderBytes,
      connectionsCheckingInterval: 1000,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxMessageSize + 1024,
      perMessageDeflate: false,
      handleProtocols: (protocols, req) =>
        req.url?.startsWith('/v1/agent/')
          ? protocols.has(AGENT_SUBPROTOCOL)
            ? AGENT_SUBPROTOCOL
            : false
          : protocols.has(SUBPROTOCOL)
            ? SUBPROTOCOL
            : false,
    });
    this.https.on('secureConnection', (socket: TLSSocket) => {
      // The first request must arrive within the pre-auth deadline (Node's
      // headersTimeout only starts with a request's first byte).
      const timer = setTimeout(() => {
        if (!this.spoken.has(socket)) socket.destroy();
      }, PRE_AUTH.firstRequestMs);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    });
    this.https.on('request', (req, res) => {
      this.spoken.add(req.socket);
      void this.request(req, res);
    });
    this.https.on('upgrade', (req, socket, head) => {
      this.spoken.add(req.socket);
      this.upgrade(req, socket, head);
    });
    this.https.on('tlsClientError', (err) => this.log.debug(`TLS handshake failed: ${err.message}`));
    // Malformed HTTP (bad request line, over-size headers, timeouts): 400 / 431 / 408 and close, never a crash.
    this.https.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      this.log.debug(`bad HTTP from a client: ${err.code ?? err.message}`);
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const status =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    this.local = new SessionHost({ settings: config, gates, log });
    this.agents = new AgentDirectory({
      ...agentOptions,
      proxyId: this.id,
      cluster: config.cluster,
      log,
      keepaliveMs: config.keepaliveMs,
      localNames: () => new Set(this.config.servers.map((s) => s.name)),
      rbac: agentOptions.rbac ?? (() => ({ ...this.config.rbac })),
    });
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'EADDRINUSE'
            ? 'the address is already in use (another proxy running?)'
            : err.code === 'EACCES'
              ? 'permission denied (ports below 1024 need privileges)'
              : err.code === 'EADDRNOTAVAIL'
                ? 'no network interface has that address'
                : err.message;
        reject(
          new AccessError('CONFIG_INVALID', `${this.config.path}: listen: cannot listen on ${host}:${port}: ${why}`, {
            hint: 'change listen, or stop what uses the port',
            cause: err,
          }),
        );
      };
      this.https.once('error', failed);
      this.https.listen(port, host, () => {
        this.https.off('error', failed);
        resolve();
      });
    });
    this.local.reconfigure(this.config.servers, this.config, this.gates);
    const addr = this.address();
    this.log.info(
      `listening on ${addr.host}:${addr.port} (cluster ${this.config.cluster}, ${plural(this.config.servers.length, 'server')})`,
    );
    return addr;
  }

  address(): { host: string; port: number } {
    const a = this.https.address();
    if (a && typeof a === 'object') return { host: a.address, port: a.port };
    return this.config.listen;
  }

  get sessionCount(): number {
    return this.local.sessionCount;
  }

  /** New servers, roles and gates for the next requests; running sessions keep going. */
  reconfigure(config: ProxyConfig, gates: GateFactory, access: AccessDecider): void {
    this.config = config;
    this.gates = gates;
    this.access = access;
    this.local.reconfigure(config.servers, config, gates);
  }

  /** End every session of a user or bot (lock); returns how many. */
  endSessionsWhere(match: (peer: Peer) => boolean, reason: AccessError): number {
    return this.local.endSessionsWhere(match, reason) + this.agents.endSessionsWhere(match, reason);
  }

  /** Graceful stop: refuse new work, close every session with "going away", stop upstreams. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.https.close(() => resolve()));
    this.agents.close();
    await this.local.close(new AccessError('PROXY_GOING_AWAY', 'the proxy is shutting down'));
    for (const ws of this.wss.clients) ws.terminate();
    this.https.closeAllConnections();
    await closed;
  }

  private async request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseTarget(req.url);
    if (!url) {
      json(res, 400, {
        error: {
          code: 'HTTP_BAD_REQUEST',
          message: 'the request target is not a valid path',
          hint: CATALOGUE.HTTP_BAD_REQUEST.hint,
        },
      });
      return;
    }
    try {
      if (this.closing) throw new AccessError('PROXY_GOING_AWAY', 'the proxy is shutting down');
      if (req.method === 'GET' && url.pathname === '/v1/ping') {
        return json(res, 200, { version: VERSION, cluster: this.config.cluster, time: new Date().toISOString() });
      }
      const open = this.routes.openPaths?.includes(url.pathname) ?? false;
      const peer = open ? tryPeer(req.socket as TLSSocket) : peerFromSocket(req.socket as TLSSocket);
      if (req.method === 'GET' && url.pathname === '/v1/servers') {
        return json(res, 200, {
          cluster: this.config.cluster,
          servers: this.visibleServers(peer!),
          ...this.access.describePeer?.(peer!),
        });
      }
      if (this.routes.handle && (await this.routes.handle(req, res, peer))) return;
      json(res, 404, { error: { code: 'NOT_FOUND', message: `no such endpoint: ${req.method} ${url.pathname}` } });
    } catch (err) {
      const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error).message);
      if (!isAccessError(err)) this.log.error(`${req.method} ${url.pathname}: ${describeError(err)}`);
      if (e.code.startsWith('IDENTITY')) {
        this.access.recordRefusal?.({
          remoteAddr: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`,
          code: e.code,
          reason: `${req.method} ${boundedParam(url.pathname)}: ${e.message}`,
        });
      }
      json(res, httpStatusFor(e.code), { error: { code: e.code, message: e.message, hint: e.hint } });
    }
  }

  /** The proxy's own servers, then those agents announce: the ones the identity may reach. */
  private visibleServers(peer: Peer): Array<Record<string, unknown>> {
    const targets = [
      ...this.config.servers.map((s) => ({ server: s, problem: commandProblem(s), agents: undefined })),
      ...this.agents.servers().map((s) => ({ server: s, problem: s.problem, agents: s.agents })),
    ];
    const out: Array<Record<string, unknown>> = [];
    for (const { server: s, problem, agents } of targets) {
      try {
        this.access.checkServer(peer, s);
      } catch {
        continue;
      }
      const { name, description, transport, labels } = s as ServerRef & { description: string; transport: string };
      out.push({
        name,
        description,
        transport,
        labels,
        ...(agents !== undefined ? { agents } : {}),
        ...(problem ? { problem } : {}),
        ...(this.access.describeServer?.(peer, s) ?? {}),
      });
    }
    return out;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.log.debug(`upgrade: ${err.message}`));
    const remoteAddr = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const url = parseTarget(req.url);
    if (!url) {
      answerUpgrade(socket, new AccessError('HTTP_BAD_REQUEST', 'the request target is not a valid path'));
      return;
    }
    const agentPath = url.pathname === AGENT_CONTROL_PATH || url.pathname === AGENT_DATA_PATH;
    if ((url.pathname !== TUNNEL_PATH && !agentPath) || this.closing) {
      socket.end(
        `HTTP/1.1 ${this.closing ? '503 Service Unavailable' : '404 Not Found'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    // No WebSocket (and no 64 MiB frame limit) before the client certificate is verified.
    let peer: Peer;
    try {
      peer = peerFromSocket(req.socket as TLSSocket);
    } catch (err) {
      const e = isAccessError(err) ? err : new AccessError('IDENTITY_REJECTED', (err as Error).message);
      this.log.info(`tunnel refused before upgrade (${remoteAddr}): ${e.message}`);
      this.access.recordRefusal?.({
        remoteAddr,
        server: boundedParam(url.searchParams.get('server')),
        code: e.code,
        reason: e.message,
      });
      answerUpgrade(socket, e);
      return;
    }
    // An agent's host certificate opens agent connections only; a user's or bot's, tunnels only.
    if (agentPath !== (peer.agent !== undefined)) {
      const e = new AccessError(
        'IDENTITY_REJECTED',
        agentPath
          ? `${peer.user} is not an agent: ${url.pathname} needs an agent's host certificate`
          : `agent ${peer.agent!.name}'s host certificate cannot open MCP sessions`,
      );
      this.log.warn(`refused before upgrade (${remoteAddr}): ${e.message}`);
      this.access.recordRefusal?.({
        peer,
        remoteAddr,
        server: boundedParam(url.searchParams.get('server')),
        code: e.code,
        reason: e.message,
      });
      answerUpgrade(socket, e);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // A local session's keepalive is its tunnel endpoint's (src/tunnel/endpoint.ts);
      // agents' connections and tunnels routed to them are pinged here.
      ws.on('error', (err) => this.log.debug(`tunnel: ${err.message}`));
      if (agentPath) {
        this.keepAlive(ws);
        if (url.pathname === AGENT_CONTROL_PATH) this.agents.attachControl(ws, peer);
        else this.agents.attachData(ws, peer, url.searchParams.get('proxy'));
        return;
      }
      const refused = (err: unknown, server?: string) => {
        const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error).message);
        this.log.info(`tunnel refused: ${e.message}`);
        const detail = (e.detail ?? {}) as { auditReason?: string; server?: string };
        this.access.recordRefusal?.({
          peer,
          remoteAddr: peer.remoteAddr,
          server: detail.server ?? server ?? boundedParam(url.searchParams.get('server')),
          code: e.code,
          reason: detail.auditReason ? `${e.message}: ${detail.auditReason}` : e.message,
        });
        refuseTunnel(ws, e);
      };
      try {
        const routed = this.openTunnel(ws, peer, url);
        if (routed) {
          this.keepAlive(ws);
          routed.catch((err: unknown) => refused(err));
        }
      } catch (err) {
        refused(err);
      }
    });
  }

  /** Ping a connection the proxy holds without a tunnel endpoint; a peer that stops answering is dropped. */
  private keepAlive(ws: WebSocket): void {
    const k = new Keepalive(
      ws,
      this.config.keepaliveMs,
      () => {
        this.log.debug('a connection did not answer keepalive; dropping it');
        ws.terminate();
      },
      realClock,
    );
    ws.once('close', () => k.stop());
  }

  /**
   * Hand the tunnel to where its session lives: the in-process agent for the
   * proxy's own servers and the sessions it holds; a remote agent (routed,
   * asynchronously) for servers agents announce and sessions whose resume
   * token names an agent.
   */
  private openTunnel(ws: WebSocket, peer: Peer, url: URL): Promise<void> | undefined {
    const token = url.searchParams.get('resume');
    if (token !== null) {
      const received = Number(url.searchParams.get('received') ?? 'NaN');
      if (agentOfToken(token) !== undefined) {
        if (!Number.isSafeInteger(received) || received < 0)
          throw new AccessError('SESSION_LOST', 'the session to resume no longer exists', {
            hint: 'a new session will be opened',
          });
        this.access.checkPeer?.(peer);
        return this.agents.resume(token, received, ws, peer);
      }
      this.local.resume(ws, token, received, peer, (p, s) => this.access.checkServer(p, s));
      return undefined;
    }
    const name = url.searchParams.get('server') ?? '';
    const server = this.config.servers.find((s) => s.name === name);
    if (server) {
      this.local.open(ws, peer, server);
      return undefined;
    }
    const remote = this.agents.find(name);
    if (!remote)
      throw new AccessError('UNKNOWN_SERVER', `no MCP server named "${boundedParam(name)}" is enrolled on this proxy`);
    // The proxy checks that the identity may reach the server at all; the agent's gate judges every message.
    this.access.checkServer(peer, remote);
    return this.agents.route(name, ws, peer);
  }
}

/**
 * The request target as a URL, or undefined when it is not an origin-form
 * path (`GET //a:99999`, `GET http://x/`, `GET *`, bad percent-encoding):
 * malformed input gets a 400, never an exception outside a handler.
 */
export function parseTarget(target: string | undefined): URL | undefined {
  if (typeof target !== 'string' || !target.startsWith('/') || target.startsWith('//')) return undefined;
  try {
    const url = new URL(target, 'https://proxy');
    if (url.host !== 'proxy') return undefined;
    // URLSearchParams repairs bad escapes silently; a query must be strict
    // percent-encoded UTF-8 (decodeURIComponent throws otherwise).
    for (const part of url.search.slice(1).split(/[&=]/)) decodeURIComponent(part.replace(/\+/g, ' '));
    return url;
  } catch {
    return undefined;
  }
}

/** A client-chosen query parameter, bounded for logs and audit events. */
function boundedParam(v: string | null): string | undefined {
  if (v === null) return undefined;
  return v.length <= 200 ? v : `${v.slice(0, 200)}…`;
}

/** An HTTP answer on a socket that asked to upgrade, then close it. */
function answerUpgrade(socket: Duplex, err: AccessError): void {
  const body = JSON.stringify({ error: { code: err.code, message: err.message, hint: err.hint } });
  const status = httpStatusFor(err.code);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function tryPeer(socket: TLSSocket): Peer | undefined {
  try {
    return peerFromSocket(socket);
  } catch {
    return undefined;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
