/**
 * Streamable HTTP and legacy SSE MCP servers, through the SDK's client
 * transports (they handle session ids, the SSE stream and reconnection).
 * These transports speak parsed messages, so frames are re-serialised here:
 * byte-for-byte relay holds for stdio servers, not HTTP ones.
 */
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { AccessError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import { classify, errorResponse, RPC } from '../../tunnel/jsonrpc.js';
import type { HttpServerConfig, SseServerConfig } from '../config.js';
import type { Upstream, UpstreamEvents } from './upstream.js';

export class HttpUpstream implements Upstream {
  private transport: Transport | undefined;
  private closed = false;
  private paused = false;
  private held: Buffer[] = [];

  constructor(
    private readonly serverName: string,
    private readonly config: HttpServerConfig | SseServerConfig,
    private readonly events: UpstreamEvents,
    private readonly log: Logger,
  ) {}

  describe(): string {
    return this.config.url;
  }

  async start(): Promise<void> {
    const url = new URL(this.config.url);
    const requestInit = { headers: this.config.headers };
    if (this.config.transport === 'http') {
      const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
      this.transport = new StreamableHTTPClientTransport(url, { requestInit });
    } else {
      const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js');
      this.transport = new SSEClientTransport(url, { requestInit });
    }
    const t = this.transport;
    t.onmessage = (msg: JSONRPCMessage) => this.deliver(Buffer.from(JSON.stringify(msg)));
    t.onerror = (err: Error) => this.log.warn(`${this.serverName}: ${err.message}`);
    t.onclose = () => this.finish(new AccessError('UPSTREAM_EXITED', `MCP server "${this.serverName}" closed the connection`));
    try {
      await t.start();
    } catch (err) {
      throw new AccessError('UPSTREAM_FAILED', `MCP server "${this.serverName}" at ${this.config.url} could not be reached: ${(err as Error).message}`);
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
    t.send(msg).catch((err: Error & { code?: number }) => {
      const c = classify(msg);
      // The spec says an ended session answers 404. Some servers (the reference
      // server-everything among them) answer 400 "No valid session ID"; both
      // mean the same: this upstream session is over.
      const expired = err.code === 404 || (err.code === 400 && /session/i.test(err.message));
      const why = expired ? `its session ended (HTTP ${err.code})` : err.message;
      this.log.warn(`${this.serverName}: send failed: ${why}`);
      if (c.kind === 'request') this.deliver(Buffer.from(errorResponse(c.id, RPC.INTERNAL_ERROR, `MCP server "${this.serverName}" failed: ${why}`)));
      if (expired) this.finish(new AccessError('UPSTREAM_EXITED', `MCP server "${this.serverName}" ended the session (HTTP ${err.code})`));
    });
    return true;
  }

  pause(): void { this.paused = true; }
  resume(): void {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const m of held) this.events.onMessage(m);
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const t: (Transport & { terminateSession?: () => Promise<void> }) | undefined = this.transport;
    try { await t?.terminateSession?.(); } catch { /* server may not support DELETE */ }
    try { await t?.close(); } catch { /* already closed */ }
  }

  private deliver(m: Buffer): void {
    if (this.paused) this.held.push(m);
    else this.events.onMessage(m);
  }

  private finish(reason: AccessError): void {
    if (this.closed) return;
    this.closed = true;
    this.events.onClose(reason);
  }
}
