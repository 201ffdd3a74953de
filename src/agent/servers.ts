/**
 * MCP server entries (`servers:`), as the proxy's configuration and an
 * agent's configuration both enroll them, and the session settings an agent
 * (in process or remote) runs its sessions with.
 */
import { pathToFileURL } from 'node:url';
import { count, duration, isObject, NAME_RE, str, stringMap, type Fail } from '../util/config-fields.js';
import type { PinningMode } from './pins.js';

export interface StdioServerConfig {
  transport: 'stdio';
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Names of the proxy's environment variables passed on as they are (on top of the minimal set). */
  inheritEnv: string[];
  /** OS user (name, uid or uid:gid) the process runs as; the proxy's own user when unset. */
  runAs?: string;
}
export interface HttpServerConfig {
  transport: 'http';
  url: string;
  headers: Record<string, string>;
  /** `identity_jwt`: a signed identity assertion on every request (docs/configuration.md). */
  identityJwt: boolean;
}
export interface SseServerConfig {
  transport: 'sse';
  url: string;
  headers: Record<string, string>;
  identityJwt: boolean;
}

/**
 * A PostgreSQL database enrolled with `databases:` (databases.ts): a session
 * target like a server, served by the built-in database MCP server
 * (upstream/postgres.ts). Plain JSON: no secret is held here, only where to
 * read the admin password from.
 */
export interface PostgresServerConfig {
  transport: 'postgres';
  /** postgres://host:port/dbname?sslmode=… without a password (the default database is its path). */
  uri: string;
  /** The account that provisions per-session database roles. */
  admin: { user: string; password: SecretRef };
  /** Rows returned by one query at most (more: `truncated`). */
  maxRows: number;
  /** statement_timeout of every query, in milliseconds. */
  statementTimeoutMs: number;
  /**
   * Check each statement with PostgreSQL's parser before sending it (default).
   * Off: the database's GRANTs are the only check (docs/databases.md).
   */
  statementCheck: boolean;
}

/** Where a secret is read from when it is needed (never stored in a configuration object). */
export type SecretRef = { env: string } | { file: string };

/** A root the proxy reports to the server (`roots/list`) on the client's behalf. */
export interface RootConfig {
  uri: string;
  name?: string;
}

export type ServerConfig = {
  name: string;
  description: string;
  labels: Record<string, string>;
  /** What the proxy answers to the server's `roots/list` (unless clientRoots). */
  roots: RootConfig[];
  /** Forward the client's roots (filtered by the roles' mcp.roots) instead. */
  clientRoots: boolean;
  /** `tool_pinning`: pinned tool definitions (docs/rbac.md); `off` when not written. */
  toolPinning: PinningMode;
} & (StdioServerConfig | HttpServerConfig | SseServerConfig | PostgresServerConfig);

export interface SessionLimits {
  /** Sessions (attached or waiting for a resume) per identity: user, or bot. */
  perIdentity: number;
  /** Sessions on this proxy or agent. */
  total: number;
  /** Running processes per stdio server (sessions plus the warm spare). */
  processesPerServer: number;
}
export const DEFAULT_LIMITS: SessionLimits = { perIdentity: 32, total: 512, processesPerServer: 64 };

/** How a session host runs its sessions (from `sessions:` and the top level of its YAML). */
export interface SessionSettings {
  /** How long a disconnected session's upstream is kept for a resume. */
  gracePeriodMs: number;
  limits: SessionLimits;
  maxMessageSize: number;
  /** SIGTERM → SIGKILL grace for stdio upstreams. */
  stopGraceMs: number;
  /** Keep one started process per stdio server for the next session (upstream/spares.ts). */
  prestart: boolean;
  /** Tunnel keepalive (default 15 s): a bridge that misses a ping is dropped; its session waits for a resume. */
  keepaliveMs?: number;
}

