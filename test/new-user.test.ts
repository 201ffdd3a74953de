/**
 * What a new user trips over: each message a person meets on the way from a
 * fresh clone to a working set-up, asserted word for word with its exit status.
 * Real proxy, real TLS, the real CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, TestCluster } from './helpers/cluster.js';
import { runCli } from './helpers/run-cli.js';
import { addBot } from './helpers/bot.js';
import { INIT, RawBridge } from './helpers/raw-bridge.js';

const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});
async function scratchDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mcp-access-new-user-'));
  scratch.push(d);
  return d;
}

/** stderr's lines, without the bot's and the bridge's timestamped progress lines. */
function lines(stderr: string): string[] {
  return stderr
    .trim()
    .split('\n')
    .filter((l) => l !== '');
}

/** `connect` as a smoke test does it: the lines piped in, stdin closed, every answer and the exit status. */
async function pipeThroughConnect(
  args: string[],
  input: unknown[],
): Promise<{ code: number | null; messages: Array<Record<string, unknown>>; stderr: string }> {
  const bridge = RawBridge.spawn([CLI, 'connect', ...args]);
  bridge.proc.stdin!.end(input.map((m) => `${JSON.stringify(m)}\n`).join(''));
  const code = await bridge.exited;
  return { code, messages: bridge.messages, stderr: bridge.stderr };
}

