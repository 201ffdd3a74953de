/**
 * Seed 000 step by step with only the program's name changed (issue 17):
 * `mcp-access bot start --config bot.yaml` in tbot's v2 shape, several
 * identity services from one bot, every unknown or malformed key refused
 * with its position, and the seed's LangGraph and Claude Desktop argument
 * lists (`mcp connect -i … --proxy … my-mcp-server`) run verbatim with
 * `mcp-access` as the command, found on PATH.
 */
import { mkdir, mkdtemp, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MultiServerMCPClient } from '@langchain/mcp-adapters';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBotConfig } from '../src/bot/config-file.js';
import { AccessError } from '../src/errors.js';
import { loadIdentity } from '../src/identity/load.js';
import { ALLOW_ALL_ROLE, CLI, TestCluster, resultText, testServer } from './helpers/cluster.js';
import { RunningBot, addBot, runCli } from './helpers/bot.js';

const refusal = (yamlText: string): string => {
  try {
    parseBotConfig(yamlText, 'bot.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(AccessError);
    expect((err as AccessError).code).toBe('BOT_CONFIG_INVALID');
    return (err as AccessError).message;
  }
  throw new Error(`accepted:\n${yamlText}`);
};

describe('the configuration file: every key checked, with its position', () => {
  it('reads the documented subset, paths relative to the file', () => {
    const c = parseBotConfig(
      [
        'version: v2',
        'proxy_server: mcp.example.com:3080',
        'onboarding:',
        '  join_method: token',
        '  token: ./join-token',
        '  ca_pins:',
        `    - sha256:${'AB'.repeat(32)}`,
        'storage:',
        '  type: directory',
        '  path: /var/lib/mcp-access/bot',
        'credential_ttl: 1h',
        'renewal_interval: 20m',
        'oneshot: false',
        'services:',
        '- type: identity',
        '  allow_reissue: true',
        '  destination:',
        '    type: directory',
        '    path: /opt/machine-id',
        '- type: identity',
        '  destination: { type: directory, path: langgraph }',
      ].join('\n'),
      '/etc/mcp-access/bot.yaml',
    );
    expect(c).toEqual({
      proxy: 'mcp.example.com:3080',
      token: { file: '/etc/mcp-access/join-token' },
      caPins: [`sha256:${'ab'.repeat(32)}`],
      storage: '/var/lib/mcp-access/bot',
      ttl: '1h',
      renewalInterval: '20m',
      oneshot: false,
      services: [
        { path: '/opt/machine-id', allowReissue: true },
        { path: '/etc/mcp-access/langgraph', allowReissue: false },
      ],
    });
    expect(
      parseBotConfig('onboarding:\n  token: mcpab_IeqUIMKbpUVaVR0gbYNlE9QFhjFePel4S8USktffpOY\n', 'b.yaml').token,
    ).toEqual({ value: 'mcpab_IeqUIMKbpUVaVR0gbYNlE9QFhjFePel4S8USktffpOY' });
  });

  const cases: Array<[string, string, RegExp]> = [
    [
      'unknown top-level key',
      'version: v2\nproxy_sever: a:1\n',
      /^bot\.yaml:2:1: unknown key "proxy_sever" \(did you mean "proxy_server"\?\)$/,
    ],
    [
      'unknown key in a service',
      'services:\n- type: identity\n  destinaton:\n    path: /x\n',
      /^bot\.yaml:3:3: unknown key "destinaton" in services\[0\] \(did you mean "destination"\?\)$/,
    ],
    [
      'unknown key in a destination',
      'services:\n- type: identity\n  destination:\n    path: /x\n    mode: 0700\n',
      /^bot\.yaml:5:5: unknown key "mode" in services\[0\]\.destination$/,
    ],
    [
      'unknown key in onboarding',
      'onboarding:\n  tokn: x\n',
      /^bot\.yaml:2:3: unknown key "tokn" in onboarding \(did you mean "token"\?\)$/,
    ],
    ['unknown key in storage', 'storage:\n  path: /x\n  kind: y\n', /^bot\.yaml:3:3: unknown key "kind" in storage$/],
    [
      'tbot service type',
      'services:\n- type: application\n  app_name: x\n',
      /^bot\.yaml:2:9: services\[0\]: service type "application" is a tbot service with no meaning for mcp-access: only type: identity/,
    ],
    [
      'tbot key without meaning',
      'auth_server: auth.example.com:3025\n',
      /^bot\.yaml:1:1: "auth_server" is a tbot setting with no meaning for mcp-access: an mcp-access bot talks to the proxy only: use proxy_server$/,
    ],
    [
      'tbot outputs (v1)',
      'outputs:\n- type: identity\n',
      /^bot\.yaml:1:1: "outputs" is a tbot setting with no meaning for mcp-access/,
    ],
    [
      'tbot destination type',
      'services:\n- type: identity\n  destination:\n    type: kubernetes_secret\n    name: x\n',
      /^bot\.yaml:5:5: "name" in services\[0\]\.destination is a tbot setting|^bot\.yaml:4:11: services\[0\]\.destination\.type "kubernetes_secret" is not supported/,
    ],
    [
      'tbot join method',
      'onboarding:\n  join_method: github\n',
      /^bot\.yaml:2:16: join_method "github" is not supported: mcp-access bots join with a one-time token/,
    ],
    ['wrong version', 'version: v1\n', /^bot\.yaml:1:10: version "v1" is not supported/],
    [
      'malformed proxy',
      'proxy_server: example.com\n',
      /^bot\.yaml:1:15: proxy_server "example.com" must be host:port$/,
    ],
    ['malformed ttl', 'credential_ttl: forever\n', /^bot\.yaml:1:17: credential_ttl: TTL "forever" is not a duration$/],
    ['ttl out of range', 'credential_ttl: 90d\n', /^bot\.yaml:1:17: credential_ttl: TTL 90d is too long/],
    ['malformed interval', 'renewal_interval: 10\n', /^bot\.yaml:1:19: renewal_interval must be a non-empty string$/],
    ['oneshot not a boolean', 'oneshot: "yes"\n', /^bot\.yaml:1:10: oneshot must be true or false$/],
    [
      'allow_reissue not a boolean',
      'services:\n- type: identity\n  allow_reissue: 1\n  destination: {path: /x}\n',
      /^bot\.yaml:3:18: services\[0\]\.allow_reissue must be true or false$/,
    ],
    [
      'malformed pin',
      'onboarding:\n  ca_pins: [sha256:abc]\n',
      /^bot\.yaml:2:13: onboarding\.ca_pins entry "sha256:abc" must be sha256: followed by 64 hex digits$/,
    ],
    [
      'pins not a list',
      `onboarding:\n  ca_pins: sha256:${'a'.repeat(64)}\n`,
      /^bot\.yaml:2:12: onboarding\.ca_pins must be a list/,
    ],
    [
      'token neither token nor path',
      'onboarding:\n  token: "not a token"\n',
      /^bot\.yaml:2:10: onboarding\.token is neither a join token nor a file path$/,
    ],
    ['services not a list', 'services:\n  type: identity\n', /^bot\.yaml:2:3: services must be a list/],
    [
      'service without destination',
      'services:\n- type: identity\n',
      /^bot\.yaml:2:3: services\[0\] needs a destination/,
    ],
    [
      'destination without path',
      'services:\n- type: identity\n  destination:\n    type: directory\n',
      /^bot\.yaml:4:5: services\[0\]\.destination needs a path$/,
    ],
    [
      'two services, one destination',
      'services:\n- type: identity\n  destination: {path: /x}\n- type: identity\n  destination: {path: /x}\n',
      /^bot\.yaml:2:1: two services write to the same destination \/x$/,
    ],
    ['duplicate key', 'oneshot: true\noneshot: false\n', /^bot\.yaml:2:1: Map keys must be unique/],
    ['YAML syntax', 'services:\n- type: identity\n  destination: [\n', /^bot\.yaml:\d+:\d+: /],
    ['top level not a mapping', '- a\n- b\n', /^bot\.yaml:1:1: the configuration must be a mapping/],
  ];
  it.each(cases)('refuses %s', (_name, text, expected) => {
    expect(refusal(text)).toMatch(expected);
  });
});

let cluster: TestCluster;
let binDir: string;
let ca_pin: string;

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [testServer('my-mcp-server')],
    roles: [ALLOW_ALL_ROLE],
    config: { bot: { state_dir: './bots' } },
  });
  // `mcp-access` on PATH, as an installed package puts it there.
  binDir = join(cluster.dir, 'bin');
  await mkdir(binDir);
  await symlink(CLI, join(binDir, 'mcp-access'));
  process.env.PATH = `${binDir}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
});
afterAll(async () => {
  await cluster?.close();
});

async function writeYaml(name: string, lines: string[]): Promise<string> {
  const path = join(cluster.dir, name);
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** The seed's YAML (step 2/3) plus what a first run needs, with test directories. */
async function seedConfig(name: string, dest: string, token: string, extra: string[] = []): Promise<string> {
  return writeYaml(`${name}.yaml`, [
    'version: v2',
    `proxy_server: ${cluster.address}`,
    'onboarding:',
    '  join_method: token',
    `  token: ${token}`,
    '  ca_pins:',
    `    - ${ca_pin}`,
    ...extra,
    'services:',
    '- type: identity',
    '  allow_reissue: true',
    '  destination:',
    '    type: directory',
    `    path: ${dest}`,
  ]);
}

/** The seed's argument list, verbatim but for the identity path and the proxy address. */
const seedArgs = (identity: string) => ['mcp', 'connect', '-i', identity, '--proxy', cluster.address, 'my-mcp-server'];

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('bot start --config', () => {
  it("the seed's YAML joins and keeps renewing under a live `mcp connect` session", async () => {
    const added = await addBot(cluster.configPath, 'seed-bot', ['all']);
    ca_pin = added.ca_pin;
    const token = added.token;
    const dest = join(cluster.dir, 'opt', 'machine-id');
    const config = await seedConfig('seed', dest, token, ['credential_ttl: 5s', 'renewal_interval: 1s']);
    const bot = new RunningBot(['--config', config]);
    try {
      await bot.waitFor(/joined as bot "seed-bot"/);
      const transport = new StdioClientTransport({
        command: 'mcp-access',
        args: seedArgs(join(dest, 'identity')),
        env: { ...getDefaultEnvironment(), PATH: process.env.PATH! },
        stderr: 'pipe',
      });
      const client = new Client({ name: 'seed-host', version: '1.0.0' });
      await client.connect(transport);
      try {
        // Tool calls keep succeeding across three renewals of the 5 s identity.
        for (let i = 0; i < 4; i++) {
          const renewed = bot.count(/renewed bot "seed-bot"/);
          const r = await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } });
          expect(resultText(r)).toContain(`call ${i}`);
          if (i < 3) await bot.waitFor(/renewed bot "seed-bot"/, renewed + 1);
        }
        const id = await loadIdentity(join(dest, 'identity'));
        expect(id.bot?.generation).toBeGreaterThanOrEqual(4);
        expect(await mode(dest)).toBe(0o700);
        expect(await mode(join(dest, 'identity'))).toBe(0o600);
      } finally {
        await client.close();
      }
    } finally {
      expect(await bot.stop()).toBe(0);
    }
  });

  it('two identity services: one bot renews two destinations, each written atomically with the documented modes', async () => {
    const { token } = await addBot(cluster.configPath, 'two-services', ['all']);
    const tokenFile = join(cluster.dir, 'two-services.token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const root = await mkdtemp(join(tmpdir(), 'mcp-access-two-'));
    const config = await writeYaml('two.yaml', [
      'version: v2',
      `proxy_server: ${cluster.address}`,
      'onboarding:',
      '  join_method: token',
      '  token: ./two-services.token',
      `  ca_pins: [${ca_pin}]`,
      'storage:',
      '  type: directory',
      `  path: ${join(root, 'state')}`,
      'credential_ttl: 5s',
      'renewal_interval: 1s',
      'services:',
      '- type: identity',
      '  destination:',
      '    type: directory',
      `    path: ${join(root, 'claude-desktop')}`,
      '- type: identity',
      '  allow_reissue: false',
      '  destination:',
      '    type: directory',
      `    path: ${join(root, 'langgraph')}`,
    ]);
    const bot = new RunningBot(['--config', config]);
    try {
      await bot.waitFor(/renewed bot "two-services"/, 2);
      const a = await loadIdentity(join(root, 'claude-desktop', 'identity'));
      const b = await loadIdentity(join(root, 'langgraph', 'identity'));
      const first = a.bot!.generation;
      await bot.waitFor(/renewed bot "two-services"/, 3);
      const a2 = await loadIdentity(join(root, 'claude-desktop', 'identity'));
      const b2 = await loadIdentity(join(root, 'langgraph', 'identity'));
      expect(a2.bot!.generation).toBeGreaterThan(first);
      expect(b2.bot!.generation).toBeGreaterThan(b.bot!.generation);
      for (const d of ['state', 'claude-desktop', 'langgraph']) {
        expect(await mode(join(root, d))).toBe(0o700);
        expect(await mode(join(root, d, 'identity'))).toBe(0o600);
      }
      // The state stays in storage only.
      await expect(stat(join(root, 'langgraph', 'bot.json'))).rejects.toThrow();
      expect((JSON.parse(await readFile(join(root, 'state', 'bot.json'), 'utf8')) as { bot: string }).bot).toBe(
        'two-services',
      );
      // Both files work, with the seed's argument list.
      for (const d of ['claude-desktop', 'langgraph']) {
        const client = new Client({ name: 'x', version: '1' });
        await client.connect(
          new StdioClientTransport({
            command: 'mcp-access',
            args: seedArgs(join(root, d, 'identity')),
            env: { ...getDefaultEnvironment(), PATH: process.env.PATH! },
          }),
        );
        expect(resultText(await client.callTool({ name: 'echo', arguments: { text: d } }))).toContain(d);
        await client.close();
      }
    } finally {
      expect(await bot.stop()).toBe(0);
    }
  });

  it('flags override the file key by key; a bad file is one line with its position and exit 2, nothing joined', async () => {
    const { token } = await addBot(cluster.configPath, 'override', ['all']);
    const dest = join(cluster.dir, 'override');
    // The file names a proxy that is not there; --proxy wins, --oneshot as well.
    const config = await seedConfig('override', join(cluster.dir, 'not-used'), token);
    const text = (await readFile(config, 'utf8')).replace(
      `proxy_server: ${cluster.address}`,
      'proxy_server: 127.0.0.1:1',
    );
    await writeFile(config, text);
    const r = await runCli([
      'bot',
      'start',
      '--config',
      config,
      '--proxy',
      cluster.address,
      '--destination',
      dest,
      '--oneshot',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await loadIdentity(join(dest, 'identity'))).bot?.name).toBe('override');
    await expect(stat(join(cluster.dir, 'not-used'))).rejects.toThrow();

    // No trust on first use: a file without ca_pins cannot make the first join.
    const { token: t2 } = await addBot(cluster.configPath, 'no-pin', ['all']);
    const noPin = await writeYaml('no-pin.yaml', [
      'version: v2',
      `proxy_server: ${cluster.address}`,
      'onboarding:',
      `  token: ${t2}`,
      'services:',
      '- type: identity',
      `  destination: {type: directory, path: ${join(cluster.dir, 'no-pin')}}`,
    ]);
    const np = await runCli(['bot', 'start', '--config', noPin, '--oneshot']);
    expect(np.code).toBe(2);
    expect(np.stderr).toMatch(/the first join needs --ca-pin, so that the token is only sent to the right proxy/);
    await expect(stat(join(cluster.dir, 'no-pin', 'identity'))).rejects.toThrow();

    const bad = await writeYaml('bad.yaml', [
      'version: v2',
      'services:',
      '- type: database',
      '  destination: {path: /tmp/x}',
    ]);
    const b = await runCli(['bot', 'start', '--config', bad]);
    expect(b.code).toBe(2);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toMatch(
      /^mcp-access: .*bad\.yaml:3:9: services\[0\]: service type "database" is a tbot service with no meaning for mcp-access/,
    );
  });
});

describe('tsh\'s shape: the seed\'s snippets with "command": "mcp-access"', () => {
  let identity: string;
  beforeAll(async () => {
    const { token } = await addBot(cluster.configPath, 'snippets', ['all']);
    const dest = join(cluster.dir, 'snippets');
    const config = await seedConfig('snippets', dest, token, ['oneshot: true']);
    const r = await runCli(['bot', 'start', '--config', config]);
    expect(r.code, r.stderr).toBe(0);
    identity = join(dest, 'identity');
  });

  it("LangChain's MultiServerMCPClient runs the seed's LangGraph entry verbatim", async () => {
    const client = new MultiServerMCPClient({
      'my-mcp-server': {
        command: 'mcp-access',
        args: seedArgs(identity),
        transport: 'stdio',
      },
    });
    try {
      const tools = await client.getTools();
      expect(tools.map((t) => t.name)).toContain('echo');
      const echo = tools.find((t) => t.name === 'echo')!;
      expect(JSON.stringify(await echo.invoke({ text: 'from langgraph' }))).toContain('from langgraph');
    } finally {
      await client.close();
    }
  });

  it("the SDK client runs the seed's Claude Desktop entry verbatim; `mcp ls` and `mcp config` work too", async () => {
    const entry = { command: 'mcp-access', args: seedArgs(identity) };
    const client = new Client({ name: 'claude-desktop-style', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ ...entry, env: { ...getDefaultEnvironment(), PATH: process.env.PATH! } }),
    );
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: 'from claude' } }))).toContain(
      'from claude',
    );
    await client.close();

    const ls = await runCli(['mcp', 'ls', '-i', identity, '--proxy', cluster.address, '--format', 'json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(
      (JSON.parse(ls.stdout) as { servers: Array<{ name: string }> }).servers.map((s: { name: string }) => s.name),
    ).toEqual(['my-mcp-server']);
    const cfg = await runCli(['mcp', 'config', 'my-mcp-server', '-i', identity, '--proxy', cluster.address]);
    expect(cfg.code, cfg.stderr).toBe(0);
    expect((JSON.parse(cfg.stdout) as { mcpServers?: unknown }).mcpServers).toBeDefined();
  });

  it('`mcp connect` starts without loading yargs (the fast path)', async () => {
    const hooks = join(cluster.dir, 'trace-hooks.mjs');
    const log = join(cluster.dir, 'loaded.txt');
    await writeFile(
      hooks,
      `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + '\\n'); return r; }\n`,
    );
    const register = join(cluster.dir, 'register.mjs');
    await writeFile(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`,
    );
    const client = new Client({ name: 'x', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: ['--import', register, CLI, ...seedArgs(identity)],
        env: getDefaultEnvironment(),
      }),
    );
    await client.listTools();
    await client.close();
    const loaded = await readFile(log, 'utf8');
    expect(loaded).toContain('bridge/run.js');
    expect(loaded).not.toMatch(/yargs|cli\/cli\.js/);
  });
});
