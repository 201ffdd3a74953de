/**
 * What the PostgreSQL audit trail and records need of the backend
 * (postgres.ts implements it): the pool and queries with their failures
 * explained. A separate interface so that they need not import postgres.ts,
 * which imports them.
 */
import type pg from 'pg';
import type { AccessError } from '../errors.js';

export interface PgConnection {
  readonly pool: pg.Pool;
  onError?: (err: unknown) => void;
  /** A driver error as BACKEND_UNAVAILABLE / BACKEND_AUTH / BACKEND_SCHEMA. */
  explain(err: unknown): AccessError;
  /** Run a query, failures explained and reported to onError. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.Pool | pg.PoolClient,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}
