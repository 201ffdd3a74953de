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
