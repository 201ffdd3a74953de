/**
 * The one catalogue of user-facing failures.
 *
 * Every failure a person may see is an `AccessError` with a code from
 * `CATALOGUE`. The CLI prints it as one line,
 *   mcp-access: <message> (<hint>)
 * and exits with the code's exit status. The bridge also turns it into a
 * JSON-RPC error for every request that is waiting. Messages never contain
 * key material; they name files, servers and proxies so a person can act.
 */
import { redactSecrets } from './util/redact.js';

/** Process exit statuses, one per failure class (documented in README). */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  IDENTITY: 3,
  PROXY_UNREACHABLE: 4,
  ACCESS_DENIED: 5,
  NOT_FOUND: 6,
  CONFIG: 7,
  UPSTREAM: 8,
  AUDIT: 9,
  SESSION_LOST: 10,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface CatalogueEntry {
  exit: ExitCode;
  /** What to do about it; a specific error may override it. */
  hint: string;
  /** HTTP status when the proxy answers a request with this error (default 500: the proxy did not expect it). */
  http?: number;
  /**
   * Tunnel close code (docs/protocol.md, "Close codes") when a tunnel ends
   * with this error; each code at most once, so the bridge can read it back.
   * Without one, a tunnel ends with PROXY_PROTOCOL's.
   */
  close?: number;
  /** JSON-RPC error code for a waiting request the bridge answers with this error (default -32603). */
  rpc?: number;
}

/** JSON-RPC error codes the catalogue uses (the full list is in src/tunnel/jsonrpc.ts). */
const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;

