/**
 * The agents connected to this proxy, the servers they announce, and routing
 * a bridge's tunnel to one of them (docs/architecture.md, "Agents").
 *
 * An agent keeps one control connection and a few idle data connections
 * open to the proxy. Routing a tunnel takes an idle data connection of a
 * healthy agent serving the server (at random among them), sends `open` (or
 * `resume`) on it and splices it to the bridge's WebSocket. The proxy keeps
 * nothing a resume needs: a remote session's resume token starts with its
 * agent's name.
 *
 * Audit events of an agent's sessions arrive on its control connection from
 * the agent's spool, where each was durable before its request went on; they
 * are appended to this proxy's trail (with `agent` set to the agent's
 * certified name and the id derived from it and the event's `eventKey`)
 * before they are acknowledged, and the agent then drops them from its spool.
 */
import { randomUUID } from 'node:crypto';
import { AccessError, describeError, isAccessError } from '../errors.js';
import { agentEventId, MAX_FIELD_CHARS, type RecordedEvent } from '../audit/prepare.js';
import type { Peer } from '../identity/peer.js';
import type { Logger } from '../util/log.js';
import { NAME_RE } from '../util/config-fields.js';
import {
  WRONG_REPLICA,
  agentOfToken,
  decodeAgentFrame,
  encodeAgentFrame,
  peerToWire,
  type AgentAuditSettings,
  type AgentFrame,
  type AnnouncedServer,
} from '../tunnel/agent-protocol.js';
import { CLOSE } from '../tunnel/close-codes.js';
import { refuseTunnel } from '../tunnel/refuse.js';
import { encodeControl } from '../tunnel/control.js';
import type { WebSocket } from 'ws';
import { Splice } from './splice.js';

/** Where agents' audit events go: the proxy's trail. */
export interface AgentAuditSink {
  append(event: Record<string, unknown>, recorded: RecordedEvent): Promise<{ id: string }>;
}

export interface AgentDirectoryOptions {
  cluster: string;
  /** This proxy process (replicas behind one address tell agents apart by it). */
  proxyId: string;
  log: Logger;
  keepaliveMs: number;
  /** The trail (undefined: no audit trail configured; events are acknowledged and dropped, as the proxy's own). */
  audit: () => AgentAuditSink | undefined;
  /** How agents record their events (the proxy's `audit:` settings; null: no trail). Default null. */
  auditSettings?: () => AgentAuditSettings | null;
  /** The role documents every agent enforces. */
  roles: () => unknown[];
  /** The cluster's role settings (`rbac:`), sent with the roles. */
  rbac?: () => Record<string, unknown> | undefined;
  /** Names of servers in the proxy's own configuration: an agent may not announce them. */
  localNames: () => Set<string>;
  /** Refuses an agent whose certificate is locked, removed or superseded (the enrolment service). */
  checkAgent?: (peer: Peer) => void;
  /** How long a data connection is awaited before a tunnel is refused. Default 10 s. */
  dialTimeoutMs?: number;
  /**
   * After the proxy starts, a resume naming an agent that has not connected
   * yet is answered "going away" (the bridge retries) rather than "session
   * lost" for this long: agents reconnect to a restarted proxy. Default 20 s.
   */
  agentWaitMs?: number;
  now?: () => number;
}

/** Ids of agents' events stored (or being stored) by this process that are remembered, to store none twice. */
const RECENT_IDS = 20_000;

/** An agent is unhealthy when its last announcement is older than this. */
export const HEARTBEAT_STALE_MS = 15_000;

interface SpliceEntry {
  splice: Splice;
  peer: Peer;
  /** The link whose agent holds the session (changes when the agent reconnects with a renewed certificate). */
  owner: AgentLink;
}

interface AgentLink {
  name: string;
  peer: Peer;
  control: WebSocket;
  servers: Map<string, AnnouncedServer>;
  refused: Map<string, string>;
  idle: WebSocket[];
  waiters: Array<{ resolve: (ws: WebSocket) => void; reject: (err: AccessError) => void }>;
  lastSeen: number;
  sessions: number;
  splices: Set<SpliceEntry>;
}

export interface RemoteServer extends AnnouncedServer {
  /** Healthy agents serving it now. */
  agents: number;
}

export class AgentDirectory {
  private readonly links = new Map<string, AgentLink>();
  /** Agents' events this process stored or is storing, by id (see storeOnce). */
  private readonly storedIds = new Map<string, Promise<string> | true>();
  private readonly startedAt: number;
  private readonly now: () => number;
  private closing = false;
  private readonly idleListeners = new WeakMap<WebSocket, () => void>();
  /** Control connections welcomed but not yet announced (see attachControl). */
  private readonly pending = new Set<AgentLink>();
  /** Agents that disconnected while this proxy ran: their sessions are lost, not "not reconnected yet". */
  private readonly gone = new Set<string>();

