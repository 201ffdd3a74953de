/**
 * Role typos fail closed: an unknown key anywhere in a role's spec refuses
 * the role, naming the line, the column and the key it probably meant — in
 * role files, in the proxy configuration's inline roles, in `policy check`
 * (exit 7), at start-up and at SIGHUP reload (where the running roles stay).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadRoles } from '../src/rbac/roles.js';
import { AccessError } from '../src/errors.js';
import { runCli } from './helpers/run-cli.js';
import { TestCluster, testServer } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';

const dir = mkdtempSync(join(tmpdir(), 'mcp-access-role-typos-'));

function loadFile(name: string, text: string): { error?: AccessError; warnings: string[] } {
  writeFileSync(join(dir, name), text);
  try {
    const { warnings } = loadRoles({ inline: [], files: [name], baseDir: dir });
    return { warnings };
  } catch (err) {
    return { error: err as AccessError, warnings: [] };
  }
}

describe('unknown keys in a role file', () => {
  it.each([
    [
      'app_lables',
      'spec:\n  allow:\n    app_lables: {env: prod}\n    mcp:\n      tools: ["*"]\n',
      'line 7, column 5: spec.allow.app_lables: unknown key — did you mean "app_labels"?',
    ],
    [
      'mcp.tool',
      'spec:\n  deny:\n    mcp:\n      tool: [write_file]\n',
      'line 8, column 7: spec.deny.mcp.tool: unknown key — did you mean "tools"?',
    ],
    [
      'dney',
      'spec:\n  dney:\n    mcp_tools: [write_file]\n',
      'line 6, column 3: spec.dney: unknown key — did you mean "deny"?',
    ],
    [
      'mcp_tool',
      'spec:\n  deny:\n    mcp_tool: [write_file]\n',
      'line 7, column 5: spec.deny.mcp_tool: unknown key — did you mean "mcp_tools"?',
    ],
    [
      'something else entirely',
      'spec:\n  allow:\n    frobnicate: 1\n',
      'line 7, column 5: spec.allow.frobnicate: unknown key',
    ],
  ])('%s refuses the role with line, column and a suggestion', (_name, body, expected) => {
    const { error } = loadFile('typo.yaml', `kind: role\nversion: v8\nmetadata:\n  name: typo\n${body}`);
    expect(error?.code).toBe('CONFIG_INVALID');
    expect(error?.message).toBe(`typo.yaml: ${expected}`);
  });

  it('in a list of roles in a multi-document file, the location is the right one', () => {
    const { error } = loadFile(
      'multi.yaml',
      'kind: role\nmetadata: {name: a}\n---\n- kind: role\n  metadata: {name: b}\n  spec:\n    allow:\n      app_lables: {env: dev}\n',
    );
    expect(error?.message).toBe(
      'multi.yaml (document 2)[0]: line 8, column 7: spec.allow.app_lables: unknown key — did you mean "app_labels"?',
    );
  });

  it("Teleport's own fields still load with a warning, and mcp.roots is a known key", () => {
    const { error, warnings } = loadFile(
      'teleport.yaml',
      'kind: role\nversion: v7\nmetadata: {name: t}\nspec:\n  options: {max_session_ttl: 8h}\n  allow:\n    logins: [root]\n    app_labels: {env: dev}\n    mcp: {tools: [read_file], roots: ["file:///srv/*"]}\n',
    );
    expect(error).toBeUndefined();
    expect(warnings).toContain('teleport.yaml: spec.allow.logins: not used by mcp-access (ignored; it grants nothing)');
  });
});

describe('inline roles and policy check', () => {
  it('policy check exits 7 and names the line in the proxy configuration', async () => {
    const config = join(dir, 'proxy.yaml');
    writeFileSync(
      config,
      stringify({
        cluster: 'test',
        listen: '127.0.0.1:0',
        ca_dir: './ca',
        servers: [{ name: 'filesystem', labels: { env: 'dev' }, command: 'node', args: ['server.js'] }],
        roles: [
          {
            kind: 'role',
            version: 'v8',
            metadata: { name: 'reader' },
            spec: { allow: { app_lables: { env: 'prod' }, mcp: { tools: ['read_*'] } } },
          },
        ],
      }),
    );
    const r = await runCli([
      'policy',
      'check',
      '--config',
      config,
      '--roles',
      'reader',
      '--server',
      'filesystem',
      '--tool',
      'write_file',
    ]);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^mcp-access: roles\[0\]: line \d+, column \d+: spec\.allow\.app_lables: unknown key — did you mean "app_labels"\? \(/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('at start-up and at reload', () => {
  let cluster: TestCluster;
  const reader = {
    kind: 'role',
    version: 'v8',
    metadata: { name: 'reader' },
    spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['echo'] } } },
  };
  beforeAll(async () => {
    cluster = await TestCluster.start({ servers: [testServer('test')], roles: [reader] });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('SIGHUP with a typo keeps the running roles: the typo grants nothing', async () => {
    const id = await cluster.issue('alice', ['reader']);
    // The typo would make the role apply to every server with every tool.
    await cluster.writeConfig({
      roles: [{ ...reader, spec: { allow: { app_lables: { env: 'dev' }, mcp: { tools: ['*'] } } } }],
    });
    cluster.proxy!.kill('SIGHUP');
    await cluster.waitForLog(
      /reload failed, keeping the running configuration: .*spec\.allow\.app_lables: unknown key — did you mean "app_labels"\?/,
    );
    const b = RawBridge.spawn(cluster.connectArgs('test', id));
    b.send(INIT(1));
    await b.response(1);
    b.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    b.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'write_note', arguments: { text: 'x' } } });
    const denied = await b.response(2);
    expect((denied.error as { code: number }).code).toBe(-32602);
    b.send({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'still allowed' } },
    });
    expect(JSON.stringify((await b.response(3)).result)).toContain('still allowed');
    await b.end();
  });

  it('a typo refuses to start the proxy, in one line', async () => {
    await cluster.stopProxy();
    const r = await runCli(['proxy', 'start', '--config', cluster.configPath]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/spec\.allow\.app_lables: unknown key — did you mean "app_labels"\?/);
  });
});
