/**
 * Running one checked statement on a session's connection: resolving the
 * tables it names as the session would, reading at most max + 1 rows through
 * a cursor, a client-side backstop past statement_timeout, and rows as JSON.
 */
import pg from 'pg';
import Cursor from 'pg-cursor';
import type { StatementAnalysis } from './statement.js';

/** Schema of every relation the statement names, as the session's search_path resolves it (undefined: none). */
export async function resolveRelations(
  client: pg.Client,
  analysis: StatementAnalysis,
): Promise<Array<{ schema?: string; name: string; privileges: string[] }>> {
  if (analysis.relations.length === 0) return [];
  const quoted = analysis.relations.map(
    (r) => `${r.schema !== undefined ? `${pg.escapeIdentifier(r.schema)}.` : ''}${pg.escapeIdentifier(r.name)}`,
  );
  const r = await client.query<{ i: string; schema: string | null; name: string | null }>(
    `SELECT t.i::text AS i, n.nspname AS schema, c.relname AS name
       FROM unnest($1::text[]) WITH ORDINALITY AS t(q, i)
       LEFT JOIN pg_class c ON c.oid = to_regclass(t.q)
       LEFT JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY t.i`,
    [quoted],
  );
  return analysis.relations.map((rel, i) => {
    const row = r.rows[i];
    return row?.schema
      ? { schema: row.schema, name: row.name ?? rel.name, privileges: rel.privileges }
      : { name: rel.name, privileges: rel.privileges };
  });
}

interface Outcome {
  rows: Record<string, unknown>[];
  rowCount: number;
  fields: string[];
  command: string;
  truncated: boolean;
}

/** Run with a client-side backstop: no answer by `deadlineMs` drops the connection (the next query reconnects). */
export async function run(
  client: pg.Client,
  sql: string,
  params: unknown[],
  max: number,
  analysis: StatementAnalysis | undefined,
  deadlineMs: number,
): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void client.end().catch(() => {});
      reject(new Error(`no answer from the database within ${Math.round(deadlineMs / 1000)} s`));
    }, deadlineMs);
  });
  try {
    return await Promise.race([runStatement(client, sql, params, max, analysis), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function runStatement(
  client: pg.Client,
  sql: string,
  params: unknown[],
  max: number,
  analysis: StatementAnalysis | undefined,
): Promise<Outcome> {
  if (analysis?.kind === 'SELECT' || analysis?.kind === 'EXPLAIN') {
    // A cursor: no more than max + 1 rows ever leave the database.
    const cursor = client.query(new Cursor<Record<string, unknown>>(sql, params));
    try {
      const rows = await cursor.read(max + 1);
      const truncated = rows.length > max;
      const kept = truncated ? rows.slice(0, max) : rows;
      const fields = (
        (cursor as unknown as { _result?: { fields?: Array<{ name: string }> } })._result?.fields ?? []
      ).map((f) => f.name);
      return { rows: kept, rowCount: kept.length, fields, command: analysis.kind, truncated };
    } finally {
      await cursor.close().catch(() => {});
    }
  }
  // Extended protocol even without parameters: the server refuses a second statement in one string.
  const r = await client.query<Record<string, unknown>>({
    text: sql,
    values: params,
    queryMode: 'extended',
  } as pg.QueryConfig);
  const rows = r.rows ?? [];
  const truncated = rows.length > max;
  return {
    rows: truncated ? rows.slice(0, max) : rows,
    rowCount: r.rowCount ?? rows.length,
    fields: (r.fields ?? []).map((f) => f.name),
    command: r.command,
    truncated,
  };
}

/** A row as JSON: bigint/numeric stay strings (exact), bytes as \x hex, dates as ISO text. */
export function jsonRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v instanceof Date ? v.toISOString() : v;
  }
  return out;
}
