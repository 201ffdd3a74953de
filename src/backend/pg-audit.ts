/**
 * The audit trail in PostgreSQL. Each proxy process is one writer with its
 * own hash chain (the file format's chain: ../audit/chain.ts): its events are
 * numbered 1, 2, 3… (`seq`), each stores the exact line the file would hold,
 * and `audit_writers` keeps the writer's last seq and hash, updated in the
 * same statement as the events, so events deleted from the end of a chain are
 * found too. A process that starts again starts a new chain (a new writer
 * id): writers never share a chain, so replicas need no coordination.
 *
 * `append` resolves once the statement that stores the event committed (with
 * PostgreSQL's default synchronous_commit, on disk). Appends that arrive
 * while a statement is in flight go out together in the next one (group
 * commit). When a statement fails, every event in it is refused
 * (AUDIT_UNAVAILABLE, so the caller refuses its request) and the writer reads
 * its head back from the database before writing again: a commit whose
 * answer was lost is neither lost from nor duplicated in the chain.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { AccessError } from '../errors.js';
import type { AuditReceipt } from '../audit/log.js';
import { GENESIS, seal } from '../audit/chain.js';
import {
  boundString,
  EventPreparer,
  MAX_FIELD_CHARS,
  type AuditEventInput,
  type PreparedEvent,
  type RecordedEvent,
} from '../audit/prepare.js';
import type { Logger } from '../util/log.js';
import type { PgConnection } from './pg-connection.js';
import type { AuditWriter, AuditWriterOptions } from './types.js';

interface Queued extends PreparedEvent {
  resolve: (e: AuditReceipt) => void;
  reject: (err: unknown) => void;
  /** An agent's event: it may come again (its acknowledgement was lost), and is then not stored twice. */
  recorded: boolean;
}

/** At most this many events per statement. */
const MAX_BATCH = 500;

const INSERT = `
WITH ins AS (
  INSERT INTO audit_events (writer, seq, id, time, type, user_name, server, session_id, tool, outcome, line)
  SELECT $1::text, * FROM unnest($2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[],
                                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
  RETURNING 1)
UPDATE audit_writers SET head_seq = $12, head_hash = $13
WHERE writer = $1 AND (SELECT count(*) FROM ins) = $14`;

