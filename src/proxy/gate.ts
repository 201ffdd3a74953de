/**
 * The gate every message passes through in the proxy: where roles are
 * enforced and the audit trail is written. A session calls `fromClient` for
 * each client message as it arrives, in order, without waiting for the
 * previous one; an implementation must therefore take its order-dependent
 * steps (queueing the audit event) synchronously, before its first await.
 * The session forwards a message only once its verdict (and so its audit
 * event) is settled, in arrival order.
 */
import type { Peer } from './peer.js';
import type { ServerConfig } from './config.js';

export type ClientVerdict =
  /** Send these bytes to the server (usually the very bytes that came in). */
  | { forward: Buffer }
  /** Do not forward; answer the client with this JSON-RPC message. */
  | { reply: Buffer };

/**
 * What to do with a server message: deliver these bytes (maybe rewritten, e.g.
 * a filtered tools/list), drop it (undefined), or answer the server itself.
 */
export type ServerVerdict = Buffer | undefined | { toServer: Buffer };

export interface SessionInfo {
  sessionId: string;
  peer: Peer;
  server: ServerConfig;
}

export interface SessionGate {
  fromClient(bytes: Buffer): ClientVerdict | Promise<ClientVerdict>;
  /** Returns the bytes to deliver (maybe rewritten, e.g. a filtered tools/list), undefined to drop, or an answer for the server. */
  fromServer(bytes: Buffer): ServerVerdict | Promise<ServerVerdict>;
  /** The session ended (after the upstream stopped). */
  end(reason: string): void | Promise<void>;
}

export interface GateFactory {
  open(info: SessionInfo): Promise<SessionGate>;
}
