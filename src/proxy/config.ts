/**
 * The proxy's YAML configuration (reference: docs/configuration.md).
 * Every error names the field and says what is wrong.
 */
import { dirname, resolve } from 'node:path';
import { AccessError } from '../errors.js';
import { readYamlFile } from '../util/yaml-file.js';
import { duration, isObject, NAME_RE, size, str, type Fail } from '../util/config-fields.js';
import { parseServers, parseSessions, type ServerConfig, type SessionLimits } from '../agent/servers.js';
import { checkTargetNames, parseDatabases } from '../agent/databases.js';
import { parseBackend } from '../backend/config.js';
import type { BackendConfig } from '../backend/types.js';

export interface AuditConfig {
  /** The JSON Lines file (local backend); with backend postgres the trail is in the database and there is no path. */
  path?: string;
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
  /** Session targets: the `servers:` entries, then the `databases:` entries (transport 'postgres'). */
  servers: ServerConfig[];
  rolesInline: unknown[];
  rolesFiles: string[];
  /** `tool_pins`: the file pinned tool definitions are kept in (servers with tool_pinning). */
  toolPins: string;
  /** `rbac:` what roles that do not write mcp.resources / mcp.prompts allow (docs/rbac.md). */
  rbac: { defaultResources: 'all' | 'none'; defaultPrompts: 'all' | 'none' };
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
  /** Where cluster state lives (docs/backend.md); `local` unless the file says otherwise. */
  backend: BackendConfig;
  /** Prometheus metrics on their own listener (docs/operations.md). */
  metrics?: { listen: { host: string; port: number } };
}

const TOP_KEYS = new Set([
  'cluster',
  'listen',
  'ca_dir',
  'servers',
  'databases',
  'roles',
  'roles_files',
  'rbac',
  'tool_pins',
  'audit',
  'sessions',
  'keepalive',
  'log_level',
  'bot',
  'max_message_size',
  'backend',
  'metrics',
]);

export async function loadProxyConfig(path: string): Promise<ProxyConfig> {
  const doc = await readYamlFile(path);
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
  const backend = parseBackend(d.backend, fail, abs);
  let metrics: ProxyConfig['metrics'];
  if (d.metrics !== undefined) {
    if (!isObject(d.metrics)) fail('metrics', 'must be a mapping with listen');
    const m = d.metrics as Record<string, unknown>;
    for (const k of Object.keys(m)) if (k !== 'listen') fail(`metrics.${k}`, 'unknown key (known: listen)');
    metrics = { listen: parseListen(str(m.listen, 'metrics.listen', fail), fail, 'metrics.listen') };
  }
  const caDir = abs(str(d.ca_dir, 'ca_dir', fail));

  const mcpServers = parseServers(d.servers, 'servers', fail, abs);
  const databases = parseDatabases(d.databases, 'databases', fail, abs);
  checkTargetNames(mcpServers, databases, 'databases', fail);
  const servers = [...mcpServers, ...databases];

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

  const rbac: ProxyConfig['rbac'] = { defaultResources: 'all', defaultPrompts: 'all' };
  if (d.rbac !== undefined) {
    if (!isObject(d.rbac)) fail('rbac', 'must be a mapping with default_resources and/or default_prompts');
    const r = d.rbac as Record<string, unknown>;
    for (const k of Object.keys(r))
      if (k !== 'default_resources' && k !== 'default_prompts')
        fail(`rbac.${k}`, 'unknown key (known: default_resources, default_prompts)');
    for (const [k, prop] of [
      ['default_resources', 'defaultResources'],
      ['default_prompts', 'defaultPrompts'],
    ] as const) {
      if (r[k] === undefined) continue;
      if (r[k] !== 'all' && r[k] !== 'none') fail(`rbac.${k}`, 'must be all or none');
      rbac[prop] = r[k] as 'all' | 'none';
    }
  }

  let audit: AuditConfig | undefined;
  if (d.audit !== undefined) {
    if (!isObject(d.audit ?? {})) fail('audit', 'must be a mapping with path');
    const a = (d.audit ?? {}) as Record<string, unknown>;
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
    if (backend.type === 'postgres' && a.path !== undefined)
      fail('audit.path', 'with backend type postgres the audit trail is in the database; remove audit.path');
    audit = {
      ...(backend.type === 'postgres' ? {} : { path: abs(str(a.path, 'audit.path', fail)) }),
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

  const { gracePeriodMs, stopGraceMs, prestart, limits } = parseSessions(d.sessions, fail);
  const keepaliveMs = d.keepalive === undefined ? 15_000 : duration(d.keepalive, 'keepalive', fail);
  if (keepaliveMs < 100) fail('keepalive', 'must be at least 100ms');
  const maxMessageSize =
    d.max_message_size === undefined ? 64 * 1024 * 1024 : size(d.max_message_size, 'max_message_size', fail);

  const logLevel = (d.log_level ?? 'info') as ProxyConfig['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) fail('log_level', 'must be debug, info, warn or error');

  let bot: ProxyConfig['bot'];
  if (d.bot !== undefined) {
    if (!isObject(d.bot ?? {})) fail('bot', 'must be a mapping with state_dir');
    const b = (d.bot ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(b))
      if (k !== 'state_dir' && k !== 'superseded_grace')
        fail(`bot.${k}`, 'unknown key (known: state_dir, superseded_grace)');
    bot = {
      // With backend postgres bots live in the database; the directory is only a default for local files.
      stateDir: abs(
        backend.type === 'postgres' && b.state_dir === undefined ? 'bots' : str(b.state_dir, 'bot.state_dir', fail),
      ),
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
    toolPins: abs(d.tool_pins === undefined ? 'tool-pins.json' : str(d.tool_pins, 'tool_pins', fail)),
    rbac,
    audit,
    gracePeriodMs,
    limits,
    maxMessageSize,
    keepaliveMs,
    stopGraceMs,
    prestart,
    logLevel,
    bot,
    backend,
    ...(metrics ? { metrics } : {}),
  };
}

function parseListen(text: string, fail: Fail, field = 'listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  if (!m) fail(field, `"${text}" must be host:port, e.g. 127.0.0.1:3080`);
  const port = Number(m[3]);
  if (port > 65535) fail(field, `port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** How long a bot's previous generation still opens sessions after a renewal (docs/bot.md). */
export const DEFAULT_SUPERSEDED_GRACE_MS = 60_000;