export const CATALOGUE = {
  USAGE: { exit: EXIT.USAGE, hint: 'see --help', http: 400 },
  INTERNAL: { exit: EXIT.INTERNAL, hint: 're-run with --debug for details and report it', http: 500 },

  // identity files
  IDENTITY_MISSING: {
    exit: EXIT.IDENTITY,
    hint: 'check the path given to -i/--identity or MCP_ACCESS_IDENTITY',
    http: 401,
  },
  IDENTITY_UNREADABLE: { exit: EXIT.IDENTITY, hint: 'check the file permissions for this user', http: 401 },
  IDENTITY_EMPTY: {
    exit: EXIT.IDENTITY,
    hint: 'the writer may be mid-rewrite; if it stays empty, re-issue it or check the renewal bot',
    http: 401,
  },
  IDENTITY_TORN: {
    exit: EXIT.IDENTITY,
    hint: 'a PEM block is cut off; the writer may be mid-rewrite, or re-issue the file',
    http: 401,
  },
  IDENTITY_NO_KEY: {
    exit: EXIT.IDENTITY,
    hint: 'an identity file starts with a private key PEM block; re-issue it',
    http: 401,
  },
  IDENTITY_NO_CERT: {
    exit: EXIT.IDENTITY,
    hint: 'the second PEM block must be the TLS certificate; re-issue it',
    http: 401,
  },
  IDENTITY_NO_CA: {
    exit: EXIT.IDENTITY,
    hint: 'the file must end with the cluster CA certificate(s); re-issue it',
    http: 401,
  },
  IDENTITY_BAD_KEY: {
    exit: EXIT.IDENTITY,
    hint: 'the private key block cannot be parsed; re-issue the file',
    http: 401,
  },
  IDENTITY_BAD_CERT: {
    exit: EXIT.IDENTITY,
    hint: 'a certificate block cannot be parsed; re-issue the file',
    http: 401,
  },
  IDENTITY_KEY_MISMATCH: {
    exit: EXIT.IDENTITY,
    hint: 'the key and certificate come from different identities; re-issue the file',
    http: 401,
  },
  IDENTITY_NOT_YET_VALID: { exit: EXIT.IDENTITY, hint: "check this machine's clock", http: 401 },
  IDENTITY_EXPIRED: {
    exit: EXIT.IDENTITY,
    hint: 'renew it: check that the renewal bot is running, or run `mcp-access identity issue` again',
    http: 401,
    close: 4402,
  },
  IDENTITY_UNTRUSTED: {
    exit: EXIT.IDENTITY,
    hint: 'the certificate is not signed by any CA in the file; re-issue it from the right cluster',
    http: 401,
  },
  IDENTITY_REJECTED: {
    exit: EXIT.IDENTITY,
    hint: 'the proxy does not trust this identity; check that it was issued by this cluster',
    http: 401,
    close: 4401,
  },

  // certificate authority
  CA_EXISTS: { exit: EXIT.CONFIG, hint: 'pass --force to replace it; every identity it issued then stops working' },
  CA_MISSING: { exit: EXIT.CONFIG, hint: 'create one with `mcp-access ca init --dir DIR --cluster NAME`' },
  CA_INVALID: {
    exit: EXIT.CONFIG,
    hint: 'the CA directory is damaged; re-create it with `mcp-access ca init --force`',
  },

  // proxy configuration
  CONFIG_INVALID: { exit: EXIT.CONFIG, hint: 'fix the proxy configuration file (see docs/configuration.md)' },
  CONFIG_MISSING: { exit: EXIT.CONFIG, hint: 'check the path given to --config' },

  // talking to the proxy
  PROXY_UNREACHABLE: { exit: EXIT.PROXY_UNREACHABLE, hint: 'check the --proxy address and that the proxy is running' },
  PROXY_UNTRUSTED: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: "the proxy's certificate is not signed by the CAs in the identity file; pass --ca-file if the proxy uses another CA",
  },
  PROXY_PROTOCOL: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'check that --proxy points at an mcp-access proxy of a compatible version',
    close: 4400,
  },
  PROXY_GOING_AWAY: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'the proxy is shutting down; it reconnects when the proxy is back',
    http: 503,
    close: 4001,
  },
  HTTP_BAD_REQUEST: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'the request was not well-formed HTTP for the proxy; use the mcp-access CLI or follow docs/protocol.md',
    http: 400,
  },

  // access
  UNKNOWN_SERVER: { exit: EXIT.NOT_FOUND, hint: 'run `mcp-access ls` to see the servers you can reach', close: 4404 },
  ACCESS_DENIED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "access is governed by the identity's roles; ask an administrator",
    http: 403,
    close: 4403,
    rpc: INVALID_PARAMS,
  },
  TOOL_DENIED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "access is governed by the identity's roles; ask an administrator",
    http: 403,
    rpc: INVALID_PARAMS,
  },
  SESSION_LOCKED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'the identity was locked by an administrator',
    http: 403,
    close: 4423,
  },
  ARGUMENT_DENIED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "the identity's roles allow this tool only with other arguments (error.data names the argument and the rule); `mcp-access policy check --tool T --args JSON` explains",
    http: 403,
    rpc: INVALID_PARAMS,
  },
  TOOL_NOT_APPROVED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "the tool's definition is new or changed since it was approved; an operator reviews it with `mcp-access tools diff SERVER` and approves it with `mcp-access tools approve SERVER TOOL` (list the tools again afterwards)",
    http: 403,
    rpc: INVALID_PARAMS,
  },
  TOOL_NOT_PENDING: {
    exit: EXIT.NOT_FOUND,
    hint: 'run `mcp-access tools diff SERVER` to see the tools waiting for approval',
  },
  RESOURCE_DENIED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "access is governed by the identity's roles (mcp.resources); ask an administrator",
    http: 403,
    rpc: INVALID_PARAMS,
  },
  PROMPT_DENIED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "access is governed by the identity's roles (mcp.prompts); ask an administrator",
    http: 403,
    rpc: INVALID_PARAMS,
  },
  LIMIT_REACHED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'close sessions you no longer use, or ask the operator to raise the limit the message names (sessions.* in the proxy configuration)',
    http: 403,
    close: 4429,
  },

  // upstream MCP servers
  UPSTREAM_FAILED: {
    exit: EXIT.UPSTREAM,
    hint: "the MCP server could not be started; see the proxy's log",
    close: 4500,
  },
  UPSTREAM_EXITED: { exit: EXIT.UPSTREAM, hint: "the MCP server stopped; see the proxy's log", close: 4502 },
  DATABASE_UNAVAILABLE: {
    exit: EXIT.UPSTREAM,
    hint: "the database could not be reached or its admin account was refused; see the proxy's (or agent's) log and the databases: entry",
  },
  QUERY_DENIED: {
    exit: EXIT.ACCESS_DENIED,
    hint: "the statement needs a privilege the identity's roles do not grant (db_permissions, db_names); ask an administrator",
    rpc: INVALID_PARAMS,
  },

  // the message stream
  MESSAGE_TOO_LARGE: {
    exit: EXIT.USAGE,
    hint: 'raise --max-message-size on connect (and max_message_size on the proxy)',
    http: 413,
    close: 4413,
  },
  SESSION_LOST: {
    exit: EXIT.SESSION_LOST,
    hint: 'the session could not be resumed; the request may or may not have run',
    close: 4409,
  },

  // audit
  AUDIT_UNAVAILABLE: {
    exit: EXIT.AUDIT,
    hint: 'the audit log cannot be written; requests are refused until it can',
    http: 503,
  },
  AUDIT_TAMPERED: { exit: EXIT.AUDIT, hint: 'the audit log was edited, truncated or reordered after it was written' },

  // bot
  BOT_TOKEN_INVALID: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'ask the operator for a new token: `mcp-access bot add`',
    http: 403,
  },
  BOT_CA_PIN_MISMATCH: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'the proxy is not the one the pin names; check --proxy and --ca-pin',
  },
  BOT_LOCKED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'the bot is locked; an operator can run `mcp-access bot unlock`',
    http: 403,
  },
  BOT_STATE: { exit: EXIT.CONFIG, hint: 'check the bot state directory', http: 409 },
  BOT_EXISTS: { exit: EXIT.USAGE, hint: 'pick another name, or remove the bot first with `mcp-access bot rm`' },
  BOT_UNKNOWN: { exit: EXIT.NOT_FOUND, hint: 'run `mcp-access bot ls` to see the registered bots', http: 404 },
  BOT_JOIN_LIMITED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'too many join attempts from this address; wait and try again with the right token',
    http: 429,
  },
  BOT_CONFIG_INVALID: { exit: EXIT.USAGE, hint: 'fix the bot configuration file (see docs/bot.md)' },

  // agent enrolment (docs/agent.md)
  AGENT_TOKEN_INVALID: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'ask the operator for a new token: `mcp-access agent rm NAME` then `mcp-access agent add NAME`',
  },
  AGENT_CA_PIN_MISMATCH: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'check --proxy and --ca-pin against the output of `mcp-access agent add`',
  },
  AGENT_LOCKED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'the agent is locked; an operator can run `mcp-access agent unlock`',
  },
  AGENT_EXISTS: { exit: EXIT.USAGE, hint: 'pick another name, or remove the agent first with `mcp-access agent rm`' },
  AGENT_UNKNOWN: { exit: EXIT.NOT_FOUND, hint: 'run `mcp-access agent ls` to see the registered agents' },
  UNSAFE_PATH: { exit: EXIT.USAGE, hint: 'use a path owned by this user that others cannot write to, and no symlink' },

  // the backend (docs/backend.md)
  BACKEND_UNAVAILABLE: {
    exit: EXIT.CONFIG,
    hint: 'check backend.url and that PostgreSQL is running and reachable from this machine',
    http: 503,
  },
  BACKEND_AUTH: {
    exit: EXIT.CONFIG,
    hint: 'check the user in backend.url and the password (backend.password_file, MCP_ACCESS_BACKEND_PASSWORD or PGPASSWORD)',
    http: 503,
  },
  BACKEND_SCHEMA: {
    exit: EXIT.CONFIG,
    hint: 'the database was set up by a newer mcp-access: upgrade this one, or point backend.url at another database',
    http: 503,
  },

  // roles as resources (`mcp-access role …`)
  ROLE_UNKNOWN: { exit: EXIT.NOT_FOUND, hint: 'run `mcp-access role ls` to see the roles' },
  ROLE_CONFLICT: {
    exit: EXIT.USAGE,
    hint: 'the proxy configuration defines this role (roles, roles_files); change it there, or rename one of them',
  },

  // the demo (`mcp-access demo`, `npm start`)
  DEMO_SETUP: {
    exit: EXIT.CONFIG,
    hint: 'run `npm install` in the mcp-access checkout: the demo uses its development dependencies',
  },
  DEMO_DIR: { exit: EXIT.USAGE, hint: 'pass --dir with a new or empty directory (or one an earlier demo made)' },
  DEMO_UNEXPECTED: {
    exit: EXIT.INTERNAL,
    hint: 'the demo checks what it shows; report this with the output of --debug',
  },
} satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof CATALOGUE;