describe('a --proxy that is not an mcp-access proxy', () => {
  let cluster: TestCluster;
  let plain: Server;
  let plainAddress: string;
  let identity: string;
  beforeAll(async () => {
    cluster = await TestCluster.start({ config: { bot: { state_dir: 'bots' } } });
    identity = await cluster.issue('alice', ['all']);
    plain = createServer((_req, res) => res.end('hello'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
    plainAddress = `127.0.0.1:${(plain.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    plain.close();
    await cluster.close();
  });

  const notTls = (where: string) =>
    `what answers at ${where} does not speak TLS, so it is not an mcp-access proxy (check --proxy: the host and port the proxy listens on, not those of another service)`;

  it('a plain HTTP server: ls says so in one line, exit 4', async () => {
    const r = await runCli(['ls', '-i', identity, '--proxy', plainAddress]);
    expect(r.code).toBe(4);
    expect(lines(r.stderr)).toEqual([`mcp-access: ${notTls(plainAddress)}`]);
  });

  it('a plain HTTP server: connect answers the request with it and exits 4, no OpenSSL dump', async () => {
    const r = await pipeThroughConnect(
      ['-i', identity, '--proxy', plainAddress, '--connect-retries', '0', 'test'],
      [INIT(1)],
    );
    expect(r.code).toBe(4);
    expect(r.messages).toEqual([
      {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32603, message: `mcp-access: ${notTls(plainAddress)}`, data: { code: 'PROXY_PROTOCOL' } },
      },
    ]);
    expect(lines(r.stderr)).toEqual([`mcp-access connect: error: ${notTls(plainAddress)}`]);
    expect(r.stderr).not.toMatch(/SSL routines|\.c:\d+/);
  });

  it('a plain HTTP server: bot start says the same, exit 4', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'agent', ['all']);
    const r = await runCli([
      'bot',
      'start',
      '--proxy',
      plainAddress,
      '--destination',
      join(await scratchDir(), 'id'),
      '--token',
      token,
      '--ca-pin',
      ca_pin,
      '--oneshot',
    ]);
    expect(r.code).toBe(4);
    expect(lines(r.stderr).at(-1)).toBe(`mcp-access: ${notTls(plainAddress)}`);
    expect(r.stderr).not.toMatch(/SSL routines/);
  });
});

describe('a host name the proxy certificate does not hold', () => {
  let cluster: TestCluster;
  let identity: string;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      proxyHosts: ['proxy.test', 'mcp.test'],
      config: { bot: { state_dir: 'bots' } },
    });
    identity = await cluster.issue('alice', ['all']);
  });
  afterAll(async () => {
    await cluster.close();
  });

  const message = (where: string, port: number) =>
    `the proxy at ${where} could not be verified: its certificate is not valid for "127.0.0.1" (it holds "proxy.test", "mcp.test") (use --proxy proxy.test:${port}, or have the operator add "127.0.0.1" to the proxy certificate: mcp-access ca init --proxy-host 127.0.0.1 …)`;

  it('ls, connect and bot start give the one message naming the names the certificate holds, exit 4', async () => {
    const ls = await runCli(['ls', '-i', identity, '--proxy', cluster.address]);
    expect(ls.code).toBe(4);
    expect(lines(ls.stderr)).toEqual([`mcp-access: ${message(cluster.address, cluster.port)}`]);

    const connect = await pipeThroughConnect(['-i', identity, '--proxy', cluster.address, 'test'], [INIT(1)]);
    expect(connect.code).toBe(4);
    expect(connect.messages).toEqual([
      {
        jsonrpc: '2.0',
        id: 1,
        error: {
          code: -32603,
          message: `mcp-access: ${message(cluster.address, cluster.port)}`,
          data: { code: 'PROXY_UNTRUSTED' },
        },
      },
    ]);

    const { token, ca_pin } = await addBot(cluster.configPath, 'agent', ['all']);
    const bot = await runCli([
      'bot',
      'start',
      '--proxy',
      cluster.address,
      '--destination',
      join(await scratchDir(), 'id'),
      '--token',
      token,
      '--ca-pin',
      ca_pin,
      '--oneshot',
    ]);
    expect(bot.code).toBe(4);
    expect(lines(bot.stderr).at(-1)).toBe(`mcp-access: ${message(cluster.address, cluster.port)}`);
  });
});

describe('-i pointed at a directory', () => {
  it("says to use the identity file in it (the bot's destination layout), exit 3", async () => {
    const dir = join(await scratchDir(), 'machine-id');
    await mkdir(dir);
    const r = await runCli(['ls', '-i', dir, '--proxy', '127.0.0.1:1']);
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toEqual([
      `mcp-access: identity file ${dir} is a directory (-i takes the identity file itself; for a bot's --destination directory use ${dir}/identity)`,
    ]);
  });
});

describe('the smoke test against a proxy that cannot be reached', () => {
  it('answers every piped request with the failure and exits 4 once stdin closes', async () => {
    const cluster = await TestCluster.start();
    const identity = await cluster.issue('alice', ['all'], 600_000, {
      path: join(await scratchDir(), 'alice.identity'),
    });
    const where = cluster.address;
    await cluster.close(); // nothing listens there any more
    const r = await pipeThroughConnect(
      ['-i', identity, '--proxy', where, 'test'],
      [INIT(1), { jsonrpc: '2.0', id: 2, method: 'tools/list' }],
    );
    expect(r.code).toBe(4);
    const error = {
      code: -32603,
      message: `mcp-access: no proxy is listening at ${where} (connection refused) (check the --proxy address and that the proxy is running)`,
      data: { code: 'PROXY_UNREACHABLE' },
    };
    expect(r.messages).toEqual([
      { jsonrpc: '2.0', id: 1, error },
      { jsonrpc: '2.0', id: 2, error },
    ]);
    expect(lines(r.stderr).at(-1)).toBe(`mcp-access connect: error: ${error.message.slice('mcp-access: '.length)}`);
  });
});

describe('usage without arguments', () => {
  it('mcp-access alone lists the commands, then says to name one, exit 2', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mcp-access <command> \[options\]\n/);
    for (const c of [
      'connect <server>',
      'ls',
      'config [server]',
      'ca',
      'identity',
      'proxy <action>',
      'policy',
      'audit',
      'bot',
      'demo',
    ]) {
      expect(r.stderr).toContain(`mcp-access ${c} `);
    }
    expect(lines(r.stderr).at(-1)).toBe(
      'mcp-access: name a command (the commands are listed above; mcp-access COMMAND --help shows one)',
    );
  });

  it('connect without a server name says what is missing, in one line, exit 2', async () => {
    for (const args of [['connect'], ['connect', '-i', 'x.identity', '--proxy', 'p:443']]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([
        'mcp-access: connect needs the name of the MCP server to reach (e.g. mcp-access connect -i ID --proxy HOST:PORT files; `mcp-access ls` lists the servers you can reach)',
      ]);
    }
  });

  it('bot start, which reads no MCP_ACCESS_PROXY, is not told to check it', async () => {
    const r = await runCli([
      'bot',
      'start',
      '--proxy',
      '127.0.0.1:1',
      '--destination',
      join(await scratchDir(), 'id'),
      '--token',
      'mcpab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '--ca-pin',
      `sha256:${'0'.repeat(64)}`,
      '--oneshot',
    ]);
    expect(r.code).toBe(4);
    expect(lines(r.stderr).at(-1)).toBe(
      'mcp-access: no proxy is listening at 127.0.0.1:1 (connection refused) (check the --proxy address and that the proxy is running)',
    );
    expect(r.stderr).not.toContain('MCP_ACCESS_PROXY');
  });
});

