/**
 * The enforcement point, attacked the way a holder of a valid read-only
 * identity would: with an own tunnel client (test/helpers/raw-tunnel.ts, not
 * the stock bridge) against the real proxy and the published
 * @modelcontextprotocol/server-filesystem. Each test asserts what must NOT
 * happen (the write, the read outside the allowed directory), that the proxy
 * still answers, and that the audit trail has the refusal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  TestCluster,
  ALLOW_ALL_ROLE,
  EVERYTHING,
  FILESYSTEM,
  ROOT,
  testServer,
  waitForExit,
} from './helpers/cluster.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';

const CR_SERVER = `
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (m.id !== undefined) process.stdout.write('{"jsonrpc":"2.0",\\r"id":' + JSON.stringify(m.id) + ',\\r\\r"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"cr","version":"1"}}}\\n');
    }
  });`;
const SECRET_ENV = 'MCP_ACCESS_TEST_PROXY_SECRET';
const SECRET_VALUE = 'proxy-only-secret-7f3a';

let cluster: TestCluster;
let sample: string;
let outside: string;
let caKey: string;
let auditPath: string;
let reader: string; // llm-access: read tools only
let admin: string; // every tool

/** A `tools/call` request on a raw tunnel. */
function callTool(t: RawTunnel, id: string | number, name: string, args: Record<string, unknown>): void {
  t.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
}

async function auditEvents(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(auditPath, 'utf8').catch(() => '');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function auditEvent(
  match: (e: Record<string, unknown>) => boolean,
  what: string,
): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await expect
    .poll(async () => (found = (await auditEvents()).find(match)), { timeout: 15_000, message: `audit event: ${what}` })
    .toBeDefined();
  return found!;
}

const fsServer = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  description: 'sample files',
  labels: { env: 'dev' },
  command: process.execPath,
  args: [FILESYSTEM, sample],
  ...extra,
});

/** Open a session as an MCP client would start it (initialize + initialized). */
async function session(
  identity: string,
  server: string,
  capabilities: Record<string, unknown> = {},
): Promise<RawTunnel> {
  const t = await RawTunnel.open(cluster.address, identity, { server });
  expect(t.hello, `tunnel to ${server}: ${JSON.stringify(t.closed)}`).toBeDefined();
  t.send({
    jsonrpc: '2.0',
    id: 'init',
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities, clientInfo: { name: 'raw-attacker', version: '1' } },
  });
  expect((await t.response('init')).result).toBeDefined();
  t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return t;
}

/** The proxy still answers on this tunnel. */
async function stillAnswers(t: RawTunnel, id: string): Promise<void> {
  t.send({ jsonrpc: '2.0', id, method: 'ping' });
  expect((await t.response(id)).result).toEqual({});
}

function text(r: Record<string, unknown>): string {
  return JSON.stringify(r);
}

