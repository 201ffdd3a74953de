/**
 * `mcp-access connect`: the stdio bridge.
 *
 * An MCP client spawns it as if it were the MCP server. It reads JSON-RPC
 * lines on stdin, carries them over an mTLS tunnel to the proxy, and writes
 * what comes back to stdout, one message per line, bytes untouched.
 *
 * - It reads stdin from the first moment; what arrives before the tunnel is
 *   up is queued, never lost.
 * - When the tunnel drops it resumes the same session (nothing lost or
 *   duplicated); when that is impossible it opens a new one, replays the
 *   client's `initialize`, answers every request that was in flight with an
 *   "outcome unknown" error and tells the client to refresh its lists.
 * - A failure a person must act on (identity, unknown server, access denied,
 *   proxy unreachable) is one line on stderr and a JSON-RPC error for every
 *   request that is waiting; the process stays up until stdin closes.
 */
import type { Readable, Writable } from 'node:stream';
import { AccessError, describeError, EXIT, rpcCodeFor } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { Identity } from '../identity/load.js';
import { isFinalClose, CLOSE } from '../tunnel/close-codes.js';
import { TunnelEndpoint } from '../tunnel/endpoint.js';
import {
  classify,
  classifyBytes,
  classifyLarge,
  classifyMessage,
  classifyTop,
  errorResponse,
  LARGE_MESSAGE,
  RPC,
  type Classified,
} from '../tunnel/jsonrpc.js';
import { readJsonTop } from '../tunnel/json-top.js';
import { LineFramer, type FramedLine } from '../tunnel/line-framer.js';
import { openTunnel, isRetryable, type ConnectParams, type Opened } from './connection.js';
import { StdoutWriter } from './stdout-writer.js';
import { IdentitySource, rotationTime } from './identity-source.js';

export interface BridgeOptions {
  server: string;
  identityPath: string;
  proxy: { host: string; port: number };
  /** Extra trusted roots (PEM) for the proxy's certificate, from --ca-file. */
  extraCa: string[];
  maxMessageSize: number;
  keepaliveMs: number;
  /** Attempts after the first before "proxy unreachable" is final for now. */
  connectRetries: number;
  input: Readable;
  output: Writable;
  log: Logger;
  loadIdentity: (path: string) => Promise<Identity>;
  /** Opens one tunnel (default: `openTunnel`, mTLS to the proxy); tests hand in sockets of their own. */
  dial?: (params: ConnectParams) => Promise<Opened>;
}

interface InFlight {
  id: string | number;
  method: string;
  /** performance.now() when sent; only taken for the debug log's latencies (0 otherwise). */
  sentAt: number;
}

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
/** New sessions in a row (upstream crashing at once, say) before giving up. */
const MAX_NEW_SESSIONS = 3;
const REPLAY_PREFIX = 'mcp-access-replay-';

export class Bridge {
  private readonly o: BridgeOptions;
  private readonly log: Logger;
  private readonly framer: LineFramer;
  private readonly out: StdoutWriter;
  /** Our end of the tunnel: it outlives each WebSocket of the session. */
  private readonly tunnel: TunnelEndpoint;
  /** Requests sent and not yet answered, by id (a Map keeps 1 and "1" apart). */
  private readonly inflight = new Map<string | number, InFlight>();

  private session: { id: string; token: string } | undefined;
  private connecting: Promise<void> | undefined;
  private failure: AccessError | undefined;
  /** Why the last attempt to open a tunnel failed (while retrying). */
  private lastDialError: AccessError | undefined;
  private lastReported = '';
  /** No more input (stdin ended, a signal): draining what is in flight. */
  private stopping = false;
  /** Tearing down: no new tunnels. */
  private closing = false;
  private newSessionsInARow = 0;
  private readonly identity: IdentitySource;
  /** The certificate the current tunnel was opened with. */
  private tunnelIdentity: Identity | undefined;
  private rotateTimer: NodeJS.Timeout | undefined;

  /** The client's initialize, kept to replay on a new session. */
  private init:
    | {
        request: Buffer;
        id: string | number;
        answered: boolean;
        serverInfo?: unknown;
        capabilities?: Record<string, unknown>;
      }
    | undefined;
  private initialized: Buffer | undefined;
  private replaySeq = 0;
  private replayId: string | undefined;

