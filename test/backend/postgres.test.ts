/**
 * The PostgreSQL backend against a real PostgreSQL (test/helpers/postgres.ts):
 * schema creation and the newer-schema refusal, the audit trail (durable
 * appends, one chain per writer, verify finds edits, deletions at the end and
 * in the middle, search by indexed columns), records with their lock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { PostgresBackend } from '../../src/backend/postgres.js';
import { verifyPgAudit, searchPgAudit } from '../../src/backend/pg-read.js';
import { SCHEMA_VERSION } from '../../src/backend/pg-schema.js';
import { isAccessError } from '../../src/errors.js';
import { agentEventId } from '../../src/audit/prepare.js';

let pg: TestPostgres;
const open = (db: string, extra: { url?: string; passwordFile?: string } = {}) =>
  PostgresBackend.open({
    type: 'postgres',
    url: extra.url ?? pg.urlFor({ database: db }),
    connectTimeoutMs: 3_000,
    poolSize: 4,
    ...(extra.passwordFile ? { passwordFile: extra.passwordFile } : {}),
  });

beforeAll(async () => {
  pg = await startPostgres();
  for (const db of ['audit', 'newer', 'records', 'auth', 'resent']) pg.psql(`CREATE DATABASE ${db}`);
}, 120_000);
afterAll(async () => {
  await pg?.destroy();
});

describe('schema', () => {
  it('is created at the first start and records its version; a second start changes nothing', async () => {
    const a = await open('records');
    await a.close();
    const b = await open('records');
    await b.close();
    expect(pg.psql('SELECT version FROM mcp_access_schema', 'records').trim()).toBe(String(SCHEMA_VERSION));
  });

  it('a schema written by a newer version is refused with BACKEND_SCHEMA, and left as it is', async () => {
    await (await open('newer')).close();
    pg.psql(`UPDATE mcp_access_schema SET version = ${SCHEMA_VERSION + 5}`, 'newer');
    const err = await open('newer').catch((e: unknown) => e);
    expect(isAccessError(err) && err.code).toBe('BACKEND_SCHEMA');
    expect((err as Error).message).toContain(`schema version ${SCHEMA_VERSION + 5}, newer than this mcp-access`);
    expect(pg.psql('SELECT version FROM mcp_access_schema', 'newer').trim()).toBe(String(SCHEMA_VERSION + 5));
  });

  it('a wrong password is BACKEND_AUTH, and the password never appears in the message', async () => {
    const url = pg.urlFor({ database: 'auth', password: 'not-the-password-xyz' });
    const err = await open('auth', { url }).catch((e: unknown) => e);
    expect(isAccessError(err) && err.code).toBe('BACKEND_AUTH');
    expect(String((err as Error).message)).not.toContain('not-the-password-xyz');
  });

  it('nothing listening is BACKEND_UNAVAILABLE, quickly', async () => {
    const t = Date.now();
    const err = await open('x', { url: 'postgres://u@127.0.0.1:1/x' }).catch((e: unknown) => e);
    expect(isAccessError(err) && err.code).toBe('BACKEND_UNAVAILABLE');
    expect((err as Error).message).toContain('connection refused');
    expect(Date.now() - t).toBeLessThan(5_000);
  });
});

describe('the audit trail', () => {
  it('stores concurrent appends durably, in one chain per writer that verify accepts', async () => {
    const b = await open('audit');
    const w1 = await b.openAudit({});
    const w2 = await b.openAudit({});
    const appends = [];
    for (let i = 0; i < 200; i++) {
      const w = i % 2 ? w1 : w2;
      appends.push(
        w.append({
          type: 'mcp.session.request',
          user: i % 3 ? 'alice' : 'bob',
          server: 'files',
          method: 'tools/call',
          tool: 'read_file',
          outcome: i % 5 ? 'success' : 'denied',
          rpcId: i,
          args: { password: 'hunter2', path: `/f${i}` },
        }),
      );
    }
    const stored = await Promise.all(appends);
    // Each append resolved with its stored event's id and hash; the row exists once it resolved.
    const ids = new Set(stored.map((e) => e.id));
    expect(ids.size).toBe(200);
    expect(pg.psql('SELECT count(*) FROM audit_events', 'audit').trim()).toBe('200');
    expect(pg.psql("SELECT count(*) FROM audit_events WHERE line LIKE '%hunter2%'", 'audit').trim()).toBe('0');
    const v = await verifyPgAudit(b);
    expect(v).toMatchObject({ ok: true, writers: 2, events: 200 });

    const denied = await searchPgAudit(b, { user: 'alice', denied: true });
    const expected = Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 3 && !(i % 5)).length;
    expect(denied.events).toHaveLength(expected);
    expect(denied.events.every((e) => e.user === 'alice' && e.outcome === 'denied')).toBe(true);
    const last3 = await searchPgAudit(b, { server: 'files', limit: 3 });
    expect(last3.events.map((e) => e.id)).toHaveLength(3);
    const plan = pg.psql(
      "SET enable_seqscan = off; EXPLAIN SELECT line FROM audit_events WHERE user_name = 'alice' AND time >= now() - interval '1 hour'",
      'audit',
    );
    expect(plan).toMatch(/audit_events_user_time/);
    await w1.close();
    await w2.close();
    await b.close();
  });

  it('an agent’s event sent again (to this writer or another replica’s) is stored once, and never fails the proxy’s own events', async () => {
    const b = await open('resent');
    const w1 = await b.openAudit({});
    const w2 = await b.openAudit({});
    const id = agentEventId('east', 'k:1');
    const event = { type: 'mcp.session.request', user: 'alice', agent: 'east', eventKey: 'k:1' };
    const first = await w1.append(event, { id });
    // Sent again to the same writer, twice in one batch next to the proxy's own events, and to another replica.
    const again = await Promise.all([
      w1.append({ type: 'mcp.session.request', user: 'bob' }),
      w1.append(event, { id }),
      w1.append(event, { id }),
      w1.append({ type: 'mcp.session.request', user: 'carol' }),
      w2.append(event, { id }),
    ]);
    expect(again.map((r) => r.id)).toEqual([expect.any(String), id, id, expect.any(String), id]);
    expect(again[1].hash).toBe(first.hash);
    expect(pg.psql(`SELECT count(*) FROM audit_events WHERE id = '${id}'`, 'resent').trim()).toBe('1');
    expect(pg.psql('SELECT count(*) FROM audit_events', 'resent').trim()).toBe('3');
    expect(await verifyPgAudit(b)).toMatchObject({ ok: true, events: 3 });
    await w1.close();
    await w2.close();
    await b.close();
  });

  it('verify finds an edited event, an event deleted in the middle, and events deleted at the end', async () => {
    const b = await open('audit');
    const w = (await b.openAudit({})) as unknown as { writer: string } & Awaited<ReturnType<typeof b.openAudit>>;
    for (let i = 0; i < 5; i++) await w.append({ type: 'mcp.session.request', user: 'eve', outcome: 'success' });
    const writer = w.writer;
    expect((await verifyPgAudit(b)).ok).toBe(true);

    pg.psql(
      `UPDATE audit_events SET line = replace(line, '"eve"', '"mallory"') WHERE writer = '${writer}' AND seq = 2`,
      'audit',
    );
    let v = await verifyPgAudit(b);
    expect(v).toMatchObject({ ok: false, writer, seq: 2 });
    expect(v.ok === false && v.problem).toContain('edited');
    pg.psql(
      `UPDATE audit_events SET line = replace(line, '"mallory"', '"eve"') WHERE writer = '${writer}' AND seq = 2`,
      'audit',
    );
    expect((await verifyPgAudit(b)).ok).toBe(true);

    pg.psql(`UPDATE audit_events SET user_name = 'nobody' WHERE writer = '${writer}' AND seq = 3`, 'audit');
    v = await verifyPgAudit(b);
    expect(v.ok === false && v.problem).toContain('indexed column');
    pg.psql(`UPDATE audit_events SET user_name = 'eve' WHERE writer = '${writer}' AND seq = 3`, 'audit');

    pg.psql(`DELETE FROM audit_events WHERE writer = '${writer}' AND seq = 5`, 'audit');
    v = await verifyPgAudit(b);
    expect(v.ok === false && v.problem).toContain('events at its end were deleted');

    pg.psql(`DELETE FROM audit_events WHERE writer = '${writer}' AND seq = 3`, 'audit');
    v = await verifyPgAudit(b);
    expect(v).toMatchObject({ ok: false, writer, seq: 3 });
    expect(v.ok === false && v.problem).toContain('event 3 is missing');
    pg.psql(
      `DELETE FROM audit_events WHERE writer = '${writer}'; DELETE FROM audit_writers WHERE writer = '${writer}'`,
      'audit',
    );
    await w.close();
    await b.close();
  });
});

describe('records', () => {
  it('write, read, version, remove; locked() makes read-modify-write atomic across connections', async () => {
    const a = await open('records');
    const b = await open('records');
    const ra = a.records<{ n: number }>('counter', (v) => v as { n: number });
    const rb = b.records<{ n: number }>('counter', (v) => v as { n: number });
    const v0 = await ra.version();
    await ra.write('c', { n: 0 });
    expect(await ra.version()).not.toBe(v0);
    const bump = (r: typeof ra) =>
      r.locked(async () => {
        const cur = (await r.read('c'))!;
        await r.write('c', { n: cur.n + 1 });
      });
    await Promise.all(Array.from({ length: 40 }, (_, i) => bump(i % 2 ? ra : rb)));
    expect((await rb.read('c'))!.n).toBe(40);
    // An error inside locked rolls the transaction back.
    await expect(
      ra.locked(async () => {
        await ra.write('c', { n: -1 });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect((await ra.read('c'))!.n).toBe(40);
    const before = await rb.version();
    expect(await rb.remove('c')).toBe(true);
    expect(await rb.remove('c')).toBe(false);
    expect(await ra.read('c')).toBeUndefined();
    expect(await ra.version()).not.toBe(before);
    await expect(ra.read('../etc/passwd')).rejects.toThrow(/not allowed/);
    await a.close();
    await b.close();
  });
});
