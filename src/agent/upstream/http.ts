/**
 * Streamable HTTP and legacy SSE MCP servers, through the SDK v2 client
 * transports (they handle session ids, the SSE stream and reconnection, and
 * speak both the 2025 revisions and 2026-07-28: a request that carries its
 * protocol version in `_meta` gets the headers that revision requires).
 * These transports speak parsed messages, so frames are re-serialised here:
 * byte-for-byte relay holds for stdio servers, not HTTP ones.
 *
 * Every byte the server sends passes `boundedFetch`: bodies are read only
 * while the session can take more, and no answer over max_message_size is
 * held in memory (its request gets a JSON-RPC error instead).
 *
 * What this upstream holds is bounded too: messages sent whose request has
 * not finished, plus answers that arrived while the session was paused
 * (its tunnel full). Over `highWaterBytes`, `send` returns false and the
 * session stops reading its tunnel until `onDrain`.
 */
import { AccessError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import { redactSecrets, redactUrl } from '../../util/redact.js';
import { classify, errorResponse, RPC, type JsonRpcId } from '../../tunnel/jsonrpc.js';
import type { HttpServerConfig, SseServerConfig } from '../servers.js';
import { boundedFetch } from './bounded-fetch.js';
import { JWT_HEADER } from '../../identity/jwt.js';
import type { Upstream, UpstreamEvents } from './upstream.js';

type JSONRPCMessage = Record<string, unknown>;

/** What a queued message costs beyond its bytes (its objects, a request's state), as in the tunnel's outbox. */
const MESSAGE_OVERHEAD = 512;
interface Transport {
  start(): Promise<void>;
  send(message: JSONRPCMessage): Promise<void>;
  close(): Promise<void>;
  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  setProtocolVersion?: (version: string) => void;
  terminateSession?: () => Promise<void>;
}

export class HttpUpstream implements Upstream {
  private transport: Transport | undefined;
  private closed = false;
  private paused = false;
  private resumed: Array<() => void> = [];
  private held: Buffer[] = [];
  /** Bytes (plus overhead) of messages sent and not finished, and of answers held. */
  private queued = 0;
  /** `send` returned false: `onDrain` is owed. */
  private owesDrain = false;
  private readonly highWaterBytes: number;
  /** ids of `initialize` requests sent: their answer fixes the protocol version header. */
  private readonly initializeIds = new Set<JsonRpcId>();

  constructor(
    private readonly serverName: string,
    private readonly config: HttpServerConfig | SseServerConfig,
    private readonly events: UpstreamEvents,
    private readonly log: Logger,
    private readonly opts: { maxMessageSize: number; highWaterBytes?: number } = { maxMessageSize: 64 * 1024 * 1024 },
  ) {
    this.highWaterBytes = opts.highWaterBytes ?? Math.max(8 * 1024 * 1024, opts.maxMessageSize);
  }

  /** Bytes this upstream holds now (sent and not finished, answers held while paused), with overhead. */
  get queuedBytes(): number {
    return this.queued;
  }
  /** Answers held while paused. */
  get heldCount(): number {
    return this.held.length;
  }

  describe(): string {
    return redactUrl(this.config.url);
  }

  async start(): Promise<void> {
    const url = new URL(this.config.url);
    const headers: Record<string, string> = { ...this.config.headers };
    // fetch refuses URLs with credentials: user:password in the URL becomes
    // Basic authentication (unless an Authorization header is configured).
    if (url.username || url.password) {
      const hasAuth = Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
      if (!hasAuth)
        headers.Authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    const requestInit = { headers };
    const bounded = boundedFetch({
      maxMessageSize: this.opts.maxMessageSize,
      flow: { wait: () => this.waitForResume() },
      onOversize: (ids, size) => this.oversize(ids, size),
    });
    // identity_jwt: a fresh signed assertion on every request (never the client's own credentials).
    const fetch: typeof bounded = (input, init) => {
      const jwt = this.events.identityAssertion?.();
      if (jwt === undefined) return bounded(input, init);
      const headers = new Headers(init?.headers);
      headers.set(JWT_HEADER, jwt);
      return bounded(input, { ...init, headers });
    };
    const sdk = await import('@modelcontextprotocol/client');
    this.transport = (this.config.transport === 'http'
      ? new sdk.StreamableHTTPClientTransport(url, { requestInit, fetch })
      : new sdk.SSEClientTransport(url, { requestInit, fetch })) as unknown as Transport;
    const t = this.transport;
    t.onmessage = (msg) => this.received(msg);
    t.onerror = (err: Error) => this.log.warn(`${this.serverName}: ${err.message}`);
    t.onclose = () =>
      this.finish(new AccessError('UPSTREAM_EXITED', `MCP server "${this.serverName}" closed the connection`));
    try {
      await t.start();
    } catch (err) {
      throw new AccessError(
        'UPSTREAM_FAILED',
        `MCP server "${this.serverName}" at ${redactUrl(this.config.url)} could not be reached: ${(err as Error).message}`,
      );
    }
  }

  send(message: Buffer): boolean {
    const t = this.transport;
    if (!t || this.closed) return true;
    let msg: JSONRPCMessage;
    try {
      msg = JSON.parse(message.toString('utf8')) as JSONRPCMessage;
    } catch {
      return true; // the proxy only forwards well-formed messages
    }
    const c = classify(msg);
    if (c.kind === 'request' && c.method === 'initialize') this.initializeIds.add(c.id);
    const cost = message.length + MESSAGE_OVERHEAD;
    this.queued += cost;
    const sent = t.send(msg).catch((err: Error & { code?: unknown; status?: number }) => {
      const status = typeof err.status === 'number' ? err.status : typeof err.code === 'number' ? err.code : undefined;
      // The spec says an ended session answers 404. Some servers (the reference
      // server-everything among them) answer 400 "No valid session ID"; both
      // mean the same: this upstream session is over.
      const expired = status === 404 || (status === 400 && /session/i.test(err.message));
      const why = redactSecrets(expired ? `its session ended (HTTP ${status})` : err.message);
      this.log.warn(`${this.serverName}: send failed: ${why}`);
      if (c.kind === 'request')
        this.deliver(
          Buffer.from(errorResponse(c.id, RPC.INTERNAL_ERROR, `MCP server "${this.serverName}" failed: ${why}`)),
        );
      if (expired)
        this.finish(
          new AccessError('UPSTREAM_EXITED', `MCP server "${this.serverName}" ended the session (HTTP ${status})`),
        );
    });
    void sent.finally(() => this.release(cost));
    if (this.queued <= this.highWaterBytes) return true;
    this.owesDrain = true;
    return false;
  }

  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    // Held answers first, in order; a pause meanwhile keeps the rest held.
    while (this.held.length > 0 && !this.paused) {
      const m = this.held.shift()!;
      this.queued -= m.length + MESSAGE_OVERHEAD;
      this.events.onMessage(m);
    }
    this.release(0);
    if (this.paused) return;
    const waiting = this.resumed;
    this.resumed = [];
    for (const w of waiting) w();
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.resume(); // let pending reads run to their cancellation
    const t = this.transport;
    try {
      await t?.terminateSession?.();
    } catch {
      /* server may not support DELETE */
    }
    try {
      await t?.close();
    } catch {
      /* already closed */
    }
  }

  private waitForResume(): Promise<void> {
    if (!this.paused || this.closed) return Promise.resolve();
    return new Promise((r) => this.resumed.push(r));
  }

  private received(msg: JSONRPCMessage): void {
    const c = classify(msg);
    if (c.kind === 'response' && this.initializeIds.delete(c.id)) {
      // 2025-era servers want the negotiated version on every later request.
      const version = (msg.result as { protocolVersion?: unknown } | undefined)?.protocolVersion;
      if (typeof version === 'string') this.transport?.setProtocolVersion?.(version);
    }
    this.deliver(Buffer.from(JSON.stringify(msg)));
  }

  private oversize(ids: JsonRpcId[], size: number): void {
    const what = size > this.opts.maxMessageSize ? `over ${this.opts.maxMessageSize} bytes` : `${size} bytes`;
    this.log.error(`${this.serverName}: dropped an answer ${what} (over max_message_size)`);
    for (const id of ids) {
      this.deliver(
        Buffer.from(
          errorResponse(
            id,
            RPC.INTERNAL_ERROR,
            `the response from "${this.serverName}" is larger than the proxy's max_message_size (${this.opts.maxMessageSize} bytes)`,
            { code: 'MESSAGE_TOO_LARGE' },
          ),
        ),
      );
    }
  }

  private deliver(m: Buffer): void {
    if (!this.paused) return this.events.onMessage(m);
    this.held.push(m);
    this.queued += m.length + MESSAGE_OVERHEAD;
  }

  /** `bytes` are no longer held; owed `onDrain` once under the bound. */
  private release(bytes: number): void {
    this.queued -= bytes;
    if (!this.owesDrain || this.closed || this.queued > this.highWaterBytes) return;
    this.owesDrain = false;
    this.events.onDrain();
  }

  private finish(reason: AccessError): void {
    if (this.closed) return;
    this.closed = true;
    this.events.onClose(reason);
  }
}