const NO_AUDIT =
  'the proxy keeps no audit trail: its configuration has no audit: section (add audit: { path: FILE }, see docs/configuration.md)';

describe('roles the proxy does not define', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ config: { bot: { state_dir: 'bots' }, audit: { path: 'audit.jsonl' } } });
  });
  afterAll(async () => {
    await cluster.close();
  });

  it('bot add with only unknown roles is refused, naming them and the roles there are; nothing is registered', async () => {
    const r = await runCli(['bot', 'add', 'ghost', '--roles', 'nosuchrole', '--config', cluster.configPath]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      `mcp-access: ${cluster.configPath} defines no role named "nosuchrole"; the bot was not registered (the roles it defines: all; define the role first, under roles or roles_files)`,
    ]);
    expect(r.stdout).toBe('');
    const ls = await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json']);
    expect((JSON.parse(ls.stdout) as { bots: Array<{ name: string }> }).bots.map((b) => b.name)).not.toContain('ghost');
  });

  it('bot add with some unknown roles registers the bot and warns, naming them', async () => {
    const r = await runCli(['bot', 'add', 'partly', '--roles', 'all,typo-role', '--config', cluster.configPath]);
    expect(r.code).toBe(0);
    expect(lines(r.stderr)).toEqual([
      `mcp-access: warning: ${cluster.configPath} defines no role named "typo-role": it grants the bot nothing until it is defined (the roles it defines: all)`,
    ]);
    expect(r.stdout).toMatch(/^Registered bot "partly"/);
  });

  it('ls for an identity whose roles the proxy does not know says why nothing is reachable', async () => {
    const identity = await cluster.issue('bob', ['nosuch', 'other']);
    const r = await runCli(['ls', '-i', identity, '--proxy', cluster.address]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(
      'No MCP servers on cluster test-cluster are reachable by bob (roles: nosuch, other): the proxy defines none of these roles.',
    );
    expect(lines(r.stderr)).toEqual([
      'mcp-access: warning: the proxy defines no role named "nosuch", "other", so they grant nothing (ask an administrator to define them in the proxy\'s roles, or for an identity with roles the proxy defines)',
    ]);

    const json = await runCli(['ls', '-i', identity, '--proxy', cluster.address, '--format', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ servers: [], unknownRoles: ['nosuch', 'other'] });
  });

  it('ls for an identity with one unknown role among known ones lists what it reaches and warns', async () => {
    const identity = await cluster.issue('carol', ['all', 'typo-role']);
    const r = await runCli(['ls', '-i', identity, '--proxy', cluster.address]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME +DESCRIPTION/);
    expect(lines(r.stderr)).toEqual([
      'mcp-access: warning: the proxy defines no role named "typo-role", so it grants nothing (ask an administrator to define it in the proxy\'s roles, or for an identity with roles the proxy defines)',
    ]);
  });

  it('a proxy with an audit trail says nothing about it', async () => {
    expect(cluster.proxyLog).not.toContain('audit trail');
    const identity = await cluster.issue('alice', ['all']);
    const r = await runCli(['ls', '-i', identity, '--proxy', cluster.address]);
    expect(r.stderr).toBe('');
    const check = await runCli([
      'policy',
      'check',
      '--config',
      cluster.configPath,
      '--roles',
      'all',
      '--server',
      'test',
    ]);
    expect(check.stdout).not.toContain('audit trail');
  });
});

