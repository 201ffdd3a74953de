/**
 * The proxy's YAML configuration (reference: docs/configuration.md).
 * Every error names the field and says what is wrong.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { AccessError } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { parseSize } from '../util/size.js';

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
}
export interface SseServerConfig {
  transport: 'sse';
  url: string;
  headers: Record<string, string>;
}

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
} & (StdioServerConfig | HttpServerConfig | SseServerConfig);

export interface AuditConfig {
  path: string;
  args: 'full' | 'digest' | 'none';
  redact: string[];
  fsync: 'always' | 'interval' | 'never';
  /** Bytes of audit events one identity may add per hour; 0 = unlimited (docs/audit.md). */
  identityBudget?: number;
}

export interface ProxyConfig {
  /** The file it came from, and its directory (relative paths resolve against it). */
  path: string;
  baseDir: string;
  cluster: string;
  listen: { host: string; port: number };
  caDir: string;
  servers: ServerConfig[];
  rolesInline: unknown[];
  rolesFiles: string[];
  audit?: AuditConfig;
  /** How long a disconnected session's upstream is kept for a resume. */
  gracePeriodMs: number;
  /** Caps on sessions and upstream processes (docs/configuration.md, "Limits"). */
  limits: SessionLimits;
  maxMessageSize: number;
  keepaliveMs: number;
  /** SIGTERM → SIGKILL grace for stdio upstreams. */
  stopGraceMs: number;
  /** Keep one started process per stdio server for the next session (upstream/spares.ts). */
  prestart: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  bot?: { stateDir: string; supersededGraceMs: number };
}

export interface SessionLimits {
  /** Sessions (attached or waiting for a resume) per identity: user, or bot. */
  perIdentity: number;
  /** Sessions on this proxy. */
  total: number;
  /** Running processes per stdio server (sessions plus the warm spare). */
  processesPerServer: number;
}
export const DEFAULT_LIMITS: SessionLimits = { perIdentity: 32, total: 512, processesPerServer: 64 };

