/**
 * Policy decisions: server reach by labels, tool decisions (literal, glob,
 * regex), union of allows, deny wins, no entries → no tools, fail-closed
 * denies, unknown roles, and the seed roles against the real filesystem
 * server's tool names.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Policy } from '../../src/rbac/policy.js';
import { loadRoles } from '../../src/rbac/roles.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/roles');

function policyOf(...docs: unknown[]): Policy {
  return new Policy(loadRoles({ inline: docs, files: [], baseDir: FIXTURES }).roles);
}

function role(name: string, allow?: unknown, deny?: unknown): Record<string, unknown> {
  return {
    kind: 'role',
    version: 'v8',
    metadata: { name },
    spec: { ...(allow ? { allow } : {}), ...(deny ? { deny } : {}) },
  };
}

const dev = { name: 'files', labels: { env: 'dev', team: 'ml' } };
const prod = { name: 'billing', labels: { env: 'prod', region: 'eu-west-1' } };
const bare = { name: 'bare', labels: {} };

/**
 * The tool names the real @modelcontextprotocol/server-filesystem registers (read from its code, not typed in
 * here).
 */
function filesystemTools(): string[] {
  const src = readFileSync(
    resolve(import.meta.dirname, '../../node_modules/@modelcontextprotocol/server-filesystem/dist/index.js'),
    'utf8',
  );
  return [...src.matchAll(/registerTool\(\s*"([a-z_]+)"/g)].map((m) => m[1]!);
}

describe('server reach (app_labels)', () => {
  const reach = (labels: unknown, server: { name: string; labels: Record<string, string> }) =>
    policyOf(role('r', { app_labels: labels, mcp: { tools: ['*'] } })).canReachServer(['r'], server).allowed;

  it('exact value', () => {
    expect(reach({ env: 'dev' }, dev)).toBe(true);
    expect(reach({ env: 'dev' }, prod)).toBe(false);
    expect(reach({ env: 'Dev' }, dev)).toBe(false);
  });
  it('every key must match', () => {
    expect(reach({ env: 'dev', team: 'ml' }, dev)).toBe(true);
    expect(reach({ env: 'dev', team: 'web' }, dev)).toBe(false);
    expect(reach({ env: 'dev', owner: '*' }, dev)).toBe(false);
  });
  it('value * needs the label to exist', () => {
    expect(reach({ env: '*' }, dev)).toBe(true);
    expect(reach({ env: '*' }, bare)).toBe(false);
  });
  it('a list of values matches any of them', () => {
    expect(reach({ env: ['staging', 'prod'] }, prod)).toBe(true);
    expect(reach({ env: ['staging', 'prod'] }, dev)).toBe(false);
    expect(reach({ env: [] }, dev)).toBe(false);
  });
  it('regex ^…$ and glob values', () => {
    expect(reach({ region: '^eu-(west|north)-[0-9]+$' }, prod)).toBe(true);
    expect(reach({ region: '^us-.*$' }, prod)).toBe(false);
    expect(reach({ region: 'eu-*' }, prod)).toBe(true);
    expect(reach({ region: 'us-*' }, prod)).toBe(false);
  });
  it("key '*' with value '*' matches every server, labelled or not", () => {
    expect(reach({ '*': '*' }, dev)).toBe(true);
    expect(reach({ '*': '*' }, bare)).toBe(true);
  });
  it('an empty selector matches nothing', () => {
    expect(reach({}, dev)).toBe(false);
  });

  it('deny.app_labels wins over any allow, from any role', () => {
    const p = policyOf(
      role('all', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }),
      role('no-prod', undefined, { app_labels: { env: 'prod' } }),
    );
    expect(p.canReachServer(['all'], prod).allowed).toBe(true);
    const d = p.canReachServer(['all', 'no-prod'], prod);
    expect(d).toEqual({
      allowed: false,
      role: 'no-prod',
      rule: 'spec.deny.app_labels {env: prod}',
      reason:
        'server billing (env=prod, region=eu-west-1) is denied by role no-prod (spec.deny.app_labels {env: prod})',
    });
    expect(p.canReachServer(['all', 'no-prod'], dev).allowed).toBe(true);
    expect(p.toolDecision(['all', 'no-prod'], prod, 'anything').allowed).toBe(false);
  });

  it('a deny selector that cannot be evaluated (app_labels_expression) denies every server', () => {
    const p = policyOf(
      role('all', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }),
      role('expr', undefined, { app_labels_expression: 'regexp.match(labels.env, "prod")' }),
    );
    expect(p.canReachServer(['all', 'expr'], dev)).toMatchObject({ allowed: false, role: 'expr' });
  });

  it('app_labels_expression: ==, &&, ||, !, contains with traits; allow needs labels and expression, deny either', () => {
    const p = policyOf(
      role('expr-allow', {
        app_labels_expression: 'labels["env"] == "dev" && !(labels.team == "ops")',
        mcp: { tools: ['*'] },
      }),
      role('both', {
        app_labels: { team: 'ml' },
        app_labels_expression: 'labels.env == "prod"',
        mcp: { tools: ['*'] },
      }),
      role('teams', {
        app_labels_expression: 'contains(user.spec.traits["teams"], labels["team"])',
        mcp: { tools: ['*'] },
      }),
      role('no-prod', undefined, { app_labels_expression: 'labels.env == "prod" || hasPrefix(labels.team, "sec")' }),
    );
    expect(p.canReachServer(['expr-allow'], dev).allowed).toBe(true);
    expect(p.canReachServer(['expr-allow'], prod).allowed).toBe(false);
    expect(p.canReachServer(['both'], dev).allowed).toBe(false); // team ml, but env dev
    expect(p.canReachServer({ roles: ['teams'], traits: { teams: ['ml'] } }, dev).allowed).toBe(true);
    expect(p.canReachServer({ roles: ['teams'], traits: { teams: ['ops'] } }, dev).allowed).toBe(false);
    expect(p.canReachServer(['teams'], dev).allowed).toBe(false);
    expect(p.canReachServer(['expr-allow', 'no-prod'], dev).allowed).toBe(true);
    expect(
      p.canReachServer(['expr-allow', 'no-prod'], { name: 's', labels: { env: 'dev', team: 'security' } }),
    ).toMatchObject({
      allowed: false,
      role: 'no-prod',
    });
  });

  it('explains an allow by naming the role and the selector', () => {
    const p = policyOf(role('dev', { app_labels: { env: 'dev' }, mcp: { tools: ['*'] } }));
    expect(p.canReachServer(['dev'], dev)).toEqual({
      allowed: true,
      role: 'dev',
      rule: 'spec.allow.app_labels {env: dev}',
      reason: 'role dev allows servers labelled {env: dev}; files has env=dev, team=ml',
    });
    expect(p.canReachServer(['dev'], prod)).toEqual({
      allowed: false,
      reason: 'no role of dev allows server billing (env=prod, region=eu-west-1): no spec.allow.app_labels matches',
    });
  });
});

