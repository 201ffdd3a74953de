/**
 * The agent's side of the wire (docs/protocol.md, "Agents"). An agent dials
 * OUT to the proxy over mTLS with its host certificate and opens:
 *
 *  - one **control** WebSocket (`/v1/agent/control`): text frames holding one
 *    JSON object each (the frames below): announcements and heartbeats, audit
 *    events, roles, locks, requests for data connections;
 *  - a few **data** WebSockets (`/v1/agent/data`), kept idle until the proxy
 *    routes a bridge's tunnel to the agent. The proxy's first frame on a data
 *    connection is `open` or `resume` (text); from then on the data connection
 *    IS the bridge's tunnel: the proxy relays every frame both ways verbatim
 *    and the agent's session speaks docs/protocol.md's tunnel protocol on it
 *    (hello, data frames, acks, fatal + close code).
 */
import type { ErrorCode } from '../errors.js';
import type { Peer } from '../identity/peer.js';

export const AGENT_SUBPROTOCOL = 'mcp-access.agent.v1';
export const AGENT_CONTROL_PATH = '/v1/agent/control';
export const AGENT_DATA_PATH = '/v1/agent/data';
/**
 * Close code for a data connection that reached another replica than the one
 * it was dialled for (`?proxy=ID`, through a load balancer): the agent dials again.
 */
export const WRONG_REPLICA = 4410;

/** A server as an agent announces it (what `ls` and the proxy's label checks need; never commands or URLs). */
export interface AnnouncedServer {
  name: string;
  description: string;
  transport: string;
  labels: Record<string, string>;
  /** A reason the server cannot serve sessions now (e.g. its command is missing). */
  problem?: string;
}

/** The identity a data connection's session is for, as the proxy verified it. */
export interface WirePeer {
  user: string;
  roles: string[];
  bot?: { name: string; generation: number };
  /** ISO 8601. */
  notAfter: string;
  serial: string;
  fingerprint256: string;
  remoteAddr: string;
}

export function peerToWire(p: Peer): WirePeer {
  return {
    user: p.user,
    roles: p.roles,
    ...(p.bot ? { bot: p.bot } : {}),
    notAfter: p.notAfter.toISOString(),
    serial: p.serial,
    fingerprint256: p.fingerprint256,
    remoteAddr: p.remoteAddr,
  };
}

/** The peer a proxy vouches for, or undefined when the frame's peer is malformed. */
export function peerFromWire(w: unknown): Peer | undefined {
  if (!w || typeof w !== 'object') return undefined;
  const o = w as Record<string, unknown>;
  const notAfter = new Date(typeof o.notAfter === 'string' ? o.notAfter : NaN);
  const bot = o.bot as { name?: unknown; generation?: unknown } | undefined;
  if (
    typeof o.user !== 'string' ||
    !Array.isArray(o.roles) ||
    !o.roles.every((r) => typeof r === 'string') ||
    Number.isNaN(notAfter.getTime()) ||
    (bot !== undefined && (typeof bot.name !== 'string' || !Number.isSafeInteger(bot.generation)))
  )
    return undefined;
  return {
    user: o.user,
    roles: o.roles,
    ...(bot ? { bot: { name: bot.name as string, generation: bot.generation as number } } : {}),
    notAfter,
    serial: typeof o.serial === 'string' ? o.serial : '',
    fingerprint256: typeof o.fingerprint256 === 'string' ? o.fingerprint256 : '',
    remoteAddr: typeof o.remoteAddr === 'string' ? o.remoteAddr : '?',
  };
}

/**
 * How an agent records the events of its sessions: the proxy's `audit:`
 * settings (docs/audit.md), sent with the roles; `null` when the proxy keeps
 * no audit trail. An agent that has not received them refuses requests.
 */
export interface AgentAuditSettings {
  args: 'full' | 'digest' | 'none';
  redact: string[];
  /** Bytes per identity per hour; 0 = unlimited. */
  identityBudgetBytes: number;
  fsync: 'always' | 'interval' | 'never';
  /** The largest control frame the proxy takes (its `max_message_size`): an agent's audit frames stay below it. */
  maxFrameBytes: number;
}

