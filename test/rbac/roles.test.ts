/**
 * Loading role documents: the seed roles from test/fixtures/roles, inline
 * roles, files and directories, multi-document YAML, and every error and
 * warning the loader gives (location included).
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { loadRoles, type Role } from '../../src/rbac/roles.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/roles');

function inline(...docs: unknown[]) {
  return loadRoles({ inline: docs, files: [], baseDir: FIXTURES });
}

function role(spec: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { kind: 'role', version: 'v7', metadata: { name: 'r' }, spec, ...extra };
}

function loadError(fn: () => unknown): AccessError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AccessError);
    return err as AccessError;
  }
  throw new Error('expected a configuration error');
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'mcp-access-roles-'));
}

describe('the seed roles (test/fixtures/roles)', () => {
  it('example-role (seed 000): env dev, every tool', () => {
    const { roles, warnings } = loadRoles({ inline: [], files: ['example-role.yaml'], baseDir: FIXTURES });
    expect(warnings).toEqual([]);
    expect(roles).toHaveLength(1);
    const r = roles[0]!;
    expect(r.name).toBe('example-role');
    expect(r.version).toBe('v6');
    expect(r.source).toBe('example-role.yaml');
    expect(r.toolsOnly).toBe(false);
    expect(r.allow.appLabels.entries.map((e) => [e.key, e.values.map((v) => v.text)])).toEqual([['env', ['dev']]]);
    expect(r.allow.tools.map((t) => [t.field, t.text, t.kind])).toEqual([['spec.allow.mcp.tools[0]', '*', 'glob']]);
    expect(r.deny.tools).toEqual([]);
  });

  it('llm-access (seed 003, mcp_tools directly under allow): the four read-only globs, no version, no app_labels — both reported', () => {
    const { roles, warnings } = loadRoles({ inline: [], files: ['llm-access.yaml'], baseDir: FIXTURES });
    const r = roles[0]!;
    expect(r.name).toBe('llm-access');
    expect(r.version).toBe('v8');
    expect(r.allow.tools.map((t) => [t.field, t.text])).toEqual([
      ['spec.allow.mcp_tools[0]', 'get_*'],
      ['spec.allow.mcp_tools[1]', 'list_*'],
      ['spec.allow.mcp_tools[2]', 'read_*'],
      ['spec.allow.mcp_tools[3]', 'search_files'],
    ]);
    expect(r.allow.tools.map((t) => t.kind)).toEqual(['glob', 'glob', 'glob', 'literal']);
    expect(r.toolsOnly).toBe(true);
    expect(warnings).toEqual([
      'llm-access.yaml: version: missing; read as v8 (the semantics of v6, v7 and v8 are the same for MCP access)',
      expect.stringContaining(
        'llm-access.yaml: role "llm-access" allows MCP tools but has no spec.allow.app_labels: its tools apply to every server',
      ),
    ]);
  });

  it('seed 003 exactly as written (`_ list_*`) is refused with the line, the column and the fix', () => {
    const err = loadError(() => loadRoles({ inline: [], files: ['seed-verbatim/llm-access.yaml'], baseDir: FIXTURES }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(
      'seed-verbatim/llm-access.yaml: line 8, column 7: not valid YAML: "_ list_*" is not a list item — did you mean "- list_*"?',
    );
  });

  it('the fixtures directory loads both seed roles, sorted by file name, and skips the subdirectory', () => {
    const { roles } = loadRoles({ inline: [], files: ['.'], baseDir: FIXTURES });
    expect(roles.map((r) => [r.name, r.source])).toEqual([
      ['example-role', 'example-role.yaml'],
      ['llm-access', 'llm-access.yaml'],
    ]);
  });
});

describe('sources', () => {
  it('inline roles are named roles[i]; files resolve against baseDir; multi-document files name each document', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'many.yml'),
      [
        'kind: role',
        'version: v8',
        'metadata: {name: a}',
        'spec: {allow: {app_labels: {x: y}, mcp: {tools: [t]}}}',
        '---',
        '---',
        'kind: role',
        'version: v8',
        'metadata: {name: b}',
        'spec: {}',
      ].join('\n'),
    );
    const { roles } = loadRoles({ inline: [role({}, { metadata: { name: 'c' } })], files: ['many.yml'], baseDir: dir });
    expect(roles.map((r) => [r.name, r.source])).toEqual([
      ['c', 'roles[0]'],
      ['a', 'many.yml (document 1)'],
      ['b', 'many.yml (document 3)'],
    ]);
  });

  it('a document that is a list holds several roles', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'list.yaml'),
      '- {kind: role, version: v6, metadata: {name: a}}\n- {kind: role, version: v6, metadata: {name: b}}\n',
    );
    const { roles } = loadRoles({ inline: [], files: [join(dir, 'list.yaml')], baseDir: '/' });
    expect(roles.map((r) => r.source)).toEqual([`${join(dir, 'list.yaml')}[0]`, `${join(dir, 'list.yaml')}[1]`]);
  });

  it('directories: only .yaml/.yml directly inside, hidden files skipped', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'nested'));
    writeFileSync(join(dir, 'b.yml'), 'kind: role\nversion: v7\nmetadata: {name: b}\n');
    writeFileSync(join(dir, 'a.yaml'), 'kind: role\nversion: v7\nmetadata: {name: a}\n');
    writeFileSync(join(dir, '.a.yaml.swp'), 'garbage: [');
    writeFileSync(join(dir, '.hidden.yaml'), 'garbage: [');
    writeFileSync(join(dir, 'notes.txt'), 'garbage: [');
    writeFileSync(join(dir, 'nested', 'c.yaml'), 'kind: role\nversion: v7\nmetadata: {name: c}\n');
    const { roles } = loadRoles({ inline: [], files: [dir], baseDir: '/' });
    expect(roles.map((r) => r.name)).toEqual(['a', 'b']);
  });

  it('a missing file is an error naming the roles_files entry', () => {
    const err = loadError(() => loadRoles({ inline: [], files: ['nope.yaml'], baseDir: tempDir() }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe('roles_files[0]: nope.yaml does not exist');
  });

  it('a YAML syntax error anywhere in a file rejects the whole file (no partial roles)', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'r.yaml'),
      'kind: role\nversion: v7\nmetadata: {name: a}\n---\nkind: role\nspec: {deny: [\n',
    );
    const err = loadError(() => loadRoles({ inline: [], files: ['r.yaml'], baseDir: dir }));
    expect(err.message).toMatch(/^r\.yaml: line \d+, column \d+: not valid YAML/);
  });

  it('duplicate YAML keys are an error (a second `deny:` must not silently replace the first)', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'r.yaml'),
      'kind: role\nversion: v7\nmetadata: {name: a}\nspec:\n  deny: {mcp: {tools: [x]}}\n  deny: {}\n',
    );
    const err = loadError(() => loadRoles({ inline: [], files: ['r.yaml'], baseDir: dir }));
    expect(err.message).toMatch(/^r\.yaml: line 6, column 3: not valid YAML: Map keys must be unique/);
  });

  it('a role name defined twice is an error naming both places', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'r.yaml'), 'kind: role\nversion: v7\nmetadata: {name: r}\n');
    const err = loadError(() => loadRoles({ inline: [role({})], files: ['r.yaml'], baseDir: dir }));
    expect(err.message).toBe('r.yaml: role "r" is already defined in roles[0]');
  });
});

describe('document validation', () => {
  it.each([
    [{ version: 'v7', metadata: { name: 'x' } }, 'roles[0]: kind: is required and must be "role"'],
    [{ kind: 'user', version: 'v7', metadata: { name: 'x' } }, 'roles[0]: kind: is "user", expected "role"'],
    [
      { kind: 'role', version: 'v5', metadata: { name: 'x' } },
      'roles[0]: version: "v5" is not supported (use v6, v7, v8)',
    ],
    [{ kind: 'role', version: 'v7' }, 'roles[0]: metadata: is required and must be a mapping with name'],
    [
      { kind: 'role', version: 'v7', metadata: { name: '' } },
      'roles[0]: metadata.name: is required and must be a non-empty string',
    ],
    [
      { kind: 'role', version: 'v7', metadata: { name: 'x' }, spec: [] },
      'roles[0]: spec: must be a mapping with allow and/or deny',
    ],
    [role({ allow: 'everything' }), 'roles[0]: spec.allow: must be a mapping'],
    [
      role({ allow: { mcp: { tools: { a: 1 } } } }),
      'roles[0]: spec.allow.mcp.tools: must be a list of tool names, globs or ^…$ regexes',
    ],
    [
      role({ allow: { app_labels: ['env'] } }),
      'roles[0]: spec.allow.app_labels: must be a mapping of label names to a value or a list of values',
    ],
    [
      role({ allow: { app_labels: { env: { a: 1 } } } }),
      'roles[0]: spec.allow.app_labels.env: must be a string or a list of strings',
    ],
    [
      role({ deny: { app_labels: { env: ['dev', null] } } }),
      'roles[0]: spec.deny.app_labels.env[1]: must be a string or a list of strings',
    ],
    ['just text', 'roles[0]: (document): a role document must be a mapping with kind, version, metadata and spec'],
  ])('%j → %s', (doc, message) => {
    const err = loadError(() => inline(doc));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(message);
  });

  it("the label key '*' takes only the value '*'", () => {
    expect(inline(role({ allow: { app_labels: { '*': '*' } } })).roles[0]!.allow.appLabels.entries[0]!.key).toBe('*');
    const err = loadError(() => inline(role({ allow: { app_labels: { '*': 'dev' } } })));
    expect(err.message).toBe(
      `roles[0]: spec.allow.app_labels.'*': the key '*' only takes the value '*' (matches every server), not "dev"`,
    );
  });

  it('an invalid regular expression is an error with its exact location, on either side', () => {
    const allow = loadError(() =>
      inline(role({ allow: { app_labels: { '*': '*' }, mcp: { tools: ['a', 'b*', '^(get|list$'] } } })),
    );
    expect(allow.code).toBe('CONFIG_INVALID');
    expect(allow.message).toMatch(
      /^roles\[0\]: spec\.allow\.mcp\.tools\[2\]: invalid regular expression "\^\(get\|list\$": .*Unterminated group/,
    );

    const deny = loadError(() => inline(role({ deny: { mcp_tools: ['^[z-a]$'] } })));
    expect(deny.message).toMatch(/^roles\[0\]: spec\.deny\.mcp_tools\[0\]: invalid regular expression "\^\[z-a\]\$": /);

    const label = loadError(() => inline(role({ allow: { app_labels: { env: ['dev', '^(prod$'] } } })));
    expect(label.message).toMatch(/^roles\[0\]: spec\.allow\.app_labels\.env\[1\]: invalid regular expression/);

    const dir = tempDir();
    writeFileSync(
      join(dir, 'bad.yaml'),
      'kind: role\nversion: v8\nmetadata: {name: bad}\nspec:\n  allow:\n    mcp:\n      tools: [read_file, "^(unclosed$"]\n',
    );
    const fromFile = loadError(() => loadRoles({ inline: [], files: ['bad.yaml'], baseDir: dir }));
    expect(fromFile.message).toMatch(/^bad\.yaml: spec\.allow\.mcp\.tools\[1\]: invalid regular expression/);
  });
});

describe('warnings: reported, never granting', () => {
  it('unknown fields at every level are reported and ignored', () => {
    const { roles, warnings } = inline({
      kind: 'role',
      version: 'v7',
      sub_kind: 'x',
      metadata: { name: 'r', expires: '2020-01-01', description: 'fine' },
      spec: {
        options: { max_session_ttl: '8h' },
        allow: {
          app_labels: { env: 'dev' },
          logins: ['root'],
          node_labels: { '*': '*' },
          mcp: { tools: ['a'], resources: ['*'] },
        },
        deny: { rules: [] },
      },
    });
    expect(warnings).toEqual([
      'roles[0]: sub_kind: not a role field mcp-access uses (ignored)',
      'roles[0]: metadata.expires: not used by mcp-access (ignored)',
      'roles[0]: spec.options: not used by mcp-access (ignored)',
      'roles[0]: spec.allow.logins: not used by mcp-access (ignored; it grants nothing)',
      'roles[0]: spec.allow.node_labels: not used by mcp-access (ignored; it grants nothing)',
      'roles[0]: spec.deny.rules: not used by mcp-access (ignored)',
    ]);
    expect(roles[0]!.allow.tools.map((t) => t.text)).toEqual(['a']);
    // mcp.resources is read since issue 15 (docs/rbac.md, "Resources and prompts").
    expect(roles[0]!.allow.resources!.map((t) => t.text)).toEqual(['*']);
  });

  it('non-string tool entries: ignored on allow; on deny they match every tool (fail closed)', () => {
    const { roles, warnings } = inline(
      role({ allow: { app_labels: { '*': '*' }, mcp: { tools: [42, 'ok'] } }, deny: { mcp: { tools: [{ a: 1 }] } } }),
    );
    const r: Role = roles[0]!;
    expect(r.allow.tools.map((t) => t.text)).toEqual(['ok']);
    expect(r.deny.tools).toHaveLength(1);
    expect(r.deny.tools[0]!.kind).toBe('unevaluable');
    expect(r.deny.tools[0]!.test('anything')).toBe(true);
    expect(warnings).toEqual([
      'roles[0]: spec.allow.mcp.tools[0]: 42 is not a string (ignored; it grants nothing)',
      'roles[0]: spec.deny.mcp.tools[0]: {"a":1} is not a string; this deny cannot be evaluated and matches every tool (fail closed)',
    ]);
  });

  it('templates ({{internal.mcp_tools}}) cannot be expanded: allow grants nothing, deny matches everything', () => {
    const { roles, warnings } = inline(
      role({
        allow: { app_labels: { '*': '*' }, mcp: { tools: ['{{internal.mcp_tools}}'] } },
        deny: { mcp: { tools: ['{{external.denied}}'] } },
      }),
    );
    expect(roles[0]!.allow.tools[0]!.test('read_file')).toBe(false);
    expect(roles[0]!.deny.tools[0]!.test('read_file')).toBe(true);
    expect(warnings).toEqual([
      'roles[0]: spec.allow.mcp.tools[0]: "{{internal.mcp_tools}}" is a template, expanded from the identity\'s traits (identity issue --trait); for an identity without that trait it grants nothing',
      'roles[0]: spec.deny.mcp.tools[0]: "{{external.denied}}" is a template, expanded from the identity\'s traits (identity issue --trait); for an identity without that trait it matches every tool (fail closed)',
    ]);
  });

  it('app_labels_expression: read when mcp-access knows the form; otherwise allow reaches nothing, deny matches every server', () => {
    const read = inline(role({ deny: { app_labels_expression: 'labels["env"] == "prod"' } }));
    expect(read.roles[0]!.deny.appLabels).toMatchObject({
      expression: 'labels["env"] == "prod"',
      expressionOnly: true,
    });
    const { roles, warnings } = inline(
      role({
        allow: { app_labels_expression: 'regexp.match(labels["env"], "^d")', mcp: { tools: ['*'] } },
        deny: { app_labels_expression: 'labels["env"] == ' },
      }),
    );
    expect(roles[0]!.allow.appLabels.unevaluable).toBe('app_labels_expression');
    expect(roles[0]!.deny.appLabels.unevaluable).toBe('app_labels_expression');
    expect(warnings.some((w) => /spec\.allow\.app_labels_expression: .*so this role reaches no server/.test(w))).toBe(
      true,
    );
    expect(warnings.some((w) => /spec\.deny\.app_labels_expression: .*this deny matches every server/.test(w))).toBe(
      true,
    );
  });

  it('suspicious entries are pointed out: whitespace, half a regex, empty, both mcp.tools and mcp_tools', () => {
    const { warnings } = inline(
      role({ allow: { app_labels: { a: 'b' }, mcp: { tools: ['get_* list_*', '^read_.*', ''] }, mcp_tools: ['x'] } }),
    );
    expect(warnings).toEqual([
      'roles[0]: spec.allow.mcp.tools[0]: "get_* list_*" contains whitespace, which no valid tool name has; check for a YAML typo',
      'roles[0]: spec.allow.mcp.tools[1]: "^read_.*" is read as a glob: a regular expression must both start with ^ and end with $',
      'roles[0]: spec.allow.mcp.tools[2]: an empty entry matches no tool',
      'roles[0]: spec.allow has both mcp.tools and mcp_tools; both lists apply',
    ]);
  });

  it('a role that reaches servers but allows no tools says so', () => {
    const { warnings } = inline(role({ allow: { app_labels: { env: 'dev' } } }));
    expect(warnings).toEqual([
      'roles[0]: role "r" reaches servers but allows no MCP tools (no spec.allow.mcp.tools): its servers show no tools',
    ]);
  });

  it('a single string where a list is expected is one entry (as in Teleport)', () => {
    const { roles } = inline(role({ allow: { app_labels: { a: 'b' }, mcp: { tools: 'read_*' } } }));
    expect(roles[0]!.allow.tools.map((t) => t.text)).toEqual(['read_*']);
  });
});
