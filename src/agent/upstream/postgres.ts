/**
 * The built-in MCP server of a database session: it runs inside the agent
 * (or the single-process proxy), speaks JSON-RPC through the same `Upstream`
 * interface as a stdio or HTTP server (so the session, the gate and the audit
 * trail treat it like any server), and answers with the tools in
 * database/tools.ts over a per-session `DatabaseSession`.
 *
 * The MCP side is the SDK v2 server behind its stdio entry point (both eras:
 * `initialize`, or 2026-07-28's `server/discover` and per-request _meta), on
 * an in-memory transport instead of a pipe. Loaded only when a database
 * session starts.
 */
import { AccessError, describeError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import type { DatabaseConfig } from '../databases.js';
import type { Upstream, UpstreamEvents, UpstreamSession } from './upstream.js';
import type { DatabaseSession } from '../database/session.js';

type JsonRpcMessage = Record<string, unknown>;

/** The SDK's Transport, as its stdio entry point uses it. */
class MemoryTransport {
  onmessage?: (message: JsonRpcMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  private closed = false;
  constructor(private readonly deliver: (message: JsonRpcMessage) => void) {}
  start(): Promise<void> {
    return Promise.resolve();
  }
  send(message: JsonRpcMessage): Promise<void> {
    if (!this.closed) this.deliver(message);
    return Promise.resolve();
  }
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.onclose?.();
    return Promise.resolve();
  }
}

export class PostgresUpstream implements Upstream {
  private transport: MemoryTransport | undefined;
  private handle: { close(): Promise<void> } | undefined;
  private db: DatabaseSession | undefined;
  private paused = false;
  private readonly held: Buffer[] = [];
  private started: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly config: DatabaseConfig,
    private readonly events: UpstreamEvents,
    private readonly log: Logger,
    private readonly session: UpstreamSession | undefined,
  ) {}

  describe(): string {
    return `built-in database server (${this.config.name})`;
  }

  start(): Promise<void> {
    this.started ??= this.boot();
    return this.started;
  }

  private async boot(): Promise<void> {
    const gate = this.session?.gate.database;
    if (!this.session || !gate)
      throw new AccessError('UPSTREAM_FAILED', `database "${this.config.name}" needs a gate with database access`);
    const [{ DatabaseSession }, { buildDatabaseServer }, { serveStdio }] = await Promise.all([
      import('../database/session.js'),
      import('../database/tools.js'),
      import('@modelcontextprotocol/server/stdio'),
    ]);
    const db = new DatabaseSession(this.config, this.session.sessionId, gate, this.log);
    this.db = db;
    await db.start();
    if (this.stopped) return;
    this.transport = new MemoryTransport((m) => this.emit(Buffer.from(JSON.stringify(m))));
    this.handle = serveStdio(() => buildDatabaseServer(this.config, db), {
      transport: this.transport,
      onerror: (err) => this.log.debug(`${this.config.name}: ${err.message}`),
    });
  }

  send(message: Buffer): boolean {
    const t = this.transport;
    if (!t?.onmessage) return true;
    let parsed: JsonRpcMessage;
    try {
      parsed = JSON.parse(message.toString('utf8')) as JsonRpcMessage;
    } catch {
      return true; // the gate only forwards parsed JSON
    }
    try {
      t.onmessage(parsed);
    } catch (err) {
      this.log.warn(`${this.config.name}: ${describeError(err)}`);
    }
    return true;
  }

  private emit(bytes: Buffer): void {
    if (this.paused) this.held.push(bytes);
    else this.events.onMessage(bytes);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.held.length) this.events.onMessage(this.held.shift()!);
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.started?.catch(() => {});
      await this.handle?.close().catch(() => {});
      await this.db?.close('session ended');
    })();
    return this.stopped;
  }
}