/** The `sessions:` block (proxy and agent alike). */
export function parseSessions(
  v: unknown,
  fail: Fail,
): Pick<SessionSettings, 'gracePeriodMs' | 'stopGraceMs' | 'prestart' | 'limits'> {
  let gracePeriodMs = 120_000;
  let stopGraceMs = 3_000;
  let prestart = true;
  const limits = { ...DEFAULT_LIMITS };
  if (v !== undefined) {
    if (!isObject(v)) fail('sessions', 'must be a mapping');
    const s = v;
    const knownSession = [
      'grace_period',
      'stop_grace',
      'prestart',
      'max_per_identity',
      'max_total',
      'max_processes_per_server',
    ];
    for (const k of Object.keys(s))
      if (!knownSession.includes(k)) fail(`sessions.${k}`, `unknown key (known: ${knownSession.join(', ')})`);
    if (s.max_per_identity !== undefined)
      limits.perIdentity = count(s.max_per_identity, 'sessions.max_per_identity', fail);
    if (s.max_total !== undefined) limits.total = count(s.max_total, 'sessions.max_total', fail);
    if (s.max_processes_per_server !== undefined)
      limits.processesPerServer = count(s.max_processes_per_server, 'sessions.max_processes_per_server', fail);
    if (s.prestart !== undefined) {
      if (typeof s.prestart !== 'boolean') fail('sessions.prestart', 'must be true or false');
      prestart = s.prestart;
    }
    if (s.grace_period !== undefined) gracePeriodMs = duration(s.grace_period, 'sessions.grace_period', fail);
    if (s.stop_grace !== undefined) stopGraceMs = duration(s.stop_grace, 'sessions.stop_grace', fail);
  }
  if (prestart && limits.processesPerServer < 2)
    fail(
      'sessions.max_processes_per_server',
      'must be at least 2 while prestart is on (the warm spare is one of them)',
    );
  return { gracePeriodMs, stopGraceMs, prestart, limits };
}

/** Parse a list of server entries; names must be unique. */
export function parseServers(v: unknown, field: string, fail: Fail, abs: (p: string) => string): ServerConfig[] {
  if (!Array.isArray(v)) fail(field, 'must be a list of servers (name, labels and command, url or sse_url)');
  const names = new Set<string>();
  return (v as unknown[]).map((s, i) => {
    const server = parseServer(s, `${field}[${i}]`, fail, abs);
    if (names.has(server.name)) fail(`${field}[${i}].name`, `"${server.name}" is used twice`);
    names.add(server.name);
    return server;
  });
}

