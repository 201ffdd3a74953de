/**
 * Arguments policy (issue 15) against the real proxy and the published
 * @modelcontextprotocol/server-filesystem, attacked with an own tunnel client:
 * path rules cannot be stepped around with `..`, encodings, `~`, relative
 * paths, a second spelling of the key, duplicate keys or a list where a string
 * is expected; deny rules win and judge numbers sent as strings. Every refusal
 * is -32602 ARGUMENT_DENIED from the proxy (naming the argument and the rule),
 * audited, and the server never acts on it (the file is not read or written).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, FILESYSTEM } from './helpers/cluster.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { INIT } from './helpers/raw-bridge.js';

const SECRET = 'top-secret-4c1d';
const PUBLIC_TEXT = 'public hello';

let cluster: TestCluster;
let sample: string;
let pub: string;
let auditPath: string;
let identity: string;
let t: RawTunnel;

async function auditEvents(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(auditPath, 'utf8').catch(() => '');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function call(id: string, name: string, args: unknown): Promise<Record<string, unknown>> {
  t.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
  return t.response(id);
}

/** Refused by the proxy with ARGUMENT_DENIED naming `argument`; audited; the server never answered it. */
async function expectArgumentDenied(res: Record<string, unknown>, argument: string): Promise<Record<string, unknown>> {
  const error = res.error as { code: number; message: string; data: Record<string, unknown> };
  expect(error, JSON.stringify(res)).toBeDefined();
  expect(error.code).toBe(-32602);
  expect(error.data.code).toBe('ARGUMENT_DENIED');
  expect(error.data.argument).toBe(argument);
  expect(error.message).toContain(`argument "${argument}"`);
  expect(JSON.stringify(res)).not.toContain(SECRET);
  const events = await auditEvents();
  const ev = events.find((e) => e.id === error.data.auditEventId);
  expect(ev).toMatchObject({ type: 'mcp.session.request', outcome: 'denied', argument, rpcId: res.id });
  expect(String(ev!.rule)).toMatch(/arguments\./);
  expect(events.some((e) => e.phase === 'response' && e.rpcId === res.id)).toBe(false);
  return ev!;
}

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [] });
  sample = await realpath(cluster.dir).then((d) => join(d, 'sample'));
  pub = join(sample, 'public');
  await mkdir(pub, { recursive: true });
  await writeFile(join(sample, 'secret.txt'), SECRET);
  await writeFile(join(pub, 'a.txt'), PUBLIC_TEXT);
  auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({
    servers: [{ name: 'files', labels: { env: 'dev' }, command: process.execPath, args: [FILESYSTEM, sample] }],
    roles: [
      {
        kind: 'role',
        version: 'v8',
        metadata: { name: 'public-files' },
        spec: {
          allow: {
            app_labels: { env: 'dev' },
            mcp: {
              tools: [
                'list_allowed_directories',
                {
                  name: 'read_text_file',
                  arguments: { path: { path: `${pub}/**` }, head: { min: 1, max: 5, required: false } },
                },
                { name: 'read_multiple_files', arguments: { 'paths[]': { path: `${pub}/**` } } },
                { name: 'write_file', arguments: { path: { path: `${pub}/**` } } },
              ],
            },
          },
          deny: {
            mcp: {
              tools: [
                { name: 'write_file', arguments: { content: { regex: 'drop\\s+table' } } },
                { name: 'read_text_file', arguments: { tail: { min: 1000 } } },
              ],
            },
          },
        },
      },
    ],
    audit: { path: auditPath },
  });
  await cluster.stopProxy();
  await cluster.startProxy();
  identity = await cluster.issue('mallory', ['public-files']);
  t = await RawTunnel.open(cluster.address, identity, { server: 'files' });
  t.send(INIT(0));
  await t.response(0);
  t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
});
afterAll(async () => {
  await t?.close();
  await cluster?.close();
});

describe('allowed calls pass', () => {
  it('reads a public file, with and without the optional head', async () => {
    const r = await call('ok1', 'read_text_file', { path: join(pub, 'a.txt') });
    expect(JSON.stringify(r.result)).toContain(PUBLIC_TEXT);
    const h = await call('ok2', 'read_text_file', { path: join(pub, 'a.txt'), head: 1 });
    expect(JSON.stringify(h.result)).toContain(PUBLIC_TEXT);
  });

  it('the tools stay listed (argument rules restrict calls, not names)', async () => {
    t.send({ jsonrpc: '2.0', id: 'list', method: 'tools/list', params: {} });
    const list = await t.response('list');
    const names = (list.result as { tools: Array<{ name: string }> }).tools.map((x) => x.name).sort();
    expect(names).toEqual(['list_allowed_directories', 'read_multiple_files', 'read_text_file', 'write_file']);
  });
});