const TOP_KEYS = new Set([
  'cluster',
  'listen',
  'ca_dir',
  'servers',
  'roles',
  'roles_files',
  'audit',
  'sessions',
  'keepalive',
  'log_level',
  'bot',
  'max_message_size',
]);
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export async function loadProxyConfig(path: string): Promise<ProxyConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AccessError(
      'CONFIG_MISSING',
      code === 'ENOENT' ? `config file ${path} does not exist` : `config file ${path} cannot be read (${code})`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new AccessError('CONFIG_INVALID', `${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseProxyConfig(doc, path);
}

export function parseProxyConfig(doc: unknown, path: string): ProxyConfig {
  const where = (field: string) => `${path}: ${field}`;
  const fail = (field: string, what: string): never => {
    throw new AccessError('CONFIG_INVALID', `${where(field)}: ${what}`);
  };
  if (!isObject(doc)) fail('(top level)', 'must be a mapping with cluster, listen, ca_dir and servers');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!TOP_KEYS.has(k)) fail(k, `unknown key (known: ${[...TOP_KEYS].join(', ')})`);
  const baseDir = dirname(resolve(path));
  const abs = (p: string) => resolve(baseDir, p);

  const cluster = str(d.cluster, 'cluster', fail);
  if (!NAME_RE.test(cluster)) fail('cluster', 'use letters, digits, dot, dash and underscore');
  const listen = parseListen(str(d.listen, 'listen', fail), fail);
  const caDir = abs(str(d.ca_dir, 'ca_dir', fail));

  if (!Array.isArray(d.servers))
    fail('servers', 'must be a list of servers (name, labels and command, url or sse_url)');
  const names = new Set<string>();
  const servers = (d.servers as unknown[]).map((s, i) => {
    const server = parseServer(s, `servers[${i}]`, fail, abs);
    if (names.has(server.name)) fail(`servers[${i}].name`, `"${server.name}" is used twice`);
    names.add(server.name);
    return server;
  });

  let rolesInline: unknown[] = [];
  if (d.roles !== undefined) {
    if (!Array.isArray(d.roles)) fail('roles', 'must be a list of role documents');
    rolesInline = d.roles as unknown[];
  }
  let rolesFiles: string[] = [];
  if (d.roles_files !== undefined) {
    const rf = typeof d.roles_files === 'string' ? [d.roles_files] : d.roles_files;
    if (!Array.isArray(rf) || !rf.every((x) => typeof x === 'string'))
      fail('roles_files', 'must be a path or a list of paths');
    rolesFiles = (rf as string[]).map(abs);
  }

  let audit: AuditConfig | undefined;
  if (d.audit !== undefined) {
    if (!isObject(d.audit)) fail('audit', 'must be a mapping with path');
    const a = d.audit as Record<string, unknown>;
    for (const k of Object.keys(a))
      if (!['path', 'args', 'redact', 'fsync', 'identity_budget'].includes(k))
        fail(`audit.${k}`, 'unknown key (known: path, args, redact, fsync, identity_budget)');
    const args = a.args ?? 'full';
    if (args !== 'full' && args !== 'digest' && args !== 'none') fail('audit.args', 'must be full, digest or none');
    const fsync = a.fsync ?? 'interval';
    if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never')
      fail('audit.fsync', 'must be always, interval or never');
    const redact = a.redact ?? [];
    if (!Array.isArray(redact) || !redact.every((x) => typeof x === 'string'))
      fail('audit.redact', 'must be a list of argument keys');
    audit = {
      path: abs(str(a.path, 'audit.path', fail)),
      args: args as AuditConfig['args'],
      redact: redact as string[],
      fsync: fsync as AuditConfig['fsync'],
    };
    if (a.identity_budget !== undefined)
      audit.identityBudget =
        a.identity_budget === 0 || a.identity_budget === '0'
          ? 0
          : size(a.identity_budget, 'audit.identity_budget', fail);
  }

  let gracePeriodMs = 120_000;
  let stopGraceMs = 3_000;
  let prestart = true;
  const limits = { ...DEFAULT_LIMITS };
  if (d.sessions !== undefined) {
    if (!isObject(d.sessions)) fail('sessions', 'must be a mapping');
    const s = d.sessions as Record<string, unknown>;
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
      prestart = s.prestart as boolean;
    }
    if (s.grace_period !== undefined) gracePeriodMs = duration(s.grace_period, 'sessions.grace_period', fail);
    if (s.stop_grace !== undefined) stopGraceMs = duration(s.stop_grace, 'sessions.stop_grace', fail);
  }
  if (prestart && limits.processesPerServer < 2)
    fail(
      'sessions.max_processes_per_server',
      'must be at least 2 while prestart is on (the warm spare is one of them)',
    );
  const keepaliveMs = d.keepalive === undefined ? 15_000 : duration(d.keepalive, 'keepalive', fail);
  if (keepaliveMs < 100) fail('keepalive', 'must be at least 100ms');
  const maxMessageSize =
    d.max_message_size === undefined ? 64 * 1024 * 1024 : size(d.max_message_size, 'max_message_size', fail);

  const logLevel = (d.log_level ?? 'info') as ProxyConfig['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) fail('log_level', 'must be debug, info, warn or error');

  let bot: ProxyConfig['bot'];
  if (d.bot !== undefined) {
    if (!isObject(d.bot)) fail('bot', 'must be a mapping with state_dir');
    const b = d.bot as Record<string, unknown>;
    for (const k of Object.keys(b))
      if (k !== 'state_dir' && k !== 'superseded_grace')
        fail(`bot.${k}`, 'unknown key (known: state_dir, superseded_grace)');
    bot = {
      stateDir: abs(str(b.state_dir, 'bot.state_dir', fail)),
      supersededGraceMs:
        b.superseded_grace === undefined
          ? DEFAULT_SUPERSEDED_GRACE_MS
          : duration(b.superseded_grace, 'bot.superseded_grace', fail),
    };
  }

  return {
    path: resolve(path),
    baseDir,
    cluster,
    listen,
    caDir,
    servers,
    rolesInline,
    rolesFiles,
    audit,
    gracePeriodMs,
    limits,
    maxMessageSize,
    keepaliveMs,
    stopGraceMs,
    prestart,
    logLevel,
    bot,
  };
}

type Fail = (field: string, what: string) => never;

function parseServer(s: unknown, at: string, fail: Fail, abs: (p: string) => string): ServerConfig {
  if (!isObject(s)) fail(at, 'must be a mapping with name and command, url or sse_url');
  const o = s;
  const known = [
    'name',
    'description',
    'labels',
    'roots',
    'client_roots',
    'command',
    'args',
    'env',
    'inherit_env',
    'run_as',
    'cwd',
    'url',
    'sse_url',
    'headers',
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
  };
  if (o.command !== undefined) {
    for (const k of ['url', 'sse_url', 'headers'])
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

function count(v: unknown, field: string, fail: Fail): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(field, 'must be a whole number of at least 1');
  return v;
}

function parseListen(text: string, fail: Fail): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  if (!m) fail('listen', `"${text}" must be host:port, e.g. 127.0.0.1:3080`);
  const port = Number(m[3]);
  if (port > 65535) fail('listen', `port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function str(v: unknown, field: string, fail: Fail): string {
  if (typeof v !== 'string' || v.length === 0)
    fail(field, v === undefined ? 'is required' : 'must be a non-empty string');
  return v;
}

function stringMap(v: unknown, field: string, fail: Fail): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) fail(field, 'must be a mapping of names to strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean')
      fail(`${field}.${k}`, 'must be a string');
    out[k] = String(val);
  }
  return out;
}

/** How long a bot's previous generation still opens sessions after a renewal (docs/bot.md). */
export const DEFAULT_SUPERSEDED_GRACE_MS = 60_000;

function duration(v: unknown, field: string, fail: Fail): number {
  try {
    return parseDuration(String(v), field);
  } catch {
    return fail(field, `"${String(v)}" is not a duration like 30s, 2m or 1h`);
  }
}

function size(v: unknown, field: string, fail: Fail): number {
  const n = parseSize(String(v));
  if (n === undefined || n < 1024) fail(field, `"${String(v)}" must be a size like 64MiB (at least 1KiB)`);
  return n;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
