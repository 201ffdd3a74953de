/** What the proxy's session needs of an MCP server, whatever its transport. */
import type { AccessError } from '../../errors.js';
import type { SessionGate } from '../gate.js';

export interface UpstreamEvents {
  /** One JSON-RPC message from the server (for stdio: the line's exact bytes). */
  onMessage(message: Buffer): void;
  /** The server went away (or could not start); the session ends with this error. */
  onClose(reason: AccessError): void;
  /** The server can take more input again after `send` returned false. */
  onDrain(): void;
  /**
   * HTTP upstreams with `identity_jwt`: the signed identity assertion to send
   * with the next request (undefined: none).
   */
  identityAssertion?(): string | undefined;
}

export interface Upstream {
  /** Resolves once the server is running; rejects with UPSTREAM_FAILED. */
  start(): Promise<void>;
  /** Sends one message. Returns false when the caller should wait for onDrain. */
  send(message: Buffer): boolean;
  /** Stop delivering messages (the client side is not keeping up). */
  pause(): void;
  resume(): void;
  /** Stops the server gracefully and resolves when it is gone. Idempotent. */
  stop(): Promise<void>;
  /** For logs: pid or URL. */
  describe(): string;
}

/** The session an upstream serves, for upstreams that run inside the agent (the database server). */
export interface UpstreamSession {
  sessionId: string;
  gate: SessionGate;
}
