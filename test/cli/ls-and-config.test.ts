/** `mcp-access ls` and `mcp-access config` against a real proxy. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, CLI, testServer } from '../helpers/cluster.js';
import { runCli } from '../helpers/run-cli.js';

let cluster: TestCluster;
let reader: string;

const cli = runCli;

/** The part of an MCP client's config file these tests read. */
type ClientConfig = { mcpServers: Record<string, { command: string; args: string[] }> };

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [
      testServer('notes', { description: 'team notes' }),
      { ...testServer('billing'), labels: { env: 'prod' } },
    ],
    roles: [
      {
        kind: 'role',
        version: 'v7',
        metadata: { name: 'reader' },
        spec: {
          allow: { app_labels: { env: 'dev' }, mcp: { tools: ['read_*', 'echo'] } },
          deny: { mcp: { tools: ['read_secrets'] } },
        },
      },
    ],
  });
  reader = await cluster.issue('rita', ['reader']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('ls', () => {
  it('shows only reachable servers with their allowed and denied tool patterns', async () => {
    const text = await cli(['ls', '-i', reader, '--proxy', cluster.address]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/NAME\s+DESCRIPTION\s+TYPE\s+ALLOWED TOOLS\s+RESOURCES\s+PROMPTS\s+LABELS/);
    // Resources and prompts: the role does not write them, so rbac.default_* (all) decides: `*`.
    expect(text.stdout).toMatch(/notes\s+team notes\s+stdio\s+read_\*,echo except read_secrets\s+\*\s+\*\s+env=dev/);
    expect(text.stdout).not.toContain('billing');
    const json = JSON.parse(
      (await cli(['ls', '-i', reader, '--proxy', cluster.address, '--format', 'json'])).stdout,
    ) as { servers: unknown[] };
    expect(json.servers).toEqual([
      expect.objectContaining({
        name: 'notes',
        labels: { env: 'dev' },
        tools: { allow: ['read_*', 'echo'], deny: ['read_secrets'] },
        resources: { allow: ['*'], deny: [], defaulted: [expect.any(String)] },
        prompts: { allow: ['*'], deny: [], defaulted: [expect.any(String)] },
      }),
    ]);
    const yaml = await cli(['ls', '-i', reader, '--proxy', cluster.address, '--format', 'yaml']);
    expect(yaml.stdout).toMatch(/- name: notes/);
  });

  it('fails with one line and exit 4 when the proxy is not there', async () => {
    const r = await cli(['ls', '-i', reader, '--proxy', '127.0.0.1:1']);
    expect(r.code).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^mcp-access: no proxy is listening at 127.0.0.1:1/);
  });
});

describe('config', () => {
  it('prints a Claude Desktop entry whose command is absolute', async () => {
    const r = await cli(['config', 'notes', '-i', reader, '--proxy', cluster.address]);
    const cfg = JSON.parse(r.stdout) as ClientConfig;
    const entry = cfg.mcpServers['mcp-access-notes']!;
    expect(entry.command).toBe(process.execPath);
    expect(entry.args).toEqual([CLI, 'connect', '-i', reader, '--proxy', cluster.address, 'notes']);
  });

  it('prints VS Code and LangGraph forms, and --all asks the proxy', async () => {
    const vs = JSON.parse(
      (await cli(['config', '--all', '--client', 'vscode', '-i', reader, '--proxy', cluster.address])).stdout,
    ) as { servers: Record<string, { type: string }> };
    expect(Object.keys(vs.servers)).toEqual(['mcp-access-notes']);
    expect(vs.servers['mcp-access-notes']!.type).toBe('stdio');
    const lg = (await cli(['config', 'notes', '--client', 'langgraph', '-i', reader, '--proxy', cluster.address]))
      .stdout;
    expect(lg).toContain('MultiServerMCPClient');
    expect(lg).toContain('"transport": "stdio"');
  });

  it('--write merges into an existing file, keeps a backup, and leaves other entries alone', async () => {
    const path = join(cluster.dir, 'claude_desktop_config.json');
    const before = { globalShortcut: 'Ctrl+Space', mcpServers: { other: { command: 'other-server', args: [] } } };
    await writeFile(path, JSON.stringify(before));
    const r = await cli(['config', 'notes', '-i', reader, '--proxy', cluster.address, '--write', path]);
    expect(r.code).toBe(0);
    const after = JSON.parse(await readFile(path, 'utf8')) as ClientConfig & { globalShortcut: string };
    expect(after.globalShortcut).toBe('Ctrl+Space');
    expect(after.mcpServers.other).toEqual(before.mcpServers.other);
    expect(after.mcpServers['mcp-access-notes']!.args.at(-1)).toBe('notes');
    const backups = (await readdir(cluster.dir)).filter((f) => f.startsWith('claude_desktop_config.json.bak-'));
    expect(backups).toHaveLength(1);
    expect(JSON.parse(await readFile(join(cluster.dir, backups[0]!), 'utf8'))).toEqual(before);
  });

  it('refuses to overwrite a file that is not JSON', async () => {
    const path = join(cluster.dir, 'broken.json');
    await writeFile(path, '{ not json');
    const r = await cli(['config', 'notes', '-i', reader, '--proxy', cluster.address, '--write', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not valid JSON, so it was left alone/);
    expect(await readFile(path, 'utf8')).toBe('{ not json');
  });
});
