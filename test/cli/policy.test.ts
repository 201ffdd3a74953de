/**
 * `mcp-access policy check` through the real executable (built CLI), with a
 * real proxy configuration that loads the seed roles from
 * test/fixtures/roles via roles_files plus inline roles.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';

const ROLES = resolve(import.meta.dirname, '../fixtures/roles');

const run = runCli;

let dir: string;
let config: string;

function writeConfig(name: string, roles: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    stringify({
      cluster: 'test',
      listen: '127.0.0.1:0',
      ca_dir: './ca',
      servers: [
        { name: 'filesystem', description: 'files', labels: { env: 'dev' }, command: 'node', args: ['server.js'] },
        { name: 'billing', labels: { env: 'prod' }, url: 'http://127.0.0.1:1/mcp' },
      ],
      roles,
      roles_files: [ROLES],
    }),
  );
  return path;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-access-policy-cli-'));
  config = writeConfig('proxy.yaml', [
    { kind: 'role', version: 'v8', metadata: { name: 'no-moves' }, spec: { deny: { mcp: { tools: ['move_*'] } } } },
    { kind: 'role', version: 'v8', metadata: { name: 'no-prod' }, spec: { deny: { app_labels: { env: 'prod' } } } },
  ]);
});

describe('policy check', () => {
  it('llm-access, write_file on the env: dev filesystem server: denied (exit 5), with the reason and the patterns', async () => {
    const r = await run([
      'policy',
      'check',
      '--config',
      config,
      '--roles',
      'llm-access',
      '--server',
      'filesystem',
      '--tool',
      'write_file',
    ]);
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('server  filesystem (env=dev)');
    expect(r.stdout).toContain('access  allowed by role llm-access (spec.allow without app_labels: every server)');
    expect(r.stdout).toContain(
      'role llm-access allows MCP tools and names no app_labels, so it applies to every server, including filesystem',
    );
    expect(r.stdout).toContain('tools   allow: get_*, list_*, read_*, search_files');
    expect(r.stdout).toContain('tool    write_file: DENIED');
    expect(r.stdout).toContain(
      'no role allows tool "write_file" on server filesystem (allowed: get_*, list_*, read_*, search_files)',
    );
    expect(r.stdout).toContain('has no spec.allow.app_labels: its tools apply to every server');
  });

  it('llm-access, read_file: allowed (exit 0) by the read_* entry', async () => {
    const r = await run([
      'policy',
      'check',
      '--config',
      config,
      '--roles',
      'llm-access',
      '--server',
      'filesystem',
      '--tool',
      'read_file',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('tool    read_file: allowed by role llm-access (spec.allow.mcp_tools[2] "read_*")');
  });

  it('a deny in another role wins, and names its role and rule', async () => {
    const r = await run([
      'policy',
      'check',
      '-c',
      config,
      '--roles',
      'example-role,no-moves',
      '--server',
      'filesystem',
      '--tool',
      'move_file',
    ]);
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('tool    move_file: DENIED by role no-moves (spec.deny.mcp.tools[0] "move_*")');
    expect(r.stdout).toContain('        deny:  move_*');
  });

  it('server reach without --tool: example-role does not reach env: prod (exit 5); a deny.app_labels names itself', async () => {
    const r = await run(['policy', 'check', '-c', config, '--roles', 'example-role', '--server', 'billing']);
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('access  DENIED');
    expect(r.stdout).toContain(
      'no role of example-role allows server billing (env=prod): no spec.allow.app_labels matches',
    );
    const d = await run([
      'policy',
      'check',
      '-c',
      config,
      '--roles',
      'llm-access',
      '--roles',
      'no-prod',
      '--server',
      'billing',
    ]);
    expect(d.code).toBe(5);
    expect(d.stdout).toContain('access  DENIED by role no-prod (spec.deny.app_labels {env: prod})');
  });

  it('unknown roles are reported and grant nothing', async () => {
    const r = await run([
      'policy',
      'check',
      '-c',
      config,
      '--roles',
      'ghost',
      '--server',
      'filesystem',
      '--format',
      'json',
    ]);
    expect(r.code).toBe(5);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      server: 'filesystem',
      roles: ['ghost'],
      unknownRoles: ['ghost'],
      reach: { allowed: false },
      tools: { allow: [], deny: [] },
    });
  });

  it('--format json carries the decisions', async () => {
    const r = await run([
      'policy',
      'check',
      '-c',
      config,
      '--roles',
      'example-role',
      '--server',
      'filesystem',
      '--tool',
      'edit_file',
      '--format',
      'json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      reach: { allowed: true, role: 'example-role', rule: 'spec.allow.app_labels {env: dev}' },
      tools: { allow: ['*'], deny: [] },
      tool: { name: 'edit_file', allowed: true, role: 'example-role', rule: 'spec.allow.mcp.tools[0] "*"' },
    });
  });

  it('an unknown server: exit 6 naming the configured ones', async () => {
    const r = await run(['policy', 'check', '-c', config, '--roles', 'llm-access', '--server', 'nope']);
    expect(r.code).toBe(6);
    expect(r.stderr).toBe(
      `mcp-access: server "nope" is not in ${config} (servers: filesystem, billing) (pass one of the configured server names to --server)\n`,
    );
  });

  it('an invalid regex in an inline role: exit 7 with its location', async () => {
    const bad = writeConfig('bad.yaml', [
      {
        kind: 'role',
        version: 'v8',
        metadata: { name: 'bad' },
        spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['a', '^(b$'] } } },
      },
    ]);
    const r = await run(['policy', 'check', '-c', bad, '--roles', 'bad', '--server', 'filesystem']);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(
      /^mcp-access: roles\[0\]: spec\.allow\.mcp\.tools\[1\]: invalid regular expression "\^\(b\$": .+ \(fix the role document \(see docs\/rbac\.md\)\)\n$/,
    );
  });
});

describe('policy check: resources, prompts and arguments (issue 15)', () => {
  let cfg: string;
  beforeAll(() => {
    cfg = writeConfig('issue15.yaml', [
      {
        kind: 'role',
        version: 'v8',
        metadata: { name: 'docs' },
        spec: {
          allow: {
            app_labels: { env: 'dev' },
            mcp: {
              tools: [{ name: 'read_text_file', arguments: { path: { path: '/srv/public/**' } } }],
              resources: ['file:///srv/public/*'],
              prompts: ['summarise'],
            },
          },
          deny: { mcp: { resources: ['*secret*'], prompts: ['debug-*'] } },
        },
      },
    ]);
  });
  const check = (...args: string[]) => run(['policy', 'check', '-c', cfg, '--server', 'filesystem', ...args]);

  it('shows the resource and prompt patterns, and the default for roles that do not write them', async () => {
    const r = await check('--roles', 'docs,llm-access');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('resources allow: file:///srv/public/*, *');
    expect(r.stdout).toContain('          deny:  *secret*');
    expect(r.stdout).toContain('llm-access does not write mcp.resources: every resource (rbac.default_resources: all)');
    expect(r.stdout).toContain('prompts   allow: summarise, *');
  });

  it('--resource: denied by the deny entry in another reading (exit 5), allowed inside the glob (exit 0)', async () => {
    const denied = await check('--roles', 'docs', '--resource', 'file:///srv/public/%73ecret.txt');
    expect(denied.code).toBe(5);
    expect(denied.stdout).toMatch(/resource file:\/\/\/srv\/public\/%73ecret\.txt: DENIED by role docs/);
    expect(denied.stdout).toContain('(read as "file:///srv/public/secret.txt")');
    const ok = await check('--roles', 'docs', '--resource', 'file:///srv/public/a.txt');
    expect(ok.code).toBe(0);
    const out = await check('--roles', 'docs', '--resource', 'file:///srv/public/../etc/passwd');
    expect(out.code).toBe(5);
  });

  it('--prompt: allowed, not allowed, denied', async () => {
    expect((await check('--roles', 'docs', '--prompt', 'summarise')).code).toBe(0);
    expect((await check('--roles', 'docs', '--prompt', 'other')).code).toBe(5);
    const d = await check('--roles', 'docs', '--prompt', 'DEBUG-dump');
    expect(d.code).toBe(5);
    expect(d.stdout).toContain('spec.deny.mcp.prompts[0] "debug-*"');
  });

  it('--args judges the call and names the argument and the rule', async () => {
    const ok = await check('--roles', 'docs', '--tool', 'read_text_file', '--args', '{"path":"/srv/public/a.txt"}');
    expect(ok.code).toBe(0);
    const d = await check('--roles', 'docs', '--tool', 'read_text_file', '--args', '{"path":"/srv/public/../x"}');
    expect(d.code).toBe(5);
    expect(d.stdout).toContain(
      'DENIED by role docs (spec.allow.mcp.tools[0].arguments.path (path path "/srv/public/**"))',
    );
    expect(d.stdout).toContain('argument "path" of tool "read_text_file" is not allowed');
    const json = await check('--roles', 'docs', '--tool', 'read_text_file', '--args', '{}', '--format', 'json');
    expect(JSON.parse(json.stdout)).toMatchObject({
      tool: { allowed: false, argument: { argument: 'path' } },
      resources: { default: 'all' },
    });
  });

  it('--args that is not a JSON object: exit 2 with one line', async () => {
    const r = await check('--roles', 'docs', '--tool', 'read_text_file', '--args', '[1]');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mcp-access: --args must be a JSON object \(.+\)\n$/);
  });
});
