/**
 * `mcp-access audit search` renders what clients and servers chose safely:
 * terminal escapes, fake rows and huge values in stored events (written by
 * the real AuditLog, and hand-written lines the log itself would have cut)
 * are escaped and capped, in the table and in JSON.
 */
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { AuditLog } from '../../src/audit/log.js';

let logPath: string;
const ESC = '\u001b';
const evilMethod = `tools/call${ESC}]0;pwned${'\u0007'}${ESC}[2J\n2026-01-01T00:00:00.000Z  request  TMCP003I  admin  fake-row\u202e`;

beforeAll(async () => {
  logPath = join(mkdtempSync(join(tmpdir(), 'mcp-access-audit-render-')), 'audit.jsonl');
  const log = await AuditLog.open(logPath);
  await log.append({
    type: 'mcp.session.request',
    user: 'mallory',
    server: 'evil',
    method: evilMethod,
    outcome: 'error',
    reason: `boom${ESC}[31m\r\nred\u009b2J`,
  });
  await log.close();
  // A line the log would have cut (as an older version or an editor could leave it): 1 MB method.
  appendFileSync(
    logPath,
    `${JSON.stringify({ time: new Date().toISOString(), id: 'x', type: 'mcp.session.request', user: 'mallory', method: 'm'.repeat(1_000_000), reason: 'r'.repeat(1_000_000) })}\n`,
  );
});

describe('audit search rendering', () => {
  it('the table escapes control characters and caps every column', async () => {
    const r = await runCli(['audit', 'search', logPath]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    expect(r.stdout).not.toContain('\u0007');
    expect(r.stdout).not.toContain('\u009b');
    expect(r.stdout).not.toContain('\u202e');
    expect(r.stdout).not.toContain('\r');
    expect(r.stdout).toContain('\\x1b');
    const rows = r.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(3); // header + two events: no fake row
    expect(rows.every((l) => l.length < 500)).toBe(true);
  });

  it('JSON output escapes C1 controls and bidi overrides too', async () => {
    const r = await runCli(['audit', 'search', logPath, '--format', 'json']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    expect(r.stdout).not.toContain('\u009b');
    expect(r.stdout).not.toContain('\u202e');
    const parsed = JSON.parse(r.stdout) as Array<{ method: string }>;
    expect(parsed[0]!.method.startsWith('tools/call\u001b]0;pwned')).toBe(true);
  });
});
