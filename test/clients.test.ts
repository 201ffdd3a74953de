/**
 * Real MCP clients nobody on this project wrote, driving `mcp-access connect`
 * the way their users configure them:
 *  - LangChain's MultiServerMCPClient (@langchain/mcp-adapters), configured as
 *    seed 000 shows it: `command`, `args` with the server name last,
 *    `transport: "stdio"`;
 *  - the official SDK's Client + StdioClientTransport as Claude Desktop-style
 *    hosts run a server: the host's minimal environment, an unrelated working
 *    directory, launched from the exact JSON `mcp-access config --client claude`
 *    prints.
 * Against the real proxy and the real @modelcontextprotocol/server-filesystem,
 * with the seeds' roles (test/fixtures/roles).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { MultiServerMCPClient } from '@langchain/mcp-adapters';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { CLI, ROOT, SAMPLE_FILES, resultText, startSampleFilesCluster, type TestCluster } from './helpers/cluster.js';
import { waitForAudit } from './helpers/bot.js';
import { run, runCli } from './helpers/run-cli.js';

const READ_ONLY = /^(get_.*|list_.*|read_.*|search_files)$/;
/** Denies the write tools; added while sessions run (SIGHUP reload). */
const NO_WRITES_ROLE = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'no-writes' },
  spec: { deny: { mcp: { tools: ['write_*', 'edit_*', 'move_*', 'create_*'] } } },
};

let cluster: TestCluster;
let sample: string;
let auditPath: string;
let reader: string; // llm-access (seed 003), read-only
let developer: string; // example-role (seed 000) + no-writes, which is unknown until the reload defines it

beforeAll(async () => {
  ({ cluster, sample, auditPath } = await startSampleFilesCluster('filesystem'));
  reader = await cluster.issue('langgraph-agent', ['llm-access']);
  developer = await cluster.issue('dev-agent', ['example-role', 'no-writes']);
});
afterAll(async () => {
  await cluster?.close();
});

