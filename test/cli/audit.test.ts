/**
 * `mcp-access audit verify|search` through the real executable (built CLI:
 * `npm test` builds first; alone: `npx tsc -p .`), on logs written by the
 * real AuditLog.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { AuditLog } from '../../src/audit/log.js';

const run = runCli;

let dir: string;
let logPath: string;
const ids: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-access-audit-cli-'));
  logPath = join(dir, 'audit.jsonl');
  const log = await AuditLog.open(logPath);
  const base = { sessionId: 'sess-1', roles: ['llm-access'], server: 'filesystem' };
  const add = async (e: Parameters<AuditLog['append']>[0]) => ids.push((await log.append(e)).id);
  await add({ type: 'mcp.session.start', ...base, user: 'alice', client: { name: 'claude', version: '1' } });
  await add({
    type: 'mcp.session.request',
    ...base,
    user: 'alice',
    method: 'tools/list',
    rpcId: 1,
    outcome: 'success',
    latencyMs: 4,
  });
  await add({
    type: 'mcp.session.request',
    ...base,
    user: 'alice',
    method: 'tools/call',
    rpcId: 2,
    tool: 'read_file',
    args: { path: '/tmp/a' },
    outcome: 'success',
  });
  await add({
    type: 'mcp.session.request',
    ...base,
    user: 'alice',
    method: 'tools/call',
    rpcId: 3,
    tool: 'write_file',
    outcome: 'denied',
    reason: 'tool "write_file" is denied: no role allows it',
  });
  await add({
    type: 'mcp.session.request',
    sessionId: 'sess-2',
    roles: ['example-role'],
    server: 'everything',
    user: 'bob',
    method: 'tools/call',
    rpcId: 1,
    tool: 'echo',
    outcome: 'success',
  });
  await add({ type: 'mcp.session.end', ...base, user: 'alice' });
  await log.close();
});

describe('audit verify', () => {
  it('an intact log: exit 0 and a one-line summary', async () => {
    const r = await run(['audit', 'verify', logPath]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^${logPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: chain intact, 6 event\\(s\\); last hash [0-9a-f]{64}\\n$`,
      ),
    );
  });

  it('--format json', async () => {
    const r = await run(['audit', 'verify', logPath, '--format', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ file: logPath, ok: true, events: 6 });
  });

  it('after a line is edited: exit 9, one stderr line naming the line and the problem', async () => {
    const copy = join(dir, 'edited.jsonl');
    writeFileSync(
      copy,
      readFileSync(logPath, 'utf8').replace(
        '"tool":"write_file","outcome":"denied"',
        '"tool":"write_file","outcome":"success"',
      ),
    );
    const r = await run(['audit', 'verify', copy]);
    expect(r.code).toBe(9);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `mcp-access: ${copy}: line 4: the event was edited after it was written (its hash does not match its content) (3 event(s) before it verified) (the audit log was edited, truncated or reordered after it was written)\n`,
    );
  });

  it('after a line is deleted: exit 9 at the line that follows the gap', async () => {
    const copy = join(dir, 'deleted.jsonl');
    const ls = readFileSync(logPath, 'utf8').split('\n');
    ls.splice(3, 1);
    writeFileSync(copy, ls.join('\n'));
    const r = await run(['audit', 'verify', copy]);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/: line 4: the event before this one is missing \(deleted\) or out of order/);
  });

  it('with --format json, a broken log still prints the result, and exits 9', async () => {
    const copy = join(dir, 'reordered.jsonl');
    const ls = readFileSync(logPath, 'utf8').split('\n');
    [ls[1], ls[2]] = [ls[2]!, ls[1]!];
    writeFileSync(copy, ls.join('\n'));
    const r = await run(['audit', 'verify', copy, '--format', 'json']);
    expect(r.code).toBe(9);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, line: 2, events: 1 });
  });

  it('a missing file: exit 9, AUDIT_UNAVAILABLE message', async () => {
    const r = await run(['audit', 'verify', join(dir, 'nope.jsonl')]);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/^mcp-access: audit log .*nope\.jsonl cannot be read \(it does not exist\) \(.+\)\n$/);
  });
});

describe('audit search', () => {
  it('a readable table of every event by default', async () => {
    const r = await run(['audit', 'search', logPath]);
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^TIME\s+TYPE\s+CODE\s+USER\s+SERVER\s+METHOD\s+TOOL\s+OUTCOME\s+EVENT ID\s+REASON$/);
    expect(rows).toHaveLength(7);
    expect(rows[4]).toMatch(
      /^\S+Z\s+request\s+TMCP003E\s+alice\s+filesystem\s+tools\/call\s+write_file\s+denied\s+[0-9a-f-]{36}\s+tool "write_file" is denied/,
    );
    expect(rows[1]).toMatch(/\sstart\s+TMCP001I\s+alice\s/);
  });

  it('--denied', async () => {
    const r = await run(['audit', 'search', logPath, '--denied', '--format', 'json']);
    expect(r.code).toBe(0);
    const events = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(events.map((e) => e.id)).toEqual([ids[3]]);
  });

  it('--user and --server', async () => {
    const bob = JSON.parse(
      (await run(['audit', 'search', logPath, '--user', 'bob', '--format', 'json'])).stdout,
    ) as Array<Record<string, unknown>>;
    expect(bob.map((e) => e.id)).toEqual([ids[4]]);
    const fs = JSON.parse(
      (await run(['audit', 'search', logPath, '--server', 'filesystem', '--user', 'alice', '--format', 'json'])).stdout,
    ) as unknown[];
    expect(fs).toHaveLength(5);
  });

  it('--since takes a duration or an RFC 3339 time', async () => {
    const recent = JSON.parse(
      (await run(['audit', 'search', logPath, '--since', '1h', '--format', 'json'])).stdout,
    ) as unknown[];
    expect(recent).toHaveLength(6);
    const future = await run(['audit', 'search', logPath, '--since', new Date(Date.now() + 3_600_000).toISOString()]);
    expect(future.stdout).toBe('no matching events\n');
    const bad = await run(['audit', 'search', logPath, '--since', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^mcp-access: --since "yesterday" is neither a time nor a duration \(write it like/);
  });

  it('--tool, --session, --limit', async () => {
    const out = (args: string[]) =>
      run(['audit', 'search', logPath, ...args, '--format', 'json']).then((r) =>
        (JSON.parse(r.stdout) as Array<{ id: string }>).map((e) => e.id),
      );
    expect(await out(['--tool', 'read_file'])).toEqual([ids[2]]);
    expect(await out(['--session', 'sess-2'])).toEqual([ids[4]]);
    expect(await out(['--limit', '2'])).toEqual([ids[4], ids[5]]);
  });

  it('lines that are not events are counted on stderr and skipped', async () => {
    const copy = join(dir, 'junk.jsonl');
    writeFileSync(copy, `${readFileSync(logPath, 'utf8')}not json\n`);
    const r = await run(['audit', 'search', copy, '--format', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveLength(6);
    expect(r.stderr).toMatch(/1 line\(s\) of .* are not events/);
  });
});
