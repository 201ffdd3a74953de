/**
 * The PostgreSQL schema and its migrations. `mcp_access_schema` holds one
 * row: the version the database is at. Each start applies the migrations
 * above it, in one transaction, under an advisory lock; a database at a
 * version above SCHEMA_VERSION (a newer mcp-access migrated it) is refused.
 */
import type pg from 'pg';
import { AccessError } from '../errors.js';
import type { Logger } from '../util/log.js';

/** Arbitrary, fixed: the advisory lock replicas take while migrating. */
const MIGRATION_LOCK = 0x6d637061; // "mcpa"

export const MIGRATIONS: readonly string[] = [
  // 1: the audit trail (one hash chain per writer), records (roles, bots, agents, sessions)
  `
  CREATE TABLE audit_writers (
    writer     text PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL,
    head_seq   bigint NOT NULL DEFAULT 0,
    head_hash  text NOT NULL
  );
  CREATE TABLE audit_events (
    writer     text NOT NULL REFERENCES audit_writers (writer),
    seq        bigint NOT NULL,
    id         uuid NOT NULL,
    time       timestamptz NOT NULL,
    type       text NOT NULL,
    user_name  text,
    server     text,
    session_id text,
    tool       text,
    outcome    text,
    line       text NOT NULL,
    PRIMARY KEY (writer, seq)
  );
  CREATE UNIQUE INDEX audit_events_id ON audit_events (id);
  CREATE INDEX audit_events_time ON audit_events (time);
  CREATE INDEX audit_events_user_time ON audit_events (user_name, time);
  CREATE INDEX audit_events_server_time ON audit_events (server, time);
  CREATE INDEX audit_events_outcome_time ON audit_events (outcome, time);
  CREATE INDEX audit_events_session ON audit_events (session_id);
  CREATE SEQUENCE record_revision;
  CREATE TABLE records (
    kind       text NOT NULL,
    name       text NOT NULL,
    value      jsonb NOT NULL,
    revision   bigint NOT NULL,
    expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
  );
  CREATE INDEX records_expires ON records (expires_at) WHERE expires_at IS NOT NULL;
  CREATE TABLE record_kinds (
    kind     text PRIMARY KEY,
    revision bigint NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export async function migrate(pool: pg.Pool, log?: Logger): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS mcp_access_schema (
         one        boolean PRIMARY KEY DEFAULT true CHECK (one),
         version    integer NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const r = await client.query<{ version: number }>('SELECT version FROM mcp_access_schema');
    const at = r.rows[0]?.version ?? 0;
    if (at > SCHEMA_VERSION) {
      throw new AccessError(
        'BACKEND_SCHEMA',
        `the backend database has schema version ${at}, newer than this mcp-access understands (${SCHEMA_VERSION})`,
      );
    }
    for (let v = at + 1; v <= SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v - 1]!);
    if (at < SCHEMA_VERSION) {
      await client.query(
        `INSERT INTO mcp_access_schema (one, version) VALUES (true, $1)
         ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, updated_at = now()`,
        [SCHEMA_VERSION],
      );
      log?.info(`backend: schema ${at === 0 ? 'created' : `migrated from version ${at}`} (version ${SCHEMA_VERSION})`);
    }
    await client.query('COMMIT');
    return SCHEMA_VERSION;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
