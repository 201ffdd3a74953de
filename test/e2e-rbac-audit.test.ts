/**
 * Roles and audit end to end, with the seeds' two roles verbatim
 * (test/fixtures/roles) against the real @modelcontextprotocol/server-filesystem,
 * through the real `connect` and proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startSampleFilesCluster, testServer, resultText, type TestCluster } from './helpers/cluster.js';
import { auditEvents as auditEventsIn } from './helpers/bot.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';
import { verifyAuditFile } from '../src/audit/log.js';

let cluster: TestCluster;
let reader: string; // llm-access: read-only
let developer: string; // example-role: env dev, every tool
let sample: string;
let auditPath: string;

const READ_ONLY = /^(get_.*|list_.*|read_.*|search_files)$/;
const WRITES: Array<[string, Record<string, unknown>]> = [];

async function snapshot(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true });
  const parts = await Promise.all(
    entries.sort().map(
      async (e) =>
        `${e}:${await readFile(join(dir, e)).then(
          (b) => b.toString('base64'),
          () => 'dir',
        )}`,
    ),
  );
  return parts.join('\n');
}

const auditEvents = () => auditEventsIn(auditPath);

beforeAll(async () => {
  ({ cluster, sample, auditPath } = await startSampleFilesCluster('files', [
    { ...testServer('prod-tools'), labels: { env: 'prod' } },
  ]));
  WRITES.push(
    ['write_file', { path: join(sample, 'new.txt'), content: 'should not exist' }],
    ['edit_file', { path: join(sample, 'products.csv'), edits: [{ oldText: 'widget', newText: 'WIDGET' }] }],
    ['move_file', { source: join(sample, 'products.csv'), destination: join(sample, 'moved.csv') }],
    ['create_directory', { path: join(sample, 'newdir') }],
  );
  reader = await cluster.issue('llm-agent', ['llm-access']);
  developer = await cluster.issue('dev-agent', ['example-role']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('the read-only role (llm-access) on server-filesystem', () => {
  it('lists only the read tools', async () => {
    const { client } = await cluster.client('files', reader);
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.length).toBeGreaterThan(3);
    for (const n of names) expect(n).toMatch(READ_ONLY);
    for (const [w] of WRITES) expect(names).not.toContain(w);
    await client.close();
  });

  it('reads work', async () => {
    const { client } = await cluster.client('files', reader);
    expect(
      resultText(
        await client.callTool({ name: 'read_text_file', arguments: { path: join(sample, 'docs', 'readme.txt') } }),
      ),
    ).toContain('hello from the sample directory');
    expect(resultText(await client.callTool({ name: 'list_directory', arguments: { path: sample } }))).toContain(
      'products.csv',
    );
    await client.close();
  });

  it('denies every write with -32602, leaves the directory unchanged, and audits each denial', async () => {
    const before = await snapshot(sample);
    const { client } = await cluster.client('files', reader);
    for (const [name, args] of WRITES) {
      const err = await client.callTool({ name, arguments: args }).then(
        () => undefined,
        (e: { code?: number; message: string; data?: { auditEventId?: string } }) => e,
      );
      expect(err, name).toBeDefined();
      expect(err!.code).toBe(-32602);
      expect(err!.message).toMatch(
        new RegExp(`access to tool "${name}" on MCP server "files" is denied by the identity's roles`),
      );
      const events = await auditEvents();
      const ev = events.find((e) => e.id === err!.data!.auditEventId);
      expect(ev, `audit event for ${name}`).toMatchObject({
        type: 'mcp.session.request',
        outcome: 'denied',
        tool: name,
        user: 'llm-agent',
        server: 'files',
        method: 'tools/call',
      });
    }
    await client.close();
    expect(await snapshot(sample)).toBe(before);
  });
});

describe('the seed guide role (example-role)', () => {
  it('sees every tool of the env: dev server', async () => {
    const { client } = await cluster.client('files', developer);
    const names = (await client.listTools()).tools.map((t) => t.name);
    for (const [w] of WRITES) expect(names).toContain(w);
    await client.close();
  });

  it('cannot reach a server labelled env: prod: the error names the server and the roles', async () => {
    await expect(cluster.client('prod-tools', developer)).rejects.toThrow(
      /access to MCP server "prod-tools" is denied for dev-agent.*governed by the identity's roles/,
    );
  });
});

describe('parse-differential tricks never reach a denied tool', () => {
  const target = () => join(sample, 'tricked.txt');
  const targetJson = () => JSON.stringify(target());
  /**
   * An allowed call sent after the trick: once its answer is audited, anything the server said about id 7
   * would be too.
   */
  const marker = (id: number) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'read_text_file', arguments: { path: join(sample, 'products.csv') } },
  });

  /**
   * Sends `line` (id 7) on its own session; returns the answer to it and that session's audit events once the
   * marker (id 8) is answered and audited.
   */
  const trick = async (line: string) => {
    await expect(readFile(target()), 'precondition: no tricked file yet').rejects.toThrow(/ENOENT/);
    const b = RawBridge.spawn(cluster.connectArgs('files', reader));
    b.send(INIT(1));
    await b.response(1);
    b.write(`${line}\n`);
    const r = await b.response(7);
    b.send(marker(8));
    expect(JSON.stringify((await b.response(8)).result)).toContain('widget');
    await b.end();
    const auditEventId = (r.error as { data?: { auditEventId?: string } } | undefined)?.data?.auditEventId;
    const sessionId = (await auditEvents()).find((e) => e.id === auditEventId)?.sessionId;
    if (sessionId === undefined) return { r, session: [] }; // answered by the server: no denial to find the session by
    const answered8 = (e: Record<string, unknown>) =>
      e.sessionId === sessionId && e.rpcId === 8 && e.phase === 'response' && e.direction === 'server_to_client';
    await expect.poll(async () => (await auditEvents()).some(answered8), { timeout: 10_000 }).toBe(true);
    return { r, session: (await auditEvents()).filter((e) => e.sessionId === sessionId) };
  };

  /**
   * The proxy's inspector answered (its code, its reason, INVALID_MESSAGE and a
   * denial event), the server never saw id 7 (no event of it but the denial,
   * although the server's answer to the later id 8 is recorded: a stdio server
   * answers in order), and nothing was written.
   */
  const expectRefusedByInspector = async (
    { r, session }: Awaited<ReturnType<typeof trick>>,
    code: number,
    reason: string,
  ) => {
    const err = r.error as { code: number; message: string; data: { code: string; auditEventId: string } } | undefined;
    expect(err, JSON.stringify(r)).toBeDefined();
    expect(err!.code).toBe(code);
    expect(err!.message).toBe(`mcp-access: refused: ${reason}`);
    expect(err!.data.code).toBe('INVALID_MESSAGE');
    const about7 = session.filter((e) => e.rpcId === 7);
    expect(about7).toHaveLength(1);
    expect(about7[0]).toMatchObject({
      id: err!.data.auditEventId,
      type: 'mcp.session.request',
      outcome: 'denied',
      reason,
      direction: 'client_to_server',
      user: 'llm-agent',
    });
    await expect(readFile(target())).rejects.toThrow(/ENOENT/);
  };

  it('duplicate keys are refused', async () => {
    const t = await trick(
      `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_text_file","name":"write_file","arguments":{"path":${targetJson()},"content":"x"}}}`,
    );
    await expectRefusedByInspector(t, -32600, 'duplicate key "name" in "params"');
  });

  it.each([
    [
      'Params',
      () =>
        `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_text_file"},"Params":{"name":"write_file","arguments":{"path":${targetJson()},"content":"x"}}}`,
      'keys "params" and "Params" in the message differ only in letter case',
    ],
    [
      'Name',
      () =>
        `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"Name":"write_file","name":"read_text_file","arguments":{"path":${targetJson()},"content":"x"}}}`,
      'key "Name" in "params" must be written "name"',
    ],
    [
      'Method',
      () =>
        `{"jsonrpc":"2.0","id":7,"Method":"tools/call","method":"ping","params":{"name":"write_file","arguments":{"path":${targetJson()},"content":"x"}}}`,
      'key "Method" in the message must be written "method"',
    ],
  ])('non-canonical key case (%s) is refused by the inspector', async (_key, line, reason) => {
    await expectRefusedByInspector(await trick(line()), -32600, reason);
  });

  it('\\u escapes in a tool name are judged by the decoded name', async () => {
    const denied = await trick(
      `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write\\u005ffile","arguments":{"path":${targetJson()},"content":"x"}}}`,
    );
    expect((denied.r.error as { code: number }).code).toBe(-32602);
    expect(denied.session.filter((e) => e.rpcId === 7)).toMatchObject([{ outcome: 'denied', tool: 'write_file' }]);
    await expect(readFile(target())).rejects.toThrow(/ENOENT/);
    const allowed = await trick(
      `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read\\u005ftext_file","arguments":{"path":${JSON.stringify(join(sample, 'products.csv'))}}}}`,
    );
    expect(JSON.stringify(allowed.r.result)).toContain('widget');
  });

  it('a batch containing a tools/call is refused as a whole', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('files', reader));
    b.send(INIT(1));
    await b.response(1);
    b.write(
      `[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write_file","arguments":{"path":${targetJson()},"content":"x"}}}]\n`,
    );
    const r = await b.next((m) => 'error' in m && m.id === null);
    expect((r.error as { message: string }).message).toMatch(/batch/i);
    await b.end();
    await expect(readFile(target())).rejects.toThrow(/ENOENT/);
  });

  it.each([
    ['{}', 'tools/call params.name is missing'],
    ['{"name":""}', 'tools/call params.name is empty'],
    ['{"name":42}', 'tools/call params.name must be a string'],
  ])(
    'a tools/call without a usable name (params %s) is refused by the inspector without forwarding',
    async (params, reason) => {
      await expectRefusedByInspector(
        await trick(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":${params}}`),
        -32602,
        reason,
      );
    },
  );
});

