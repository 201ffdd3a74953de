/**
 * A malicious MCP server enrolled as an upstream (issue: "servers are not
 * trusted either"): raw stdio and HTTP servers that forge answers, send
 * batches, bare CRs, invalid JSON, non-JSON-RPC values, sampling requests the
 * client never offered, floods of stderr, endless answers; URLs with secrets.
 * Each test asserts that the bound held, that the message was refused (and
 * audited), and that the session still works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { TestCluster, ROOT, resultText } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';
import { runCli } from './helpers/run-cli.js';

const HOSTILE = join(ROOT, 'test/fixtures/servers/hostile-server.mjs');
const HOSTILE_HTTP = join(ROOT, 'test/fixtures/servers/hostile-http-server.mjs');
const MAX = 4 * 1024 * 1024;

let cluster: TestCluster;
let user: string;
let auditPath: string;
let httpServer: ChildProcess;
const raws: RawBridge[] = [];

type Msg = Record<string, unknown>;
const stdio = (name: string, env: Record<string, string> = {}) => ({
  name,
  description: 'hostile',
  labels: { env: 'dev' },
  command: process.execPath,
  args: [HOSTILE],
  env,
});

async function startHttp(): Promise<number> {
  httpServer = spawn(process.execPath, [HOSTILE_HTTP], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    httpServer.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    httpServer.once('exit', (code) => reject(new Error(`hostile http server exited (${code})`)));
  });
}

beforeAll(async () => {
  const port = await startHttp();
  cluster = await TestCluster.start({ servers: [] });
  auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({
    servers: [
      stdio('hostile'),
      stdio('spare', { HOSTILE_PRE_OUTPUT: '1' }),
      stdio('crashy', { HOSTILE_CRASH: 'missing API key \x1b]0;pwned\x07\x1b[2J' }),
      { name: 'ghost', description: 'a typo', labels: { env: 'dev' }, command: '/nonexistent/mcp-server-ghost' },
      {
        name: 'http',
        description: 'hostile http',
        labels: { env: 'dev' },
        url: `http://127.0.0.1:${port}/mcp?api_key=supersecret-query`,
      },
      {
        name: 'legacy',
        description: 'hostile legacy sse',
        labels: { env: 'dev' },
        sse_url: `http://127.0.0.1:${port}/sse`,
      },
      {
        name: 'locked',
        description: 'secret url',
        labels: { env: 'dev' },
        url: 'http://admin:hunter2-password@127.0.0.1:1/mcp?token=tok-123-secret',
      },
    ],
    roles: [
      {
        kind: 'role',
        version: 'v7',
        metadata: { name: 'most' },
        spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } }, deny: { mcp: { tools: ['write_note'] } } },
      },
    ],
    audit: { path: auditPath },
    max_message_size: MAX,
    sessions: { prestart: true },
  });
  await cluster.stopProxy();
  await cluster.startProxy();
  user = await cluster.issue('mallory-victim', ['most']);
});
afterAll(async () => {
  for (const r of raws) r.proc.kill();
  await cluster?.close();
  httpServer?.kill('SIGKILL');
});

/** A raw `connect` to `server`, initialized (with an id of its own, so nothing planted can answer it). */
async function session(server: string): Promise<RawBridge> {
  const raw = RawBridge.spawn(cluster.connectArgs(server, user));
  raws.push(raw);
  raw.send(INIT('init-0'));
  const init = await raw.response('init-0');
  expect(init.result, JSON.stringify(init)).toBeDefined();
  raw.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return raw;
}

const call = (raw: RawBridge, id: number | string, name: string, args: Record<string, unknown> = {}) =>
  raw.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const textOf = (m: Msg) => resultText(m.result);
const withId = (raw: RawBridge, id: unknown) => raw.messages.filter((m) => m.id === id);