  constructor(private readonly o: AgentDirectoryOptions) {
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
  }

  get connected(): number {
    return this.links.size;
  }

  /** A control connection from an agent (its certificate verified by the caller). */
  attachControl(ws: WebSocket, peer: Peer): void {
    const name = peer.agent!.name;
    try {
      if (this.closing) throw new AccessError('PROXY_GOING_AWAY', 'the proxy is shutting down');
      this.o.checkAgent?.(peer);
    } catch (err) {
      const e = isAccessError(err) ? err : new AccessError('INTERNAL', describeError(err));
      this.o.log.warn(`agent ${name} refused: ${e.message}`);
      refuse(ws, e);
      return;
    }
    const link: AgentLink = {
      name,
      peer,
      control: ws,
      servers: new Map(),
      refused: new Map(),
      idle: [],
      waiters: [],
      lastSeen: this.now(),
      sessions: 0,
      splices: new Set(),
    };
    // The connection becomes the agent's link at its first announcement: an
    // agent probing for other replicas closes a connection that reached this
    // one again right after the welcome, without announcing anything.
    this.pending.add(link);
    send(ws, {
      type: 'welcome',
      cluster: this.o.cluster,
      proxy: this.o.proxyId,
      agent: name,
      roles: this.o.roles(),
      ...(this.o.rbac?.() ? { rbac: this.o.rbac() } : {}),
      audit: this.o.auditSettings?.() ?? null,
      keepaliveMs: this.o.keepaliveMs,
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const frame = decodeAgentFrame(data.toString('utf8'));
      if (frame?.type === 'announce' && this.pending.delete(link)) this.activate(link);
      if (this.links.get(name) !== link) return;
      if (frame?.type === 'announce') this.announced(link, frame.servers, frame.sessions);
      else if (frame?.type === 'audit') void this.audit(link, frame.seq, frame.events);
    });
    ws.on('close', () => {
      if (this.pending.delete(link)) {
        for (const d of link.idle) d.terminate();
        return;
      }
      if (this.links.get(name) !== link) return;
      this.drop(link, 'its control connection closed');
    });
  }

  private activate(link: AgentLink): void {
    const previous = this.links.get(link.name);
    if (previous) {
      // The same agent again (a renewed certificate, a reconnect before the old
      // connection was seen to die): the tunnels routed to it go on, now under
      // the new connection; the old control and idle connections are let go.
      this.o.log.info(`agent ${link.name} replaced its control connection`);
      for (const entry of previous.splices) {
        entry.owner = link;
        link.splices.add(entry);
      }
      previous.splices.clear();
      this.links.delete(link.name);
      for (const d of previous.idle) d.close(CLOSE.NORMAL);
      previous.idle = [];
      for (const w of previous.waiters.splice(0)) link.waiters.push(w);
      if (previous.control.readyState === previous.control.OPEN) previous.control.close(CLOSE.NORMAL, 'replaced');
    }
    this.links.set(link.name, link);
    this.gone.delete(link.name);
    this.o.log.info(`agent ${link.name} connected (${link.peer.remoteAddr})`);
  }

  /** A data connection from an agent: kept idle until a tunnel is routed to it. */
  attachData(ws: WebSocket, peer: Peer, forProxy?: string | null): void {
    if (forProxy && forProxy !== this.o.proxyId) {
      ws.close(WRONG_REPLICA, 'another replica');
      return;
    }
    const name = peer.agent!.name;
    const link = this.links.get(name) ?? [...this.pending].find((l) => l.name === name);
    if (!link || link.peer.agent?.generation !== peer.agent?.generation) {
      refuse(
        ws,
        new AccessError('PROXY_PROTOCOL', 'a data connection needs the agent’s control connection first', {
          hint: 'the agent reconnects by itself',
        }),
      );
      return;
    }
    const waiter = link.waiters.shift();
    if (waiter) {
      waiter.resolve(ws);
      return;
    }
    link.idle.push(ws);
    const forget = () => {
      const i = link.idle.indexOf(ws);
      if (i >= 0) link.idle.splice(i, 1);
    };
    this.idleListeners.set(ws, forget);
    ws.once('close', forget);
  }