export class AccessError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly exitCode: ExitCode;
  /** Extra machine-readable detail (never secrets). */
  readonly detail?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown; detail?: Record<string, unknown> } = {},
  ) {
    // Secrets in URLs (passwords, api_key=…) never reach a message: it may end
    // up in a fatal frame, a close reason, a log line or the audit trail.
    super(redactSecrets(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AccessError';
    this.code = code;
    this.hint = redactSecrets(options.hint ?? CATALOGUE[code].hint);
    this.exitCode = CATALOGUE[code].exit;
    this.detail = options.detail;
  }

  /** The one line a person reads: `<message> (<hint>)`. */
  get line(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** The HTTP status of an error answer with this code. */
export function httpStatusFor(code: ErrorCode): number {
  const entry: CatalogueEntry = CATALOGUE[code];
  return entry.http ?? 500;
}

/** The JSON-RPC error code of an answer to a waiting request that failed with this code. */
export function rpcCodeFor(code: ErrorCode): number {
  const entry: CatalogueEntry = CATALOGUE[code];
  return entry.rpc ?? INTERNAL_ERROR;
}

/** Whether a string from the wire (a `fatal` frame, an error body) names a code of the catalogue. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(CATALOGUE, code);
}

export function isAccessError(err: unknown): err is AccessError {
  return err instanceof AccessError;
}

/** The one-line, no-stack form of any error. */
export function describeError(err: unknown): string {
  if (isAccessError(err)) return err.line;
  if (err instanceof Error) return `${redactSecrets(err.message)} (${CATALOGUE.INTERNAL.hint})`;
  return `${redactSecrets(String(err))} (${CATALOGUE.INTERNAL.hint})`;
}