describe('a proxy.yaml without audit:', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => {
    await cluster.close();
  });

  it('the proxy warns at start (and the server count reads right)', () => {
    expect(cluster.proxyLog).toContain(`proxy: warn: ${NO_AUDIT}\n`);
    expect(cluster.proxyLog).toMatch(/listening on 127\.0\.0\.1:\d+ \(cluster test-cluster, 1 server\)\n/);
  });

  it('ls says it to whoever asks, as a warning on stderr and in the JSON', async () => {
    const identity = await cluster.issue('alice', ['all']);
    const r = await runCli(['ls', '-i', identity, '--proxy', cluster.address]);
    expect(r.code).toBe(0);
    expect(lines(r.stderr)).toEqual([`mcp-access: warning: ${NO_AUDIT}`]);
    const json = await runCli(['ls', '-i', identity, '--proxy', cluster.address, '--format', 'json']);
    expect((JSON.parse(json.stdout) as { warnings: string[] }).warnings).toEqual([NO_AUDIT]);
  });

  it('policy check says it in its output', async () => {
    const r = await runCli(['policy', 'check', '--config', cluster.configPath, '--roles', 'all', '--server', 'test']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`warning ${NO_AUDIT}`);
    const json = await runCli([
      'policy',
      'check',
      '--config',
      cluster.configPath,
      '--roles',
      'all',
      '--server',
      'test',
      '--format',
      'json',
    ]);
    expect((JSON.parse(json.stdout) as { warnings: string[] }).warnings).toEqual([NO_AUDIT]);
  });
});

