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

interface Entry {
  exit: ExitCode;
  /** What to do about it; a specific error may override it. */
  hint: string;
}

export const CATALOGUE = {
  USAGE: { exit: EXIT.USAGE, hint: 'see --help' },
  INTERNAL: { exit: EXIT.INTERNAL, hint: 're-run with --debug for details and report it' },

  // identity files
  IDENTITY_MISSING: { exit: EXIT.IDENTITY, hint: 'check the path given to -i/--identity or MCP_ACCESS_IDENTITY' },
  IDENTITY_UNREADABLE: { exit: EXIT.IDENTITY, hint: 'check the file permissions for this user' },
  IDENTITY_EMPTY: {
    exit: EXIT.IDENTITY,
    hint: 'the writer may be mid-rewrite; if it stays empty, re-issue it or check the renewal bot',
  },
  IDENTITY_TORN: {
    exit: EXIT.IDENTITY,
    hint: 'a PEM block is cut off; the writer may be mid-rewrite, or re-issue the file',
  },
  IDENTITY_NO_KEY: { exit: EXIT.IDENTITY, hint: 'an identity file starts with a private key PEM block; re-issue it' },
  IDENTITY_NO_CERT: { exit: EXIT.IDENTITY, hint: 'the second PEM block must be the TLS certificate; re-issue it' },
  IDENTITY_NO_CA: { exit: EXIT.IDENTITY, hint: 'the file must end with the cluster CA certificate(s); re-issue it' },
  IDENTITY_BAD_KEY: { exit: EXIT.IDENTITY, hint: 'the private key block cannot be parsed; re-issue the file' },
  IDENTITY_BAD_CERT: { exit: EXIT.IDENTITY, hint: 'a certificate block cannot be parsed; re-issue the file' },
  IDENTITY_KEY_MISMATCH: {
    exit: EXIT.IDENTITY,
    hint: 'the key and certificate come from different identities; re-issue the file',
  },
  IDENTITY_NOT_YET_VALID: { exit: EXIT.IDENTITY, hint: "check this machine's clock" },
  IDENTITY_EXPIRED: {
    exit: EXIT.IDENTITY,
    hint: 'renew it: check that the renewal bot is running, or run `mcp-access identity issue` again',
  },
  IDENTITY_UNTRUSTED: {
    exit: EXIT.IDENTITY,
    hint: 'the certificate is not signed by any CA in the file; re-issue it from the right cluster',
  },
  IDENTITY_REJECTED: {
    exit: EXIT.IDENTITY,
    hint: 'the proxy does not trust this identity; check that it was issued by this cluster',
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
  },
  PROXY_GOING_AWAY: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'the proxy is shutting down; it reconnects when the proxy is back',
  },
  HTTP_BAD_REQUEST: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'the request was not well-formed HTTP for the proxy; use the mcp-access CLI or follow docs/protocol.md',
  },

  // access
  UNKNOWN_SERVER: { exit: EXIT.NOT_FOUND, hint: 'run `mcp-access ls` to see the servers you can reach' },
  ACCESS_DENIED: { exit: EXIT.ACCESS_DENIED, hint: "access is governed by the identity's roles; ask an administrator" },
  TOOL_DENIED: { exit: EXIT.ACCESS_DENIED, hint: "access is governed by the identity's roles; ask an administrator" },
  SESSION_LOCKED: { exit: EXIT.ACCESS_DENIED, hint: 'the identity was locked by an administrator' },
  LIMIT_REACHED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'close sessions you no longer use, or ask the operator to raise the limit the message names (sessions.* in the proxy configuration)',
  },

  // upstream MCP servers
  UPSTREAM_FAILED: { exit: EXIT.UPSTREAM, hint: "the MCP server could not be started; see the proxy's log" },
  UPSTREAM_EXITED: { exit: EXIT.UPSTREAM, hint: "the MCP server stopped; see the proxy's log" },

  // the message stream
  MESSAGE_TOO_LARGE: {
    exit: EXIT.USAGE,
    hint: 'raise --max-message-size on connect (and max_message_size on the proxy)',
  },
  SESSION_LOST: {
    exit: EXIT.SESSION_LOST,
    hint: 'the session could not be resumed; the request may or may not have run',
  },

  // audit
  AUDIT_UNAVAILABLE: { exit: EXIT.AUDIT, hint: 'the audit log cannot be written; requests are refused until it can' },
  AUDIT_TAMPERED: { exit: EXIT.AUDIT, hint: 'the audit log was edited, truncated or reordered after it was written' },

  // bot
  BOT_TOKEN_INVALID: { exit: EXIT.ACCESS_DENIED, hint: 'ask the operator for a new token: `mcp-access bot add`' },
  BOT_CA_PIN_MISMATCH: {
    exit: EXIT.PROXY_UNREACHABLE,
    hint: 'the proxy is not the one the pin names; check --proxy and --ca-pin',
  },
  BOT_LOCKED: { exit: EXIT.ACCESS_DENIED, hint: 'the bot is locked; an operator can run `mcp-access bot unlock`' },
  BOT_STATE: { exit: EXIT.CONFIG, hint: 'check the bot state directory' },
  BOT_EXISTS: { exit: EXIT.USAGE, hint: 'pick another name, or remove the bot first with `mcp-access bot rm`' },
  BOT_UNKNOWN: { exit: EXIT.NOT_FOUND, hint: 'run `mcp-access bot ls` to see the registered bots' },
  BOT_JOIN_LIMITED: {
    exit: EXIT.ACCESS_DENIED,
    hint: 'too many join attempts from this address; wait and try again with the right token',
  },
  BOT_CONFIG_INVALID: { exit: EXIT.USAGE, hint: 'fix the bot configuration file (see docs/bot.md)' },
  UNSAFE_PATH: { exit: EXIT.USAGE, hint: 'use a path owned by this user that others cannot write to, and no symlink' },

  // the backend (docs/backend.md)
  BACKEND_UNAVAILABLE: {
    exit: EXIT.CONFIG,
    hint: 'check backend.url and that PostgreSQL is running and reachable from this machine',
  },
  BACKEND_AUTH: {
    exit: EXIT.CONFIG,
    hint: 'check the user in backend.url and the password (backend.password_file, MCP_ACCESS_BACKEND_PASSWORD or PGPASSWORD)',
  },
  BACKEND_SCHEMA: {
    exit: EXIT.CONFIG,
    hint: 'the database was set up by a newer mcp-access: upgrade this one, or point backend.url at another database',
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
} satisfies Record<string, Entry>;

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

export function isAccessError(err: unknown): err is AccessError {
  return err instanceof AccessError;
}

/** The one-line, no-stack form of any error. */
export function describeError(err: unknown): string {
  if (isAccessError(err)) return err.line;
  if (err instanceof Error) return `${redactSecrets(err.message)} (${CATALOGUE.INTERNAL.hint})`;
  return `${redactSecrets(String(err))} (${CATALOGUE.INTERNAL.hint})`;
}