  private done!: (code: number) => void;
  readonly finished: Promise<number>;

  constructor(options: BridgeOptions) {
    this.o = options;
    this.log = options.log;
    this.framer = new LineFramer(options.maxMessageSize);
    this.tunnel = new TunnelEndpoint({
      highWaterBytes: Math.max(4 * 1024 * 1024, options.maxMessageSize),
      keepaliveMs: options.keepaliveMs,
      peerName: 'the proxy',
      closeTimeoutMs: 300,
      debug: (line) => this.log.debug(line),
    });
    this.tunnel.on('writable', () => {
      if (this.o.input.isPaused() && !this.stopping) this.o.input.resume();
    });
    this.tunnel.on('message', (data) => this.fromProxy(data));
    this.tunnel.on('disconnect', (err, code, reason) => this.tunnelLost(err, code, reason));
    // A blocked stdout pauses the tunnel, whichever socket it is on now or after a reconnect.
    this.out = new StdoutWriter(
      options.output,
      () => this.tunnel.pause(),
      () => this.tunnel.resume(),
    );
    this.finished = new Promise((resolve) => {
      this.done = resolve;
    });
    this.identity = new IdentitySource(options.identityPath, options.loadIdentity, this.log, (id) =>
      this.identityRenewed(id),
    );
  }

  /** Start reading stdin and connecting, at once. Resolves with the exit code. */
  run(): Promise<number> {
    const input = this.o.input;
    input.on('data', (chunk: Buffer) => this.framer.push(chunk, this.onLine));
    input.on('end', () => {
      this.framer.end(this.onLine);
      void this.shutdown('stdin closed');
    });
    input.on('error', (err) => {
      this.log.error(`stdin: ${err.message}`);
      void this.shutdown('stdin error');
    });
    this.out.onError = () => {
      void this.shutdown('stdout closed');
    };
    this.identity.start();
    void this.connect();
    return this.finished;
  }

  /** Stop: flush what is queued, close the tunnel cleanly, resolve `finished`. */
  async shutdown(why: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.debug(`${why}: shutting down`);
    this.o.input.pause();
    this.identity.stop();
    if (this.rotateTimer) clearTimeout(this.rotateTimer);
    // Give queued messages a moment to reach the proxy, and requests in flight
    // a moment to be answered (a person piping lines in expects the answers).
    // Bounded: the process exits within 2 s.
    const deadline = Date.now() + 1700;
    const busy = () => !this.failure && (this.tunnel.pendingBytes > 0 || this.inflight.size > 0);
    while ((this.tunnel.attached || this.connecting) && busy() && Date.now() < deadline) await sleep(10);
    // Requests still waiting because the proxy could not be reached (a smoke
    // test against a dead proxy): each gets the failure, and so does the exit status.
    if (!this.failure && !this.tunnel.attached && this.inflight.size > 0) {
      const where = `${this.o.proxy.host}:${this.o.proxy.port}`;
      this.fail(
        this.lastDialError ??
          new AccessError('PROXY_UNREACHABLE', `the proxy at ${where} could not be reached before stdin closed`),
      );
    }
    this.closing = true;
    // 1000, then at most 300 ms for the proxy's close frame.
    await this.tunnel.close();
    await this.out.flush(Math.max(100, deadline - Date.now()));
    this.done(this.failure ? this.failure.exitCode : EXIT.OK);
  }

  // ---- stdin → tunnel ------------------------------------------------------

