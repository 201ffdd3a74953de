/**
 * The audit log on real files: events on disk before append resolves, the
 * hash chain across concurrent appends and reopenings, tampering detected at
 * the right line, argument policies and redaction, a log that cannot be
 * written (a real EFBIG under a file size limit), interrupted writes, and the
 * one-writer lock (with a real second process).
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { GENESIS } from '../../src/audit/chain.js';
import { REDACTED } from '../../src/audit/events.js';
import { AuditLog, verifyAuditFile, type AuditEventInput, type AuditLogOptions } from '../../src/audit/log.js';

const open: AuditLog[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

function tempFile(name = 'audit.jsonl'): string {
  return join(mkdtempSync(join(tmpdir(), 'mcp-access-audit-')), name);
}

async function openLog(path: string, opts?: AuditLogOptions): Promise<AuditLog> {
  const log = await AuditLog.open(path, opts);
  open.push(log);
  return log;
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

function events(path: string): Array<Record<string, unknown>> {
  return lines(path).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function request(n: number, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    type: 'mcp.session.request',
    sessionId: 's1',
    user: 'alice',
    roles: ['llm-access'],
    server: 'filesystem',
    method: 'tools/call',
    rpcId: n,
    tool: 'read_file',
    outcome: 'success',
    ...extra,
  };
}

async function writeLog(path: string, n: number): Promise<void> {
  const log = await AuditLog.open(path);
  for (let i = 1; i <= n; i++) await log.append(request(i));
  await log.close();
}

function rewrite(path: string, edit: (ls: string[]) => string[], trailingNewline = true): void {
  const out = edit(lines(path)).join('\n');
  writeFileSync(path, trailingNewline ? `${out}\n` : out);
}

async function rejection(p: Promise<unknown>): Promise<AccessError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AccessError);
    return err as AccessError;
  }
  throw new Error('expected a rejection');
}

describe('appending', () => {
  it('the event is in the file when append resolves, with time, id, code, prev and hash', async () => {
    const path = tempFile();
    const log = await openLog(path);
    const stored = await log.append({
      ...request(1),
      client: { name: 'claude', version: '1.2' },
      remoteAddr: '127.0.0.1:5000',
      latencyMs: 3,
      direction: 'client_to_server',
    });
    const [onDisk] = events(path);
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(stored)));
    expect(stored).toMatchObject({
      type: 'mcp.session.request',
      code: 'TMCP003I',
      user: 'alice',
      roles: ['llm-access'],
      server: 'filesystem',
      tool: 'read_file',
      rpcId: 1,
      client: { name: 'claude', version: '1.2' },
      prev: GENESIS,
    });
    expect(stored.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(stored.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(stored.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(log.head).toBe(stored.hash);
    // The hash covers the line's own bytes minus the hash member.
    const line = lines(path)[0]!;
    const body = `${line.slice(0, line.length - ',"hash":"'.length - 64 - 2)}}`;
    expect(createHash('sha256').update(body).digest('hex')).toBe(stored.hash);
  });

  it('codes follow type and outcome (E for error and denied); a given code is kept; caller cannot set id, time, prev or hash', async () => {
    const path = tempFile();
    const log = await openLog(path);
    const got = [
      await log.append({ type: 'mcp.session.start' }),
      await log.append(request(1, { outcome: 'denied', reason: 'tool "write_file" is denied' })),
      await log.append(request(2, { outcome: 'error' })),
      await log.append({ type: 'mcp.session.notification', method: 'notifications/progress' }),
      await log.append({ type: 'mcp.session.notification', outcome: 'error' }),
      await log.append({ type: 'mcp.session.end', outcome: 'error', reason: 'upstream exited' }),
      await log.append({ type: 'mcp.session.end' }),
      await log.append({ type: 'bot.renewal', code: 'TBOT001I' }),
      await log.append({ type: 'custom' }),
      await log.append({ type: 'mcp.session.start', id: 'mine', time: 'then', prev: 'x', hash: 'y', extra: 1 }),
    ];
    expect(got.map((e) => e.code)).toEqual([
      'TMCP001I',
      'TMCP003E',
      'TMCP003E',
      'TMCP004I',
      'TMCP004E',
      'TMCP002E',
      'TMCP002I',
      'TBOT001I',
      undefined,
      'TMCP001I',
    ]);
    expect(got[9]!.id).not.toBe('mine');
    expect(got[9]!.time).not.toBe('then');
    expect(got[9]!.prev).toBe(got[8]!.hash);
    expect(got[9]!.extra).toBe(1);
    expect(await verifyAuditFile(path)).toEqual({ ok: true, events: 10, head: log.head });
  });

  it('concurrent appends are chained in call order', async () => {
    const path = tempFile();
    const log = await openLog(path);
    const stored = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(request(i))));
    const onDisk = events(path);
    expect(onDisk.map((e) => e.rpcId)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(onDisk.map((e) => e.id)).toEqual(stored.map((s) => s.id));
    for (let i = 1; i < onDisk.length; i++) expect(onDisk[i]!.prev).toBe(onDisk[i - 1]!.hash);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: 300 });
  });

  it('reopening continues the chain', async () => {
    const path = tempFile();
    await writeLog(path, 2);
    const before = events(path);
    const log = await openLog(path);
    expect(log.head).toBe(before[1]!.hash);
    const third = await log.append(request(3));
    expect(third.prev).toBe(before[1]!.hash);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: 3 });
  });

  it.each(['always', 'interval', 'never'] as const)(
    'fsync %s: events are written before append resolves',
    async (fsync) => {
      const path = tempFile();
      const log = await openLog(path, { fsync, fsyncIntervalMs: 5 });
      for (let i = 0; i < 5; i++) {
        const e = await log.append(request(i));
        expect(lines(path).at(-1)).toContain(`"id":"${e.id}"`);
      }
      await log.close();
      expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: 5 });
    },
  );

  it('the file is created with mode 0600', async () => {
    const path = tempFile();
    await writeLog(path, 1);
    const { statSync } = await import('node:fs');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe('arguments: full (redacted), digest, none', () => {
  const args = {
    path: '/tmp/a',
    password: 'hunter2',
    nested: { API_KEY: 'k1', list: [{ 'access-token': 't1', keep: 1 }, 'plain'], Authorization: 'Bearer x' },
    customer: { ssn: '123-45-6789', name: 'Ann' },
  };

  it('full: stored as given, credential-like keys redacted at any depth (case, - and _ ignored), plus configured keys', async () => {
    const path = tempFile();
    const log = await openLog(path, { args: 'full', redactKeys: ['ssn'] });
    await log.append(request(1, { args }));
    expect(events(path)[0]!.args).toEqual({
      path: '/tmp/a',
      password: REDACTED,
      nested: { API_KEY: REDACTED, list: [{ 'access-token': REDACTED, keep: 1 }, 'plain'], Authorization: REDACTED },
      customer: { ssn: REDACTED, name: 'Ann' },
    });
    expect(readFileSync(path, 'utf8')).not.toMatch(/hunter2|k1|t1|Bearer|123-45/);
  });

  it('full is the default', async () => {
    const path = tempFile();
    const log = await openLog(path);
    await log.append(request(1, { args: { path: '/x' } }));
    expect(events(path)[0]!.args).toEqual({ path: '/x' });
  });

  it('a "__proto__" argument key is recorded like any other', async () => {
    const path = tempFile();
    const log = await openLog(path);
    await log.append(request(1, { args: JSON.parse('{"__proto__":{"x":1},"a":2}') }));
    expect(lines(path)[0]).toContain('"args":{"__proto__":{"x":1},"a":2}');
  });

  it('digest: the SHA-256 and size of the redacted arguments, not the arguments', async () => {
    const path = tempFile();
    const log = await openLog(path, { args: 'digest', redactKeys: ['ssn'] });
    await log.append(request(1, { args }));
    const redacted = JSON.stringify({
      path: '/tmp/a',
      password: REDACTED,
      nested: { API_KEY: REDACTED, list: [{ 'access-token': REDACTED, keep: 1 }, 'plain'], Authorization: REDACTED },
      customer: { ssn: REDACTED, name: 'Ann' },
    });
    expect(events(path)[0]!.args).toEqual({
      sha256: createHash('sha256').update(redacted).digest('hex'),
      bytes: Buffer.byteLength(redacted),
    });
    expect(readFileSync(path, 'utf8')).not.toContain('/tmp/a');
  });

  it('none: no args field at all', async () => {
    const path = tempFile();
    const log = await openLog(path, { args: 'none' });
    await log.append(request(1, { args }));
    expect(events(path)[0]).not.toHaveProperty('args');
  });

  it('full: arguments larger than maxArgsBytes are stored as a digest marked truncated', async () => {
    const path = tempFile();
    const log = await openLog(path, { maxArgsBytes: 1024 });
    const big = { content: 'x'.repeat(5000) };
    await log.append(request(1, { args: big }));
    const json = JSON.stringify(big);
    expect(events(path)[0]!.args).toEqual({
      truncated: true,
      sha256: createHash('sha256').update(json).digest('hex'),
      bytes: json.length,
    });
  });
});

describe('verify finds the first broken line', () => {
  it('an intact log', async () => {
    const path = tempFile();
    await writeLog(path, 5);
    expect(await verifyAuditFile(path)).toEqual({ ok: true, events: 5, head: events(path)[4]!.hash });
  });

  it('an empty log is intact', async () => {
    const path = tempFile();
    writeFileSync(path, '');
    expect(await verifyAuditFile(path)).toEqual({ ok: true, events: 0, head: GENESIS });
  });

  it('an edited field', async () => {
    const path = tempFile();
    await writeLog(path, 5);
    rewrite(path, (ls) => ls.map((l, i) => (i === 2 ? l.replace('"outcome":"success"', '"outcome":"denied"') : l)));
    expect(await verifyAuditFile(path)).toEqual({
      ok: false,
      events: 2,
      line: 3,
      problem: 'the event was edited after it was written (its hash does not match its content)',
    });
  });

  it("an edit that also recomputes that line's own hash is caught by the next line", async () => {
    const path = tempFile();
    await writeLog(path, 4);
    rewrite(path, (ls) =>
      ls.map((l, i) => {
        if (i !== 1) return l;
        const body = `${l.replace('"user":"alice"', '"user":"mallory"').slice(0, -(9 + 64 + 2))}}`;
        return `${body.slice(0, -1)},"hash":"${createHash('sha256').update(body).digest('hex')}"}`;
      }),
    );
    const r = await verifyAuditFile(path);
    expect(r).toMatchObject({ ok: false, line: 3, events: 2 });
    expect(r.ok === false && r.problem).toMatch(/missing \(deleted\) or out of order/);
  });

  it('a deleted event in the middle', async () => {
    const path = tempFile();
    await writeLog(path, 5);
    rewrite(path, (ls) => ls.filter((_, i) => i !== 1));
    expect(await verifyAuditFile(path)).toEqual({
      ok: false,
      events: 1,
      line: 2,
      problem: 'the event before this one is missing (deleted) or out of order: its prev hash matches no earlier event',
    });
  });

  it('a deleted first event', async () => {
    const path = tempFile();
    await writeLog(path, 3);
    rewrite(path, (ls) => ls.slice(1));
    expect(await verifyAuditFile(path)).toEqual({
      ok: false,
      events: 0,
      line: 1,
      problem: 'the first event does not start the chain: events before it were deleted',
    });
  });

  it('reordered events', async () => {
    const path = tempFile();
    await writeLog(path, 5);
    rewrite(path, (ls) => [ls[0]!, ls[1]!, ls[3]!, ls[2]!, ls[4]!]);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: false, events: 2, line: 3 });
    // Moving an earlier event down is named as such.
    rewrite(path, (ls) => [ls[0]!, ls[1]!, ls[3]!, ls[2]!, ls[4]!]); // back to the original order
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true });
    rewrite(path, (ls) => [ls[1]!, ls[0]!, ...ls.slice(2)]);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: false, line: 1 });
    rewrite(path, (ls) => [ls[1]!, ls[0]!, ...ls.slice(2)]);
    rewrite(path, (ls) => [ls[0]!, ls[1]!, ls[2]!, ls[2]!, ...ls.slice(3)]); // a replayed (duplicated) event
    expect(await verifyAuditFile(path)).toEqual({
      ok: false,
      events: 3,
      line: 4,
      problem: 'events are out of order: this event follows the event on line 2, not the one on line 3',
    });
  });

  it('a file truncated in the middle of the last event', async () => {
    const path = tempFile();
    await writeLog(path, 3);
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.slice(0, text.length - 40));
    expect(await verifyAuditFile(path)).toEqual({
      ok: false,
      events: 2,
      line: 3,
      problem: 'the file ends in the middle of an event: it was truncated, or the writer was interrupted',
    });
  });

  it('a blank line or a foreign line', async () => {
    const path = tempFile();
    await writeLog(path, 3);
    rewrite(path, (ls) => [ls[0]!, '', ...ls.slice(1)]);
    expect(await verifyAuditFile(path)).toEqual({ ok: false, events: 1, line: 2, problem: 'the line is empty' });
    rewrite(path, (ls) => [ls[0]!, '{"type":"mcp.session.request","user":"mallory"}', ...ls.slice(1)]);
    expect(await verifyAuditFile(path)).toMatchObject({
      ok: false,
      line: 2,
      problem: expect.stringContaining('not a complete audit event') as unknown,
    });
  });

  it('a file that does not exist is AUDIT_UNAVAILABLE', async () => {
    const err = await rejection(verifyAuditFile(tempFile('missing.jsonl')));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(err.message).toMatch(/cannot be read \(it does not exist\)/);
  });
});

describe('when the log cannot be written', () => {
  // A failed write itself (a real EFBIG) is tested under "interrupted writes"
  // below; a symlink to /dev/full can no longer stand in for a full disk.
  it('a symbolic link at the path (here to /dev/full) is refused: the log is never written through a link', async () => {
    const path = tempFile();
    symlinkSync('/dev/full', path);
    const err = await rejection(AuditLog.open(path));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(err.message).toBe(`audit log ${path} is a symbolic link; the audit log is never written through a link`);
  });

  it('a path that cannot be created: open rejects with AUDIT_UNAVAILABLE', async () => {
    const file = tempFile('plain-file');
    writeFileSync(file, 'x');
    const err = await rejection(AuditLog.open(join(file, 'audit.jsonl')));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(err.message).toMatch(/cannot create its directory: (ENOTDIR|EEXIST)/);
  });

  it('a closed log rejects appends', async () => {
    const path = tempFile();
    const log = await AuditLog.open(path);
    await log.close();
    const err = await rejection(log.append(request(1)));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
  });

  it('an event that cannot be serialised is rejected, not half-written', async () => {
    const path = tempFile();
    const log = await openLog(path);
    const err = await rejection(log.append(request(1, { latencyMs: 10n as unknown as number })));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    await log.append(request(2));
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: 1 });
  });
});

describe('interrupted writes', () => {
  it('an incomplete last line (a crash mid-write) is closed on open, an audit.recovered event names it, and verify accepts that', async () => {
    const path = tempFile();
    await writeLog(path, 2);
    const torn = '{"time":"2026-01-01T00:00:00.000Z","id":"x","type":"mcp.session.req';
    appendFileSync(path, torn);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: false, line: 3 });

    const log = await openLog(path);
    const next = await log.append(request(3));
    const all = lines(path);
    expect(all).toHaveLength(5);
    expect(all[2]).toBe(torn);
    const recovered = JSON.parse(all[3]!) as Record<string, unknown>;
    expect(recovered).toMatchObject({
      type: 'audit.recovered',
      code: 'TAUD001W',
      torn: [Buffer.byteLength(torn)],
      prev: (JSON.parse(all[1]!) as { hash: string }).hash,
    });
    expect(next.prev).toBe(recovered.hash);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: 4 });
  });

  it('a real partial write (a process over its file size limit): the writer refuses from there on, the next writer recovers', async () => {
    // A child process with `ulimit -f` gets a genuinely short write() and then EFBIG. It runs the built module (dist/).
    const path = tempFile();
    const script = join(path, '..', 'writer.mjs');
    writeFileSync(
      script,
      `process.on('SIGXFSZ', () => {});
       const { AuditLog } = await import(${JSON.stringify(resolve(import.meta.dirname, '../../dist/audit/log.js'))});
       const log = await AuditLog.open(${JSON.stringify(path)}, { fsync: 'never' });
       const results = [];
       for (let i = 0; i < 30; i++) {
         try { await log.append({ type: 'mcp.session.request', rpcId: i, args: { pad: 'x'.repeat(150) } }); results.push('ok'); }
         catch (e) { results.push(e.code + ': ' + e.message); }
       }
       await log.close();
       console.log(JSON.stringify(results));`,
    );
    const child = spawn('/bin/sh', ['-c', `ulimit -f 4 && exec "${process.execPath}" "${script}"`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    expect(await new Promise((r) => child.once('close', r))).toBe(0);
    const results = JSON.parse(out) as string[];
    const firstFailure = results.indexOf(results.find((r) => r !== 'ok')!);
    expect(firstFailure).toBeGreaterThan(0);
    expect(results.slice(0, firstFailure).every((r) => r === 'ok')).toBe(true);
    expect(
      results.slice(firstFailure).every((r) => r === `AUDIT_UNAVAILABLE: audit log ${path}: write failed: EFBIG`),
    ).toBe(true);
    expect(readFileSync(path).at(-1)).not.toBe(0x0a); // cut inside an event
    expect(await verifyAuditFile(path)).toMatchObject({ ok: false, events: firstFailure, line: firstFailure + 1 });

    const log = await openLog(path);
    await log.append(request(99));
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: firstFailure + 2 });
  });

  it('a recovery event does not excuse an edited line elsewhere', async () => {
    const path = tempFile();
    await writeLog(path, 2);
    appendFileSync(path, '{"torn":');
    const log = await openLog(path);
    await log.append(request(3));
    await log.close();
    rewrite(path, (ls) => ls.map((l, i) => (i === 0 ? l.replace('alice', 'alicf') : l)));
    expect(await verifyAuditFile(path)).toMatchObject({ ok: false, line: 1 });
  });

  it('a complete last event that only lacks its newline gets the newline, no recovery event', async () => {
    const path = tempFile();
    await writeLog(path, 2);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/\n$/, ''));
    const log = await openLog(path);
    await log.append(request(3));
    expect(events(path).map((e) => e.type)).toEqual([
      'mcp.session.request',
      'mcp.session.request',
      'mcp.session.request',
    ]);
    expect(await verifyAuditFile(path)).toMatchObject({ ok: true, events: 3 });
  });

  it('a log whose last complete line is not an event is refused (AUDIT_TAMPERED), not appended to', async () => {
    const path = tempFile();
    await writeLog(path, 2);
    appendFileSync(path, 'hello\n');
    const err = await rejection(AuditLog.open(path));
    expect(err.code).toBe('AUDIT_TAMPERED');
    expect(err.message).toBe(`audit log ${path}: its last line is not an audit event`);
  });
});

describe('one writer per file', () => {
  it('the same file cannot be opened twice in one process', async () => {
    const path = tempFile();
    await openLog(path);
    const err = await rejection(AuditLog.open(path));
    expect(err.message).toBe(`audit log ${path} is already open in this process`);
  });

  it('a lock held by a live process is refused; once that process is gone, the stale lock is taken over', async () => {
    const path = tempFile();
    const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await new Promise((r) => holder.once('spawn', r));
    writeFileSync(`${path}.lock`, `${holder.pid}\n`);
    const err = await rejection(AuditLog.open(path));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(err.message).toBe(`audit log ${path} is being written by process ${holder.pid}`);
    const exited = new Promise((r) => holder.once('exit', r));
    holder.kill('SIGKILL');
    await exited;
    const log = await openLog(path);
    await log.append(request(1));
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(`${process.pid}\n`);
    await log.close();
    open.splice(open.indexOf(log), 1);
    expect(() => readFileSync(`${path}.lock`)).toThrow(/ENOENT/);
  });
});
