/**
 * An agent's YAML configuration (reference: docs/configuration.md, "Agent"):
 *
 *   proxy: proxy.example.com:3080     # where it dials out to
 *   identity: ./agent.identity         # its host certificate (an identity file), or
 *   data_dir: ./agent-state            # where it keeps the one it joined with (`agent start --token`)
 *   servers: [...]                     # the MCP servers it enrolls, as in the proxy's `servers:`
 *   databases: [...]                   # PostgreSQL databases it serves, as in the proxy's `databases:`
 *   sessions: { grace_period, stop_grace, prestart, max_per_identity, max_total, max_processes_per_server }
 *   max_message_size: 64MiB
 *   audit_spool: { dir, max_size }     # where events wait for the proxy's trail
 *                                      # (default <data_dir>/audit-spool/<agent name>, 64MiB)
 *   keepalive: 15s
 *   log_level: info
 */
import { dirname, join, resolve } from 'node:path';
import { AccessError } from '../errors.js';
import { readYamlFile } from '../util/yaml-file.js';
import { parseProxyAddress, type ProxyAddress } from '../tunnel/proxy-address.js';
import { duration, isObject, size, str, type Fail } from '../util/config-fields.js';
import { parseServers, parseSessions, type ServerConfig, type SessionSettings } from './servers.js';
import { checkTargetNames, parseDatabases } from './databases.js';

export interface AgentConfig extends SessionSettings {
  path: string;
  baseDir: string;
  proxy: ProxyAddress;
  /** An identity file holding the agent's host certificate. */
  identity?: string;
  /** Where the agent keeps the host certificate it joined with and renews. */
  dataDir?: string;
  servers: ServerConfig[];
  /**
   * Where the events of its sessions are durable until the proxy stored them
   * (src/agent/audit-spool.ts); without `dir`, `audit-spool/<agent name>` in
   * data_dir (or next to agent.yaml).
   */
  auditSpool: { dir?: string; maxBytes: number };
  keepaliveMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

const TOP_KEYS = [
  'proxy',
  'identity',
  'data_dir',
  'servers',
  'sessions',
  'max_message_size',
  'audit_spool',
  'keepalive',
  'log_level',
];

export async function loadAgentConfig(
  path: string,
  overrides: { proxy?: string; dataDir?: string } = {},
): Promise<AgentConfig> {
  let doc = await readYamlFile(path);
  if (overrides.proxy !== undefined || overrides.dataDir !== undefined) {
    if (doc === null || doc === undefined) doc = {};
    if (typeof doc === 'object' && !Array.isArray(doc)) {
      const d = doc as Record<string, unknown>;
      if (overrides.proxy !== undefined) d.proxy = overrides.proxy;
      if (overrides.dataDir !== undefined) {
        d.data_dir = resolve(overrides.dataDir);
        delete d.identity;
      }
    }
  }
  return parseAgentConfig(doc, path);
}

export function parseAgentConfig(doc: unknown, path: string): AgentConfig {
  const fail: Fail = (field, what) => {
    throw new AccessError('CONFIG_INVALID', `${path}: ${field}: ${what}`);
  };
  if (!isObject(doc)) fail('(top level)', 'must be a mapping with proxy, identity or data_dir, and servers');
  const d = doc;
  for (const k of Object.keys(d)) if (!TOP_KEYS.includes(k)) fail(k, `unknown key (known: ${TOP_KEYS.join(', ')})`);
  const baseDir = dirname(resolve(path));
  const abs = (p: string) => resolve(baseDir, p);
  let proxy: ProxyAddress;
  try {
    proxy = parseProxyAddress(str(d.proxy, 'proxy', fail));
  } catch (err) {
    if (err instanceof AccessError && err.code === 'CONFIG_INVALID') throw err;
    return fail('proxy', `"${String(d.proxy)}" must be host:port, e.g. proxy.example.com:3080`);
  }
  const identity = d.identity === undefined ? undefined : abs(str(d.identity, 'identity', fail));
  const dataDir = d.data_dir === undefined ? undefined : abs(str(d.data_dir, 'data_dir', fail));
  if (identity === undefined && dataDir === undefined)
    fail(
      'identity',
      'give the agent its host certificate: identity (an identity file) or data_dir (joined with a token)',
    );
  const mcpServers = d.servers === undefined ? [] : parseServers(d.servers, 'servers', fail, abs);
  // Databases (docs/databases.md) are session targets like servers; their admin account stays at the agent.
  const databases = parseDatabases(d.databases, 'databases', fail, abs);
  checkTargetNames(mcpServers, databases, 'databases', fail);
  // Not served by agents yet (the pins and the signing key live at the proxy): refused rather than ignored.
  mcpServers.forEach((s, i) => {
    if (s.toolPinning !== 'off')
      fail(
        `servers[${i}].tool_pinning`,
        'is not supported on an agent yet; enroll the server in proxy.yaml for pinning',
      );
    if ((s.transport === 'http' || s.transport === 'sse') && s.identityJwt)
      fail(`servers[${i}].identity_jwt`, 'is not supported on an agent yet; enroll the server in proxy.yaml for it');
  });
  const servers = [...mcpServers, ...databases];
  const sessions = parseSessions(d.sessions, fail);
  const keepaliveMs = d.keepalive === undefined ? 15_000 : duration(d.keepalive, 'keepalive', fail);
  if (keepaliveMs < 100) fail('keepalive', 'must be at least 100ms');
  const maxMessageSize =
    d.max_message_size === undefined ? 64 * 1024 * 1024 : size(d.max_message_size, 'max_message_size', fail);
  const auditSpool = parseAuditSpool(d.audit_spool, abs, fail);
  const logLevel = (d.log_level ?? 'info') as AgentConfig['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) fail('log_level', 'must be debug, info, warn or error');
  return {
    path: resolve(path),
    baseDir,
    proxy,
    ...(identity ? { identity } : {}),
    ...(dataDir ? { dataDir } : {}),
    servers,
    ...sessions,
    maxMessageSize,
    auditSpool,
    keepaliveMs,
    logLevel,
  };
}

/** `audit_spool: { dir, max_size }` (max_size: 64 MiB by default). */
function parseAuditSpool(v: unknown, abs: (p: string) => string, fail: Fail): AgentConfig['auditSpool'] {
  if (v !== undefined && !isObject(v)) fail('audit_spool', 'must be a mapping with dir and/or max_size');
  const o = v ?? {};
  for (const k of Object.keys(o))
    if (k !== 'dir' && k !== 'max_size') fail(`audit_spool.${k}`, 'unknown key (known: dir, max_size)');
  const dir = o.dir === undefined ? undefined : abs(str(o.dir, 'audit_spool.dir', fail));
  const maxBytes = o.max_size === undefined ? 64 * 1024 * 1024 : size(o.max_size, 'audit_spool.max_size', fail);
  if (maxBytes < 64 * 1024) fail('audit_spool.max_size', 'must be at least 64KiB');
  return { ...(dir !== undefined ? { dir } : {}), maxBytes };
}

/** The spool's directory: as configured, or `audit-spool/<agent name>` in data_dir (or next to agent.yaml). */
export function auditSpoolDir(config: AgentConfig, agentName: string): string {
  return config.auditSpool.dir ?? join(config.dataDir ?? config.baseDir, 'audit-spool', agentName);
}
