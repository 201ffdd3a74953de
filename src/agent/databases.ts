/**
 * PostgreSQL database entries (`databases:`), as the proxy's configuration
 * and a remote agent's configuration both enroll them. A database becomes a
 * session target like a server (`transport: 'postgres'`): `ls` lists it,
 * `connect <name>` reaches it, and its session talks to the built-in database
 * MCP server (upstream/postgres.ts).
 *
 *   databases:
 *     - name: shop
 *       description: Product catalogue
 *       labels: { env: dev }
 *       uri: postgres://db.internal:5432/shop?sslmode=require
 *       admin: { user: mcp_admin, password_env: SHOP_ADMIN_PASSWORD }   # or password_file
 *       max_rows: 1000
 *       statement_timeout: 30s
 *
 * The admin password is never part of the parsed entry (which may be logged,
 * listed or sent to the proxy as JSON): only where to read it, when a session
 * needs it (`readSecret`).
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AccessError } from '../errors.js';
import { duration, isObject, NAME_RE, str, stringMap, type Fail } from '../util/config-fields.js';
import { redactUrl } from '../util/redact.js';
import type { PostgresServerConfig, SecretRef, ServerConfig } from './servers.js';

export type DatabaseConfig = ServerConfig & PostgresServerConfig;

export const DATABASE_DEFAULTS = { maxRows: 1000, statementTimeoutMs: 30_000 } as const;
const MAX_ROWS_LIMIT = 100_000;

const KNOWN = [
  'name',
  'description',
  'labels',
  'protocol',
  'uri',
  'admin',
  'max_rows',
  'statement_timeout',
  'statement_check',
];

/** Parse a list of database entries; names must be unique (the caller checks them against servers). */
export function parseDatabases(v: unknown, field: string, fail: Fail, abs: (p: string) => string): DatabaseConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(field, 'must be a list of databases (name, labels, uri and admin)');
  const names = new Set<string>();
  return (v as unknown[]).map((d, i) => {
    const db = parseDatabase(d, `${field}[${i}]`, fail, abs);
    if (names.has(db.name)) fail(`${field}[${i}].name`, `"${db.name}" is used twice`);
    names.add(db.name);
    return db;
  });
}

export function parseDatabase(d: unknown, at: string, fail: Fail, abs: (p: string) => string): DatabaseConfig {
  if (!isObject(d)) fail(at, 'must be a mapping with name, uri and admin');
  const o = d;
  for (const k of Object.keys(o))
    if (!KNOWN.includes(k)) fail(`${at}.${k}`, `unknown key (known: ${KNOWN.join(', ')})`);
  const name = str(o.name, `${at}.name`, fail);
  if (!NAME_RE.test(name)) fail(`${at}.name`, `"${name}" must be 1-64 letters, digits, dot, dash or underscore`);
  if (o.protocol !== undefined && o.protocol !== 'postgres')
    fail(`${at}.protocol`, `${JSON.stringify(o.protocol)} is not supported (postgres)`);
  const uri = str(o.uri, `${at}.uri`, fail);
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return fail(`${at}.uri`, `"${redactUrl(uri)}" is not a postgres:// URI`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    fail(`${at}.uri`, `"${redactUrl(uri)}" is not a postgres:// URI`);
  if (!u.hostname) fail(`${at}.uri`, 'names no host');
  if (u.password)
    fail(
      `${at}.uri`,
      'must not hold a password; give the admin password with admin.password_env or admin.password_file',
    );
  const dbName = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!dbName) fail(`${at}.uri`, 'must name a database (postgres://host:port/DATABASE)');
  const admin = parseAdmin(o.admin, `${at}.admin`, fail, abs, u.username ? decodeURIComponent(u.username) : undefined);
  let maxRows: number = DATABASE_DEFAULTS.maxRows;
  if (o.max_rows !== undefined) {
    if (
      typeof o.max_rows !== 'number' ||
      !Number.isSafeInteger(o.max_rows) ||
      o.max_rows < 1 ||
      o.max_rows > MAX_ROWS_LIMIT
    )
      fail(`${at}.max_rows`, `must be a whole number from 1 to ${MAX_ROWS_LIMIT}`);
    maxRows = o.max_rows;
  }
  const statementTimeoutMs =
    o.statement_timeout === undefined
      ? DATABASE_DEFAULTS.statementTimeoutMs
      : duration(o.statement_timeout, `${at}.statement_timeout`, fail);
  if (statementTimeoutMs < 1) fail(`${at}.statement_timeout`, 'must be at least 1ms');
  if (o.statement_check !== undefined && typeof o.statement_check !== 'boolean')
    fail(`${at}.statement_check`, 'must be true or false');
  u.username = '';
  return {
    name,
    description: o.description === undefined ? '' : str(o.description, `${at}.description`, fail),
    labels: stringMap(o.labels, `${at}.labels`, fail),
    roots: [],
    clientRoots: false,
    toolPinning: 'off',
    transport: 'postgres',
    uri: u.href,
    admin,
    maxRows,
    statementTimeoutMs,
    statementCheck: o.statement_check !== false,
  };
}

function parseAdmin(
  v: unknown,
  at: string,
  fail: Fail,
  abs: (p: string) => string,
  userFromUri: string | undefined,
): PostgresServerConfig['admin'] {
  if (!isObject(v)) return fail(at, 'is required: a mapping with user and password_env or password_file');
  const known = ['user', 'password_env', 'password_file'];
  for (const k of Object.keys(v))
    if (!known.includes(k)) fail(`${at}.${k}`, `unknown key (known: ${known.join(', ')})`);
  const user = v.user === undefined && userFromUri ? userFromUri : str(v.user, `${at}.user`, fail);
  const given = ['password_env', 'password_file'].filter((k) => v[k] !== undefined);
  if (given.length !== 1) fail(at, 'needs exactly one of password_env (a variable name) or password_file (a path)');
  let password: SecretRef;
  if (v.password_env !== undefined) {
    const env = str(v.password_env, `${at}.password_env`, fail);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) fail(`${at}.password_env`, 'must be an environment variable name');
    password = { env };
  } else password = { file: abs(str(v.password_file, `${at}.password_file`, fail)) };
  return { user, password };
}

/** The admin password, read now (so a rotated file or variable is picked up by the next session). */
export async function readSecret(ref: SecretRef, what: string): Promise<string> {
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value === '')
      throw new AccessError('DATABASE_UNAVAILABLE', `${what}: the environment variable ${ref.env} is not set`, {
        hint: `set ${ref.env} in the environment of the process that serves the database`,
      });
    return value;
  }
  try {
    return (await readFile(ref.file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new AccessError(
      'DATABASE_UNAVAILABLE',
      `${what}: the password file ${ref.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { hint: 'check admin.password_file and its permissions' },
    );
  }
}

/** Why the admin password cannot be read now (for a warning at start and reload), or undefined. */
export function secretProblem(ref: SecretRef): string | undefined {
  if ('env' in ref) return process.env[ref.env] ? undefined : `the environment variable ${ref.env} is not set`;
  try {
    accessSync(ref.file, fsConstants.R_OK);
    return undefined;
  } catch (err) {
    return `the password file ${ref.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

/** Names of servers and databases share one namespace (`connect <name>`). */
export function checkTargetNames(servers: ServerConfig[], databases: ServerConfig[], field: string, fail: Fail): void {
  const names = new Set(servers.map((s) => s.name));
  databases.forEach((d, i) => {
    if (names.has(d.name)) fail(`${field}[${i}].name`, `"${d.name}" is already the name of a server`);
  });
}
