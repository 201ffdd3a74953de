/**
 * Resources and prompts under roles (issue 15), attacked with an own tunnel
 * client (test/helpers/raw-tunnel.ts) against the real proxy and the
 * published @modelcontextprotocol/server-everything: lists are filtered;
 * reads, subscriptions, prompts and completions that the roles do not allow
 * are refused with -32602 by the proxy (never forwarded) and audited, however
 * the URI or name is spelt; and a role that does not write mcp.resources /
 * mcp.prompts follows rbac.default_resources / default_prompts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, EVERYTHING } from './helpers/cluster.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { INIT } from './helpers/raw-bridge.js';

const STATIC = 'demo://resource/static/document/';
const TEXT = 'demo://resource/dynamic/text/';

const SCOPED = {
  kind: 'role',
  version: 'v8',
  metadata: { name: 'scoped' },
  spec: {
    allow: {
      app_labels: { env: 'prod' },
      mcp: {
        tools: ['echo'],
        resources: [`${STATIC}features.md`, `${TEXT}*`],
        prompts: ['simple-prompt', 'args-prompt', 'resource-prompt'],
      },
    },
    deny: { mcp: { resources: [`${TEXT}2`], prompts: ['args-prompt'] } },
  },
};
/** A role as Teleport writes it: nothing about resources or prompts. */
const TELEPORT_STYLE = {
  kind: 'role',
  version: 'v8',
  metadata: { name: 'echo-only' },
  spec: { allow: { app_labels: { env: 'prod' }, mcp: { tools: ['echo'] } } },
};

let cluster: TestCluster;
let auditPath: string;
let scoped: string;
let teleportStyle: string;