describe('the audit trail', () => {
  it('has session start/end, requests with outcomes, notifications, and verifies', async () => {
    // A session of its own: start, initialize (+ the initialized notification), a list, a read, a clean end.
    const { client } = await cluster.client('files', reader);
    await client.listTools();
    await client.callTool({ name: 'read_text_file', arguments: { path: join(sample, 'docs', 'readme.txt') } });
    const sessionId = (await auditEvents()).findLast(
      (e) => e.type === 'mcp.session.start' && e.user === 'llm-agent',
    )?.sessionId;
    await client.close();
    await expect
      .poll(async () => (await auditEvents()).some((e) => e.sessionId === sessionId && e.type === 'mcp.session.end'), {
        timeout: 10_000,
      })
      .toBe(true);
    const events = (await auditEvents()).filter((e) => e.sessionId === sessionId);
    const types = new Set(events.map((e) => e.type));
    for (const t of ['mcp.session.start', 'mcp.session.end', 'mcp.session.request', 'mcp.session.notification'])
      expect(types).toContain(t);
    expect(events.some((e) => e.method === 'tools/list')).toBe(true);
    expect(
      events.some((e) => e.phase === 'response' && e.outcome === 'success' && typeof e.latencyMs === 'number'),
    ).toBe(true);
    expect(events.find((e) => e.method === 'initialize')).toMatchObject({
      client: { name: 'mcp-access-test', version: '1.0.0' },
    });
    expect(await verifyAuditFile(auditPath)).toMatchObject({ ok: true });
  });
});

describe('reloading roles with SIGHUP', () => {
  it('judges the next request by the new roles without dropping the session', async () => {
    const { client } = await cluster.client('files', developer);
    expect(resultText(await client.callTool({ name: 'list_directory', arguments: { path: sample } }))).toContain(
      'products.csv',
    );
    await cluster.writeConfig({
      roles: [
        {
          kind: 'role',
          version: 'v7',
          metadata: { name: 'example-role' },
          spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['read_*'] } } },
        },
      ],
      roles_files: [],
    });
    const reloaded = cluster.proxyLog.split('reloaded').length;
    cluster.proxy!.kill('SIGHUP');
    await expect.poll(() => cluster.proxyLog.split('reloaded').length, { timeout: 10_000 }).toBeGreaterThan(reloaded);
    const err = await client.callTool({ name: 'list_directory', arguments: { path: sample } }).then(
      () => undefined,
      (e: { code: number }) => e,
    );
    expect(err?.code).toBe(-32602);
    expect(
      resultText(
        await client.callTool({ name: 'read_text_file', arguments: { path: join(sample, 'docs', 'readme.txt') } }),
      ),
    ).toContain('hello');
    await client.close();
  });
});