/** SIGHUP, then wait (bounded) for the proxy to log one more reload. */
async function reloadProxy(): Promise<void> {
  const count = () => (cluster.proxyLog.match(/: reloaded /g) ?? []).length;
  const before = count();
  cluster.proxy!.kill('SIGHUP');
  const deadline = Date.now() + 20_000;
  while (count() === before) {
    if (/reload failed/.test(cluster.proxyLog)) throw new Error(`reload failed:\n${cluster.proxyLog}`);
    if (Date.now() > deadline) throw new Error(`the proxy did not reload:\n${cluster.proxyLog}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The seed's MultiServerMCPClient entry, with mcp-access in place of tsh. */
function seedStyleEntry(identity: string) {
  return {
    command: process.execPath,
    args: [CLI, 'connect', '-i', identity, '--proxy', cluster.address, 'filesystem'],
    transport: 'stdio' as const,
  };
}

describe("LangChain's MultiServerMCPClient (@langchain/mcp-adapters), configured as the seed shows", () => {
  it('loads only the read tools, invokes one through the bridge, and a denied call is an error with -32602', async () => {
    const client = new MultiServerMCPClient({ filesystem: seedStyleEntry(reader) });
    try {
      const tools = await client.getTools();
      const names = tools.map((t) => t.name);
      expect(names).toContain('read_text_file');
      for (const n of names) expect(n).toMatch(READ_ONLY);
      expect(names).not.toContain('write_file');

      const read = tools.find((t) => t.name === 'read_text_file')!;
      const out: unknown = await read.invoke({ path: join(sample, 'products.csv') });
      expect(JSON.stringify(out)).toContain('1,widget');

      // The model cannot pick write_file (it is not in the list); a client that asks anyway is refused by the proxy.
      const session = (await client.getClient('filesystem'))!;
      const err = await session
        .callTool({ name: 'write_file', arguments: { path: join(sample, 'products.csv'), content: 'x' } })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(McpError);
      expect((err as McpError).code).toBe(-32602);
      expect((err as McpError).message).toContain("denied by the identity's roles");
      expect(await readFile(join(sample, 'products.csv'), 'utf8')).toBe(SAMPLE_FILES['products.csv']);
      await waitForAudit(
        auditPath,
        (e) => e.user === 'langgraph-agent' && e.tool === 'write_file' && e.outcome === 'denied',
      );
    } finally {
      await client.close();
    }
  });

  it('a tool the agent already holds, denied after a role change, comes back to LangChain as a ToolException naming -32602', async () => {
    const client = new MultiServerMCPClient({ filesystem: seedStyleEntry(developer) });
    try {
      const tools = await client.getTools();
      const write = tools.find((t) => t.name === 'write_file');
      expect(write, 'example-role allows write_file before the reload').toBeDefined();

      // The operator defines no-writes and reloads; the running session is judged by the new roles.
      await cluster.writeConfig({ roles: [NO_WRITES_ROLE] });
      await reloadProxy();

      const target = join(sample, 'from-langchain.txt');
      const err = await write!.invoke({ path: target, content: 'should not be written' }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(Error);
      expect(err!.name).toBe('ToolException');
      expect(err!.message).toContain('-32602');
      expect(err!.message).toContain(
        'access to tool "write_file" on MCP server "filesystem" is denied by the identity\'s roles',
      );
      expect(err!.message).toContain('role no-writes');
      expect(existsSync(target)).toBe(false);

      // Reads still work in the same session.
      const read = tools.find((t) => t.name === 'read_text_file')!;
      expect(JSON.stringify(await read.invoke({ path: join(sample, 'products.csv') }))).toContain('2,gadget');
    } finally {
      await client.close();
      await cluster.writeConfig({ roles: [] });
      await reloadProxy();
    }
  });
});

describe('the LangGraph JavaScript snippet `config --client langgraph` prints', () => {
  it('runs as printed: the tools it loads are the role-filtered ones, and a read works', async () => {
    const printed = await runCli([
      'config',
      'filesystem',
      '-i',
      reader,
      '--proxy',
      cluster.address,
      '--client',
      'langgraph',
    ]);
    expect(printed.code, printed.stderr).toBe(0);
    const js = printed.stdout.slice(printed.stdout.indexOf('// JavaScript'));
    expect(js).toContain('new MultiServerMCPClient(');
    // The snippet as a user pastes it, plus two lines to report what it got.
    const program = `${js}
const read = tools.find((t) => t.name === 'read_text_file');
const text = await read.invoke({ path: ${JSON.stringify(join(sample, 'products.csv'))} });
process.stdout.write(JSON.stringify({ names: tools.map((t) => t.name), text }));
await client.close();
`;
    const out = await run(process.execPath, ['--input-type=module', '-e', program], { cwd: ROOT });
    expect(out.code, out.stderr).toBe(0);
    const { names, text } = JSON.parse(out.stdout) as { names: string[]; text: unknown };
    expect(names).toContain('read_text_file');
    for (const n of names) expect(n).toMatch(READ_ONLY);
    expect(JSON.stringify(text)).toContain('1,widget');
  });
});

describe('a Claude Desktop-style host: SDK Client + StdioClientTransport, minimal environment, the JSON `config --client claude` prints', () => {
  it('starts connect from the printed entry and sees the role-filtered server, a read, and a denial', async () => {
    const printed = await runCli([
      'config',
      'filesystem',
      '-i',
      reader,
      '--proxy',
      cluster.address,
      '--client',
      'claude',
    ]);
    expect(printed.code, printed.stderr).toBe(0);
    const config = JSON.parse(printed.stdout) as {
      mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }>;
    };
    const entries = Object.entries(config.mcpServers);
    expect(entries).toHaveLength(1);
    const [, entry] = entries[0]!;
    expect(entry.args.at(-1)).toBe('filesystem');

    // What such hosts do: spawn the entry with only HOME, PATH, USER, SHELL, TERM, LOGNAME, from a directory
    // of their own.
    const env = getDefaultEnvironment();
    expect(Object.keys(env).every((k) => ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER'].includes(k))).toBe(true);
    const transport = new StdioClientTransport({
      command: entry.command,
      args: entry.args,
      env: { ...env, ...entry.env },
      cwd: tmpdir(),
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const client = new Client({ name: 'claude-ai', version: '0.1.0' });
    await client.connect(transport);
    try {
      expect(client.getServerVersion()?.name).toMatch(/filesystem/i);
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('read_text_file');
      for (const n of names) expect(n).toMatch(READ_ONLY);

      const read = await client.callTool({ name: 'read_text_file', arguments: { path: join(sample, 'products.csv') } });
      expect(resultText(read)).toContain('2,gadget');

      const err = await client
        .callTool({ name: 'write_file', arguments: { path: join(sample, 'products.csv'), content: 'x' } })
        .then(
          () => undefined,
          (e: unknown) => e as McpError,
        );
      expect(err).toBeInstanceOf(McpError);
      expect(err!.code).toBe(-32602);
      const eventId = (err!.data as { auditEventId?: string }).auditEventId;
      expect(eventId).toMatch(/^[0-9a-f-]{36}$/);

      const events = await waitForAudit(auditPath, (e) => e.id === eventId);
      const denial = events.find((e) => e.id === eventId)!;
      expect(denial).toMatchObject({
        user: 'langgraph-agent',
        server: 'filesystem',
        tool: 'write_file',
        outcome: 'denied',
      });
      // The client's own name, from its initialize request, is in the trail.
      expect(denial.client).toMatchObject({ name: 'claude-ai', version: '0.1.0' });
    } finally {
      await client.close();
    }
    expect(stderr).not.toMatch(/error/i);
  });
});
