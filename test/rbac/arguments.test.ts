/**
 * Arguments policy and resource/prompt decisions in Policy (src/rbac/arguments.ts, uris.ts, policy.ts):
 * what loads, what is refused at load, and how calls are judged.
 */
import { describe, expect, it } from 'vitest';
import { loadRoles } from '../../src/rbac/roles.js';
import { Policy } from '../../src/rbac/policy.js';
import { pathReadings } from '../../src/rbac/arguments.js';
import { uriReadings } from '../../src/rbac/uris.js';

const SERVER = { name: 'files', labels: { env: 'dev' } };

function policyOf(spec: Record<string, unknown>, opts = {}): Policy {
  const { roles } = loadRoles({
    inline: [{ kind: 'role', version: 'v8', metadata: { name: 'r' }, spec }],
    files: [],
    baseDir: '.',
  });
  return new Policy(roles, opts);
}

function loadError(spec: Record<string, unknown>): string {
  try {
    policyOf(spec);
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
}

const allowTools = (tools: unknown[]) => ({ allow: { app_labels: { env: 'dev' }, mcp: { tools } } });

describe('loading argument rules', () => {
  it('roles stay plain data: argument rules survive a JSON round trip', () => {
    const { roles } = loadRoles({
      inline: [
        {
          kind: 'role',
          metadata: { name: 'r' },
          spec: allowTools([{ name: 'read_*', arguments: { path: { path: '/srv/**' }, n: { min: 1, max: 3 } } }]),
        },
      ],
      files: [],
      baseDir: '.',
    });
    const rules = roles[0]!.allow.tools[0]!.arguments!;
    expect(JSON.parse(JSON.stringify(rules))).toEqual(rules);
    expect(rules.map((r) => r.field)).toEqual([
      'spec.allow.mcp.tools[0].arguments.path',
      'spec.allow.mcp.tools[0].arguments.n',
    ]);
  });

  it.each([
    [{ name: 'x', arguments: { path: { glop: 'a' } } }, /arguments\.path\.glop: unknown key — did you mean "glob"\?/],
    [{ name: 'x', argumnets: {} }, /tools\[0\]\.argumnets: unknown key — did you mean "arguments"\?/],
    [{ name: 'x' }, /tools\[0\]\.arguments: is required/],
    [{ name: 'x', arguments: { path: {} } }, /names no condition/],
    [{ name: 'x', arguments: { path: { glob: 'a', regex: 'b' } } }, /combines glob and regex/],
    [{ name: 'x', arguments: { path: { regex: '(' } } }, /invalid regular expression/],
    [{ name: 'x', arguments: { path: { path: 'srv/**' } } }, /must be an absolute path glob/],
    [{ name: 'x', arguments: { 'a..b': { glob: 'a' } } }, /is not an argument path/],
    [{ name: 'x', arguments: { n: { min: '1' } } }, /min: must be a number/],
    [{ name: '^(x$', arguments: { n: { min: 1 } } }, /tools\[0\]\.name: invalid regular expression/],
  ])('refuses %j', (entry, message) => {
    expect(loadError(allowTools([entry]))).toMatch(message);
  });

  it('required is for allow rules only', () => {
    expect(
      loadError({ deny: { mcp: { tools: [{ name: 'x', arguments: { a: { glob: 'x', required: true } } }] } } }),
    ).toMatch(/required: is for allow rules only/);
  });
});

describe('judging calls', () => {
  const p = policyOf({
    ...allowTools([
      { name: 'read_file', arguments: { path: { path: '/srv/public/**' } } },
      {
        name: 'pick',
        arguments: { mode: { enum: ['fast', 'slow'] }, 'opts.level': { min: 0, max: 3, required: false } },
      },
      'plain',
    ]),
    deny: {
      mcp: {
        tools: [
          { name: 'query', arguments: { sql: { regex: '\\bdrop\\b' } } },
          { name: 'pick', arguments: { mode: { enum: ['slow'] } } },
        ],
      },
    },
  });
  const call = (tool: string, args: unknown) => p.callDecision(['r'], SERVER, tool, args);

  it('allows what meets every rule of an entry, refuses the rest naming the argument and the rule', () => {
    expect(call('read_file', { path: '/srv/public/a.txt' }).allowed).toBe(true);
    const d = call('read_file', { path: '/srv/public/../secret' });
    expect(d.allowed).toBe(false);
    expect(d.argument).toEqual({
      argument: 'path',
      rule: 'spec.allow.mcp.tools[0].arguments.path (path path "/srv/public/**")',
    });
    expect(d.reason).toContain('argument "path" of tool "read_file" is not allowed');
  });

  it('enum and nested paths; deny wins', () => {
    expect(call('pick', { mode: 'fast' }).allowed).toBe(true);
    expect(call('pick', { mode: 'fast', opts: { level: 2 } }).allowed).toBe(true);
    expect(call('pick', { mode: 'fast', opts: { level: 9 } }).argument?.argument).toBe('opts.level');
    expect(call('pick', { mode: 'FAST' }).allowed).toBe(false);
    const slow = call('pick', { mode: 'SLOW' });
    expect(slow.allowed).toBe(false);
    expect(slow.rule).toContain('spec.deny.mcp.tools[1].arguments.mode');
    expect(call('pick', { mode: 'fast', opts: 'x' }).allowed).toBe(false);
  });

  it('a deny with argument rules refuses only matching calls, and leaves the tool listed', () => {
    expect(p.toolDecision(['r'], SERVER, 'query').allowed).toBe(false); // not allowed at all
    const q = policyOf({
      ...allowTools(['query']),
      deny: { mcp: { tools: [{ name: 'query', arguments: { sql: { regex: '\\bdrop\\b' } } }] } },
    });
    expect(q.toolDecision(['r'], SERVER, 'query').allowed).toBe(true);
    expect(q.callDecision(['r'], SERVER, 'query', { sql: 'select 1' }).allowed).toBe(true);
    expect(q.callDecision(['r'], SERVER, 'query', { sql: 'x; DROP table t' }).allowed).toBe(false);
    expect(q.callDecision(['r'], SERVER, 'query', { sql: 'x; ＤＲＯＰ table t' }).allowed).toBe(false);
    // Fail closed: a value the deny cannot judge.
    expect(q.callDecision(['r'], SERVER, 'query', { sql: ['drop'] }).allowed).toBe(false);
    expect(q.callDecision(['r'], SERVER, 'query', { SQL: 'drop' }).allowed).toBe(false);
    expect(q.callDecision(['r'], SERVER, 'query', {}).allowed).toBe(true);
  });

  it('an entry without rules decides by name; allows are a union', () => {
    expect(call('plain', { anything: 1 }).allowed).toBe(true);
    expect(call('unknown', {}).allowed).toBe(false);
  });
});

describe('readings', () => {
  it('paths: as written and normalised; unjudgeable ones are undefined', () => {
    expect(pathReadings('/srv/a/../b')).toEqual(['/srv/a/../b', '/srv/b']);
    expect(pathReadings('~/x')).toBeUndefined();
    expect(pathReadings('x/y')).toBeUndefined();
    expect(pathReadings('/srv/%2e%2e/x')).toBeUndefined();
  });

  it('URIs: decoded, dot segments resolved, re-printed', () => {
    const r = uriReadings('DEMO://h/a/%2e%2e/b%2531');
    expect(r[0]).toBe('DEMO://h/a/%2e%2e/b%2531');
    expect(r).toContain('demo://h/b%2531'); // a URL parser's reading
    expect(r).toContain('DEMO://h/b%31'); // decoded once, dots resolved
    expect(r).toContain('demo://h/b1'); // decoded twice, re-printed
  });

  it('resources and prompts: defaults, deny wins', () => {
    const open = policyOf(allowTools(['x']));
    expect(open.resourceDecision(['r'], SERVER, 'file:///etc/passwd').allowed).toBe(true);
    expect(open.promptDecision(['r'], SERVER, 'p').allowed).toBe(true);
    const closed = policyOf(allowTools(['x']), { defaultResources: 'none', defaultPrompts: 'none' });
    expect(closed.resourceDecision(['r'], SERVER, 'file:///etc/passwd').allowed).toBe(false);
    expect(closed.promptDecision(['r'], SERVER, 'p').allowed).toBe(false);
    expect(closed.namedPatterns('resources', ['r'], SERVER)).toEqual({ allow: [], deny: [], defaulted: [] });
    expect(open.namedPatterns('resources', ['r'], SERVER)).toEqual({ allow: ['*'], deny: [], defaulted: ['r'] });
    const empty = policyOf({ allow: { app_labels: { env: 'dev' }, mcp: { resources: [] } } });
    expect(empty.resourceDecision(['r'], SERVER, 'a://b').allowed).toBe(false);
  });
});
