/**
 * Where a proxy keeps its cluster state: the audit trail, roles, bots and
 * (for the agents issue) agents' heartbeats and where each session lives.
 *
 * Two implementations: `local` (files next to the proxy; the default, what a
 * single proxy always did) and `postgres` (one database shared by every
 * replica). A low layer: it knows records and events, not proxies or bots.
 * See docs/backend.md.
 */
import type { AuditEventInput, RecordedEvent } from '../audit/prepare.js';
import type { AuditReceipt } from '../audit/log.js';
import type { ArgsPolicy } from '../audit/events.js';
import type { FsyncPolicy } from '../audit/log.js';
import type { Logger } from '../util/log.js';

export type BackendConfig =
  | {
      type: 'local';
      /** The local state directory: roles created with `mcp-access role create` (ROLES_KIND/NAME.json). */
      dir: string;
    }
  | {
      type: 'postgres';
      /** `postgres://user@host:port/database` (a password in it works but is better kept out: see passwordFile). */
      url: string;
      /**
       * A file holding the password (its first line); else MCP_ACCESS_BACKEND_PASSWORD, else the URL's,
       * else PGPASSWORD.
       */
      passwordFile?: string;
      /** How long to wait for a connection before giving up (default 5 s). */
      connectTimeoutMs: number;
      /** Connections per proxy (default 10). */
      poolSize: number;
    };

/** What `audit:` in proxy.yaml configures, minus where it goes. */
export interface AuditWriterOptions {
  /** The JSON Lines file (local backend only). */
  path?: string;
  args?: ArgsPolicy;
  redactKeys?: string[];
  fsync?: FsyncPolicy;
  identityBudgetBytes?: number;
  logger?: Logger;
}

/**
 * The audit trail as the proxy writes it. `append` resolves once the event
 * is durable (file: handed to the kernel, or fsynced; PostgreSQL: committed)
 * and rejects with AccessError('AUDIT_UNAVAILABLE') when it cannot be, so the
 * caller refuses the request instead of running it unaudited.
 */
export interface AuditWriter {
  /**
   * What this writer writes to: the file path, or `postgresql:<writer id>`; a reload keeps a writer
   * whose key is unchanged.
   */
  readonly key: string;
  /** Resolves with the stored event's id and hash; `recorded`: an agent's event (see RecordedEvent). */
  append(event: AuditEventInput, recorded?: RecordedEvent): Promise<AuditReceipt>;
  /** False after a failed write until a write succeeds again (for /readyz). */
  readonly healthy: boolean;
  /** Throws when the trail cannot be written now, without writing an event (for /readyz after a failure). */
  probe(): Promise<void>;
  close(): Promise<void>;
}

/** Validates a stored value; throws with a message naming `where` when it is damaged. */
export type ParseRecord<T> = (value: unknown, where: string) => T;

/**
 * Named JSON records of one kind (roles, bots, agents, session locations).
 * Reads see the last committed write; `version()` changes whenever any
 * record of the kind changes, so a watcher polls one cheap value.
 */
export interface RecordStore<T> {
  readonly kind: string;
  /** For messages: where the records are (a directory, or "PostgreSQL"). */
  readonly where: string;
  read(name: string): Promise<T | undefined>;
  /** Every record, sorted by name (expired ones left out). */
  readAll(): Promise<T[]>;
  names(): Promise<string[]>;
  /**
   * Create or replace. `ttlMs`: the record disappears that long after this
   * write unless written again (heartbeats; PostgreSQL only).
   */
  write(name: string, value: T, opts?: { ttlMs?: number }): Promise<void>;
  /** True when there was one. */
  remove(name: string): Promise<boolean>;
  /** A marker that changes when the record changes (undefined: no such record). */
  stamp(name: string): Promise<string | undefined>;
  /** A marker that changes when any record of the kind changes. */
  version(): Promise<string>;
  /**
   * Run `fn` holding this kind's lock across every process sharing the
   * backend; reads and writes made inside it are one transaction (PostgreSQL).
   */
  locked<R>(fn: () => Promise<R>): Promise<R>;
}

export interface Backend {
  readonly type: BackendConfig['type'];
  /** One line for logs: `local (DIR)` or `postgresql (HOST:PORT/DB)`; never a password. */
  readonly description: string;
  /** Open this proxy's audit writer (local: the file at options.path). */
  openAudit(options: AuditWriterOptions): Promise<AuditWriter>;
  /** The records of one kind. */
  records<T>(kind: string, parse: ParseRecord<T>): RecordStore<T>;
  /** Throws BACKEND_UNAVAILABLE when the backend cannot be reached now (for /readyz). */
  ping(): Promise<void>;
  /** Called with every failure to reach the backend (for metrics). */
  onError?: (err: unknown) => void;
  close(): Promise<void>;
}

/** Record kinds in use. */
export const KINDS = {
  role: 'role',
  bot: 'bot',
  /** An enrolled agent's record (src/proxy/enrolment, the same shape as a bot's). */
  agentEnrolment: 'agent-enrolment',
  /** For the agents work: an agent's heartbeat and the servers it announces. */
  agent: 'agent',
  /** For the agents work: which proxy/agent holds a session. */
  session: 'session',
} as const;
