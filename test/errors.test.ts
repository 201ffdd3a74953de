/**
 * The error catalogue and its documentation agree (as fastify checks its
 * error codes against its docs): every code in src/errors.ts is documented in
 * docs/operations.md with its exit status, every code documented there exists,
 * and every code is used somewhere in src. Failures list the codes to fix.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CATALOGUE, httpStatusFor, rpcCodeFor, type CatalogueEntry, type ErrorCode } from '../src/errors.js';
import { CLOSE, closeCodeFor, errorCodeForClose } from '../src/tunnel/close-codes.js';
import { ROOT } from './helpers/cluster.js';

const CODES = Object.keys(CATALOGUE) as ErrorCode[];
const OPERATIONS = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');

/**
 * Codes a client sees only in a JSON-RPC error's `data.code`, never as an
 * AccessError (so they have no exit status and are not in the catalogue).
 */
const PROTOCOL_ONLY = new Set(['INVALID_MESSAGE', 'CAPABILITY_NOT_DECLARED']);

/** The rows of the tables in docs/operations.md whose first cell names codes: the codes and the exit column. */
function documentedRows(): Array<{ codes: string[]; exit: string }> {
  const rows: Array<{ codes: string[]; exit: string }> = [];
  for (const line of OPERATIONS.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const codes = [...cells[0]!.matchAll(/`([A-Z][A-Z0-9_]*[A-Z0-9])`/g)].map((m) => m[1]!);
    if (codes.length) rows.push({ codes, exit: cells.at(-1)! });
  }
  return rows;
}

/** Every .ts file under src, with errors.ts's catalogue itself left out (defining a code is not using it). */
function sourceText(): string {
  const texts: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) texts.push(readFileSync(p, 'utf8'));
    }
  };
  walk(join(ROOT, 'src'));
  const errors = readFileSync(join(ROOT, 'src/errors.ts'), 'utf8');
  const start = errors.indexOf('export const CATALOGUE = {');
  const end = errors.indexOf('} satisfies', start);
  expect(start, 'src/errors.ts defines CATALOGUE as the test expects').toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  texts[texts.indexOf(errors)] = errors.slice(0, start) + errors.slice(end);
  return texts.join('\n');
}

