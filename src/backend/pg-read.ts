/**
 * `audit verify` and `audit search` on the trail in PostgreSQL.
 *
 * Verify walks every writer's chain in seq order (keyset pages, memory
 * bounded by a page): the numbering has no gap, every line's hash matches its
 * bytes, every `prev` is the hash before, the indexed columns say what the
 * line says, and the chain ends where `audit_writers` says it ends (events
 * deleted from the end are found too). Search filters on indexed columns.
 */
import { checkLine, GENESIS } from '../audit/chain.js';
import type { AuditFilter, AuditRecord } from '../audit/search.js';
import type { PostgresBackend } from './postgres.js';

export type PgVerifyResult =
  | { ok: true; writers: number; events: number; heads: Array<{ writer: string; seq: number; hash: string }> }
  | { ok: false; writers: number; events: number; writer: string; seq: number; problem: string };

const PAGE = 2000;

export async function verifyPgAudit(backend: PostgresBackend): Promise<PgVerifyResult> {
  const writers = await backend.query<{ writer: string; head_seq: string; head_hash: string }>(
    backend.pool,
    'SELECT writer, head_seq, head_hash FROM audit_writers ORDER BY started_at, writer',
  );
  let events = 0;
  const heads: Array<{ writer: string; seq: number; hash: string }> = [];
  for (const w of writers.rows) {
    let prev = GENESIS;
    let expected = 1;
    const fail = (seq: number, problem: string): PgVerifyResult => ({
      ok: false,
      writers: writers.rows.length,
      events,
      writer: w.writer,
      seq,
      problem,
    });
    for (;;) {
      const page = await backend.query<{
        seq: string;
        id: string;
        type: string;
        user_name: string | null;
        server: string | null;
        outcome: string | null;
        line: string;
      }>(
        backend.pool,
        'SELECT seq, id, type, user_name, server, outcome, line FROM audit_events WHERE writer = $1 AND seq >= $2 ORDER BY seq LIMIT $3',
        [w.writer, expected, PAGE],
      );
      for (const row of page.rows) {
        const seq = Number(row.seq);
        if (seq !== expected)
          return fail(
            expected,
            expected === 1
              ? 'the first event does not start the chain: events before it were deleted'
              : `event ${expected} is missing (deleted): the next one stored is ${seq}`,
          );
        const c = checkLine(Buffer.from(row.line, 'utf8'));
        if (!c.ok) return fail(seq, c.problem);
        if (c.prev !== prev)
          return fail(seq, 'the event does not follow the one before it (its prev hash matches no earlier event)');
        const e = c.event;
        const same = (col: string | null, v: unknown) => col === (typeof v === 'string' ? v : null);
        if (
          row.id !== e.id ||
          row.type !== e.type ||
          !same(row.user_name, e.user) ||
          !same(row.server, e.server) ||
          !same(row.outcome, e.outcome)
        )
          return fail(
            seq,
            'an indexed column (id, type, user, server or outcome) was edited: it differs from the event',
          );
        prev = c.hash;
        expected++;
        events++;
      }
      if (page.rows.length < PAGE) break;
    }
    const headSeq = Number(w.head_seq);
    if (expected - 1 !== headSeq)
      return fail(
        expected,
        expected - 1 < headSeq
          ? `the chain ends at event ${expected - 1} but the writer recorded ${headSeq}: events at its end were deleted`
          : `the chain goes on past the writer's recorded head (${headSeq}): events were added`,
      );
    if (prev !== w.head_hash) return fail(headSeq, "the last event's hash is not the writer's recorded head");
    heads.push({ writer: w.writer, seq: headSeq, hash: prev });
  }
  return { ok: true, writers: writers.rows.length, events, heads };
}

export async function searchPgAudit(backend: PostgresBackend, filter: AuditFilter): Promise<{ events: AuditRecord[] }> {
  const where: string[] = [];
  const values: unknown[] = [];
  const eq = (col: string, v: unknown) => {
    if (v === undefined) return;
    values.push(v);
    where.push(`${col} = $${values.length}`);
  };
  eq('user_name', filter.user);
  eq('server', filter.server);
  eq('session_id', filter.sessionId);
  eq('tool', filter.tool);
  eq('type', filter.type);
  eq('outcome', filter.denied ? 'denied' : filter.outcome);
  if (filter.denied && filter.outcome !== undefined && filter.outcome !== 'denied') where.push('false');
  if (filter.sinceMs !== undefined) {
    values.push(new Date(filter.sinceMs).toISOString());
    where.push(`time >= $${values.length}`);
  }
  const cond = where.length ? `WHERE ${where.join(' AND ')}` : '';
  let rows: Array<{ line: string }>;
  if (filter.limit !== undefined) {
    values.push(filter.limit);
    const r = await backend.query<{ line: string }>(
      backend.pool,
      `SELECT line FROM audit_events ${cond} ORDER BY time DESC, writer DESC, seq DESC LIMIT $${values.length}`,
      values,
    );
    rows = r.rows.reverse();
  } else {
    const r = await backend.query<{ line: string }>(
      backend.pool,
      `SELECT line FROM audit_events ${cond} ORDER BY time, writer, seq`,
      values,
    );
    rows = r.rows;
  }
  return { events: rows.map((r) => JSON.parse(r.line) as AuditRecord) };
}
