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
}

export interface GateFactory {
  open(info: SessionInfo): Promise<SessionGate>;
}