describe('tool decisions', () => {
  it('literal, glob and ^…$ regex entries', () => {
    const p = policyOf(
      role('r', { app_labels: { '*': '*' }, mcp: { tools: ['search_files', 'read_*', '^(get|list)_[a-z_]+$'] } }),
    );
    const allowed = (t: string) => p.toolDecision(['r'], dev, t).allowed;
    expect(allowed('search_files')).toBe(true);
    expect(allowed('search_files2')).toBe(false);
    expect(allowed('Search_files')).toBe(false);
    expect(allowed('read_file')).toBe(true);
    expect(allowed('read_')).toBe(true);
    expect(allowed('xread_file')).toBe(false);
    expect(allowed('get_file_info')).toBe(true);
    expect(allowed('list_directory')).toBe(true);
    expect(allowed('list_')).toBe(false);
    expect(allowed('write_file')).toBe(false);
  });

  it('glob characters other than * are literal; regex metacharacters in globs are escaped', () => {
    const p = policyOf(role('r', { app_labels: { '*': '*' }, mcp: { tools: ['a.b*', 'x?y', '(c)*'] } }));
    expect(p.toolDecision(['r'], dev, 'a.bc').allowed).toBe(true);
    expect(p.toolDecision(['r'], dev, 'aXbc').allowed).toBe(false);
    expect(p.toolDecision(['r'], dev, 'x?y').allowed).toBe(true);
    expect(p.toolDecision(['r'], dev, 'xzy').allowed).toBe(false);
    expect(p.toolDecision(['r'], dev, '(c)d').allowed).toBe(true);
  });

  it('the union of the allows of every role that reaches the server', () => {
    const p = policyOf(
      role('reader', { app_labels: { env: 'dev' }, mcp: { tools: ['read_*'] } }),
      role('writer', { app_labels: { team: 'ml' }, mcp: { tools: ['write_file'] } }),
      role('prod-admin', { app_labels: { env: 'prod' }, mcp: { tools: ['*'] } }),
    );
    const roles = ['reader', 'writer', 'prod-admin'];
    expect(p.toolDecision(roles, dev, 'read_file')).toMatchObject({
      allowed: true,
      role: 'reader',
      rule: 'spec.allow.mcp.tools[0] "read_*"',
    });
    expect(p.toolDecision(roles, dev, 'write_file')).toMatchObject({ allowed: true, role: 'writer' });
    // prod-admin's '*' applies only on servers prod-admin reaches.
    expect(p.toolDecision(roles, dev, 'delete_everything').allowed).toBe(false);
    expect(p.toolPatterns(roles, dev)).toEqual({ allow: ['read_*', 'write_file'], deny: [] });
  });

  it('deny wins over any allow, whichever role holds it', () => {
    const p = policyOf(
      role('all', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }),
      role('no-writes', undefined, { mcp: { tools: ['write_*', '^(edit|move)_file$'] } }),
    );
    const roles = ['all', 'no-writes'];
    expect(p.toolDecision(roles, dev, 'write_file')).toEqual({
      allowed: false,
      role: 'no-writes',
      rule: 'spec.deny.mcp.tools[0] "write_*"',
      reason: 'tool "write_file" is denied by role no-writes (spec.deny.mcp.tools[0] "write_*")',
    });
    expect(p.toolDecision(roles, dev, 'move_file')).toMatchObject({
      allowed: false,
      rule: 'spec.deny.mcp.tools[1] "^(edit|move)_file$"',
    });
    expect(p.toolDecision(roles, dev, 'read_file').allowed).toBe(true);
    expect(p.toolPatterns(roles, dev)).toEqual({ allow: ['*'], deny: ['write_*', '^(edit|move)_file$'] });
  });

  it('deny matches without regard to letter case (an upstream might look names up that way)', () => {
    const p = policyOf(
      role(
        'r',
        { app_labels: { '*': '*' }, mcp: { tools: ['*'] } },
        { mcp: { tools: ['write_file', 'edit_*', '^move_.*$'] } },
      ),
    );
    for (const t of ['WRITE_FILE', 'Write_File', 'EDIT_file', 'Move_File'])
      expect(p.toolDecision(['r'], dev, t).allowed).toBe(false);
  });

  it("deny tools apply on every server, whatever the denying role's labels (labels never narrow a deny)", () => {
    const p = policyOf(
      role('all', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }),
      role(
        'prod-readonly',
        { app_labels: { env: 'prod' } },
        { app_labels: { region: 'us-*' }, mcp: { tools: ['write_file'] } },
      ),
    );
    // prod-readonly neither reaches nor denies dev by labels, yet its tool deny applies there.
    expect(p.toolDecision(['all', 'prod-readonly'], dev, 'write_file')).toMatchObject({
      allowed: false,
      role: 'prod-readonly',
    });
  });

  it('no tool entries in the roles that reach the server → no tools', () => {
    const p = policyOf(
      role('labels-only', { app_labels: { env: 'dev' } }),
      role('elsewhere', { app_labels: { env: 'prod' }, mcp: { tools: ['*'] } }),
    );
    expect(p.canReachServer(['labels-only', 'elsewhere'], dev).allowed).toBe(true);
    expect(p.toolDecision(['labels-only', 'elsewhere'], dev, 'read_file')).toEqual({
      allowed: false,
      reason: 'no role that reaches server files allows any tool (no spec.allow.mcp.tools), so "read_file" is denied',
    });
    expect(p.toolPatterns(['labels-only', 'elsewhere'], dev)).toEqual({ allow: [], deny: [] });
  });

  it('a tool on an unreachable server is denied with the reach reason', () => {
    const p = policyOf(role('dev', { app_labels: { env: 'dev' }, mcp: { tools: ['*'] } }));
    expect(p.toolDecision(['dev'], prod, 'read_file')).toEqual(p.canReachServer(['dev'], prod));
    expect(p.toolPatterns(['dev'], prod)).toEqual({ allow: [], deny: [] });
  });

  it('deny entries that cannot be evaluated match every tool (fail closed); on allow they match none', () => {
    const p = policyOf(
      role('all', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }),
      role('templated', undefined, { mcp: { tools: ['{{internal.denied_tools}}'] } }),
      role('junk', undefined, { mcp: { tools: [17] } }),
      role('templated-allow', { app_labels: { '*': '*' }, mcp: { tools: ['{{internal.mcp_tools}}'] } }),
    );
    expect(p.toolDecision(['all', 'templated'], dev, 'read_file')).toMatchObject({ allowed: false, role: 'templated' });
    expect(p.toolDecision(['all', 'templated'], dev, 'read_file').reason).toContain(
      'cannot be evaluated, so it denies every tool (fail closed)',
    );
    expect(p.toolDecision(['all', 'junk'], dev, 'read_file').allowed).toBe(false);
    expect(p.toolDecision(['templated-allow'], dev, 'read_file').allowed).toBe(false);
  });

  it('a deny regex whose evaluation throws counts as a match (the engine failing is simulated: no real pattern fails on demand)', () => {
    const p = policyOf(
      role('all', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }),
      role('regex-deny', undefined, { mcp: { tools: ['^(?:a|b)+$'] } }),
    );
    expect(p.toolDecision(['all', 'regex-deny'], dev, 'read_file').allowed).toBe(true);
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only put back on RegExp.prototype
    const original = RegExp.prototype.test;
    RegExp.prototype.test = () => {
      throw new RangeError('Maximum call stack size exceeded');
    };
    try {
      expect(p.toolDecision(['all', 'regex-deny'], dev, 'read_file').allowed).toBe(false);
    } finally {
      RegExp.prototype.test = original;
    }
  });
});

