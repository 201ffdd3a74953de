/**
 * Traits and role templates (issue 15): traits issued into the certificate
 * (`identity issue --trait`), read by the proxy, and expanded in a role's
 * app_labels, tools, resources and deny entries. End to end against the real
 * proxy and server-everything with a raw tunnel; an identity without the
 * trait gets nothing from an allow template and everything from a deny one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, EVERYTHING } from './helpers/cluster.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { INIT } from './helpers/raw-bridge.js';
import { runCli } from './helpers/run-cli.js';
import { addBot } from './helpers/bot.js';

const DOCS = 'demo://resource/static/document/';
const TEMPLATED = {
  kind: 'role',
  version: 'v8',
  metadata: { name: 'templated' },
  spec: {
    allow: {
      app_labels: { env: '{{internal.envs}}' },
      mcp: {
        tools: ['{{internal.mcp_tools}}'],
        resources: [`${DOCS}{{internal.docs}}`],
      },
    },
    deny: { mcp: { tools: ['{{external.denied_tools}}'] } },
  },
};

/** app_labels_expression with a trait: servers whose env is one of the identity's envs. */
const BY_EXPRESSION = {
  kind: 'role',
  version: 'v8',
  metadata: { name: 'by-expression' },
  spec: {
    allow: {
      app_labels_expression: 'contains(user.spec.traits["envs"], labels["env"]) && !(labels.env == "dev")',
      mcp: { tools: ['echo'] },
    },
  },
};

let cluster: TestCluster;
let auditPath: string;

async function open(identity: string): Promise<RawTunnel> {
  const t = await RawTunnel.open(cluster.address, identity, { server: 'everything' });
  if (t.closed) return t;
  t.send(INIT(0));
  await t.response(0);
  t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return t;
}

async function request(t: RawTunnel, id: string, method: string, params: unknown): Promise<Record<string, unknown>> {
  t.send({ jsonrpc: '2.0', id, method, params });
  return t.response(id);
}

const names = (res: Record<string, unknown>) =>
  (res.result as { tools: Array<{ name: string }> }).tools.map((x) => x.name).sort();
const dataCode = (res: Record<string, unknown>) => (res.error as { data?: { code?: string } } | undefined)?.data?.code;

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [{ name: 'everything', labels: { env: 'prod' }, command: process.execPath, args: [EVERYTHING] }],
    roles: [TEMPLATED, BY_EXPRESSION],
  });
  auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({ audit: { path: auditPath }, bot: { state_dir: './bots' } });
  await cluster.stopProxy();
  await cluster.startProxy();
});
afterAll(async () => {
  await cluster?.close();
});

describe('templates expanded from the certificate traits', () => {
  it('tools, labels and resources follow the traits; a deny template denies what its trait names', async () => {
    const identity = await cluster.issue('tara', ['templated'], 600_000, {
      traits: { envs: ['prod'], mcp_tools: ['echo', 'get-*'], docs: ['features.md'], denied_tools: ['get-env'] },
    });
    const t = await open(identity);
    expect(names(await request(t, 'l', 'tools/list', {}))).toEqual(
      expect.arrayContaining(['echo', 'get-sum', 'get-tiny-image']),
    );
    expect(names(await request(t, 'l2', 'tools/list', {}))).not.toContain('get-env');
    expect(names(await request(t, 'l3', 'tools/list', {}))).not.toContain('gzip-file-as-resource');
    const env = await request(t, 'c1', 'tools/call', { name: 'get-env', arguments: {} });
    expect(dataCode(env)).toBe('TOOL_DENIED');
    expect((env.error as { message: string }).message).toContain('"{{external.denied_tools}}" →');
    const sum = await request(t, 'c2', 'tools/call', { name: 'get-sum', arguments: { a: 1, b: 2 } });
    expect(JSON.stringify(sum.result)).toContain('3');
    expect((await request(t, 'r1', 'resources/read', { uri: `${DOCS}features.md` })).error).toBeUndefined();
    expect(dataCode(await request(t, 'r2', 'resources/read', { uri: `${DOCS}architecture.md` }))).toBe(
      'RESOURCE_DENIED',
    );
    await t.close();
    const audit = await readFile(auditPath, 'utf8');
    expect(audit).toContain('"tool":"get-env"');
  });

  it('without the traits: the allow templates grant nothing (no server), and a trait for another env does not reach', async () => {
    const none = await cluster.issue('nora', ['templated']);
    const t = await open(none);
    expect(t.closed?.code).toBeDefined();
    expect(JSON.stringify(t.controls)).toContain('ACCESS_DENIED');

    const dev = await cluster.issue('dave', ['templated'], 600_000, { traits: { envs: ['dev'], mcp_tools: ['*'] } });
    const d = await open(dev);
    expect(d.closed?.code).toBeDefined();
  });

  it('a deny template whose trait is missing denies every tool (fail closed)', async () => {
    const identity = await cluster.issue('fay', ['templated'], 600_000, {
      traits: { envs: ['prod'], mcp_tools: ['echo'] },
    });
    const t = await open(identity);
    expect(names(await request(t, 'l', 'tools/list', {}))).toEqual([]);
    expect(dataCode(await request(t, 'c', 'tools/call', { name: 'echo', arguments: { message: 'x' } }))).toBe(
      'TOOL_DENIED',
    );
    await t.close();
  });
});