  private readonly onLine = (line: FramedLine): void => {
    if (line.kind === 'oversize') {
      const msg = `message of ${line.size} bytes is over the ${this.o.maxMessageSize}-byte limit`;
      this.log.warn(`${msg} (raise --max-message-size)`);
      if (line.id !== undefined)
        this.out.write(
          Buffer.from(errorResponse(line.id, RPC.INVALID_REQUEST, `mcp-access: ${msg}`, { code: 'MESSAGE_TOO_LARGE' })),
        );
      return;
    }
    const bytes = line.bytes;
    // A large message is routed by its top level; the proxy's inspector still
    // checks it whole. A small one is classified from its bytes by a strict
    // JSON scan. Anything a scan cannot settle is parsed here.
    let c: Classified | undefined =
      bytes.length > LARGE_MESSAGE ? classifyLarge(bytes)?.classified : classifyBytes(bytes);
    if (!c) {
      let msg: unknown;
      try {
        msg = JSON.parse(bytes.toString('utf8'));
      } catch (err) {
        this.log.warn(`stdin: a line that is not JSON was answered with a parse error (${(err as Error).message})`);
        this.out.write(Buffer.from(errorResponse(null, RPC.PARSE_ERROR, `Parse error: ${(err as Error).message}`)));
        return;
      }
      c = classify(msg);
    }
    if (c.kind === 'other') {
      this.out.write(
        Buffer.from(errorResponse(null, RPC.INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 message')),
      );
      return;
    }
    if (c.kind === 'request') {
      const debug = this.log.enabled('debug');
      this.inflight.set(c.id, { id: c.id, method: c.method, sentAt: debug ? performance.now() : 0 });
      if (c.method === 'initialize') this.init = { request: bytes, id: c.id, answered: false };
    } else if (c.kind === 'notification' && c.method === 'notifications/initialized') {
      this.initialized = bytes;
    }
    if (this.log.enabled('debug')) this.trace('→', c, bytes.length);

    if (this.failure) {
      // A new message after a failure is a new try: the identity file may have
      // been renewed, the proxy may be back, the roles may have changed.
      this.failure = undefined;
      void this.connect();
    }
    if (!this.tunnel.send(bytes)) this.o.input.pause();
  };

  // ---- tunnel --------------------------------------------------------------

  private connect(): Promise<void> {
    if (this.connecting || this.closing) return this.connecting ?? Promise.resolve();
    this.connecting = this.connectLoop().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectLoop(): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      let identity: Identity;
      try {
        identity = await this.identity.load();
      } catch (err) {
        return this.fail(asAccessError(err));
      }
      try {
        const opened = await (this.o.dial ?? openTunnel)({
          proxy: this.o.proxy,
          server: this.o.server,
          tls: { key: identity.keyPem, cert: identity.certPem, ca: [...identity.caPems, ...this.o.extraCa] },
          maxMessageSize: this.o.maxMessageSize,
          resume: this.session ? { token: this.session.token, received: this.tunnel.receivedCount } : undefined,
        });
        if (this.closing) {
          opened.socket.terminate();
          return;
        }
        this.tunnelIdentity = identity;
        this.lastDialError = undefined;
        this.adopt(opened);
        this.scheduleRotation();
        return;
      } catch (e) {
        const err = asAccessError(e);
        if (err.code === 'SESSION_LOST' && this.session) {
          this.log.info(
            `session ${this.session.id.slice(0, 8)} could not be resumed (${err.message}); opening a new one`,
          );
          if (!this.startNewSession()) return;
          attempt = -1;
          continue;
        }
        if (isRetryable(err) && attempt < this.o.connectRetries) {
          this.lastDialError = err;
          const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]!;
          this.log.info(`${err.message}; retrying in ${wait}ms`);
          await sleep(wait);
          continue;
        }
        return this.fail(err);
      }
    }
  }

  private adopt(opened: Opened): void {
    const { socket, hello } = opened;
    const resumed = this.session !== undefined && hello.resumed;
    this.session = { id: hello.session, token: hello.resumeToken };
    this.log.info(
      resumed
        ? `resumed session ${hello.session.slice(0, 8)} with ${hello.server}`
        : `connected to ${hello.server} through ${this.o.proxy.host}:${this.o.proxy.port}`,
    );
    // Paused at once if stdout is still blocked; frames that came with the hello are handled now.
    this.tunnel.attach(socket, hello.received, { held: opened.held });
  }