beforeAll(async () => {
  process.env[SECRET_ENV] = SECRET_VALUE; // the proxy inherits it; its upstreams must not
  cluster = await TestCluster.start({ servers: [] });
  sample = join(cluster.dir, 'sample');
  outside = join(cluster.dir, 'outside');
  await mkdir(join(sample, 'docs'), { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(sample, 'products.csv'), 'id,name\n1,widget\n');
  await writeFile(join(outside, 'secret.txt'), 'TOP-SECRET-OUTSIDE\n');
  caKey = join(cluster.dir, 'ca', 'ca.key');
  auditPath = join(cluster.dir, 'audit', 'audit.jsonl');
  const sampleUri = pathToFileURL(sample).href;
  await cluster.writeConfig({
    servers: [
      fsServer('files'),
      fsServer('files-client-roots', { client_roots: true }),
      {
        name: 'everything',
        labels: { env: 'dev' },
        command: process.execPath,
        args: [EVERYTHING, 'stdio'],
        env: { EXTRA_FROM_CONFIG: 'yes' },
      },
      testServer('limited'),
      testServer('expiring'),
      testServer('as-nobody', { run_as: 'nobody' }),
      // A server whose answers carry a raw CR (JSON whitespace) in the middle of the line.
      { name: 'cr-server', labels: { env: 'dev' }, command: process.execPath, args: ['-e', CR_SERVER] },
      // As operators write it: npx (the package is installed here, so no download).
      {
        name: 'files-npx',
        labels: { env: 'dev' },
        command: 'npx',
        args: ['--no-install', '@modelcontextprotocol/server-filesystem', sample],
        cwd: ROOT,
      },
    ],
    roles: [
      ALLOW_ALL_ROLE,
      {
        kind: 'role',
        version: 'v8',
        metadata: { name: 'sample-roots' },
        spec: {
          allow: { app_labels: { env: 'dev' }, mcp: { roots: [sampleUri, `${sampleUri}/*`] } },
          deny: { mcp: { roots: ['*secret*'] } },
        },
      },
    ],
    roles_files: [join(ROOT, 'test/fixtures/roles')],
    audit: { path: auditPath },
    sessions: { max_per_identity: 2, max_processes_per_server: 4 },
  });
  await cluster.stopProxy();
  await cluster.startProxy();
  reader = await cluster.issue('llm-agent', ['llm-access']);
  admin = await cluster.issue('admin', ['all']);
});
afterAll(async () => {
  delete process.env[SECRET_ENV];
  await cluster?.close();
});

describe('one frame is one message: no line break reaches a stdio server', () => {
  const target = () => join(sample, 'smuggled.txt');
  const hidden = (sep: string, id: number) =>
    `{"jsonrpc":"2.0","id":${id},"method":"ping","params":{"_meta":${sep}{"jsonrpc":"2.0","id":${id + 100},"method":"tools/call","params":{"name":"write_file","arguments":{"path":${JSON.stringify(target())},"content":"pwned"}}}${sep}}}`;

  it('a tools/call hidden behind a raw LF (or CR, or CRLF) in a ping is refused, not run, and audited', async () => {
    const t = await session(reader, 'files');
    for (const [i, sep] of ['\n', '\r', '\r\n'].entries()) {
      const id = 10 + i;
      t.sendRaw(hidden(sep, id));
      const r = await t.response(id);
      expect((r.error as { code: number; message: string }).code).toBe(-32600);
      expect((r.error as { message: string }).message).toMatch(/raw line break/);
      const ev = await auditEvent(
        (e) => e.id === (r.error as { data: { auditEventId: string } }).data.auditEventId,
        `refusal of ${id}`,
      );
      expect(ev).toMatchObject({
        type: 'mcp.session.request',
        outcome: 'denied',
        rpcId: id,
        user: 'llm-agent',
        roles: ['llm-access'],
      });
    }
    await stillAnswers(t, 'alive');
    // The hidden request was never answered: the server never saw it.
    expect(t.messages.some((m) => typeof m.id === 'number' && m.id >= 100)).toBe(false);
    await t.close();
    await expect(readFile(target())).rejects.toThrow(/ENOENT/);
    expect((await auditEvents()).some((e) => e.tool === 'write_file' && e.outcome !== 'denied')).toBe(false);
  });
});

describe('no multi-line frame reaches the client', () => {
  it('a server frame with raw CRs (JSON whitespace) is refused by the proxy and audited; the client gets nothing multi-line', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('cr-server', admin));
    b.send(INIT(1));
    // The proxy checks server messages as it checks client ones (a line-based
    // reader would cut this one); the bridge's own one-line rule is unit-tested.
    await auditEvent(
      (e) =>
        e.user === 'admin' &&
        e.direction === 'server_to_client' &&
        e.outcome === 'denied' &&
        /bare CR or LF/.test(String(e.reason)),
      'refused server frame',
    );
    expect(b.stdoutText).not.toMatch(/\r/);
    expect(b.stdoutText).not.toMatch(/"serverInfo"/);
    await b.end();
  });
});