  /** Servers announced by healthy agents, with how many serve each. */
  servers(): RemoteServer[] {
    const out = new Map<string, RemoteServer>();
    for (const link of this.healthyLinks()) {
      for (const s of link.servers.values()) {
        const seen = out.get(s.name);
        if (seen) seen.agents++;
        else out.set(s.name, { ...s, agents: 1 });
      }
    }
    return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  find(name: string): RemoteServer | undefined {
    return this.servers().find((s) => s.name === name);
  }

  /**
   * Route a new tunnel to a healthy agent serving `server`: frames the bridge
   * sends meanwhile are held and passed on first, in order.
   */
  async route(server: string, bridge: WebSocket, peer: Peer): Promise<void> {
    const candidates = this.healthyLinks().filter((l) => {
      const s = l.servers.get(server);
      return s !== undefined && s.problem === undefined;
    });
    if (candidates.length === 0) {
      throw new AccessError('UPSTREAM_FAILED', `no healthy agent serves MCP server "${server}" now`, {
        hint: 'check that its agent runs (`mcp-access agent ls`, the agent’s log)',
      });
    }
    const link = candidates[Math.floor(Math.random() * candidates.length)]!;
    await this.splice(link, bridge, peer, { type: 'open', server, peer: peerToWire(peer) });
  }

  /** Route a resume to the agent its token names. */
  async resume(token: string, received: number, bridge: WebSocket, peer: Peer): Promise<void> {
    const name = agentOfToken(token) ?? '';
    const link = this.links.get(name);
    if (!link) {
      if (!this.gone.has(name) && this.now() - this.startedAt < (this.o.agentWaitMs ?? 20_000))
        throw new AccessError(
          'PROXY_GOING_AWAY',
          `the agent holding the session has not reconnected to this proxy yet`,
          {
            hint: 'the bridge retries by itself',
          },
        );
      throw new AccessError('SESSION_LOST', 'the agent holding the session is gone', {
        hint: 'a new session will be opened',
      });
    }
    await this.splice(link, bridge, peer, { type: 'resume', token, received, peer: peerToWire(peer) });
  }

  /** Tell every agent the roles (or the audit settings) changed. */
  pushRoles(): void {
    const roles = this.o.roles();
    const rbac = this.o.rbac?.();
    const audit = this.o.auditSettings?.() ?? null;
    for (const link of this.links.values())
      send(link.control, { type: 'roles', roles, ...(rbac ? { rbac } : {}), audit });
  }

  /**
   * End the sessions of identities that match (a lock): every agent ends the
   * sessions of each matching identity routed through this proxy. Returns how
   * many tunnels matched.
   */
  endSessionsWhere(match: (peer: Peer) => boolean, reason: AccessError): number {
    let n = 0;
    for (const link of this.links.values()) {
      const told = new Set<string>();
      for (const { peer } of link.splices) {
        if (!match(peer)) continue;
        n++;
        const key = `${peer.user}\n${peer.bot?.name ?? ''}`;
        if (told.has(key)) continue;
        told.add(key);
        send(link.control, {
          type: 'end-sessions',
          user: peer.user,
          ...(peer.bot ? { bot: peer.bot.name } : {}),
          code: reason.code,
          message: reason.message,
        });
      }
    }
    return n;
  }

  /**
   * Disconnect the agents whose certificate no longer counts (locked, removed,
   * a superseded generation): their tunnels end and the sessions are reopened
   * elsewhere. Returns how many.
   */
  disconnectWhere(match: (peer: Peer) => boolean, reason: AccessError): number {
    let n = 0;
    for (const link of [...this.links.values(), ...this.pending]) {
      if (!match(link.peer)) continue;
      n++;
      this.pending.delete(link);
      refuse(link.control, reason);
      if (this.links.get(link.name) === link) this.drop(link, reason.message);
    }
    return n;
  }

  /** Stop: every agent's tunnel is closed "going away" (bridges resume once the agent reaches a proxy again). */
  close(): void {
    this.closing = true;
    for (const link of [...this.links.values()]) {
      for (const { splice } of link.splices) splice.close(CLOSE.GOING_AWAY, 'the proxy is shutting down');
      link.splices.clear();
      link.control.close(CLOSE.GOING_AWAY, 'the proxy is shutting down');
      for (const ws of link.idle) ws.close(CLOSE.GOING_AWAY);
      this.links.delete(link.name);
    }
    for (const link of this.pending) link.control.close(CLOSE.GOING_AWAY, 'the proxy is shutting down');
    this.pending.clear();
  }

  private healthyLinks(): AgentLink[] {
    const now = this.now();
    return [...this.links.values()].filter((l) => now - l.lastSeen < HEARTBEAT_STALE_MS);
  }

  private async splice(
    link: AgentLink,
    bridge: WebSocket,
    peer: Peer,
    first: Extract<AgentFrame, { type: 'open' | 'resume' }>,
  ): Promise<void> {
    const early: Array<{ data: Buffer; isBinary: boolean }> = [];
    const hold = (data: Buffer, isBinary: boolean) => early.push({ data, isBinary });
    bridge.on('message', hold);
    let data: WebSocket;
    try {
      data = await this.takeData(link);
    } finally {
      bridge.off('message', hold);
    }
    if (bridge.readyState !== bridge.OPEN) {
      // The bridge left while we waited: the data connection goes back to the pool.
      this.attachData(data, link.peer);
      return;
    }
    send(data, first);
    for (const f of early) data.send(f.data, { binary: f.isBinary });
    const entry: SpliceEntry = { splice: undefined as unknown as Splice, peer, owner: link };
    entry.splice = new Splice(bridge, data, () => entry.owner.splices.delete(entry));
    link.splices.add(entry);
  }

  private takeData(link: AgentLink): Promise<WebSocket> {
    while (link.idle.length > 0) {
      const ws = link.idle.shift()!;
      const forget = this.idleListeners.get(ws);
      if (forget) ws.off('close', forget);
      if (ws.readyState === ws.OPEN) return Promise.resolve(ws);
    }
    send(link.control, { type: 'dial', count: 1 });
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (ws: WebSocket) => {
          clearTimeout(timer);
          resolve(ws);
        },
        reject: (err: AccessError) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const i = link.waiters.indexOf(waiter);
        if (i >= 0) link.waiters.splice(i, 1);
        reject(
          new AccessError('UPSTREAM_FAILED', `agent ${link.name} did not open a data connection in time`, {
            hint: 'check the agent’s log and its connection to the proxy',
          }),
        );
      }, this.o.dialTimeoutMs ?? 10_000);
      timer.unref();
      link.waiters.push(waiter);
    });
  }

  private announced(link: AgentLink, servers: unknown, sessions: unknown): void {
    link.lastSeen = this.now();
    link.sessions = typeof sessions === 'number' ? sessions : 0;
    if (!Array.isArray(servers)) return;
    const local = this.o.localNames();
    const accepted = new Map<string, AnnouncedServer>();
    const refused = new Map<string, string>();
    for (const raw of servers.slice(0, 1000)) {
      const s = announcedServer(raw);
      if (!s) continue;
      let reason: string | undefined;
      if (local.has(s.name)) reason = "the proxy's own configuration has a server with that name";
      else {
        for (const other of this.links.values()) {
          if (other === link) continue;
          const theirs = other.servers.get(s.name);
          if (theirs && !sameLabels(theirs.labels, s.labels)) {
            reason = `agent ${other.name} already serves "${s.name}" with other labels (${JSON.stringify(theirs.labels)})`;
            break;
          }
        }
      }
      if (reason) refused.set(s.name, reason);
      else accepted.set(s.name, s);
    }
    const newlyRefused = [...refused].filter(([n, r]) => link.refused.get(n) !== r);
    link.servers = accepted;
    link.refused = refused;
    if (newlyRefused.length) {
      for (const [n, r] of newlyRefused) this.o.log.warn(`agent ${link.name}: server "${n}" refused: ${r}`);
      send(link.control, {
        type: 'refused-servers',
        servers: newlyRefused.map(([name, reason]) => ({ name, reason })),
      });
    }
  }

  /**
   * An agent's frame of events: each stored, then acknowledged with their ids
   * on the connection the frame came on (a frame number means nothing to
   * another connection; the agent sends unacknowledged events again). An
   * event this proxy stored or is storing already (sent again after a lost
   * acknowledgement, or twice by a hostile agent) is not stored twice.
   */
  private async audit(link: AgentLink, seq: unknown, events: unknown): Promise<void> {
    if (typeof seq !== 'number' || !Array.isArray(events)) return;
    const sink = this.o.audit();
    try {
      // Without a trail the events are dropped, and acknowledged as such (the agent can forget them).
      const ids = sink
        ? await Promise.all((events as unknown[]).map((e) => this.storeOnce(sink, certified(e, link.name), link.name)))
        : (events as unknown[]).map((e) => recordedBy(link.name, certified(e, link.name).eventKey).id);
      send(link.control, { type: 'audit-ack', seq, ids });
    } catch (err) {
      const e = isAccessError(err) ? err : new AccessError('AUDIT_UNAVAILABLE', describeError(err));
      this.o.log.error(`audit (agent ${link.name}): ${e.message}`);
      send(link.control, { type: 'audit-nack', seq, code: e.code, message: e.message });
    }
  }

  private storeOnce(sink: AgentAuditSink, event: Record<string, unknown>, agent: string): Promise<string> {
    const recorded = recordedBy(agent, event.eventKey);
    const known = this.storedIds.get(recorded.id);
    if (known === true) return Promise.resolve(recorded.id);
    if (known) return known;
    const stored = sink.append(event, recorded).then(
      (r) => {
        if (this.storedIds.get(recorded.id) === stored) this.storedIds.set(recorded.id, true);
        return r.id;
      },
      (err: unknown) => {
        this.storedIds.delete(recorded.id);
        throw err;
      },
    );
    if (this.storedIds.size >= RECENT_IDS) this.storedIds.delete(this.storedIds.keys().next().value!);
    this.storedIds.set(recorded.id, stored);
    return stored;
  }

  /** The agent is gone: its tunnels end "session lost" at once (the bridges reopen elsewhere). */
  private drop(link: AgentLink, why: string): void {
    if (this.links.get(link.name) === link) {
      this.links.delete(link.name);
      if (this.gone.size >= 10_000) this.gone.clear();
      this.gone.add(link.name);
    }
    this.o.log.info(`agent ${link.name} disconnected: ${why}`);
    const lost = new AccessError(
      'SESSION_LOST',
      `the agent serving this session (${link.name}) went away; its outcome is unknown`,
      { hint: 'a new session will be opened' },
    );
    for (const { splice } of link.splices) {
      splice.tellBridge(fatalFrame(lost));
      splice.close(CLOSE.RESUME_REJECTED, 'the agent went away');
    }
    link.splices.clear();
    for (const ws of link.idle) ws.terminate();
    link.idle = [];
    for (const w of link.waiters.splice(0))
      w.reject(new AccessError('UPSTREAM_FAILED', `agent ${link.name} went away`, { hint: 'try again' }));
    if (link.control.readyState === link.control.OPEN) link.control.close(CLOSE.GOING_AWAY);
  }
}