describe('config for a server name with a typo', () => {
  let cluster: TestCluster;
  let identity: string;
  beforeAll(async () => {
    cluster = await TestCluster.start({ config: { audit: { path: 'audit.jsonl' } } });
    identity = await cluster.issue('alice', ['all']);
  });
  afterAll(async () => {
    await cluster.close();
  });

  it('is checked against the proxy and refused, exit 6, nothing written', async () => {
    const target = join(await scratchDir(), 'claude_desktop_config.json');
    const r = await runCli(['config', 'tset', '-i', identity, '--proxy', cluster.address, '--write', target]);
    expect(r.code).toBe(6);
    expect(lines(r.stderr)).toEqual([
      `mcp-access: no MCP server named "tset" is reachable with this identity on the proxy at ${cluster.address} (it reaches: test) (check the name with \`mcp-access ls\`; --no-check prints the entry without asking the proxy)`,
    ]);
    expect(r.stdout).toBe('');
    await expect(import('node:fs/promises').then((fs) => fs.stat(target))).rejects.toThrow(/ENOENT/);
  });

  it('a name the proxy serves prints its entry without a word on stderr', async () => {
    const r = await runCli(['config', 'test', '-i', identity, '--proxy', cluster.address]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(Object.keys((JSON.parse(r.stdout) as { mcpServers: object }).mcpServers)).toEqual(['mcp-access-test']);
  });

  it('when the proxy cannot be asked, the entry is printed and the warning says it was not checked', async () => {
    const r = await runCli(['config', 'tset', '-i', identity, '--proxy', '127.0.0.1:1']);
    expect(r.code).toBe(0);
    expect(lines(r.stderr)).toEqual([
      'mcp-access: warning: could not ask the proxy whether "tset" exists, so the configuration below is unchecked: no proxy is listening at 127.0.0.1:1 (connection refused) (check the --proxy address and that the proxy is running)',
    ]);
    expect(Object.keys((JSON.parse(r.stdout) as { mcpServers: object }).mcpServers)).toEqual(['mcp-access-tset']);
  });

  it('--no-check prints it offline, silently', async () => {
    const r = await runCli(['config', 'tset', '-i', identity, '--proxy', '127.0.0.1:1', '--no-check']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('getting the command onto PATH', () => {
  /** A copy of bin/ as a fresh clone has it, with dist/ as given. */
  async function cloneWith(dist?: Record<string, string>): Promise<string> {
    const root = join(await scratchDir(), 'mcp-access');
    await mkdir(join(root, 'bin'), { recursive: true });
    await copyFile(CLI, join(root, 'bin', 'mcp-access.js'));
    for (const [path, text] of Object.entries(dist ?? {})) {
      await mkdir(join(root, 'dist', path, '..'), { recursive: true });
      await writeFile(join(root, 'dist', path), text);
    }
    return root;
  }
  const run = (root: string, args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [join(root, 'bin', 'mcp-access.js'), ...args], (err, _stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });

  it('a clone that was not built says to build it, in one line, exit 1', async () => {
    const root = await cloneWith();
    const r = await run(root, ['ls']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `mcp-access: this copy of mcp-access is not built (run npm install, then npm run build, in ${root})\n`,
    );
  });

  it('a clone without its dependencies says to install them, in one line, exit 1', async () => {
    const root = await cloneWith({ 'cli/main.js': "import 'yargs';\n" });
    const r = await run(root, []);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`mcp-access: a dependency of mcp-access is missing: yargs (run npm install in ${root})\n`);
  });

  it('npm pack builds first (prepack) and packs dist/ with bin/', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
      files: string[];
      bin: Record<string, string>;
    };
    expect(pkg.scripts.prepack).toBe('npm run build --silent');
    expect(pkg.bin['mcp-access']).toBe('bin/mcp-access.js');
    // What the tarball holds (the build itself already ran: `npm test` builds first).
    const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
    });
    const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining([
        'bin/mcp-access.js',
        'dist/cli/main.js',
        'dist/bridge/bridge.js',
        'README.md',
        'package.json',
      ]),
    );
    expect(files.some((f) => f.startsWith('test/') || f.startsWith('src/'))).toBe(false);
  });

  it("the docs' client entry has the shape config prints: node and the script, absolute", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const entry = /"mcp-access-files": \{\s*"command": "([^"]+)",\s*"args": \["([^"]+)", "connect"/.exec(readme);
    expect(entry?.[1]).toBe('/usr/local/bin/node');
    expect(entry?.[2]).toBe('/usr/local/lib/node_modules/mcp-access/bin/mcp-access.js');
    const r = await runCli([
      'config',
      'files',
      '-i',
      '/opt/machine-id/identity',
      '--proxy',
      'mcp.example.com:3080',
      '--no-check',
    ]);
    const printed = (JSON.parse(r.stdout) as { mcpServers: Record<string, { command: string; args: string[] }> })
      .mcpServers['mcp-access-files']!;
    expect(printed.command).toBe(process.execPath);
    expect(printed.args.slice(0, 2)).toEqual([CLI, 'connect']);
    for (const doc of ['README.md', 'docs/operations.md', 'docs/bot.md']) {
      expect(await readFile(join(ROOT, doc), 'utf8'), doc).not.toContain('/usr/bin/mcp-access');
    }
  });
});