describe('request-only methods and ids', () => {
  it('a tools/call sent as a notification (no id) is refused and audited, never forwarded', async () => {
    const t = await session(admin, 'files');
    const path = join(sample, 'notified.txt');
    t.send({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'write_file', arguments: { path, content: 'x' } } });
    const r = await t.next((m) => m.id === null && 'error' in m, 'refusal of the notification');
    expect((r.error as { code: number; message: string }).message).toMatch(/"tools\/call" is not a notification/);
    await auditEvent(
      (e) => e.user === 'admin' && e.outcome === 'denied' && /is not a notification/.test(String(e.reason)),
      'refused notification',
    );
    await stillAnswers(t, 'alive');
    await t.close();
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
  });

  it('a request reusing a pending id is refused, so the tools/list answer is still filtered', async () => {
    const t = await session(reader, 'files');
    // Back to back: the second arrives while the first is pending.
    t.send({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
    t.send({ jsonrpc: '2.0', id: 9, method: 'resources/list' });
    const refusal = await t.next((m) => m.id === 9 && 'error' in m, 'refusal of the reused id');
    expect((refusal.error as { code: number; message: string }).code).toBe(-32600);
    expect((refusal.error as { message: string }).message).toMatch(
      /already used by a request that has not been answered/,
    );
    const list = await t.next((m) => m.id === 9 && 'result' in m, 'the tools/list answer');
    const names = (list.result as { tools: Array<{ name: string }> }).tools.map((x) => x.name);
    expect(names.length).toBeGreaterThan(2);
    for (const n of names) expect(n).toMatch(/^(get_.*|list_.*|read_.*|search_files)$/);
    await auditEvent(
      (e) => e.rpcId === 9 && e.method === 'resources/list' && e.outcome === 'denied',
      'reused id refusal',
    );
    // Once answered, the id may be used again.
    t.send({ jsonrpc: '2.0', id: 9, method: 'ping' });
    await t.next((m) => m.id === 9 && 'result' in m && JSON.stringify(m.result) === '{}', 'ping with the freed id');
    await t.close();
  });
});

describe('roots belong to the client, not to the server', () => {
  it('by default the proxy answers roots/list itself; a forged file:/// answer and list_changed never reach the server; the CA key stays unread', async () => {
    const t = await session(reader, 'files', { roots: { listChanged: true } });
    // The forged answer races the server's roots/list request (server-filesystem asks right after initialized).
    for (const id of [0, 1, 2])
      t.send({ jsonrpc: '2.0', id, result: { roots: [{ uri: 'file:///', name: 'everything' }] } });
    t.send({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
    await auditEvent(
      (e) =>
        e.user === 'llm-agent' &&
        e.method === 'roots/list' &&
        e.direction === 'server_to_client' &&
        /answered by the proxy/.test(String(e.reason)),
      'roots/list answered by the proxy',
    );
    await auditEvent(
      (e) =>
        e.user === 'llm-agent' &&
        e.phase === 'response' &&
        e.outcome === 'denied' &&
        /no pending request/.test(String(e.reason)),
      'forged roots answer dropped',
    );
    await auditEvent(
      (e) => e.user === 'llm-agent' && e.method === 'notifications/roots/list_changed' && e.outcome === 'denied',
      'list_changed dropped',
    );
    await cluster.waitForLog(/No valid root directories provided by client/);

    callTool(t, 'ca', 'read_text_file', { path: caKey });
    callTool(t, 'out', 'read_text_file', { path: join(outside, 'secret.txt') });
    callTool(t, 'dirs', 'list_allowed_directories', {});
    const [ca, out, dirs] = [await t.response('ca'), await t.response('out'), await t.response('dirs')];
    expect(text(ca)).not.toMatch(/PRIVATE KEY/);
    expect(text(ca)).toMatch(/denied|outside allowed/i);
    expect(text(out)).not.toMatch(/TOP-SECRET-OUTSIDE/);
    expect(text(dirs)).toContain(sample);
    expect(text(dirs)).not.toMatch(/"\/"|\\n\/\\n/);
    // The client never saw a roots/list request.
    expect(t.messages.some((m) => m.method === 'roots/list')).toBe(false);
    await t.close();
  });

  it('with client_roots: true, only the roots the roles allow (mcp.roots, deny wins) reach the server', async () => {
    const rooted = await cluster.issue('rooted-agent', ['llm-access', 'sample-roots']);
    const t = await session(rooted, 'files-client-roots', { roots: { listChanged: true } });
    const ask = await t.next((m) => m.method === 'roots/list', "the server's roots/list request");
    const sampleUri = pathToFileURL(sample).href;
    t.send({
      jsonrpc: '2.0',
      id: ask.id,
      result: {
        roots: [
          { uri: 'file:///', name: 'all' },
          { uri: `${sampleUri}/../outside`, name: 'dot-dot' },
          { uri: `${sampleUri}/%2e%2e/outside` },
          { uri: `${sampleUri}/secret-stuff` },
          { uri: sampleUri, name: 'sample' },
        ],
      },
    });
    const ev = await auditEvent(
      (e) => e.user === 'rooted-agent' && e.phase === 'response' && e.method === 'roots/list',
      'filtered roots answer',
    );
    expect(ev.roots).toEqual([sampleUri]);
    expect(ev.refusedRoots).toEqual([
      'file:///',
      `${sampleUri}/../outside`,
      `${sampleUri}/%2e%2e/outside`,
      `${sampleUri}/secret-stuff`,
    ]);
    await cluster.waitForLog(/Updated allowed directories from MCP roots: 1 valid directories/);

    callTool(t, 'ca', 'read_text_file', { path: caKey });
    callTool(t, 'out', 'read_text_file', { path: join(outside, 'secret.txt') });
    callTool(t, 'in', 'read_text_file', { path: join(sample, 'products.csv') });
    expect(text(await t.response('ca'))).not.toMatch(/PRIVATE KEY/);
    expect(text(await t.response('out'))).not.toMatch(/TOP-SECRET-OUTSIDE/);
    expect(text(await t.response('in'))).toContain('widget');
    await t.close();
  });
});

describe("upstream processes cannot reach the proxy's secrets", () => {
  it("a stdio server gets a minimal environment plus its env, not the proxy's", async () => {
    const t = await session(admin, 'everything');
    t.send({ jsonrpc: '2.0', id: 'env', method: 'tools/call', params: { name: 'get-env', arguments: {} } });
    const r = await t.response('env');
    const env = JSON.parse((r.result as { content: Array<{ text: string }> }).content[0]!.text) as Record<
      string,
      string
    >;
    expect(env[SECRET_ENV]).toBeUndefined();
    expect(JSON.stringify(env)).not.toContain(SECRET_VALUE);
    expect(env.PATH).toBe(process.env.PATH);
    expect(env.EXTRA_FROM_CONFIG).toBe('yes');
    const allowed = /^(PATH|HOME|USER|LOGNAME|SHELL|TERM|LANG|LANGUAGE|TZ|TMPDIR|TMP|TEMP|LC_.*|EXTRA_FROM_CONFIG)$/;
    // (Node and npm may add a few of their own at start-up, e.g. npm_*.)
    for (const k of Object.keys(env)) if (!k.startsWith('npm_') && !k.startsWith('NODE')) expect(k).toMatch(allowed);
    await t.close();
  });

  it('an npx-started server still starts with the minimal environment', async () => {
    const t = await session(reader, 'files-npx');
    callTool(t, 'read', 'read_text_file', { path: join(sample, 'products.csv') });
    expect(text(await t.response('read', 30_000))).toContain('widget');
    await t.close();
  });

  // Switching users needs root (or CAP_SETUID/CAP_SETGID); other runs cannot test it.
  it.runIf(process.getuid?.() === 0)(
    'run_as: the server process runs as that user (here nobody, who cannot read the CA key)',
    async () => {
      const t = await session(admin, 'as-nobody');
      t.send({ jsonrpc: '2.0', id: 'pid', method: 'tools/call', params: { name: 'pid', arguments: {} } });
      const pid = Number(((await t.response('pid')).result as { content: Array<{ text: string }> }).content[0]!.text);
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
      expect(status).toMatch(/^Gid:\s+65534\s/m);
      expect(status).toMatch(/^Groups:\s*$/m);
      expect(cluster.proxyLog).not.toMatch(/SECURITY: .*"as-nobody"/);
      await t.close();
    },
  );

  it('the proxy warned at start that its stdio servers run as a user that can read the CA key, naming the fix', () => {
    expect(cluster.proxyLog).toMatch(/SECURITY: stdio servers .*"files".* can read the CA key .*Set run_as:/);
  });
});

describe('a resumed session is judged by the certificate presented now', () => {
  it('open with a broad certificate, drop, resume with a narrow one: the narrow roles apply and are audited', async () => {
    const broad = await cluster.issue('mallory', ['example-role']);
    const narrow = await cluster.issue('mallory', ['llm-access']);
    const path = join(sample, 'after-resume.txt');
    const t = await session(broad, 'files');
    const token = t.hello!.resumeToken;
    t.send({ jsonrpc: '2.0', id: 'list1', method: 'tools/list' });
    expect(text(await t.response('list1'))).toContain('write_file');
    const received = t.messages.length;
    t.drop();

    const r = await RawTunnel.open(cluster.address, narrow, { resume: token, received });
    expect(r.hello?.resumed).toBe(true);
    callTool(r, 'w', 'write_file', { path, content: 'x' });
    const denied = await r.response('w');
    expect((denied.error as { code: number }).code).toBe(-32602);
    r.send({ jsonrpc: '2.0', id: 'list2', method: 'tools/list' });
    expect(text(await r.response('list2'))).not.toContain('write_file');
    await auditEvent(
      (e) =>
        e.type === 'mcp.session.resume' &&
        e.user === 'mallory' &&
        JSON.stringify(e.roles) === '["llm-access"]' &&
        JSON.stringify(e.previousRoles) === '["example-role"]',
      'resume event',
    );
    await auditEvent(
      (e) =>
        e.user === 'mallory' &&
        e.tool === 'write_file' &&
        e.outcome === 'denied' &&
        JSON.stringify(e.roles) === '["llm-access"]',
      'denial with the roles in force',
    );
    await stillAnswers(r, 'alive');
    await r.close();
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
  });

  it('the expiry of the resuming certificate applies: a short-lived one ends the session at its notAfter', async () => {
    const long = await cluster.issue('switcher', ['all'], 600_000);
    const brief = await cluster.issue('switcher', ['all'], 8_000);
    const t = await session(long, 'expiring');
    t.send({ jsonrpc: '2.0', id: 'pid', method: 'tools/call', params: { name: 'pid', arguments: {} } });
    const pid = Number(((await t.response('pid')).result as { content: Array<{ text: string }> }).content[0]!.text);
    const received = t.messages.length;
    t.drop();
    const r = await RawTunnel.open(cluster.address, brief, { resume: t.hello!.resumeToken, received });
    expect(r.hello?.resumed).toBe(true);
    await r.until(() => r.closed !== undefined, "close at the resuming certificate's expiry", 30_000);
    expect(r.closed!.code).toBe(4402);
    expect(await waitForExit(pid, 15_000)).toBe(true);
  });

  it('another user cannot resume the session', async () => {
    const t = await session(admin, 'files');
    const token = t.hello!.resumeToken;
    t.drop();
    const r = await RawTunnel.open(cluster.address, reader, { resume: token, received: 0 });
    expect(r.hello).toBeUndefined();
    expect(r.closed?.code).toBe(4401);
    // The owner still can.
    const back = await RawTunnel.open(cluster.address, admin, { resume: token, received: t.messages.length });
    expect(back.hello?.resumed).toBe(true);
    await stillAnswers(back, 'alive');
    await back.close();
  });
});

describe('an expired certificate ends its session at once', () => {
  it('the upstream is stopped when the certificate expires, not kept for a resume that cannot come', async () => {
    const shortLived = await cluster.issue('brief', ['all'], 8_000);
    const t = await session(shortLived, 'expiring');
    t.send({ jsonrpc: '2.0', id: 'pid', method: 'tools/call', params: { name: 'pid', arguments: {} } });
    const pid = Number(((await t.response('pid')).result as { content: Array<{ text: string }> }).content[0]!.text);
    expect(pid).toBeGreaterThan(0);
    await t.until(() => t.closed !== undefined, 'close at expiry', 30_000);
    expect(t.closed!.code).toBe(4402);
    // Far less than the 2-minute grace period.
    expect(await waitForExit(pid, 15_000)).toBe(true);
    await auditEvent(
      (e) => e.type === 'mcp.session.end' && e.user === 'brief' && /expired/.test(String(e.reason)),
      'session end at expiry',
    );
  });
});

describe('limits', () => {
  it('sessions per identity: the refusal names the limit and is audited; a session waiting for a resume makes room', async () => {
    const hog = await cluster.issue('hog', ['all']);
    const a = await session(hog, 'limited');
    const b = await session(hog, 'limited');
    const c = await RawTunnel.open(cluster.address, hog, { server: 'limited' });
    expect(c.hello).toBeUndefined();
    expect(c.closed?.code).toBe(4429);
    const fatal = c.controls.find((f) => f.type === 'fatal')!;
    expect(fatal).toMatchObject({ code: 'LIMIT_REACHED' });
    expect(String(fatal.message)).toMatch(/sessions\.max_per_identity/);
    await auditEvent(
      (e) => e.user === 'hog' && e.outcome === 'denied' && /max_per_identity/.test(String(e.reason)),
      'limit refusal',
    );
    await stillAnswers(a, 'alive');
    // A dropped session (waiting for a resume) is ended to make room.
    const drops = () => cluster.proxyLog.split('tunnel dropped').length;
    const before = drops();
    b.drop();
    await expect.poll(drops, { timeout: 10_000 }).toBeGreaterThan(before);
    const d = await session(hog, 'limited');
    await stillAnswers(d, 'alive-d');
    expect(cluster.proxyLog).toMatch(
      /hog is at sessions.max_per_identity; ending its oldest session waiting for a resume/,
    );
    await a.close();
    await d.close();
    await expect
      .poll(async () => (await auditEvents()).filter((e) => e.type === 'mcp.session.end' && e.user === 'hog').length, {
        timeout: 15_000,
      })
      .toBe(3);
  });

  it('processes per server: the refusal names the limit', async () => {
    const users = await Promise.all(['p1', 'p2', 'p3'].map((u) => cluster.issue(u, ['all'])));
    // max_processes_per_server: 4 = the warm spare + 3 sessions.
    const open = [
      await session(users[0]!, 'limited'),
      await session(users[1]!, 'limited'),
      await session(users[2]!, 'limited'),
    ];
    const extra = await cluster.issue('p4', ['all']);
    const refused = await RawTunnel.open(cluster.address, extra, { server: 'limited' });
    expect(refused.closed?.code).toBe(4429);
    expect(String(refused.controls.find((f) => f.type === 'fatal')?.message)).toMatch(
      /MCP server "limited" has reached its limit of processes \(4, sessions\.max_processes_per_server\)/,
    );
    for (const t of open) await stillAnswers(t, 'alive');
    for (const t of open) await t.close();
  });
});
