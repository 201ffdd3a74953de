/**
 * The error catalogue and its documentation agree (as fastify checks its
 * error codes against its docs): every code in src/errors.ts is documented in
 * docs/operations.md with its exit status, every code documented there exists,
 * and every code is used somewhere in src. Failures list the codes to fix.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CATALOGUE, type ErrorCode } from '../src/errors.js';
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
