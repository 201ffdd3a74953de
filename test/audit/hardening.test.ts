/**
 * The audit log cannot be turned against the proxy or other users: planted
 * links and open directories are refused, a deleted or rotated file is
 * reopened (and says so), client- and server-chosen strings are bounded with
 * a digest, and one identity's volume is capped by its budget without
 * touching others'. Real files throughout.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { GENESIS } from '../../src/audit/chain.js';
import {
  AuditLog,
  verifyAuditFile,
  MAX_FIELD_CHARS,
  MAX_REASON_CHARS,
  type AuditLogOptions,
} from '../../src/audit/log.js';

const opened: AuditLog[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((l) => l.close()));
});

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'mcp-access-audit-h-'));
}
async function openLog(path: string, opts?: AuditLogOptions): Promise<AuditLog> {
  const log = await AuditLog.open(path, opts);
  opened.push(log);
  return log;
}
function events(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
async function rejection(p: Promise<unknown>): Promise<AccessError> {
  try {
    await p;
  } catch (err) {
    return err as AccessError;
  }
  throw new Error('expected a rejection');
}

describe('files an attacker could plant', () => {
  it('a dangling symbolic link is not followed and its target is not created', async () => {
    const dir = tempDir();
    const target = join(dir, 'elsewhere', 'owned.txt');
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(target, join(dir, 'audit.jsonl'));
    const err = await rejection(AuditLog.open(join(dir, 'audit.jsonl')));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(err.message).toMatch(/is a symbolic link/);
    expect(existsSync(target)).toBe(false);
  });

  it('a world-writable (0777) directory is refused with one clear line', async () => {
    const dir = join(tempDir(), 'open');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const err = await rejection(AuditLog.open(join(dir, 'audit.jsonl')));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(err.message).toBe(
      `audit log ${join(dir, 'audit.jsonl')}: its directory ${dir} is writable by every user (mode 0777), so anyone could replace or redirect the log`,
    );
    expect(err.hint).toContain('chmod o-w');
    expect(existsSync(join(dir, 'audit.jsonl'))).toBe(false);
  });

  it('the file is created with mode 0600', async () => {
    const path = join(tempDir(), 'audit.jsonl');
    await openLog(path);
    const { statSync } = await import('node:fs');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe('a deleted or rotated file', () => {
  it('deleted: the next event recreates it, starting with audit.reopened naming the old head', async () => {
    const path = join(tempDir(), 'audit.jsonl');
    const log = await openLog(path);
    const first = await log.append({ type: 'mcp.session.start', user: 'alice', outcome: 'success' });
    unlinkSync(path);
    await log.append({ type: 'mcp.session.request', user: 'alice', method: 'ping', outcome: 'success' });
    const after = events(path);
    expect(after.map((e) => e.type)).toEqual(['audit.reopened', 'mcp.session.request']);
    expect(after[0]).toMatchObject({ code: 'TAUD003W', prev: GENESIS });
    expect(String(after[0]!.reason)).toContain('was deleted');
    expect(String(after[0]!.reason)).toContain(first.hash);
    expect((await verifyAuditFile(path)).ok).toBe(true);
  });

  it('rotated (moved away): the old file keeps its events, the new one continues', async () => {
    const dir = tempDir();
    const path = join(dir, 'audit.jsonl');
    const log = await openLog(path);
    await log.append({ type: 'mcp.session.start', user: 'alice', outcome: 'success' });
    renameSync(path, join(dir, 'audit.jsonl.1'));
    await log.append({ type: 'mcp.session.end', user: 'alice', outcome: 'success' });
    expect(events(join(dir, 'audit.jsonl.1')).map((e) => e.type)).toEqual(['mcp.session.start']);
    expect(events(path).map((e) => e.type)).toEqual(['audit.reopened', 'mcp.session.end']);
    expect(String(events(path)[0]!.reason)).toContain('rotated');
    expect((await verifyAuditFile(path)).ok).toBe(true);
    expect((await verifyAuditFile(join(dir, 'audit.jsonl.1'))).ok).toBe(true);
  });

  it('truncated in place (copytruncate): the chain restarts from zeros with audit.reopened', async () => {
    const path = join(tempDir(), 'audit.jsonl');
    const log = await openLog(path);
    await log.append({ type: 'mcp.session.start', user: 'alice', outcome: 'success' });
    truncateSync(path, 0);
    await log.append({ type: 'mcp.session.end', user: 'alice', outcome: 'success' });
    const after = events(path);
    expect(after.map((e) => e.type)).toEqual(['audit.reopened', 'mcp.session.end']);
    expect(after[0]).toMatchObject({ prev: GENESIS });
    expect(String(after[0]!.reason)).toContain('truncated');
    expect((await verifyAuditFile(path)).ok).toBe(true);
  });

  it('replaced by a symbolic link: events are refused (fail closed), nothing is written through it', async () => {
    const dir = tempDir();
    const path = join(dir, 'audit.jsonl');
    const log = await openLog(path);
    await log.append({ type: 'mcp.session.start', user: 'alice', outcome: 'success' });
    unlinkSync(path);
    symlinkSync(join(dir, 'victim.txt'), path);
    const err = await rejection(log.append({ type: 'mcp.session.request', user: 'alice', method: 'ping' }));
    expect(err.code).toBe('AUDIT_UNAVAILABLE');
    expect(existsSync(join(dir, 'victim.txt'))).toBe(false);
  });
});

describe('bounded strings', () => {
  it('client name, method, tool and reason are cut with the size and SHA-256 of the whole', async () => {
    const path = join(tempDir(), 'audit.jsonl');
    const log = await openLog(path);
    const method = `x${'\u001b[2J'.repeat(300_000)}`; // ~1 MB of terminal escapes
    const reason = 'e'.repeat(100_000);
    await log.append({
      type: 'mcp.session.request',
      user: 'alice',
      client: { name: 'n'.repeat(5000), version: '1' },
      method,
      tool: 't'.repeat(300),
      outcome: 'error',
      reason,
    });
    const [e] = events(path);
    const digest = (s: string) => createHash('sha256').update(s).digest('hex');
    expect(e!.method).toBe(
      `${method.slice(0, MAX_FIELD_CHARS)}…[cut: ${Buffer.byteLength(method)} bytes, sha256 ${digest(method)}]`,
    );
    expect(
      String(e!.reason).startsWith('e'.repeat(MAX_REASON_CHARS) + '…[cut: 100000 bytes, sha256 ' + digest(reason)),
    ).toBe(true);
    expect(String((e!.client as { name: string }).name).length).toBeLessThan(400);
    expect(String(e!.tool).length).toBeLessThan(400);
    expect(readFileSync(path).length).toBeLessThan(8 * 1024);
  });
});

describe('per-identity budget', () => {
  it('one identity over its budget is refused and recorded once; another identity is not affected; it refills with time', async () => {
    const path = join(tempDir(), 'audit.jsonl');
    let now = 1_000_000;
    const log = await openLog(path, { identityBudgetBytes: 4096, now: () => now });
    const big = (user: string) =>
      log.append({
        type: 'mcp.session.request',
        user,
        method: 'tools/call',
        tool: 'write_file',
        args: { content: 'x'.repeat(900) },
      });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => big('mallory')));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeLessThan(5);
    expect(((refused[0] as PromiseRejectedResult).reason as AccessError).message).toMatch(
      /identity mallory has used up its audit budget/,
    );
    await expect(big('alice')).resolves.toBeTruthy();
    const overruns = events(path).filter((e) => e.type === 'audit.budget_exceeded');
    expect(overruns).toHaveLength(1);
    expect(overruns[0]).toMatchObject({ user: 'mallory', code: 'TAUD002W' });
    now += 3_600_000;
    await expect(big('mallory')).resolves.toBeTruthy();
    expect((await verifyAuditFile(path)).ok).toBe(true);
  });
});

describe('audit.identity_budget in the proxy configuration', () => {
  const base = { cluster: 'c', listen: '127.0.0.1:0', ca_dir: './ca', servers: [] };
  it('a size, 0 for no limit, anything else refused', async () => {
    const { parseProxyConfig } = await import('../../src/proxy/config.js');
    expect(
      parseProxyConfig({ ...base, audit: { path: './a.jsonl', identity_budget: '1MiB' } }, '/etc/p.yaml').audit
        ?.identityBudget,
    ).toBe(1024 * 1024);
    expect(
      parseProxyConfig({ ...base, audit: { path: './a.jsonl', identity_budget: 0 } }, '/etc/p.yaml').audit
        ?.identityBudget,
    ).toBe(0);
    expect(
      parseProxyConfig({ ...base, audit: { path: './a.jsonl' } }, '/etc/p.yaml').audit?.identityBudget,
    ).toBeUndefined();
    expect(() =>
      parseProxyConfig({ ...base, audit: { path: './a.jsonl', identity_budget: 'lots' } }, '/etc/p.yaml'),
    ).toThrow(/audit\.identity_budget/);
  });
});