describe("the README's real set-up and the product's words", () => {
  it("step 3's bot add prints exactly step 4's bot.yaml (with the real token and pin)", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const block = readme.slice(readme.indexOf('# 3. Operator'), readme.indexOf('# 5. Use it'));
    const start = block.indexOf('mcp-access bot add');
    const step3 = block
      .slice(start, block.indexOf('\n#', start))
      .replace(/\\\n\s*/g, '')
      .trim()
      .split(/\s+/);
    const yamlStart = block.indexOf("<<'EOF'\n") + "<<'EOF'\n".length;
    const step4Yaml = block.slice(yamlStart, block.indexOf('EOF\n', yamlStart));
    expect(block).toContain('mcp-access bot start --config /etc/mcp-access/bot.yaml');
    // Step 2's proxy.yaml defines llm-access; a cluster with that role stands in for it.
    const llmAccess = {
      kind: 'role',
      version: 'v7',
      metadata: { name: 'llm-access' },
      spec: { allow: { mcp: { tools: ['get_*', 'list_*', 'read_*', 'search_files'] } } },
    };
    const cluster = await TestCluster.start({ roles: [llmAccess], config: { bot: { state_dir: 'bots' } } });
    try {
      const args = step3.slice(1).map((a) => (a === 'proxy.yaml' ? cluster.configPath : a));
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(0);
      const token = /token:\s+(\S+)/.exec(r.stdout)![1]!;
      const pin = /CA pin:\s+sha256:(\S+)/.exec(r.stdout)![1]!;
      const printedYaml = r.stdout
        .slice(r.stdout.indexOf('  version: v2'), r.stdout.indexOf('\n\nIt writes'))
        .split('\n')
        .map((l) => l.slice(2))
        .join('\n');
      expect(`${printedYaml}\n`).toBe(step4Yaml.replace('<token>', token).replace('<pin>', pin));
      const printedCommand = /^\s+(mcp-access bot start .*)$/m.exec(r.stdout)![1]!;
      expect(printedCommand).toContain(`--token ${token}`);
      expect(printedCommand).toContain('--destination /opt/machine-id');
      expect(readme).toContain('mcp-access ls -i /opt/machine-id/identity --proxy mcp.example.com:3080');
    } finally {
      await cluster.close();
    }
  });

  it('the bench shows a path that is faster than direct as a minus, not "+-"', async () => {
    const { deltaMs } = (await import(join(ROOT, 'scripts/bench/report.mjs'))) as { deltaMs: (v: number) => string };
    expect(deltaMs(-91.2)).toBe('-91 ms');
    expect(deltaMs(12.4)).toBe('+12 ms');
    expect(deltaMs(0)).toBe('+0 ms');
    expect(await readFile(join(ROOT, 'docs/performance.md'), 'utf8')).not.toContain('+-');
  });

  it('docs and messages speak of the product and Teleport, not of seeds or the issue', async () => {
    const { readdir } = await import('node:fs/promises');
    const docs = ['README.md', ...(await readdir(join(ROOT, 'docs'))).map((f) => `docs/${f}`)];
    for (const f of docs) {
      const text = await readFile(join(ROOT, f), 'utf8');
      expect(text, f).not.toMatch(/\bseeds?\b(?![-/])|\bseed \d{3}|\bthe issue\b/i);
    }
    const help = await runCli(['--help']);
    expect(help.stdout).not.toMatch(/\bseed/i);
  });
});

describe("docs/rbac.md's table of the demo's roles", () => {
  it('says what the policy decides, row by row, on both servers', async () => {
    const { parse } = await import('yaml');
    const { DEMO_ROLES } = await import('../src/demo/content.js');
    const { loadRoles } = await import('../src/rbac/roles.js');
    const { Policy } = await import('../src/rbac/policy.js');
    const policy = new Policy(
      loadRoles({ inline: DEMO_ROLES.map((r) => parse(r.yaml) as unknown), files: [], baseDir: ROOT }).roles,
    );
    const servers = {
      filesystem: { name: 'filesystem', labels: { env: 'dev' } },
      everything: { name: 'everything', labels: { env: 'prod' } },
    };

    const doc = await readFile(join(ROOT, 'docs/rbac.md'), 'utf8');
    const section = doc.slice(doc.indexOf("## The demo's roles, side by side"), doc.indexOf('### The typo'));
    const rows = section
      .split('\n')
      .filter((l) => /^\| `/.test(l))
      .map((l) => l.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, '')));
    expect(rows).toHaveLength(5);
    for (const [who, fs, ev] of rows) {
      const roles = [...who!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      for (const [cell, server, sample] of [
        [fs!, servers.filesystem, 'read_text_file'],
        [ev!, servers.everything, 'get-sum'],
      ] as const) {
        const reach = policy.canReachServer(roles, server).allowed;
        expect(reach, `${who} on ${server.name}: "${cell}"`).toBe(!cell.startsWith('not reachable'));
        if (!reach) continue;
        const allowed = policy.toolDecision(roles, server, sample).allowed;
        expect(allowed, `${who} on ${server.name}, ${sample}: "${cell}"`).toBe(!/no tool/.test(cell));
        if (/except `get-env`/.test(cell)) expect(policy.toolDecision(roles, server, 'get-env').allowed).toBe(false);
        if (/`write_file`.*denied/.test(cell))
          expect(policy.toolDecision(roles, server, 'write_file').allowed).toBe(false);
        if (/every tool/.test(cell)) expect(policy.toolDecision(roles, server, 'write_file').allowed).toBe(true);
      }
    }
  });
});
