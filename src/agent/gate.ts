/**
 * The gate every message passes through in the proxy: where roles are
 * enforced and the audit trail is written. A session calls `fromClient` for
 * each client message as it arrives, in order, without waiting for the
 * previous one; an implementation must therefore take its order-dependent
 * steps (queueing the audit event) synchronously, before its first await.
 * The session forwards a message only once its verdict (and so its audit
 * event) is settled, in arrival order.
 */
import type { Peer } from '../identity/peer.js';
import type { DatabaseGrants } from '../rbac/policy.js';
import type { ServerConfig } from './servers.js';

export type ClientVerdict =
  /** Send these bytes to the server (usually the very bytes that came in). */
  | { forward: Buffer }
  /** Do not forward; answer the client with this JSON-RPC message. */
  | { reply: Buffer }
  /** Do not forward and do not answer (a refused response or notification; audited). */
  | { drop: true };

/** What to do with a server message: deliver it (maybe rewritten) or drop it, or answer the server. */
export type ServerVerdict = Buffer | undefined | { toServer: Buffer };

/** Whether a gate step returned a promise (it has to wait, e.g. for the audit trail) or its verdict. */
export function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

export interface SessionInfo {
  sessionId: string;
  peer: Peer;
  server: ServerConfig;
}

export interface SessionGate {
  fromClient(bytes: Buffer): ClientVerdict | Promise<ClientVerdict>;
  /**
   * Returns the bytes to deliver (maybe rewritten, e.g. a filtered tools/list),
   * undefined to drop, or `{toServer}`: the proxy answers the server itself
   * (e.g. `roots/list`) and the client sees nothing.
   */
  fromServer(bytes: Buffer): ServerVerdict | Promise<ServerVerdict>;
  /**
   * The session was resumed with this certificate: from now on it is judged
   * by it (roles, expiry, bot). Throws to refuse the resume.
   */
  resumed?(peer: Peer): void | Promise<void>;
  /** A signed identity assertion for the next HTTP request to the server (`identity_jwt`), if any. */
  upstreamIdentity?(): string | undefined;
  /** The session ended (after the upstream stopped). */
  end(reason: string): void | Promise<void>;
  /** For a database session: what the built-in database server asks of roles and audit. */
  readonly database?: DatabaseGate;
}

/**
 * Roles and audit as a database session's built-in MCP server needs them
 * (upstream/postgres.ts): it runs inside the agent, so it judges each query
 * itself, with the same live roles and audit trail as the gate.
 */
export interface DatabaseGate {
  /** The identity now (a resume may present a renewed certificate). */
  peer(): Peer;
  /** What the roles grant on this database now (a reload applies to the next query). */
  grants(): DatabaseGrants;
  /**
   * Append an audit event carrying the session's fields (session id, user,
   * roles, server, client); resolves with its id (undefined without an audit
   * log). Rejects when the log cannot be written: the query is then not run.
   */
  record(event: Record<string, unknown>): Promise<string | undefined>;
  /** The audit event id of the client's pending request with this JSON-RPC id. */
  requestEventId(rpcId: string | number): string | undefined;
}

export interface GateFactory {
  open(info: SessionInfo): Promise<SessionGate>;
}
