/**
 * Warm spares: one started process per stdio server, handed to the next
 * session that opens, so a client that starts a session per tool call (as
 * LangGraph's adapter does) does not wait for the server to boot. A spare is
 * the same command, arguments and environment a session would start, so
 * taking one changes nothing but the wait. After a spare is taken the next one
 * starts; a spare that dies while idle is dropped and replaced on the next
 * take (no restart loop). `sessions.prestart: false` turns this off.
 */
import type { Logger } from '../../util/log.js';
import type { ServerConfig, StdioServerConfig } from '../servers.js';
import { StdioUpstream } from './stdio.js';
import type { Upstream, UpstreamEvents, UpstreamSession } from './upstream.js';
import { createUpstream } from './index.js';

type StdioServer = ServerConfig & StdioServerConfig;

/**
 * Passes events on once a session binds its own. Before that nothing is
 * held: a spare has no session, so whatever it writes to stdout belongs to no
 * one. It is dropped (never handed to the next user's session) and the spare
 * is marked `spoiled`, so it is stopped and replaced instead of being used.
 */
class EventRelay implements UpstreamEvents {
  private target: UpstreamEvents | undefined;
  private closed: Parameters<UpstreamEvents['onClose']>[0] | undefined;
  /** Bytes the spare wrote before any session took it (discarded). */
  spoiled = 0;
  constructor(
    private readonly onIdleClose: () => void,
    private readonly onSpoiled: () => void,
  ) {}

  bind(target: UpstreamEvents): void {
    this.target = target;
    if (this.closed) target.onClose(this.closed);
  }
  onMessage(m: Buffer): void {
    if (this.target) {
      this.target.onMessage(m);
      return;
    }
    const first = this.spoiled === 0;
    this.spoiled += m.length;
    if (first) this.onSpoiled();
  }
  onClose(reason: Parameters<UpstreamEvents['onClose']>[0]): void {
    if (this.target) this.target.onClose(reason);
    else {
      this.closed = reason;
      this.onIdleClose();
    }
  }
  onDrain(): void {
    this.target?.onDrain();
  }
}

interface Spare {
  key: string;
  upstream: StdioUpstream;
  relay: EventRelay;
}

export interface UpstreamFactory {
  create(server: ServerConfig, events: UpstreamEvents, session?: UpstreamSession): Upstream;
}

export class SparePool implements UpstreamFactory {
  private readonly spares = new Map<string, Spare>();
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly opts: { maxMessageSize: number; stopGraceMs: number },
    private enabled: boolean,
  ) {}

  /** A session's upstream: a warm spare when there is one, else a new one. */
  create(server: ServerConfig, events: UpstreamEvents, session?: UpstreamSession): Upstream {
    if (!this.enabled || this.closed || server.transport !== 'stdio')
      return createUpstream(server, events, this.log, this.opts, session);
    const spare = this.spares.get(server.name);
    this.spares.delete(server.name);
    let upstream: Upstream;
    if (spare && spare.key === keyOf(server) && spare.upstream.alive && spare.relay.spoiled === 0) {
      spare.relay.bind(events);
      upstream = spare.upstream;
      this.log.debug(`${server.name}: using a warm spare (${spare.upstream.describe()})`);
    } else {
      if (spare) void spare.upstream.stop();
      upstream = createUpstream(server, events, this.log, this.opts);
    }
    this.prepare(server);
    return upstream;
  }

  /** Start spares for these servers; stop spares of servers that changed or are gone. */
  refresh(servers: ServerConfig[], enabled: boolean): void {
    this.enabled = enabled;
    const wanted = new Map(servers.filter((s): s is StdioServer => s.transport === 'stdio').map((s) => [s.name, s]));
    for (const [name, spare] of this.spares) {
      const s = wanted.get(name);
      if (!enabled || !s || keyOf(s) !== spare.key) {
        this.spares.delete(name);
        void spare.upstream.stop();
      }
    }
    if (enabled) for (const s of wanted.values()) this.prepare(s);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.spares.values()];
    this.spares.clear();
    await Promise.all(all.map((s) => s.upstream.stop()));
  }

  private prepare(server: ServerConfig): void {
    if (this.closed || !this.enabled || server.transport !== 'stdio' || this.spares.has(server.name)) return;
    const key = keyOf(server);
    const relay: EventRelay = new EventRelay(
      () => {
        if (this.spares.get(server.name)?.relay === relay) this.spares.delete(server.name);
      },
      () => {
        // Output before any session: dropped, and the spare is not used (it is
        // stopped now; the next take starts a fresh one, so no restart loop).
        this.log.warn(
          `${server.name}: the warm spare wrote to stdout before any session took it; its output is discarded and the spare stopped`,
        );
        if (this.spares.get(server.name)?.relay === relay) this.spares.delete(server.name);
        void upstream.stop();
      },
    );
    const upstream = new StdioUpstream(server.name, server, relay, this.log, this.opts);
    const spare: Spare = { key, upstream, relay };
    this.spares.set(server.name, spare);
    upstream.start().catch((err: Error) => {
      if (this.spares.get(server.name) === spare) this.spares.delete(server.name);
      this.log.debug(`${server.name}: spare did not start: ${err.message}`);
    });
  }
}

function keyOf(s: ServerConfig): string {
  return s.transport === 'stdio' ? JSON.stringify([s.command, s.args, s.env, s.cwd, s.runAs, s.inheritEnv]) : '';
}
