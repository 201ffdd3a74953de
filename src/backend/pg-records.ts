/**
 * Records in PostgreSQL: one `records` row per (kind, name), the value as
 * JSON. Every write takes a new number from `record_revision` and stores it
 * on the row and on the kind's `record_kinds` row, in one statement, so
 * `version()` (what watchers poll) is one indexed read.
 *
 * `locked(fn)` runs fn in one transaction holding an advisory lock for the
 * kind: every read and write fn makes goes through that transaction
 * (AsyncLocalStorage carries the client), so a read-modify-write is atomic
 * across every proxy and CLI sharing the database.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import { checkRecordName } from './names.js';
import type { PgConnection } from './pg-connection.js';
import type { ParseRecord, RecordStore } from './types.js';

const inTransaction = new AsyncLocalStorage<pg.PoolClient>();

/** A stable 32-bit key per kind for pg_advisory_xact_lock. */
function lockKey(kind: string): number {
  let h = 0x811c9dc5;
  for (const c of `mcp-access:${kind}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return h | 0;
}

export class PgRecordStore<T> implements RecordStore<T> {
  readonly where = 'PostgreSQL';

  constructor(
    private readonly backend: PgConnection,
    readonly kind: string,
    private readonly parse: ParseRecord<T>,
  ) {}

  private q<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.backend.query<R>(inTransaction.getStore() ?? this.backend.pool, text, values);
  }

  private shown(name: string): string {
    return `${this.kind} "${name}" in PostgreSQL`;
  }

  async read(name: string): Promise<T | undefined> {
    checkRecordName(this.kind, name);
    const r = await this.q<{ value: unknown }>(
      'SELECT value FROM records WHERE kind = $1 AND name = $2 AND (expires_at IS NULL OR expires_at > now())',
      [this.kind, name],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : this.parse(row.value, this.shown(name));
  }

  async readAll(): Promise<T[]> {
    const r = await this.q<{ name: string; value: unknown }>(
      'SELECT name, value FROM records WHERE kind = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY name',
      [this.kind],
    );
    return r.rows.map((row) => this.parse(row.value, this.shown(row.name)));
  }

  async names(): Promise<string[]> {
    const r = await this.q<{ name: string }>(
      'SELECT name FROM records WHERE kind = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY name',
      [this.kind],
    );
    return r.rows.map((row) => row.name);
  }

  async write(name: string, value: T, opts: { ttlMs?: number } = {}): Promise<void> {
    checkRecordName(this.kind, name);
    await this.q(
      `WITH rev AS (SELECT nextval('record_revision') AS n),
       up AS (
         INSERT INTO records (kind, name, value, revision, expires_at, updated_at)
         SELECT $1, $2, $3::jsonb, n, CASE WHEN $4::bigint IS NULL THEN NULL ELSE now() + $4::bigint * interval '1 millisecond' END, now() FROM rev
         ON CONFLICT (kind, name) DO UPDATE
           SET value = EXCLUDED.value, revision = EXCLUDED.revision, expires_at = EXCLUDED.expires_at, updated_at = now()
         RETURNING revision)
       INSERT INTO record_kinds (kind, revision) SELECT $1, revision FROM up
       ON CONFLICT (kind) DO UPDATE SET revision = EXCLUDED.revision`,
      [this.kind, name, JSON.stringify(value), opts.ttlMs ?? null],
    );
  }

  async remove(name: string): Promise<boolean> {
    checkRecordName(this.kind, name);
    const r = await this.q<{ n: string }>(
      `WITH gone AS (DELETE FROM records WHERE kind = $1 AND name = $2 RETURNING 1),
       rev AS (SELECT nextval('record_revision') AS n WHERE EXISTS (SELECT 1 FROM gone))
       INSERT INTO record_kinds (kind, revision) SELECT $1, n FROM rev
       ON CONFLICT (kind) DO UPDATE SET revision = EXCLUDED.revision
       RETURNING revision AS n`,
      [this.kind, name],
    );
    return r.rows.length > 0;
  }

  async stamp(name: string): Promise<string | undefined> {
    const r = await this.q<{ revision: string }>(
      'SELECT revision FROM records WHERE kind = $1 AND name = $2 AND (expires_at IS NULL OR expires_at > now())',
      [this.kind, name],
    );
    return r.rows[0]?.revision;
  }

  /** The kind's last revision; records expiring change it too (their count is part of it). */
  async version(): Promise<string> {
    const r = await this.q<{ revision: string | null; live: string }>(
      `SELECT (SELECT revision FROM record_kinds WHERE kind = $1) AS revision,
              (SELECT count(*) FROM records WHERE kind = $1 AND expires_at IS NOT NULL AND expires_at <= now()) AS live`,
      [this.kind],
    );
    const row = r.rows[0];
    return `${row?.revision ?? 0}:${row?.live ?? 0}`;
  }

  async locked<R>(fn: () => Promise<R>): Promise<R> {
    if (inTransaction.getStore()) return fn(); // already inside (nested call)
    let client: pg.PoolClient;
    try {
      client = await this.backend.pool.connect();
    } catch (err) {
      this.backend.onError?.(err);
      throw this.backend.explain(err);
    }
    let broken: Error | undefined;
    try {
      await this.backend.query(client, 'BEGIN');
      await this.backend.query(client, 'SELECT pg_advisory_xact_lock($1)', [lockKey(this.kind)]);
      const result = await inTransaction.run(client, fn);
      await this.backend.query(client, 'COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => {
        broken = e;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}