describe('identities and unknown roles', () => {
  const p = policyOf(role('dev', { app_labels: { env: 'dev' }, mcp: { tools: ['*'] } }));

  it('role names no document defines are reported and grant nothing', () => {
    expect(p.unknownRoles(['dev', 'ghost', 'admin', 'ghost'])).toEqual(['ghost', 'admin']);
    expect(p.canReachServer(['ghost'], dev)).toEqual({
      allowed: false,
      reason: 'the identity has no known role (roles: ghost), so it reaches no server',
    });
    expect(p.canReachServer([], dev).allowed).toBe(false);
    expect(p.canReachServer(['ghost', 'dev'], dev).allowed).toBe(true);
  });

  it('decisions are stable across repeated calls (cached per roles and server)', () => {
    for (let i = 0; i < 3; i++) expect(p.toolDecision(['dev'], dev, 'x').allowed).toBe(true);
    expect(p.toolDecision(['dev'], { name: 'files', labels: { env: 'prod' } }, 'x').allowed).toBe(false);
  });
});

describe('the seed roles against the real filesystem server (enrolled with env: dev)', () => {
  const { roles } = loadRoles({ inline: [], files: ['.'], baseDir: FIXTURES });
  const policy = new Policy(roles);
  const filesystem = { name: 'filesystem', labels: { env: 'dev' } };
  const tools = filesystemTools();
  const WRITES = ['write_file', 'edit_file', 'move_file', 'create_directory'];

  it('the server registers the tools the issue talks about', () => {
    expect(tools).toEqual(
      expect.arrayContaining([
        ...WRITES,
        'read_file',
        'read_text_file',
        'list_directory',
        'search_files',
        'get_file_info',
      ]),
    );
  });

  it('llm-access sees exactly the read tools: get_*, list_*, read_*, search_files', () => {
    const visible = tools.filter((t) => policy.toolDecision(['llm-access'], filesystem, t).allowed);
    expect(visible).toEqual(tools.filter((t) => /^(get_|list_|read_)/.test(t) || t === 'search_files'));
    expect(visible).toContain('read_text_file');
    expect(visible).toContain('list_allowed_directories');
    for (const t of [...WRITES, 'directory_tree'])
      expect(policy.toolDecision(['llm-access'], filesystem, t).allowed).toBe(false);
    expect(policy.toolPatterns(['llm-access'], filesystem)).toEqual({
      allow: ['get_*', 'list_*', 'read_*', 'search_files'],
      deny: [],
    });
  });

  it('llm-access has no app_labels: it reaches every server, and policy says why', () => {
    expect(policy.canReachServer(['llm-access'], filesystem)).toEqual({
      allowed: true,
      role: 'llm-access',
      rule: 'spec.allow without app_labels: every server',
      reason:
        'role llm-access allows MCP tools and names no app_labels, so it applies to every server, including filesystem',
    });
    expect(policy.canReachServer(['llm-access'], { name: 'other', labels: { env: 'prod' } }).allowed).toBe(true);
  });

  it('example-role reaches env: dev only, with every tool', () => {
    for (const t of tools) expect(policy.toolDecision(['example-role'], filesystem, t).allowed).toBe(true);
    expect(policy.canReachServer(['example-role'], { name: 'p', labels: { env: 'prod' } }).allowed).toBe(false);
  });

  it('both roles together: the union, so every tool (allow is additive; only deny restricts)', () => {
    expect(policy.toolDecision(['example-role', 'llm-access'], filesystem, 'write_file').allowed).toBe(true);
  });
});