/** The settings as sent, or undefined when they are missing or malformed. */
export function parseAuditSettings(v: unknown): AgentAuditSettings | null | undefined {
  if (v === null) return null;
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (o.args !== 'full' && o.args !== 'digest' && o.args !== 'none') return undefined;
  if (o.fsync !== 'always' && o.fsync !== 'interval' && o.fsync !== 'never') return undefined;
  if (!Array.isArray(o.redact) || !o.redact.every((k) => typeof k === 'string')) return undefined;
  const budget = o.identityBudgetBytes;
  if (typeof budget !== 'number' || !Number.isFinite(budget) || budget < 0) return undefined;
  const frame = o.maxFrameBytes;
  if (typeof frame !== 'number' || !Number.isFinite(frame) || frame < 1024) return undefined;
  return { args: o.args, redact: o.redact, identityBudgetBytes: budget, fsync: o.fsync, maxFrameBytes: frame };
}

export type AgentFrame =
  /** agent → proxy, on connect and every heartbeat interval: the servers it serves now. */
  | { type: 'announce'; servers: AnnouncedServer[]; sessions: number }
  /**
   * agent → proxy: events from the agent's spool, each with its `eventKey`
   * (its id is derived from it); stored in the trail before `audit-ack` (same seq).
   */
  | { type: 'audit'; seq: number; events: Array<Record<string, unknown>> }
  /** proxy → agent: the events of `seq` are stored; their ids in order. */
  | { type: 'audit-ack'; seq: number; ids: string[] }
  /** proxy → agent: the events of `seq` could not be stored (the agent keeps them and sends them again). */
  | { type: 'audit-nack'; seq: number; code: ErrorCode; message: string }
  /**
   * proxy → agent, first frame: the cluster, this proxy process's id (replicas
   * behind one address differ), the name the proxy knows the agent by, the roles.
   */
  | {
      type: 'welcome';
      cluster: string;
      proxy: string;
      agent: string;
      roles: unknown[];
      /** The cluster's role settings (`rbac:` in proxy.yaml, e.g. default_resources). */
      rbac?: Record<string, unknown>;
      audit: AgentAuditSettings | null;
      keepaliveMs: number;
    }
  /**
   * proxy → agent: the roles or the audit settings changed (reload, a role
   * resource); running sessions use them from their next message.
   */
  | { type: 'roles'; roles: unknown[]; rbac?: Record<string, unknown>; audit: AgentAuditSettings | null }
  /**
   * proxy → agent: servers of this agent the proxy refused to route to, and why
   * (e.g. another agent serves the name with other labels).
   */
  | { type: 'refused-servers'; servers: Array<{ name: string; reason: string }> }
  /** proxy → agent: end every session of this identity now (a lock, a removal). */
  | { type: 'end-sessions'; user: string; bot?: string; code: ErrorCode; message: string }
  /** proxy → agent: dial this many more data connections. */
  | { type: 'dial'; count: number }
  /** proxy → agent, first frame on a data connection: a new session. */
  | { type: 'open'; server: string; peer: WirePeer }
  /** proxy → agent, first frame on a data connection: resume the session the token names. */
  | { type: 'resume'; token: string; received: number; peer: WirePeer };

export function encodeAgentFrame(frame: AgentFrame): string {
  return JSON.stringify(frame);
}

/** One frame, or undefined when the text is not an object with a string `type`. */
export function decodeAgentFrame(text: string): AgentFrame | undefined {
  try {
    const v = JSON.parse(text) as { type?: unknown };
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof v.type === 'string') return v as AgentFrame;
  } catch {
    /* fall through */
  }
  return undefined;
}

/**
 * Resume tokens of sessions on a remote agent start with the agent's name and
 * this separator (names never contain it), so that any proxy, even one that
 * restarted, finds the agent from the token alone.
 */
export const TOKEN_SEPARATOR = '~';

export function agentOfToken(token: string): string | undefined {
  const i = token.indexOf(TOKEN_SEPARATOR);
  return i > 0 ? token.slice(0, i) : undefined;
}