/**
 * An agent's event with the name its certificate gives it as `agent`,
 * whatever the agent wrote there. The event is the control frame's own,
 * freshly parsed object: it is marked in place rather than copied (the same
 * fields in the same order as `{ ...e, agent }`: an `agent` the agent sent
 * keeps its place, with the certified value).
 */
function certified(e: unknown, agent: string): Record<string, unknown> {
  if (typeof e !== 'object' || e === null) return { value: e, agent };
  if (Array.isArray(e)) return { ...e, agent };
  (e as Record<string, unknown>).agent = agent;
  return e as Record<string, unknown>;
}

/**
 * How an agent's event is stored: with the id both sides derive from the
 * agent's certified name and the event's `eventKey`. An event without a
 * usable key (only a hostile agent sends one) gets a fresh id.
 */
function recordedBy(agent: string, eventKey: unknown): RecordedEvent {
  return {
    id:
      typeof eventKey === 'string' && eventKey.length > 0 && eventKey.length <= MAX_FIELD_CHARS
        ? agentEventId(agent, eventKey)
        : randomUUID(),
  };
}

function fatalFrame(err: AccessError): string {
  return encodeControl({ type: 'fatal', code: err.code, message: err.message, hint: err.hint });
}

function refuse(ws: WebSocket, err: AccessError): void {
  refuseTunnel(ws, err);
}

function send(ws: WebSocket, frame: AgentFrame): void {
  if (ws.readyState === ws.OPEN) ws.send(encodeAgentFrame(frame));
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** An announced server, validated (agents are trusted, but a bad entry must not break listing). */
function announcedServer(v: unknown): AnnouncedServer | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string' || !NAME_RE.test(o.name)) return undefined;
  const labels: Record<string, string> = {};
  if (o.labels && typeof o.labels === 'object' && !Array.isArray(o.labels)) {
    for (const [k, val] of Object.entries(o.labels as Record<string, unknown>))
      if (typeof val === 'string' && k.length <= 256 && val.length <= 1024) labels[k] = val;
  }
  return {
    name: o.name,
    description: typeof o.description === 'string' ? o.description.slice(0, 4096) : '',
    transport: typeof o.transport === 'string' ? o.transport.slice(0, 32) : 'stdio',
    labels,
    ...(typeof o.problem === 'string' ? { problem: o.problem.slice(0, 1024) } : {}),
  };
}