describe('app_labels_expression', () => {
  it("reaches the server when the expression holds for the identity's traits, and only then", async () => {
    const yes = await open(
      await cluster.issue('eve', ['by-expression'], 600_000, { traits: { envs: ['dev', 'prod'] } }),
    );
    expect(yes.closed).toBeUndefined();
    expect(names(await request(yes, 'l', 'tools/list', {}))).toEqual(['echo']);
    await yes.close();
    const no = await open(await cluster.issue('ned', ['by-expression'], 600_000, { traits: { envs: ['dev'] } }));
    expect(no.closed?.code).toBeDefined();
    expect(JSON.stringify(no.controls)).toContain('app_labels_expression');
  });
});

describe('bot add --trait', () => {
  it("the bot's certificates carry the traits, and the role templates use them", async () => {
    const { token, ca_pin } = await addBot(
      cluster.configPath,
      'tagger',
      ['templated'],
      ['--trait', 'envs=prod', '--trait', 'mcp_tools=echo,get-sum', '--trait', 'denied_tools=get-sum'],
    );
    const dest = join(cluster.dir, 'tagger');
    const r = await runCli([
      'bot',
      'start',
      '--proxy',
      cluster.address,
      '--oneshot',
      '--destination',
      dest,
      '--token',
      token,
      '--ca-pin',
      ca_pin,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const t = await open(join(dest, 'identity'));
    expect(names(await request(t, 'l', 'tools/list', {}))).toEqual(['echo']);
    await t.close();
    const bad = await runCli([
      'bot',
      'add',
      'bad',
      '--roles',
      'templated',
      '--trait',
      'x=a\u0001',
      '--config',
      cluster.configPath,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('must not contain control characters');
  });
});

describe('identity issue --trait', () => {
  it('writes the traits into the certificate; identity show prints them; policy templates use them', async () => {
    const out = join(cluster.dir, 'cli.identity');
    const r = await runCli([
      'identity',
      'issue',
      '--ca-dir',
      join(cluster.dir, 'ca'),
      '--user',
      'cli-user',
      '--roles',
      'templated',
      '--trait',
      'envs=prod',
      '--trait',
      'mcp_tools=echo,get-sum',
      '--trait',
      'denied_tools=get-sum',
      '-o',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const show = await runCli(['identity', 'show', '-i', out, '--format', 'json']);
    expect((JSON.parse(show.stdout) as { traits: unknown }).traits).toEqual({
      envs: ['prod'],
      mcp_tools: ['echo', 'get-sum'],
      denied_tools: ['get-sum'],
    });
    const t = await open(out);
    expect(names(await request(t, 'l', 'tools/list', {}))).toEqual(['echo']);
    await t.close();
    const bad = await runCli([
      'identity',
      'issue',
      '--ca-dir',
      join(cluster.dir, 'ca'),
      '--user',
      'x',
      '--roles',
      'r',
      '--trait',
      'noequals',
      '-o',
      out,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^mcp-access: --trait "noequals" must be NAME=value/);
  });
});