describe('the error catalogue (src/errors.ts) and docs/operations.md', () => {
  it('has codes to check (the test reads the catalogue and the tables)', () => {
    expect(CODES.length).toBeGreaterThan(20);
    expect(documentedRows().length).toBeGreaterThan(20);
  });

  it('documents every code in a table row of docs/operations.md', () => {
    const documented = new Set(documentedRows().flatMap((r) => r.codes));
    const missing = CODES.filter((c) => !documented.has(c));
    expect(missing, `codes in src/errors.ts with no row in docs/operations.md: ${missing.join(', ')}`).toEqual([]);
  });

  it('documents only codes that exist', () => {
    const unknown = documentedRows()
      .flatMap((r) => r.codes)
      .filter((c) => !(c in CATALOGUE) && !PROTOCOL_ONLY.has(c));
    expect(unknown, `codes in docs/operations.md that src/errors.ts does not define: ${unknown.join(', ')}`).toEqual(
      [],
    );
  });

  it("gives each code's exit status as the catalogue does", () => {
    const wrong: string[] = [];
    for (const { codes, exit } of documentedRows()) {
      for (const c of codes) {
        if (!(c in CATALOGUE)) continue;
        const want = String(CATALOGUE[c as ErrorCode].exit);
        if (exit !== want) wrong.push(`${c}: documented ${exit}, is ${want}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('uses every code somewhere in src (a quoted literal or CATALOGUE.CODE)', () => {
    const src = sourceText();
    const unused = CODES.filter(
      (c) => !new RegExp(`['"\`]${c}['"\`]|CATALOGUE\\.${c}\\b|CATALOGUE\\[['"]${c}['"]\\]`).test(src),
    );
    expect(unused, `codes defined in src/errors.ts but never used in src: ${unused.join(', ')}`).toEqual([]);
  });
});

/** The rows of the "Close codes" table in docs/protocol.md: code → name. */
function documentedCloseCodes(): Map<number, string> {
  const text = readFileSync(join(ROOT, 'docs/protocol.md'), 'utf8');
  const section = text.slice(text.indexOf('## Close codes'));
  const table = section.slice(0, section.indexOf('\n## '));
  const rows = new Map<number, string>();
  for (const m of table.matchAll(/^\| (\d{4}) \| ([^|]+) \|/gm)) rows.set(Number(m[1]), m[2]!.trim());
  return rows;
}

describe('the HTTP, close and JSON-RPC codes of the catalogue', () => {
  const entries = Object.entries(CATALOGUE) as Array<[ErrorCode, CatalogueEntry]>;

  it('gives each close code to one error only, so the bridge reads back the error that was sent', () => {
    const seen = new Map<number, ErrorCode[]>();
    for (const [code, e] of entries) if (e.close !== undefined) seen.set(e.close, [...(seen.get(e.close) ?? []), code]);
    const twice = [...seen].filter(([, codes]) => codes.length > 1).map(([n, codes]) => `${n}: ${codes.join(', ')}`);
    expect(twice).toEqual([]);
    expect(seen.size).toBeGreaterThan(10);
    for (const [close, [code]] of seen) {
      expect(errorCodeForClose(close)).toBe(code);
      expect(closeCodeFor(code!)).toBe(close);
    }
  });

  it('documents every close code in docs/protocol.md, and only those', () => {
    const documented = documentedCloseCodes();
    const used = new Map<number, string>(
      entries.filter(([, e]) => e.close !== undefined).map(([code, e]) => [e.close!, code]),
    );
    for (const n of Object.values(CLOSE)) if (!used.has(n)) used.set(n, 'CLOSE');
    const undocumented = [...used].filter(([n]) => !documented.has(n)).map(([n, c]) => `${n} (${c})`);
    expect(undocumented, 'close codes with no row in docs/protocol.md').toEqual([]);
    const unknown = [...documented.keys()].filter((n) => !used.has(n));
    expect(unknown, 'close codes documented in docs/protocol.md that nothing sends').toEqual([]);
    // The numbers clients see are those the protocol has always had.
    expect(Object.fromEntries([...used].filter(([, c]) => c !== 'CLOSE').map(([n, c]) => [c, n]))).toEqual({
      PROXY_GOING_AWAY: 4001,
      PROXY_PROTOCOL: 4400,
      IDENTITY_REJECTED: 4401,
      IDENTITY_EXPIRED: 4402,
      ACCESS_DENIED: 4403,
      UNKNOWN_SERVER: 4404,
      SESSION_LOST: 4409,
      MESSAGE_TOO_LARGE: 4413,
      SESSION_LOCKED: 4423,
      LIMIT_REACHED: 4429,
      UPSTREAM_FAILED: 4500,
      UPSTREAM_EXITED: 4502,
    });
  });

  it('reads the close codes that stand for no error as they are', () => {
    expect(errorCodeForClose(CLOSE.NORMAL)).toBeUndefined();
    expect(errorCodeForClose(CLOSE.ROTATING)).toBeUndefined();
    expect(errorCodeForClose(1006)).toBeUndefined();
    expect(errorCodeForClose(CLOSE.WS_MESSAGE_TOO_BIG)).toBe('MESSAGE_TOO_LARGE');
    expect(closeCodeFor('INTERNAL')).toBe(4400);
    expect(closeCodeFor('AUDIT_UNAVAILABLE')).toBe(4400);
  });

  it('uses HTTP error statuses and JSON-RPC error codes only', () => {
    for (const [code, e] of entries) {
      if (e.http !== undefined) expect(e.http, code).toBeGreaterThanOrEqual(400);
      if (e.http !== undefined) expect(e.http, code).toBeLessThan(600);
      if (e.rpc !== undefined) expect(e.rpc >= -32768 && e.rpc <= -32000, code).toBe(true);
    }
    expect(httpStatusFor('IDENTITY_EXPIRED')).toBe(401);
    expect(httpStatusFor('HTTP_BAD_REQUEST')).toBe(400);
    expect(httpStatusFor('PROXY_GOING_AWAY')).toBe(503);
    expect(httpStatusFor('ACCESS_DENIED')).toBe(403);
    expect(httpStatusFor('INTERNAL')).toBe(500);
    expect(rpcCodeFor('ACCESS_DENIED')).toBe(-32602);
    expect(rpcCodeFor('TOOL_DENIED')).toBe(-32602);
    expect(rpcCodeFor('IDENTITY_EXPIRED')).toBe(-32603);
  });
});