async function auditEvents(until: (events: Msg[]) => boolean): Promise<Msg[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const events = (await readFile(auditPath, 'utf8'))
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Msg);
    if (until(events) || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const refusals = (events: Msg[], user_ = 'mallory-victim') =>
  events.filter((e) => e.user === user_ && e.direction === 'server_to_client' && e.outcome === 'denied');

describe('answers the client never asked for', () => {
  it('forged answers (to a denied call, to an id never sent, a second answer) are refused and audited; the session goes on', async () => {
    const raw = await session('hostile');
    call(raw, 7, 'write_note', { text: 'x' });
    const denial = await raw.response(7);
    expect((denial.error as { data: { code: string } }).data.code).toBe('TOOL_DENIED');
    call(raw, 8, 'forge', { id: 7 });
    expect(textOf(await raw.response(8))).toBe('forge done');
    raw.send({ jsonrpc: '2.0', id: 9, method: 'ping' });
    await raw.response(9);
    // The server's answers went through the proxy in order: by the ping's answer, every forgery was judged.
    expect(withId(raw, 7)).toHaveLength(1);
    expect(withId(raw, 7)[0]!.error).toBeDefined();
    expect(withId(raw, 8)).toHaveLength(1);
    expect(withId(raw, 'never-sent-1')).toHaveLength(0);
    expect(raw.stdoutText).not.toContain('forged');
    const events = await auditEvents((e) => refusals(e).length >= 3);
    const reasons = refusals(events).map((e) => `${JSON.stringify(e.rpcId)} ${String(e.reason)}`);
    expect(
      reasons
        .filter((r) => /did not send or which was already answered/.test(r))
        .map((r) => r.split(' ')[0])
        .sort(),
    ).toEqual(['"never-sent-1"', '7', '8']);
  });
});

describe('what is not one clean JSON-RPC message', () => {
  it('batches, bare CRs, invalid JSON (small and over 64 KiB) and non-JSON-RPC values are refused and audited; the real answers arrive', async () => {
    const raw = await session('hostile');
    const before = refusals(await auditEvents(() => true)).length;
    const cases: Array<[number, string, string]> = [
      [10, 'batch', 'after batch'],
      [11, 'crlf', 'after crlf'],
      [12, 'bad_json', 'after bad json'],
      [13, 'big_bad_json', 'after big bad json'],
      [14, 'non_jsonrpc', 'after non-json-rpc'],
    ];
    for (const [id, tool, answer] of cases) {
      call(raw, id, tool);
      expect(textOf(await raw.response(id))).toBe(answer);
    }
    raw.send({ jsonrpc: '2.0', id: 15, method: 'ping' });
    await raw.response(15);
    for (const [id] of cases) expect(withId(raw, id), `id ${id}`).toHaveLength(1);
    expect(raw.stdoutText).not.toMatch(/in a batch|bare cr|cr answer|broken|wrong version|from a batch/);
    expect(raw.stdoutText).not.toContain('\r');
    const want = [
      /batch/,
      /bare CR or LF/,
      /bare CR or LF/,
      /not valid JSON/,
      /not valid JSON/,
      /not a JSON object/,
      /not a JSON object/,
      /not a JSON object/,
      /"foo" is not a JSON-RPC member/,
      /jsonrpc must be "2.0"/,
      /"extra" is not a JSON-RPC member/,
    ];
    const events = await auditEvents((e) => refusals(e).length >= before + want.length);
    const reasons = refusals(events)
      .slice(before)
      .map((e) => String(e.reason));
    for (const re of want) {
      const i = reasons.findIndex((r) => re.test(r));
      expect(i, `${re} in ${JSON.stringify(reasons)}`).toBeGreaterThanOrEqual(0);
      reasons.splice(i, 1);
    }
    // The session is healthy: an ordinary call works.
    call(raw, 16, 'echo', { text: 'still here' });
    expect(textOf(await raw.response(16))).toBe('still here');
  });
});

describe('a flood of refused messages', () => {
  it('is recorded one by one only up to a bound, then summarised; the session goes on', async () => {
    const raw = await session('hostile');
    call(raw, 40, 'junk', { n: 2500 });
    expect(textOf(await raw.response(40, 60_000))).toBe('after junk');
    const ofSession = (events: Msg[]) => {
      const start = events
        .filter((e) => e.type === 'mcp.session.request' && e.rpcId === 40 && e.direction === 'client_to_server')
        .at(-1);
      return refusals(events).filter((e) => e.sessionId === start?.sessionId);
    };
    const events = ofSession(await auditEvents((e) => ofSession(e).length >= 102));
    expect(
      events.filter((e) => /not valid JSON/.test(String(e.reason)) && !/refused so far/.test(String(e.reason))),
    ).toHaveLength(100);
    expect(
      events
        .filter((e) => /refused so far in this session/.test(String(e.reason)))
        .map((e) => /(\d+) messages/.exec(String(e.reason))?.[1]),
    ).toEqual(['1100', '2100']);
  });
});

describe('server → client requests', () => {
  it('a sampling request to a client that did not declare sampling is answered by the proxy, never forwarded, and audited', async () => {
    const raw = await session('hostile');
    call(raw, 20, 'sample');
    const answer = textOf(await raw.response(20));
    expect(answer).toContain('sampling answer');
    expect(answer).toContain('-32601');
    expect(answer).toContain('did not declare the \\"sampling\\" capability');
    expect(raw.messages.some((m) => m.method === 'sampling/createMessage')).toBe(false);
    const events = await auditEvents((e) =>
      e.some((x) => x.method === 'sampling/createMessage' && x.outcome === 'denied'),
    );
    expect(
      events.some(
        (x) => x.method === 'sampling/createMessage' && x.outcome === 'denied' && x.direction === 'server_to_client',
      ),
    ).toBe(true);
  });

  it('a client that declared sampling gets the request', async () => {
    const { client } = await cluster.client('hostile', user, {
      capabilities: { sampling: {} },
      setup: (c) =>
        c.setRequestHandler(CreateMessageRequestSchema, () => ({
          role: 'assistant',
          content: { type: 'text', text: 'no secrets here' },
          model: 'test',
        })),
    });
    expect(resultText(await client.callTool({ name: 'sample', arguments: {} }))).toContain('no secrets here');
    await client.close();
  });
});

describe('bounded output', () => {
  it('stderr without a newline is cut into a bounded, escaped log line; another session is served meanwhile', async () => {
    const a = await session('hostile');
    call(a, 30, 'stderr_flood', { mb: 16 });
    const b = await session('hostile');
    b.send({ jsonrpc: '2.0', id: 31, method: 'ping' });
    await b.response(31);
    expect(textOf(await a.response(30, 120_000))).toBe('flooded');
    await cluster.waitForLog(/end of flood/);
    const lines = cluster.proxyLog.split('\n').filter((l) => l.includes('[hostile]'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.length).toBeLessThan(2048);
    expect(cluster.proxyLog).toMatch(/more bytes dropped/);
    expect(cluster.proxyLog).not.toContain('\x1b');
    expect(cluster.proxyLog).toContain('\\x1b]0;owned\\x07 end of flood');
  });

  it("a warm spare's output before any session is discarded (the spare is replaced), never handed to a session", async () => {
    await cluster.waitForLog(/spare: the warm spare wrote to stdout before any session took it/);
    const raw = await session('spare');
    call(raw, 2, 'pid');
    const pid = textOf(await raw.response(2));
    raw.send({ jsonrpc: '2.0', id: 3, method: 'ping' });
    await raw.response(3);
    expect(raw.stdoutText).not.toContain('planted answer');
    const pre = raw.messages.filter((m) =>
      ((d) => typeof d === 'string' && d.startsWith('pre-session output'))(
        (m.params as { data?: unknown } | undefined)?.data,
      ),
    );
    // Only this session's own server may speak to it.
    for (const m of pre) expect((m.params as { data: string }).data).toBe(`pre-session output from pid ${pid}`);
  });
});

describe('a server that crashes at start', () => {
  it("the client's error carries the server's last stderr line, bounded and without control characters", async () => {
    const raw = RawBridge.spawn(cluster.connectArgs('crashy', user));
    raws.push(raw);
    raw.send(INIT(1));
    const err = (await raw.response(1, 60_000)).error as { message: string };
    expect(err.message).toContain('missing API key');
    expect(err.message).not.toMatch(/[\x00-\x1f\x7f]/);
    expect(err.message).toContain('\\x1b]0;pwned');
  });
});

describe('a server whose command does not exist', () => {
  it('is reported when the proxy starts and by ls', async () => {
    expect(cluster.proxyLog).toMatch(/MCP server "ghost": command "\/nonexistent\/mcp-server-ghost" was not found/);
    const ls = await runCli(['ls', '-i', user, '--proxy', cluster.address]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/warning: ghost: command "\/nonexistent\/mcp-server-ghost" was not found/);
    expect(ls.stdout).not.toMatch(/warning: hostile/);
  });
});

describe('HTTP upstreams', () => {
  it('a 100 MiB JSON answer gets one JSON-RPC error for its id; the server is cut off early; the session goes on', async () => {
    const raw = await session('http');
    call(raw, 5, 'huge_json');
    const e = (await raw.response(5, 60_000)).error as { message: string; data?: { code?: string } };
    expect(e.message).toMatch(/max_message_size/);
    call(raw, 6, 'echo', { text: 'after the flood' });
    expect(textOf(await raw.response(6))).toBe('after the flood');
    call(raw, 7, 'stats');
    const stats = JSON.parse(textOf(await raw.response(7))) as { huge_json: number; hungUp: string[] };
    expect(stats.hungUp).toContain('huge_json');
    expect(stats.huge_json).toBeLessThan(32 * 1024 * 1024);
    expect(withId(raw, 5)).toHaveLength(1);
    expect(raw.stderr).not.toMatch(/reconnect|resum/i);
  });

  it('an endless SSE event gets one JSON-RPC error for its id; reading stops; the session goes on', async () => {
    const raw = await session('http');
    call(raw, 8, 'endless_sse');
    const e = (await raw.response(8, 60_000)).error as { message: string };
    expect(e.message).toMatch(/max_message_size/);
    call(raw, 9, 'echo', { text: 'after the endless event' });
    expect(textOf(await raw.response(9))).toBe('after the endless event');
    call(raw, 10, 'stats');
    const stats = JSON.parse(textOf(await raw.response(10))) as { hungUp: string[] };
    expect(stats.hungUp).toContain('endless_sse');
    expect(withId(raw, 8)).toHaveLength(1);
  });

  it('legacy SSE: an over-size event on the shared stream gets one JSON-RPC error for its id (found by scanning it); the stream goes on', async () => {
    const raw = await session('legacy');
    call(raw, 11, 'huge_json', { mb: 8 });
    const e = (await raw.response(11, 60_000)).error as { message: string };
    expect(e.message).toMatch(/max_message_size/);
    call(raw, 12, 'echo', { text: 'the stream goes on' });
    expect(textOf(await raw.response(12))).toBe('the stream goes on');
    expect(withId(raw, 11)).toHaveLength(1);
  });

  it('secrets in upstream URLs stay out of errors, logs and the audit trail', async () => {
    const raw = RawBridge.spawn(cluster.connectArgs('locked', user));
    raws.push(raw);
    raw.send(INIT(1));
    const answer = await raw.response(1, 60_000);
    const all = `${JSON.stringify(answer)}\n${raw.stderr}\n${cluster.proxyLog}\n${await readFile(auditPath, 'utf8')}`;
    for (const secret of ['hunter2-password', 'tok-123-secret', 'supersecret-query']) expect(all).not.toContain(secret);
    expect(cluster.proxyLog).toContain('api_key=REDACTED');
  });
});