  /** The tunnel's socket went away: resume, open a new session, or report. */
  private tunnelLost(err: AccessError | undefined, code: number, reason: string): void {
    if (this.closing) return;
    if (err && (err.code === 'UPSTREAM_EXITED' || (err.code === 'UPSTREAM_FAILED' && this.init?.answered))) {
      this.log.warn(`${err.message}; opening a new session`);
      if (this.startNewSession(err)) void this.connect();
      return;
    }
    if (err && isFinalClose(code) && err.code !== 'IDENTITY_EXPIRED') {
      this.session = undefined;
      this.fail(err);
      return;
    }
    this.log.info(`tunnel lost (${err ? err.message : reason || `code ${code}`}); reconnecting`);
    void this.connect();
  }

  /**
   * The old session is gone. Requests it may have seen get "outcome unknown";
   * what it never saw is sent to the new one, after the replayed initialize.
   */
  private startNewSession(why?: AccessError): boolean {
    if (++this.newSessionsInARow > MAX_NEW_SESSIONS) {
      this.session = undefined;
      // The last reason (e.g. the server's last stderr line) is what a person can act on.
      const last = why ? `; last: ${why.message}` : '';
      this.fail(
        new AccessError(
          'SESSION_LOST',
          `the session with "${this.o.server}" was lost ${MAX_NEW_SESSIONS} times in a row${last}`,
          why ? { hint: why.hint } : {},
        ),
      );
      return false;
    }
    this.session = undefined;
    const unacked = this.tunnel.reset();
    const resend: Buffer[] = [];
    const notSent = new Set<string | number>();
    for (const { data, transmitted } of unacked) {
      if (transmitted) continue;
      resend.push(data);
      const c = classifyMessage(data);
      if (c?.kind === 'request') notSent.add(c.id);
    }
    for (const [key, f] of this.inflight) {
      if (notSent.has(key)) continue;
      if (this.init && !this.init.answered && f.id === this.init.id) {
        notSent.add(key);
        resend.unshift(this.init.request);
        continue;
      }
      this.inflight.delete(key);
      this.out.write(
        Buffer.from(
          errorResponse(
            f.id,
            RPC.INTERNAL_ERROR,
            `mcp-access: the session with "${this.o.server}" was lost while ${f.method} was in flight; its outcome is unknown (retry it if it is safe to)`,
            { code: 'SESSION_LOST' },
          ),
        ),
      );
    }
    this.queueReplay();
    for (const data of resend) this.tunnel.send(data);
    return true;
  }

  /**
   * A failure a person must act on: one stderr line, and an error for every
   * request that is waiting. The session is abandoned (nothing answered here
   * may run later); the next message, or a renewed identity file, starts a
   * new one, replaying the client's initialize.
   */
  private fail(err: AccessError): void {
    this.failure = err;
    if (err.line !== this.lastReported) {
      this.lastReported = err.line;
      this.log.error(err.line);
    }
    this.session = undefined;
    this.tunnel.reset();
    for (const f of this.inflight.values()) {
      this.out.write(
        Buffer.from(errorResponse(f.id, rpcCodeFor(err.code), `mcp-access: ${err.line}`, { code: err.code })),
      );
    }
    this.inflight.clear();
    this.queueReplay();
  }

  /** Queue the client's initialize (and initialized) for a new session, ahead of anything else. */
  private queueReplay(): void {
    if (!this.init?.answered) return;
    this.replayId = `${REPLAY_PREFIX}${++this.replaySeq}`;
    const req = JSON.parse(this.init.request.toString('utf8')) as Record<string, unknown>;
    req.id = this.replayId;
    this.tunnel.send(Buffer.from(JSON.stringify(req)));
    if (this.initialized) this.tunnel.send(this.initialized);
  }

  // ---- renewed identities --------------------------------------------------

  private identityRenewed(id: Identity): void {
    if (this.closing) return;
    if (this.failure?.code.startsWith('IDENTITY')) {
      this.log.info(`a valid identity file appeared; reconnecting`);
      this.failure = undefined;
      void this.connect();
      return;
    }
    if (
      this.tunnelIdentity &&
      id.serial !== this.tunnelIdentity.serial &&
      Date.now() >= rotationTime(this.tunnelIdentity)
    )
      this.rotate();
  }

