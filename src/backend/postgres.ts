/**
 * The PostgreSQL backend: one database shared by every proxy replica.
 *
 * At start the proxy connects (bounded by backend.connect_timeout: an
 * unreachable database is one clear line, never a hang), creates or migrates
 * the schema under an advisory lock (so replicas starting together migrate
 * once) and refuses a schema written by a newer version. The password comes
 * from backend.password_file, MCP_ACCESS_BACKEND_PASSWORD, the URL, or
 * PGPASSWORD, in that order, and never appears in a message.
 */
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { AccessError, isAccessError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { PgAuditLog } from './pg-audit.js';
import { PgRecordStore } from './pg-records.js';
import { migrate } from './pg-schema.js';
import type { PgConnection } from './pg-connection.js';
import type { AuditWriter, AuditWriterOptions, Backend, BackendConfig, ParseRecord, RecordStore } from './types.js';

export type PostgresConfig = Extract<BackendConfig, { type: 'postgres' }>;

/** Statements that run longer are abandoned (the caller gets BACKEND_UNAVAILABLE, an append AUDIT_UNAVAILABLE). */
const QUERY_TIMEOUT_MS = 15_000;

export class PostgresBackend implements Backend, PgConnection {
  readonly type = 'postgres' as const;
  onError?: (err: unknown) => void;

  private constructor(
    readonly pool: pg.Pool,
    readonly description: string,
    private readonly log: Logger | undefined,
  ) {}

  /** Connect, create or migrate the schema; throws BACKEND_UNAVAILABLE / BACKEND_AUTH / BACKEND_SCHEMA. */
  static async open(cfg: PostgresConfig, log?: Logger): Promise<PostgresBackend> {
    const target = parseTarget(cfg.url);
    const password = await passwordFor(cfg, target.password);
    const pool = new pg.Pool({
      host: target.host,
      port: target.port,
      user: target.user,
      database: target.database,
      ...(password !== undefined ? { password } : {}),
      ...(target.ssl !== undefined ? { ssl: target.ssl } : {}),
      max: cfg.poolSize,
      connectionTimeoutMillis: cfg.connectTimeoutMs,
      idleTimeoutMillis: 10_000,
      query_timeout: QUERY_TIMEOUT_MS,
      application_name: 'mcp-access',
      // A CLI command ends when its work is done; the proxy is kept alive by its listeners.
      allowExitOnIdle: true,
    });
    const backend = new PostgresBackend(pool, `postgresql (${target.shown})`, log);
    // An idle connection the server closed (a restart) must not crash the proxy; the next query reconnects.
    pool.on('error', (err) => {
      log?.warn(`backend: a PostgreSQL connection was closed: ${backend.explain(err).message}`);
      backend.onError?.(err);
    });
    try {
      await withDeadline(migrate(pool, log), cfg.connectTimeoutMs + QUERY_TIMEOUT_MS, backend.description);
    } catch (err) {
      await pool.end().catch(() => {});
      throw backend.explain(err);
    }
    return backend;
  }

  /** Any failure as the AccessError a person can act on (the password never appears). */
  explain(err: unknown): AccessError {
    if (isAccessError(err)) return err;
    return explainPgError(err, this.description);
  }

  async openAudit(options: AuditWriterOptions): Promise<AuditWriter> {
    try {
      return await PgAuditLog.open(this, options);
    } catch (err) {
      throw this.explain(err);
    }
  }

  records<T>(kind: string, parse: ParseRecord<T>): RecordStore<T> {
    return new PgRecordStore(this, kind, parse);
  }

  /** Run a query, failures explained and reported to onError. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.Pool | pg.PoolClient,
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await client.query<R>(text, values);
    } catch (err) {
      this.onError?.(err);
      throw this.explain(err);
    }
  }

  async ping(): Promise<void> {
    await this.query(this.pool, 'SELECT 1');
  }

  private closed: Promise<void> | undefined;
  close(): Promise<void> {
    this.closed ??= this.pool.end().catch((err: unknown) => {
      this.log?.warn(`backend: closing the PostgreSQL pool: ${this.explain(err).message}`);
    });
    return this.closed;
  }
}

interface Target {
  host: string;
  port: number;
  user?: string;
  database?: string;
  password?: string;
  ssl?: boolean | { rejectUnauthorized: boolean };
  /** host:port/database, for messages. */
  shown: string;
}

/** `postgres://user[:password]@host[:port]/database[?sslmode=…]`. */
export function parseTarget(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AccessError('CONFIG_INVALID', 'backend.url: not a URL (write postgres://USER@HOST:PORT/DATABASE)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new AccessError(
      'CONFIG_INVALID',
      `backend.url: the scheme must be postgres:// (got ${u.protocol.replace(/:$/, '')}://)`,
    );
  if (!u.hostname) throw new AccessError('CONFIG_INVALID', 'backend.url: names no host');
  const port = u.port ? Number(u.port) : 5432;
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined;
  const sslmode = u.searchParams.get('sslmode');
  let ssl: Target['ssl'];
  if (sslmode === 'require') ssl = { rejectUnauthorized: false };
  else if (sslmode === 'verify-full' || sslmode === 'verify-ca') ssl = true;
  else if (sslmode !== null && sslmode !== 'disable' && sslmode !== 'prefer')
    throw new AccessError(
      'CONFIG_INVALID',
      `backend.url: sslmode=${sslmode} is not supported (disable, require, verify-full)`,
    );
  for (const k of u.searchParams.keys())
    if (k !== 'sslmode')
      throw new AccessError('CONFIG_INVALID', `backend.url: the parameter "${k}" is not supported (only sslmode)`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    database,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    ssl,
    shown: `${u.host}/${database ?? ''}`,
  };
}

async function passwordFor(cfg: PostgresConfig, fromUrl: string | undefined): Promise<string | undefined> {
  if (cfg.passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(cfg.passwordFile, 'utf8');
    } catch (err) {
      throw new AccessError(
        'CONFIG_INVALID',
        `backend.password_file: ${cfg.passwordFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        { hint: "check the path and that the proxy's user may read it" },
      );
    }
    const line = text.split(/\r?\n/)[0] ?? '';
    if (line === '') throw new AccessError('CONFIG_INVALID', `backend.password_file: ${cfg.passwordFile} is empty`);
    return line;
  }
  const env = process.env.MCP_ACCESS_BACKEND_PASSWORD;
  if (env !== undefined && env !== '') return env;
  return fromUrl; // else pg reads PGPASSWORD itself
}

/** PostgreSQL's and the network's errors as one line a person can act on. */
export function explainPgError(err: unknown, where: string): AccessError {
  const e = err as { code?: string; message?: string; errno?: string };
  const code = e?.code ?? '';
  const msg = String(e?.message ?? err);
  const at = `the backend ${where}`;
  if (code === '28P01' || code === '28000' || /password must be a string|SASL/i.test(msg))
    return new AccessError(
      'BACKEND_AUTH',
      /password must be a string|SASL: SCRAM-SERVER-FIRST-MESSAGE: client password/i.test(msg)
        ? `${at} asks for a password and none was given`
        : `${at} refused the login: ${msg}`,
      { cause: err },
    );
  if (code === '3D000')
    return new AccessError('BACKEND_UNAVAILABLE', `${at}: ${msg}`, {
      hint: 'create the database (createdb), or fix the database name in backend.url',
      cause: err,
    });
  if (code === '42501')
    return new AccessError('BACKEND_UNAVAILABLE', `${at}: permission denied: ${msg}`, {
      hint: 'grant the backend user the rights to create tables in its database (or run the first start as its owner)',
      cause: err,
    });
  const why =
    code === 'ECONNREFUSED'
      ? 'connection refused (is PostgreSQL running, on that port?)'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'the host name does not resolve'
        : code === 'ETIMEDOUT' || /timeout/i.test(msg)
          ? 'no answer in time'
          : code === '57P01' || code === '57P02' || code === '57P03'
            ? `the database is shutting down or starting (${msg})`
            : /terminated|ECONNRESET|Connection ended|not queryable/i.test(msg)
              ? 'the connection was closed'
              : msg;
  return new AccessError('BACKEND_UNAVAILABLE', `${at} cannot be reached: ${why}`, { cause: err });
}

function withDeadline<T>(p: Promise<T>, ms: number, where: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AccessError('BACKEND_UNAVAILABLE', `the backend ${where} did not answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
