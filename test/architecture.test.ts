/**
 * The folders are the architecture (docs/architecture.md): every import in
 * src/ is read (static, `export … from`, dynamic `import('…')` and type-level
 * `import('…').T` alike) and checked against the layering, lowest first:
 *
 *   util + errors + version → identity → tunnel → rbac, audit → backend
 *   → agent → proxy → bridge, bot, client, demo → cli
 *
 * A module may import its own folder, any lower layer, and (for the folders
 * sharing a layer) a sibling folder as long as the folders form no circle.
 * No module-level import cycle either.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cluster.js';

const SRC = join(ROOT, 'src');

const LAYERS: string[][] = [
  ['util'],
  ['identity'],
  ['tunnel'],
  ['rbac', 'audit'],
  ['backend'],
  ['agent'],
  ['proxy'],
  ['bridge', 'bot', 'client', 'demo'],
  ['cli'],
];

function layerOf(folder: string): number {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  return i;
}

/**
 * The folder a module belongs to: its first path segment under src. The
 * top-level errors.ts and version.ts are one unit with util (the lowest layer).
 */
function folderOf(file: string): string {
  const first = relative(SRC, file).split('/')[0]!;
  return first === 'errors.ts' || first === 'version.ts' ? 'util' : first;
}

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(SRC);
  return out.sort();
}

const IMPORT =
  /(?:^|[^\w$.])(?:import|export)\s[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|[^\w$.])import\s*['"]([^'"]+)['"]/g;

/** Relative imports of a module, resolved to .ts files under src. */
export function importsOf(file: string, text: string): string[] {
  // Comments may quote import statements (docs); they are not imports.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: string[] = [];
  for (const m of code.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (!spec.startsWith('.')) continue;
    out.push(resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
  }
  return out;
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sourceFiles()) g.set(f, importsOf(f, readFileSync(f, 'utf8')));
  return g;
}

function findCycles<T>(g: Map<T, Iterable<T>>): T[][] {
  const state = new Map<T, 1 | 2>();
  const stack: T[] = [];
  const cycles: T[][] = [];
  const visit = (n: T): void => {
    state.set(n, 1);
    stack.push(n);
    for (const m of g.get(n) ?? []) {
      if (state.get(m) === 1) cycles.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of g.keys()) if (!state.has(n)) visit(n);
  return cycles;
}

const rel = (f: string): string => relative(ROOT, f);

describe('the architecture of src/ (folders are layers)', () => {
  const g = graph();

  it('reads the imports it checks (the parser finds static, dynamic and type imports)', () => {
    expect(g.size).toBeGreaterThan(50);
    const sample = importsOf(
      join(SRC, 'x', 'a.ts'),
      [
        "import { a } from './a.js';",
        "import type { B } from '../b/b.js';",
        "export { c } from './c.js';",
        "const d = await import('../d/d.js');",
        "let e: import('./e.js').E;",
        "import './side-effect.js';",
        'import {\n  f,\n  type G,\n} from "../f/f.js";',
        "// import { z } from './commented.js';",
        "import { readFile } from 'node:fs';",
      ].join('\n'),
    ).map(rel);
    expect(sample).toEqual([
      'src/x/a.ts',
      'src/b/b.ts',
      'src/x/c.ts',
      'src/d/d.ts',
      'src/x/e.ts',
      'src/x/side-effect.ts',
      'src/f/f.ts',
    ]);
  });

  it('every import names a module that exists', () => {
    const missing = [...g].flatMap(([f, imps]) => imps.filter((i) => !g.has(i)).map((i) => `${rel(f)} → ${rel(i)}`));
    expect(missing).toEqual([]);
  });

  it('every folder of src has a layer', () => {
    const unknown = [...new Set([...g.keys()].map(folderOf))].filter((f) => layerOf(f) < 0);
    expect(unknown, 'add new folders to LAYERS here and to docs/architecture.md').toEqual([]);
  });

  it('no module imports a higher layer', () => {
    const upward: string[] = [];
    for (const [f, imps] of g) {
      const from = layerOf(folderOf(f));
      for (const i of imps) {
        const to = layerOf(folderOf(i));
        if (to > from) upward.push(`${rel(f)} (${folderOf(f)}) → ${rel(i)} (${folderOf(i)})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('no two folders import each other, directly or in a circle', () => {
    const folders = new Map<string, Set<string>>();
    for (const [f, imps] of g) {
      const a = folderOf(f);
      const set = folders.get(a) ?? new Set<string>();
      for (const i of imps) if (folderOf(i) !== a) set.add(folderOf(i));
      folders.set(a, set);
    }
    expect(findCycles(folders).map((c) => c.join(' → '))).toEqual([]);
  });

  it('no module-level import cycle', () => {
    expect(findCycles(g).map((c) => c.map(rel).join(' → '))).toEqual([]);
  });

  it('the cycle finder finds a cycle (so an empty answer means something)', () => {
    const cyc = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(findCycles(cyc)).toEqual([['a', 'b', 'c', 'a']]);
  });
});