describe('path rules', () => {
  it.each([
    ['a file outside the allowed directory', () => join(sample, 'secret.txt')],
    ['a dot-dot segment', () => `${pub}/../secret.txt`],
    ['a dot-dot segment deeper down', () => `${pub}/x/../../secret.txt`],
    ['percent-encoded dots', () => `${pub}/%2e%2e/secret.txt`],
    ['a home-directory path', () => '~/secret.txt'],
    ['a relative path', () => 'secret.txt'],
    ['a backslash', () => `${pub}\\..\\secret.txt`],
    ['a NUL byte', () => `${pub}/a.txt\u0000/../../secret.txt`],
  ])('refuses %s', async (_what, path) => {
    const id = `p-${Math.random().toString(36).slice(2)}`;
    const res = await call(id, 'read_text_file', { path: path() });
    const ev = await expectArgumentDenied(res, 'path');
    expect(ev.tool).toBe('read_text_file');
  });

  it('refuses a missing path (required) and a path that is not a string', async () => {
    await expectArgumentDenied(await call('m1', 'read_text_file', {}), 'path');
    await expectArgumentDenied(await call('m2', 'read_text_file', { path: [join(sample, 'secret.txt')] }), 'path');
    await expectArgumentDenied(await call('m3', 'read_text_file', { path: { p: 1 } }), 'path');
  });

  it('refuses a second spelling of the key (Path, PATH, fullwidth) that a lenient server could read', async () => {
    for (const key of ['Path', 'PATH', '\uFF50ath']) {
      const res = await call(`k-${key}`, 'read_text_file', {
        path: join(pub, 'a.txt'),
        [key]: join(sample, 'secret.txt'),
      });
      await expectArgumentDenied(res, 'path');
    }
  });

  it('judges the decoded key: "pa\\u0074h" is "path"', async () => {
    t.sendRaw(
      `{"jsonrpc":"2.0","id":"esc","method":"tools/call","params":{"name":"read_text_file","arguments":{"pa\\u0074h":${JSON.stringify(join(sample, 'secret.txt'))}}}}`,
    );
    await expectArgumentDenied(await t.response('esc'), 'path');
  });

  it('a duplicate "path" key is refused by the inspector (-32600) before any rule, and not forwarded', async () => {
    t.sendRaw(
      `{"jsonrpc":"2.0","id":"dup","method":"tools/call","params":{"name":"read_text_file","arguments":{"path":${JSON.stringify(join(pub, 'a.txt'))},"path":${JSON.stringify(join(sample, 'secret.txt'))}}}}`,
    );
    const res = await t.response('dup');
    expect((res.error as { code: number }).code).toBe(-32600);
    expect(JSON.stringify(res)).not.toContain(SECRET);
  });

  it('every element of a list is judged (paths[])', async () => {
    const ok = await call('l1', 'read_multiple_files', { paths: [join(pub, 'a.txt')] });
    expect(JSON.stringify(ok.result)).toContain(PUBLIC_TEXT);
    const bad = await call('l2', 'read_multiple_files', { paths: [join(pub, 'a.txt'), `${pub}/../secret.txt`] });
    await expectArgumentDenied(bad, 'paths[]');
    const notList = await call('l3', 'read_multiple_files', { paths: join(sample, 'secret.txt') });
    await expectArgumentDenied(notList, 'paths[]');
  });
});

describe('numeric rules and numbers as strings', () => {
  it('an allow range refuses values outside it and numbers sent as strings', async () => {
    await expectArgumentDenied(await call('n1', 'read_text_file', { path: join(pub, 'a.txt'), head: 50 }), 'head');
    await expectArgumentDenied(await call('n2', 'read_text_file', { path: join(pub, 'a.txt'), head: '3' }), 'head');
  });

  it('a deny range matches a number sent as a string (a server may coerce it)', async () => {
    const res = await call('n3', 'read_text_file', { path: join(pub, 'a.txt'), tail: '5000' });
    const ev = await expectArgumentDenied(res, 'tail');
    expect(String(ev.reason)).toContain('denied by role public-files');
    await expectArgumentDenied(await call('n4', 'read_text_file', { path: join(pub, 'a.txt'), tail: 1000 }), 'tail');
  });
});

describe('deny wins over allow', () => {
  it('write_file: allowed path, but content matching the deny regex (any case) is refused and nothing is written', async () => {
    const target = join(pub, 'evil.sql');
    const res = await call('w1', 'write_file', { path: target, content: 'x; DROP   TABLE users;' });
    await expectArgumentDenied(res, 'content');
    expect(existsSync(target)).toBe(false);
  });

  it('write_file outside the allowed directory is refused and nothing is written', async () => {
    const target = join(sample, 'owned.txt');
    await expectArgumentDenied(await call('w2', 'write_file', { path: target, content: 'hi' }), 'path');
    expect(existsSync(target)).toBe(false);
  });

  it('a clean write inside it goes through', async () => {
    const target = join(pub, 'fine.txt');
    const res = await call('w3', 'write_file', { path: target, content: 'fine' });
    expect(res.error).toBeUndefined();
    expect(await readFile(target, 'utf8')).toBe('fine');
  });

  it('the proxy still serves the session', async () => {
    const res = await call('after', 'list_allowed_directories', {});
    expect(res.error).toBeUndefined();
  });
});