describe('the last answer reused for the next message', () => {
  const p = policyOf(
    role('dev', { app_labels: { env: 'dev' }, mcp: { tools: ['*'] } }),
    role('reader', { app_labels: { env: 'dev' }, mcp: { tools: ['read_*'] } }, { mcp: { tools: ['read_secret'] } }),
  );

  it('is never the answer for other roles, even in the same array changed in place', () => {
    const roles = ['dev'];
    expect(p.toolDecision(roles, dev, 'write_file').allowed).toBe(true);
    roles[0] = 'reader';
    expect(p.toolDecision(roles, dev, 'write_file').allowed).toBe(false);
    expect(p.toolDecision(['reader'], dev, 'read_file').allowed).toBe(true);
    roles.push('dev');
    expect(p.toolDecision(roles, dev, 'write_file').allowed).toBe(true);
    expect(p.toolDecision(roles, dev, 'read_secret').allowed).toBe(false);
  });

  it('is never the answer for another server, or the same server with other labels', () => {
    const server = { name: 'files', labels: { env: 'dev' } as Record<string, string> };
    expect(p.toolDecision(['dev'], server, 'write_file').allowed).toBe(true);
    server.labels.env = 'prod';
    expect(p.toolDecision(['dev'], server, 'write_file').allowed).toBe(false);
    server.labels.env = 'dev';
    expect(p.toolDecision(['dev'], server, 'write_file').allowed).toBe(true);
    expect(p.toolDecision(['dev'], { name: 'files', labels: { env: 'prod' } }, 'write_file').allowed).toBe(false);
    expect(p.toolDecision(['dev'], { name: 'other', labels: { env: 'prod' } }, 'write_file').allowed).toBe(false);
    expect(p.toolDecision(['dev'], { name: 'files', labels: {} }, 'write_file').allowed).toBe(false);
  });

  it('is not used for an identity with traits', () => {
    const t = policyOf(role('t', { app_labels: { env: '{{internal.envs}}' }, mcp: { tools: ['*'] } }));
    expect(t.toolDecision({ roles: ['t'], traits: { envs: ['dev'] } }, dev, 'x').allowed).toBe(true);
    expect(t.toolDecision({ roles: ['t'], traits: { envs: ['prod'] } }, dev, 'x').allowed).toBe(false);
    expect(t.toolDecision({ roles: ['t'] }, dev, 'x').allowed).toBe(false);
  });
});