export class PgAuditLog implements AuditWriter {
  private readonly queue: Queued[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;
  private seq = 0;
  private lastHash = GENESIS;
  /** The last statement failed: read the head back before the next one. */
  private resync = false;
  private ok = true;

  private constructor(
    private readonly backend: PgConnection,
    readonly writer: string,
    private readonly preparer: EventPreparer,
    private readonly logger: Logger | undefined,
  ) {}

  get key(): string {
    return `postgresql:${this.writer}`;
  }

  get healthy(): boolean {
    return this.ok;
  }

  get head(): { seq: number; hash: string } {
    return { seq: this.seq, hash: this.lastHash };
  }

  static async open(backend: PgConnection, opts: AuditWriterOptions): Promise<PgAuditLog> {
    const writer = `${hostname()}/${process.pid}/${new Date().toISOString()}/${randomBytes(4).toString('hex')}`;
    await backend.query(
      backend.pool,
      'INSERT INTO audit_writers (writer, host, pid, started_at, head_seq, head_hash) VALUES ($1, $2, $3, now(), 0, $4)',
      [writer, hostname(), process.pid, GENESIS],
    );
    opts.logger?.info(`audit: writing to PostgreSQL as writer ${writer}`);
    return new PgAuditLog(
      backend,
      writer,
      new EventPreparer({
        args: opts.args,
        redactKeys: opts.redactKeys,
        identityBudgetBytes: opts.identityBudgetBytes,
        logger: opts.logger,
      }),
      opts.logger,
    );
  }

  append(event: AuditEventInput, recorded?: RecordedEvent): Promise<AuditReceipt> {
    if (this.closed) return Promise.reject(new AccessError('AUDIT_UNAVAILABLE', 'the audit trail is closed'));
    let prepared: PreparedEvent;
    try {
      prepared = this.preparer.prepare(
        event,
        (announced) =>
          this.enqueue(
            announced,
            () => {},
            () => {},
          ),
        recorded,
      );
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return new Promise<AuditReceipt>((resolve, reject) => this.enqueue(prepared, resolve, reject, !!recorded));
  }

  private enqueue(p: PreparedEvent, resolve: Queued['resolve'], reject: Queued['reject'], recorded = false): void {
    this.queue.push({ ...p, resolve, reject, recorded });
    if (this.flushing === null) void this.flush();
  }

  async probe(): Promise<void> {
    const r = await this.backend.query(this.backend.pool, 'SELECT 1 FROM audit_writers WHERE writer = $1', [
      this.writer,
    ]);
    if (r.rowCount !== 1)
      throw new AccessError('AUDIT_UNAVAILABLE', `audit writer ${this.writer} is missing from the database`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing || this.queue.length > 0) await (this.flushing ?? this.flush());
  }

  private flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      try {
        while (this.queue.length > 0) {
          // Agents' events in statements of their own: one that was stored already (by another
          // replica, or before a restart) can never fail a statement holding the proxy's own events.
          const agents = this.queue[0]!.recorded;
          let n = 0;
          while (n < this.queue.length && n < MAX_BATCH && this.queue[n]!.recorded === agents) n++;
          await this.writeBatch(this.queue.splice(0, n));
        }
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  private async writeBatch(batch: Queued[]): Promise<void> {
    try {
      if (this.resync) {
        const r = await this.backend.query<{ head_seq: string; head_hash: string }>(
          this.backend.pool,
          'SELECT head_seq, head_hash FROM audit_writers WHERE writer = $1',
          [this.writer],
        );
        const row = r.rows[0];
        if (!row)
          throw new AccessError('AUDIT_UNAVAILABLE', `audit writer ${this.writer} is missing from the database`);
        if (Number(row.head_seq) !== this.seq)
          this.logger?.warn(
            `audit: the last write's answer was lost but it was stored (events up to ${row.head_seq}); continuing from there`,
          );
        this.seq = Number(row.head_seq);
        this.lastHash = row.head_hash;
        this.resync = false;
      }
      // An agent's event sent again (its acknowledgement was lost) is answered with the stored one.
      const known = new Map<string, string>();
      if (batch[0]?.recorded) {
        const r = await this.backend.query<{ id: string; hash: string }>(
          this.backend.pool,
          `SELECT id::text AS id, (line::jsonb)->>'hash' AS hash FROM audit_events WHERE id = ANY($1::uuid[])`,
          [batch.map((q) => q.id)],
        );
        for (const row of r.rows) known.set(row.id, row.hash);
      }
      let seq = this.seq;
      let hash = this.lastHash;
      const cols: unknown[][] = [[], [], [], [], [], [], [], [], [], []];
      const stored: AuditReceipt[] = [];
      for (const q of batch) {
        const before = known.get(q.id);
        if (q.recorded && before !== undefined) {
          stored.push({ id: q.id, hash: before });
          continue;
        }
        const sealed = seal(q.json, hash);
        hash = sealed.hash;
        seq++;
        const f = q.event;
        // As the line stores them: strings bounded (prepare.ts).
        const text = (v: unknown) => (typeof v === 'string' ? boundString(v, MAX_FIELD_CHARS) : null);
        const row = [
          seq,
          q.id,
          q.time,
          f.type,
          text(f.user),
          text(f.server),
          text(f.sessionId),
          text(f.tool),
          text(f.outcome),
          sealed.line,
        ];
        row.forEach((v, i) => cols[i]!.push(v));
        stored.push({ id: q.id, hash });
        if (q.recorded) known.set(q.id, hash);
      }
      const rows = cols[0]!.length;
      if (rows > 0) {
        const r = await this.backend.query(this.backend.pool, INSERT, [this.writer, ...cols, seq, hash, rows]);
        if (r.rowCount !== 1)
          throw new AccessError('AUDIT_UNAVAILABLE', `audit writer ${this.writer}: the head did not move`);
      }
      this.seq = seq;
      this.lastHash = hash;
      this.ok = true;
      batch.forEach((q, i) => q.resolve(stored[i]!));
    } catch (err) {
      this.resync = true;
      this.ok = false;
      const e = new AccessError(
        'AUDIT_UNAVAILABLE',
        `the audit trail in PostgreSQL cannot be written: ${(err as Error).message}`,
        { cause: err, hint: 'requests are refused until the database is back; it recovers by itself' },
      );
      this.logger?.error(e.message);
      for (const q of batch) q.reject(e);
    }
  }
}