  /** At the rotation time, move onto the renewed certificate if there is one (else when it appears). */
  private scheduleRotation(): void {
    if (this.rotateTimer) clearTimeout(this.rotateTimer);
    const tunnelId = this.tunnelIdentity;
    if (!tunnelId) return;
    const wait = Math.max(0, rotationTime(tunnelId) - Date.now());
    this.rotateTimer = setTimeout(
      () => {
        const cur = this.identity.current;
        if (cur && cur.serial !== tunnelId.serial) this.rotate();
        else
          this.log.debug(
            `certificate expires at ${tunnelId.notAfter.toISOString()}; waiting for a renewed identity file`,
          );
      },
      Math.min(wait, 2 ** 31 - 1),
    );
    this.rotateTimer.unref();
  }

  /** A planned reconnect: the same session, resumed over a tunnel with the new certificate. */
  private rotate(): void {
    if (!this.tunnel.attached || this.connecting || this.closing) return;
    this.log.info('moving the session onto the renewed certificate');
    this.tunnel.release(CLOSE.ROTATING, 'rotating identity');
    void this.connect();
  }

  // ---- tunnel → stdout -----------------------------------------------------

  private fromProxy(data: Buffer): void {
    // A small message is read from its bytes (strictly: it is JSON), which
    // also says whether it has a raw line break to take out.
    const top = data.length <= LARGE_MESSAGE ? readJsonTop(data) : undefined;
    const c = top ? classifyTop(top) : classifyMessage(data);
    const isOneLine = top !== undefined && !top.lineBreaks;
    if (!c) {
      this.out.write(data);
      return;
    }
    if (c.kind === 'response' && c.id !== null) {
      if (typeof c.id === 'string' && c.id === this.replayId) return this.replayAnswered(parseObject(data));
      const f = this.inflight.get(c.id);
      if (f) {
        this.inflight.delete(c.id);
        this.newSessionsInARow = 0;
        if (this.init && f.id === this.init.id && f.method === 'initialize') {
          const result = (
            parseObject(data) as { result?: { serverInfo?: unknown; capabilities?: Record<string, unknown> } }
          ).result;
          this.init.answered = result !== undefined;
          this.init.serverInfo = result?.serverInfo;
          this.init.capabilities = result?.capabilities;
        }
        if (this.log.enabled('debug')) this.trace('←', c, data.length, performance.now() - f.sentAt);
      }
    } else if (this.log.enabled('debug')) this.trace('←', c, data.length);
    this.out.write(data, isOneLine);
  }

  private replayAnswered(msg: Record<string, unknown>): void {
    this.replayId = undefined;
    const result = msg.result as { serverInfo?: unknown; capabilities?: Record<string, unknown> } | undefined;
    if (!result) {
      this.log.error(`the server refused the replayed initialize: ${JSON.stringify(msg.error ?? null)}`);
      return;
    }
    this.newSessionsInARow = 0;
    if (JSON.stringify(result.serverInfo) !== JSON.stringify(this.init?.serverInfo)) {
      this.log.warn(
        `the new session's server is ${JSON.stringify(result.serverInfo)}, not ${JSON.stringify(this.init?.serverInfo)} as before`,
      );
    }
    this.log.info('new session ready; asking the client to refresh its lists');
    const caps = result.capabilities ?? {};
    for (const kind of ['tools', 'resources', 'prompts'] as const) {
      if (caps[kind])
        this.out.write(Buffer.from(JSON.stringify({ jsonrpc: '2.0', method: `notifications/${kind}/list_changed` })));
    }
  }

  private trace(dir: string, c: ReturnType<typeof classify>, bytes: number, latencyMs?: number): void {
    const what =
      c.kind === 'request'
        ? `${c.method} id=${JSON.stringify(c.id)}`
        : c.kind === 'notification'
          ? c.method
          : c.kind === 'response'
            ? `response id=${JSON.stringify(c.id)}`
            : c.kind;
    this.log.debug(`${dir} ${what} ${bytes}B${latencyMs !== undefined ? ` ${latencyMs.toFixed(2)}ms` : ''}`);
  }
}

function asAccessError(err: unknown): AccessError {
  if (err instanceof AccessError) return err;
  return new AccessError('INTERNAL', describeError(err));
}

function parseObject(data: Buffer): Record<string, unknown> {
  try {
    return JSON.parse(data.toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