export function parseServer(s: unknown, at: string, fail: Fail, abs: (p: string) => string): ServerConfig {
  if (!isObject(s)) fail(at, 'must be a mapping with name and command, url or sse_url');
  const o = s;
  const known = [
    'name',
    'description',
    'labels',
    'roots',
    'client_roots',
    'tool_pinning',
    'command',
    'args',
    'env',
    'inherit_env',
    'run_as',
    'cwd',
    'url',
    'sse_url',
    'headers',
    'identity_jwt',
  ];
  for (const k of Object.keys(o))
    if (!known.includes(k)) fail(`${at}.${k}`, `unknown key (known: ${known.join(', ')})`);
  const name = str(o.name, `${at}.name`, fail);
  if (!NAME_RE.test(name)) fail(`${at}.name`, `"${name}" must be 1-64 letters, digits, dot, dash or underscore`);
  const description = o.description === undefined ? '' : str(o.description, `${at}.description`, fail);
  const labels = stringMap(o.labels, `${at}.labels`, fail);
  const kinds = ['command', 'url', 'sse_url'].filter((k) => o[k] !== undefined);
  if (kinds.length !== 1)
    fail(
      at,
      `server "${name}" needs exactly one of command (stdio), url (Streamable HTTP) or sse_url (SSE)${kinds.length ? `, not ${kinds.join(' and ')}` : ''}`,
    );
  if (o.client_roots !== undefined && typeof o.client_roots !== 'boolean')
    fail(`${at}.client_roots`, 'must be true or false');
  const base = {
    name,
    description,
    labels,
    roots: parseRoots(o.roots, `${at}.roots`, fail, abs),
    clientRoots: o.client_roots === true,
    toolPinning: pinningMode(o.tool_pinning, `${at}.tool_pinning`, fail),
  };
  if (o.command !== undefined) {
    for (const k of ['url', 'sse_url', 'headers', 'identity_jwt'])
      if (o[k] !== undefined) fail(`${at}.${k}`, 'does not apply to a stdio server');
    const args = o.args ?? [];
    if (!Array.isArray(args) || !args.every((x) => typeof x === 'string' || typeof x === 'number'))
      fail(`${at}.args`, 'must be a list of strings');
    return {
      ...base,
      transport: 'stdio',
      command: str(o.command, `${at}.command`, fail),
      args: (args as unknown[]).map(String),
      env: stringMap(o.env, `${at}.env`, fail),
      cwd: o.cwd === undefined ? undefined : abs(str(o.cwd, `${at}.cwd`, fail)),
      inheritEnv: envNames(o.inherit_env, `${at}.inherit_env`, fail),
      runAs: o.run_as === undefined ? undefined : runAs(o.run_as, `${at}.run_as`, fail),
    };
  }
  for (const k of ['args', 'env', 'cwd', 'inherit_env', 'run_as'])
    if (o[k] !== undefined) fail(`${at}.${k}`, 'applies only to a stdio server (command)');
  const key = o.url !== undefined ? 'url' : 'sse_url';
  const url = str(o[key], `${at}.${key}`, fail);
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    fail(`${at}.${key}`, `"${url}" is not an http(s) URL`);
  }
  return {
    ...base,
    transport: key === 'url' ? 'http' : 'sse',
    url,
    headers: stringMap(o.headers, `${at}.headers`, fail),
    identityJwt: identityJwt(o.identity_jwt, `${at}.identity_jwt`, fail),
  };
}

/**
 * `roots:` entries: an absolute path, a `file://` URI, or `{uri, name}`.
 * Paths resolve against the configuration file's directory.
 */
function parseRoots(v: unknown, field: string, fail: Fail, abs: (p: string) => string): RootConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(field, 'must be a list of directories or file:// URIs');
  return (v as unknown[]).map((entry, i) => {
    const at = `${field}[${i}]`;
    let uri: string;
    let name: string | undefined;
    if (typeof entry === 'string' && entry.length > 0) uri = entry;
    else if (isObject(entry) && typeof entry.uri === 'string') {
      for (const k of Object.keys(entry))
        if (k !== 'uri' && k !== 'name') fail(`${at}.${k}`, 'unknown key (known: uri, name)');
      if (entry.name !== undefined && typeof entry.name !== 'string') fail(`${at}.name`, 'must be a string');
      uri = entry.uri;
      name = entry.name;
    } else return fail(at, 'must be a directory, a file:// URI, or a mapping with uri (and name)');
    if (!/^[a-z][a-z0-9+.-]*:/i.test(uri)) uri = pathToFileURL(abs(uri)).href;
    try {
      uri = new URL(uri).href;
    } catch {
      fail(at, `"${uri}" is not a URI`);
    }
    return name === undefined ? { uri } : { uri, name };
  });
}

function identityJwt(v: unknown, field: string, fail: Fail): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') fail(field, 'must be true or false');
  return v === true;
}

function pinningMode(v: unknown, field: string, fail: Fail): PinningMode {
  if (v === undefined || v === null) return 'off';
  if (v !== 'off' && v !== 'auto' && v !== 'approve') fail(field, 'must be off, auto or approve');
  return v;
}

function envNames(v: unknown, field: string, fail: Fail): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(x)))
    fail(field, 'must be a list of environment variable names');
  return v as string[];
}

function runAs(v: unknown, field: string, fail: Fail): string {
  const text = typeof v === 'number' ? String(v) : v;
  if (typeof text !== 'string' || !/^(?:[A-Za-z_][A-Za-z0-9_.-]*[$]?|\d+(?::\d+)?)$/.test(text))
    fail(field, 'must be a user name, a uid, or uid:gid');
  return text;
}