async function auditEvents(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(auditPath, 'utf8').catch(() => '');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function open(identity: string): Promise<RawTunnel> {
  const t = await RawTunnel.open(cluster.address, identity, { server: 'everything' });
  t.send(INIT(0));
  await t.response(0);
  t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return t;
}

async function request(t: RawTunnel, id: string, method: string, params: unknown): Promise<Record<string, unknown>> {
  t.send({ jsonrpc: '2.0', id, method, params });
  return t.response(id);
}

/** The proxy refused it itself (-32602 with its code and an audit event id), and the audit trail says so. */
async function expectRefused(
  res: Record<string, unknown>,
  code: string,
  sessionEvents: (e: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  const error = res.error as { code: number; message: string; data: Record<string, unknown> };
  expect(error, JSON.stringify(res)).toBeDefined();
  expect(error.code).toBe(-32602);
  expect(error.data.code).toBe(code);
  expect(typeof error.data.auditEventId).toBe('string');
  const events = await auditEvents();
  const ev = events.find((e) => e.id === error.data.auditEventId);
  expect(ev).toMatchObject({ type: 'mcp.session.request', outcome: 'denied', rpcId: res.id });
  expect(ev!.server).toBe('everything');
  // Never forwarded: the server never answered this id.
  expect(events.some((e) => e.phase === 'response' && e.rpcId === res.id && sessionEvents(e))).toBe(false);
  return ev!;
}

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [
      {
        name: 'everything',
        labels: { env: 'prod' },
        command: process.execPath,
        args: [EVERYTHING],
      },
    ],
    roles: [SCOPED, TELEPORT_STYLE],
  });
  auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({ audit: { path: auditPath } });
  await cluster.stopProxy();
  await cluster.startProxy();
  scoped = await cluster.issue('mallory', ['scoped']);
  teleportStyle = await cluster.issue('tess', ['echo-only']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('a role that writes mcp.resources and mcp.prompts', () => {
  let t: RawTunnel;
  const mine = (e: Record<string, unknown>) => e.user === 'mallory';
  beforeAll(async () => {
    t = await open(scoped);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('filters resources/list, resources/templates/list and prompts/list', async () => {
    const list = await request(t, 'l1', 'resources/list', {});
    const uris = ((list.result as { resources: Array<{ uri: string }> }).resources ?? []).map((r) => r.uri);
    expect(uris).toEqual([`${STATIC}features.md`]);

    const templates = await request(t, 'l2', 'resources/templates/list', {});
    const tpl = (templates.result as { resourceTemplates: Array<{ uriTemplate: string }> }).resourceTemplates.map(
      (r) => r.uriTemplate,
    );
    expect(tpl).toEqual([`${TEXT}{resourceId}`]);

    const prompts = await request(t, 'l3', 'prompts/list', {});
    const names = (prompts.result as { prompts: Array<{ name: string }> }).prompts.map((p) => p.name).sort();
    // args-prompt is allowed and denied: deny wins; completable-prompt is not allowed.
    expect(names).toEqual(['resource-prompt', 'simple-prompt']);
  });

  it('reads what it allows', async () => {
    const ok = await request(t, 'r1', 'resources/read', { uri: `${STATIC}features.md` });
    expect(JSON.stringify(ok.result)).toContain('features.md');
    const dyn = await request(t, 'r2', 'resources/read', { uri: `${TEXT}1` });
    expect(dyn.error).toBeUndefined();
    const prompt = await request(t, 'p1', 'prompts/get', { name: 'simple-prompt' });
    expect(prompt.error).toBeUndefined();
  });

  it('refuses a resource it does not allow, and one that it denies, without forwarding them', async () => {
    const res = await request(t, 'd1', 'resources/read', { uri: `${STATIC}architecture.md` });
    const ev = await expectRefused(res, 'RESOURCE_DENIED', mine);
    expect(ev).toMatchObject({ method: 'resources/read', resource: `${STATIC}architecture.md` });
    expect(JSON.stringify(res)).not.toContain('# Architecture');

    const denied = await request(t, 'd2', 'resources/read', { uri: `${TEXT}2` });
    const ev2 = await expectRefused(denied, 'RESOURCE_DENIED', mine);
    expect(ev2.reason).toContain('spec.deny.mcp.resources[0]');
  });

  it.each([
    ['percent-encoded digit', `${TEXT}%32`],
    ['double percent-encoding', `${TEXT}%2532`],
    ['a dot-dot segment', `${TEXT}1/../2`],
    ['an upper-case scheme', `DEMO://resource/dynamic/text/2`],
    ['climbing out of the allowed glob', `${TEXT}1/../../../static/document/architecture.md`],
    ['encoded dots climbing out', `${TEXT}%2e%2e/%2e%2e/static/document/architecture.md`],
    ['a zero-width space', `${STATIC}features.md\u200b`],
    ['a trailing space', `${STATIC}features.md `],
    ['a fullwidth digit', `${TEXT}\uFF12`],
  ])('refuses resources/read with %s', async (_what, uri) => {
    const id = `enc-${uri.length}-${encodeURIComponent(uri).slice(-12)}`;
    const res = await request(t, id, 'resources/read', { uri });
    await expectRefused(res, 'RESOURCE_DENIED', mine);
  });

  it('refuses resources/subscribe to a resource it may not read', async () => {
    const res = await request(t, 's1', 'resources/subscribe', { uri: `${STATIC}architecture.md` });
    const ev = await expectRefused(res, 'RESOURCE_DENIED', mine);
    expect(ev.method).toBe('resources/subscribe');
  });

  it.each([
    ['denied by name', 'args-prompt'],
    ['denied, in upper case', 'ARGS-PROMPT'],
    ['denied, with a fullwidth letter', '\uFF41rgs-prompt'],
    ['denied, with a long s (U+017F)', 'arg\u017F-prompt'],
    ['not allowed', 'completable-prompt'],
    ['an allowed name with a zero-width joiner', 'simple-prompt\u200d'],
    ['an allowed name with a right-to-left mark', '\u200fsimple-prompt'],
  ])('refuses prompts/get of a prompt %s', async (_what, name) => {
    const id = `pg-${encodeURIComponent(name)}`;
    const res = await request(t, id, 'prompts/get', { name, arguments: { city: 'x', state: 'y' } });
    const ev = await expectRefused(res, 'PROMPT_DENIED', mine);
    expect(ev.method).toBe('prompts/get');
  });

  it('refuses completion/complete for a prompt or resource it may not use, and unknown references', async () => {
    const p = await request(t, 'c1', 'completion/complete', {
      ref: { type: 'ref/prompt', name: 'completable-prompt' },
      argument: { name: 'department', value: 'E' },
    });
    const ev = await expectRefused(p, 'PROMPT_DENIED', mine);
    expect(ev).toMatchObject({ method: 'completion/complete', completion: true });

    const r = await request(t, 'c2', 'completion/complete', {
      ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/blob/{resourceId}' },
      argument: { name: 'resourceId', value: '1' },
    });
    await expectRefused(r, 'RESOURCE_DENIED', mine);

    const odd = await request(t, 'c3', 'completion/complete', {
      ref: { type: 'ref/other', name: 'simple-prompt' },
      argument: { name: 'x', value: '' },
    });
    await expectRefused(odd, 'PROMPT_DENIED', mine);

    const cased = await request(t, 'c4', 'completion/complete', {
      ref: { type: 'ref/prompt', name: 'simple-prompt', Name: 'completable-prompt' },
      argument: { name: 'department', value: 'E' },
    });
    await expectRefused(cased, 'PROMPT_DENIED', mine);

    // An allowed one is forwarded (the server answers it).
    const allowed = await request(t, 'c5', 'completion/complete', {
      ref: { type: 'ref/resource', uri: `${TEXT}{resourceId}` },
      argument: { name: 'resourceId', value: '1' },
    });
    expect((allowed.error as { data?: { code?: string } } | undefined)?.data?.code).toBeUndefined();
  });

  it('a duplicate "uri" key is refused before policy (the inspector), never forwarded', async () => {
    t.sendRaw(
      `{"jsonrpc":"2.0","id":"dup","method":"resources/read","params":{"uri":"${STATIC}features.md","uri":"${STATIC}architecture.md"}}`,
    );
    const res = await t.response('dup');
    expect((res.error as { code: number }).code).toBe(-32600);
    expect(JSON.stringify(res)).not.toContain('# Architecture');
  });

  it('the proxy still serves the session after all of this', async () => {
    const res = await request(t, 'after', 'tools/call', { name: 'echo', arguments: { message: 'still here' } });
    expect(JSON.stringify(res.result)).toContain('still here');
  });
});

describe('a role that does not mention resources or prompts', () => {
  it('allows every resource and prompt by default (rbac.default_*: all, as Teleport)', async () => {
    const t = await open(teleportStyle);
    const list = await request(t, 'a1', 'resources/list', {});
    expect((list.result as { resources: unknown[] }).resources.length).toBe(7);
    const read = await request(t, 'a2', 'resources/read', { uri: `${STATIC}architecture.md` });
    expect(read.error).toBeUndefined();
    const prompt = await request(t, 'a3', 'prompts/get', { name: 'args-prompt', arguments: { city: 'a' } });
    expect(prompt.error).toBeUndefined();
    await t.close();
  });

  it('allows none after rbac.default_resources / default_prompts: none (reload), and explicit entries still work', async () => {
    await cluster.writeConfig({ rbac: { default_resources: 'none', default_prompts: 'none' } });
    cluster.proxyLog = '';
    cluster.proxy!.kill('SIGHUP');
    await cluster.waitForLog(/reloaded/);
    const t = await open(teleportStyle);
    const list = await request(t, 'n1', 'resources/list', {});
    expect((list.result as { resources: unknown[] }).resources).toEqual([]);
    const prompts = await request(t, 'n2', 'prompts/list', {});
    expect((prompts.result as { prompts: unknown[] }).prompts).toEqual([]);
    const read = await request(t, 'n3', 'resources/read', { uri: `${STATIC}architecture.md` });
    const ev = await expectRefused(read, 'RESOURCE_DENIED', (e) => e.user === 'tess');
    expect(ev.reason).toContain('no role that reaches server everything allows any resource');
    const prompt = await request(t, 'n4', 'prompts/get', { name: 'simple-prompt' });
    await expectRefused(prompt, 'PROMPT_DENIED', (e) => e.user === 'tess');
    await t.close();

    const s = await open(scoped);
    const ok = await request(s, 'n5', 'resources/read', { uri: `${STATIC}features.md` });
    expect(ok.error).toBeUndefined();
    await s.close();
  });
});
