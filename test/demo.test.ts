/**
 * `mcp-access demo` (`npm start`), run as a user runs it: the real command,
 * piped (so plain text), with its real proxy, bot, connect and MCP servers.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CLI, ROOT, resultText } from './helpers/cluster.js';
import { run as runToEnd, type CliRun } from './helpers/run-cli.js';
import { EXAMPLE_ROLE_YAML, LLM_ACCESS_ROLE_YAML, DEMO_ROLES } from '../src/demo/content.js';
import { findPublishedServer } from '../src/demo/packages.js';
import { colourWanted } from '../src/cli/demo-printer.js';
import { verifyAuditFile } from '../src/audit/verify.js';
import { AccessError } from '../src/errors.js';

const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

async function scratchDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mcp-access-demo-test-'));
  scratch.push(d);
  return d;
}

/** The demo's environment without colour hints, so "plain when piped" is what is tested. */
function demoEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  return env;
}

function runDemo(args: string[], timeoutMs = 120_000): Promise<CliRun> {
  return runToEnd(process.execPath, [CLI, 'demo', ...args], { env: demoEnv(), timeoutMs });
}

/** The directory the demo reports working in. */
function workingDir(stdout: string): string {
  const m = /working in (\S+) \(/.exec(stdout);
  if (!m) throw new Error(`no working directory in:\n${stdout}`);
  return m[1]!;
}

/** Processes whose command line mentions `text` (the demo's directory is in the bot's and the servers' arguments). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(text)) found.push(`${pid}: ${cmd}`);
    } catch {
      // Gone while reading.
    }
  }
  return found;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the demo content', () => {
  it("embeds Teleport's two example roles as the same documents as test/fixtures/roles, and its own role for env: prod", () => {
    const fixture = (f: string) => parseYaml(readFileSync(join(ROOT, 'test/fixtures/roles', f), 'utf8')) as unknown;
    expect(parseYaml(EXAMPLE_ROLE_YAML)).toEqual(fixture('example-role.yaml'));
    expect(parseYaml(LLM_ACCESS_ROLE_YAML)).toEqual(fixture('llm-access.yaml'));
    expect(DEMO_ROLES.map((r) => r.name)).toEqual(['example-role', 'llm-access', 'prod-get-tools']);
  });

  it('names the package to install when a published server is missing', () => {
    let err: unknown;
    try {
      findPublishedServer('@modelcontextprotocol/server-not-installed');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AccessError);
    expect((err as AccessError).code).toBe('DEMO_SETUP');
    expect((err as AccessError).line).toContain('@modelcontextprotocol/server-not-installed');
    expect((err as AccessError).line).toContain('npm install');
  });

  it('finds both published servers next to mcp-access', () => {
    for (const pkg of ['@modelcontextprotocol/server-filesystem', '@modelcontextprotocol/server-everything']) {
      expect(existsSync(findPublishedServer(pkg).entry)).toBe(true);
    }
  });

  it('colours only a terminal, and never with NO_COLOR set', () => {
    expect(colourWanted({ isTTY: true }, { TERM: 'xterm-256color' })).toBe(true);
    expect(colourWanted({ isTTY: false }, { TERM: 'xterm-256color' })).toBe(false);
    expect(colourWanted({ isTTY: true }, { TERM: 'xterm-256color', NO_COLOR: '1' })).toBe(false);
    expect(colourWanted({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    // no-color.org: an empty NO_COLOR does not count.
    expect(colourWanted({ isTTY: true }, { TERM: 'xterm', NO_COLOR: '' })).toBe(true);
  });
});

describe('mcp-access demo --exit', () => {
  it('tells the whole story, plain when piped, exits 0 and leaves nothing behind', async () => {
    const run = await runDemo(['--exit']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const out = run.stdout;
    const dir = workingDir(out);

    // Plain text: no escape sequences when stdout is a pipe.
    expect(out).not.toContain('\x1b['); // no ANSI escape sequences

    // Set-up: CA, proxy, both servers with their labels, the roles, the bot with the read-only roles.
    expect(out).toMatch(/certificate authority for cluster "demo"/);
    expect(out).toMatch(/proxy listening on 127\.0\.0\.1:\d+/);
    expect(out).toMatch(/enrolled filesystem \(env: dev\): @modelcontextprotocol\/server-filesystem/);
    expect(out).toMatch(/enrolled everything \(env: prod\): @modelcontextprotocol\/server-everything/);
    expect(out).toMatch(/roles loaded: example-role, llm-access, prod-get-tools/);
    expect(out).toMatch(/bot "demo-agent" joined \(user bot-demo-agent, roles llm-access, prod-get-tools\)/);

    // The filtered tool list: read tools visible, write tools filtered out.
    const visible = /(\d+) visible: (.+)/.exec(out);
    expect(visible).not.toBeNull();
    const names = visible![2]!.split(', ');
    expect(names).toContain('read_text_file');
    for (const n of names) expect(n).toMatch(/^(get_.*|list_.*|read_.*|search_files)$/);
    const hidden = /filtered out by llm-access[^:]*: (.+)/.exec(out);
    expect(hidden![1]!.split(', ')).toEqual(
      expect.arrayContaining(['write_file', 'edit_file', 'move_file', 'create_directory']),
    );

    // A read that works, with the file's content.
    expect(out).toMatch(/A read: read_text_file sample\/products\.csv\n\s+✔ allowed/);
    expect(out).toContain('1,Widget,9.90,120');

    // The denied write, its -32602 and message, its audit event, the file unchanged.
    expect(out).toMatch(
      /A write: write_file sample\/products\.csv\n\s+✘ denied by the proxy before it reached the server: JSON-RPC error -32602/,
    );
    expect(out).toContain('access to tool "write_file" on MCP server "filesystem" is denied by the identity\'s roles');
    const eventId = /audit event ([0-9a-f-]{36}); sample\/products\.csv on disk is unchanged/.exec(out)?.[1];
    expect(eventId).toBeDefined();

    // The env: prod server: hyphenated tool names, so the demo's own role allows them; get-env is denied.
    const prod = out.slice(
      out.indexOf('5. The env: prod server, everything, as the bot'),
      out.indexOf('6. The audit trail'),
    );
    expect(prod).toContain("Its tools are named with hyphens (get-sum), so llm-access's get_*, list_*");
    const prodVisible = /✔ (\d+) visible: (.+)/.exec(prod)![2]!.split(', ');
    expect(prodVisible).toEqual(expect.arrayContaining(['echo', 'get-sum']));
    for (const n of prodVisible) expect(n).toMatch(/^(get-.*|echo)$/);
    expect(prodVisible).not.toContain('get-env');
    expect(prod).toContain('✔ get-sum {"a":2,"b":3}: The sum of 2 and 3 is 5.');
    expect(prod).toContain(
      'access to tool "get-env" on MCP server "everything" is denied by the identity\'s roles (tool "get-env" is denied by role prod-get-tools',
    );

    // The audit events just written: the bot's join, its sessions, the read, the
    // denials (same event id), the ends; the chain verifies.
    const audit = out.slice(out.indexOf('6. The audit trail'));
    expect(audit).toMatch(/bot\.join\s+success/);
    expect(audit).toMatch(/ start\s+success/);
    expect(audit).toMatch(/→ tools\/call read_text_file\s+\S/);
    expect(audit).toMatch(/← tools\/call read_text_file\s+success/);
    expect(audit).toMatch(new RegExp(`→ tools/call write_file\\s+denied\\s+${eventId!.slice(0, 8)}`));
    expect(audit).toMatch(/→ tools\/call get-env\s+denied/);
    expect(audit.match(/ end\s+success/g)).toHaveLength(2);
    expect(audit).toMatch(/hash chain intact: \d+ events/);
    // The audit table fits an 80-column terminal.
    const table = audit.split('\n').slice(
      1,
      audit.split('\n').findIndex((l) => l.includes('(EVENT: the type')),
    );
    expect(table.length).toBeGreaterThan(10);
    for (const l of table) expect([...l].length, l).toBeLessThanOrEqual(80);

    // --exit: no client configs, everything stopped, the temporary directory removed, no process left.
    expect(out).not.toContain('Press Ctrl-C');
    expect(out).toContain(`Stopped the bot and the proxy; removed ${dir}.`);
    expect(existsSync(dir)).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
    expect(run.stderr).toBe('');
  });

  it('a busy --port is one clear line, exit 2, and the temporary directory is removed', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const run = await runDemo(['--exit', '--port', String(port)]);
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split('\n')).toEqual([
        `mcp-access: port ${port} on 127.0.0.1 is already in use (pass another --port, or leave it out to use a free one)`,
      ]);
      const dir = workingDir(run.stdout);
      expect(existsSync(dir)).toBe(false);
      expect(processesMentioning(dir)).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it('refuses a --dir that holds something else, and leaves it untouched', async () => {
    const dir = await scratchDir();
    await writeFile(join(dir, 'precious.txt'), 'keep me');
    const run = await runDemo(['--exit', '--dir', dir]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /^mcp-access: --dir \S+ is not empty and was not made by an earlier demo, so it was left alone \(/,
    );
    expect(readdirSync(dir)).toEqual(['precious.txt']);
  });
});

describe('mcp-access demo (running until Ctrl-C)', () => {
  let demo: ChildProcess | undefined;
  afterAll(() => {
    if (demo && demo.exitCode === null) process.kill(-demo.pid!, 'SIGKILL');
  });

  it('prints a Claude Desktop config that works against the running demo, then stops cleanly on Ctrl-C and keeps --dir', async () => {
    const dir = join(await scratchDir(), 'kept');
    // Its own process group, so that "Ctrl-C" reaches the demo and its children together, as a terminal does.
    demo = spawn(process.execPath, [CLI, 'demo', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: demoEnv(),
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    demo.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    demo.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => demo!.once('exit', (code) => r(code)));
    await waitFor(
      'the demo to wait for Ctrl-C',
      () => {
        if (demo!.exitCode !== null) throw new Error(`demo exited early (${demo!.exitCode}):\n${stdout}\n${stderr}`);
        return stdout.includes('Press Ctrl-C to stop.') || undefined;
      },
      120_000,
    );

    // The JSON block after the Claude Desktop heading, exactly as a user would paste it.
    const start = stdout.indexOf('{', stdout.indexOf('claude_desktop_config.json'));
    const end = stdout.indexOf('\n}\n', start) + 2;
    const config = JSON.parse(stdout.slice(start, end)) as {
      mcpServers: Record<string, { command: string; args: string[] }>;
    };
    const entry = config.mcpServers['mcp-access-filesystem']!;
    expect(entry.args).toContain(join(dir, 'machine-id', 'identity'));
    expect(stdout).toMatch(/from langchain_mcp_adapters\.client import MultiServerMCPClient/);
    expect(stdout).toMatch(/"transport": "stdio"/);

    const transport = new StdioClientTransport({
      command: entry.command,
      args: entry.args,
      env: getDefaultEnvironment(),
      cwd: tmpdir(),
      stderr: 'pipe',
    });
    const client = new Client({ name: 'pasted-config', version: '1.0.0' });
    await client.connect(transport);
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toContain('read_text_file');
    expect(names).not.toContain('write_file');
    const read = await client.callTool({
      name: 'read_text_file',
      arguments: { path: join(dir, 'sample', 'README.md') },
    });
    expect(resultText(read)).toContain('Sample data for the mcp-access demo');
    await client.close();

    const botPid = Number(/the bot \(pid (\d+)/.exec(stdout)?.[1]);
    expect(botPid).toBeGreaterThan(0);
    process.kill(-demo.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/SIGINT: stopping/);
    expect(stdout).toContain(`Stopped the bot and the proxy; kept ${dir}.`);
    expect(processesMentioning(dir)).toEqual([]);
    expect(() => process.kill(botPid, 0)).toThrow();

    // --dir keeps the cluster: the audit trail holds the pasted client's session and still verifies.
    const audit = (await readFile(join(dir, 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(
      audit.some(
        (e) =>
          e.tool === 'read_text_file' &&
          e.outcome === 'success' &&
          (e.client as { name?: string } | undefined)?.name === 'pasted-config',
      ),
    ).toBe(true);
    expect((await verifyAuditFile(join(dir, 'audit.jsonl'))).ok).toBe(true);

    // The same --dir again: an earlier demo's directory is emptied and reused.
    const again = await runDemo(['--exit', '--dir', dir]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`kept ${dir}.`);
    expect(readdirSync(dir)).toContain('audit.jsonl');
  });
});
