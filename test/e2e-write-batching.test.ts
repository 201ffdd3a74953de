/**
 * Batched writes (src/tunnel/write-batch.ts) and the gate's fast path,
 * attacked with an own tunnel client: a burst of frames that reaches the
 * proxy in one TLS record (allowed calls, a denied write, a reused id, a
 * notification, a forged answer) is judged frame by frame exactly as one at
 * a time. Against the real server-filesystem: the denied write is refused by
 * the proxy and the file is not written, the reused id is refused and the
 * first request with that id is answered once, every forwarded request's
 * event is in the audit trail before its outcome, and the proxy still serves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { TestCluster, FILESYSTEM } from './helpers/cluster.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { INIT } from './helpers/raw-bridge.js';
import { until } from './helpers/until.js';
import { verifyAuditFile } from '../src/audit/log.js';

let cluster: TestCluster;
let sample: string;
let identity: string;

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [],
    roles: [
      {
        kind: 'role',
        version: 'v8',
        metadata: { name: 'reader' },
        spec: {
          allow: { app_labels: { '*': '*' }, mcp: { tools: ['read_text_file', 'list_directory'] } },
          deny: { mcp: { tools: ['write_file'] } },
        },
      },
    ],
    config: { audit: { path: './audit.jsonl' } },
  });
  sample = join(cluster.dir, 'sample');
  await mkdir(sample);
  await writeFile(join(sample, 'a.txt'), 'alpha');
  await cluster.writeConfig({
    servers: [{ name: 'files', labels: { env: 'dev' }, command: process.execPath, args: [FILESYSTEM, sample] }],
  });
  cluster.proxy!.kill('SIGHUP');
  await cluster.waitForLog(/reloaded .*: 1 servers?/);
  identity = await cluster.issue('mallory', ['reader']);
});
afterAll(async () => {
  await cluster?.close();
});

const call = (id: string, name: string, args: Record<string, unknown>) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe('a burst of frames in one TLS record', () => {
  it('is judged frame by frame: the denied write and the reused id are refused, nothing is forwarded unaudited', async () => {
    const t = await RawTunnel.open(cluster.address, identity, { server: 'files' });
    t.send(INIT(1));
    await t.response(1);
    t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });

    const owned = join(sample, 'owned.txt');
    const burst = [
      call('r1', 'read_text_file', { path: join(sample, 'a.txt') }),
      call('w1', 'write_file', { path: owned, content: 'pwned' }),
      call('r2', 'list_directory', { path: sample }),
      // The same id again while r2 may still be in flight: refused, never forwarded.
      call('r2', 'write_file', { path: owned, content: 'pwned' }),
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'nothing', reason: 'test' } },
      // A forged answer to a server request that does not exist: dropped.
      { jsonrpc: '2.0', id: 'forged', result: { roots: [] } },
      call('r3', 'read_text_file', { path: join(sample, 'a.txt') }),
    ];
    // All frames leave in one write of the raw socket: the proxy reads them as one chunk.
    const raw = (t.socket as unknown as { _socket: Writable })._socket;
    raw.cork();
    for (const m of burst) t.send(m);
    raw.uncork();

    const r1 = await t.response('r1');
    const w1 = await t.response('w1');
    const r3 = await t.response('r3');
    await t.until(() => t.messages.filter((m) => m.id === 'r2').length >= 2, 'two answers with id r2');
    expect(JSON.stringify(r1.result)).toContain('alpha');
    expect(JSON.stringify(r3.result)).toContain('alpha');
    expect(w1.error).toMatchObject({ code: -32602, data: { code: 'TOOL_DENIED' } });
    const r2s = t.messages.filter((m) => m.id === 'r2');
    // One refusal of the reused id, one answer of the listing: never the write's.
    expect(r2s.filter((m) => m.error).map((m) => (m.error as { data: { code: string } }).data.code)).toEqual([
      'INVALID_MESSAGE',
    ]);
    expect(r2s.filter((m) => m.result)).toHaveLength(1);
    expect(JSON.stringify(r2s.find((m) => m.result))).toContain('a.txt');
    expect(existsSync(owned)).toBe(false);
    // Nothing answered the forged response.
    expect(t.messages.some((m) => m.id === 'forged')).toBe(false);

    // The proxy still serves this session.
    t.send(call('after', 'list_directory', { path: sample }));
    expect((await t.response('after')).result).toBeDefined();
    await t.close();

    const path = join(cluster.dir, 'audit.jsonl');
    const read = async () =>
      (await readFile(path, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Outcomes are appended once the answer has gone out: wait for the session's end event.
    await until(
      async () => (await read()).some((e) => e.user === 'mallory' && e.type === 'mcp.session.end'),
      'the session end event',
    );
    const events = await read();
    const mine = events.filter((e) => e.user === 'mallory');
    const index = (pred: (e: Record<string, unknown>) => boolean) => mine.findIndex(pred);
    for (const id of ['r1', 'r3', 'after']) {
      const request = index((e) => e.rpcId === id && e.type === 'mcp.session.request' && e.phase === undefined);
      const outcome = index((e) => e.rpcId === id && e.phase === 'response');
      expect(request, `request event of ${id}`).toBeGreaterThanOrEqual(0);
      // Written before the request went on, so before its outcome.
      expect(outcome, `outcome of ${id}`).toBeGreaterThan(request);
      expect(mine[outcome]!.requestEventId).toBe(mine[request]!.id);
    }
    expect(mine.some((e) => e.rpcId === 'w1' && e.outcome === 'denied' && e.tool === 'write_file')).toBe(true);
    expect(mine.some((e) => e.rpcId === 'r2' && e.outcome === 'denied' && /already used/.test(String(e.reason)))).toBe(
      true,
    );
    expect(mine.some((e) => e.rpcId === 'forged' && e.outcome === 'denied')).toBe(true);
    expect((await verifyAuditFile(path)).ok).toBe(true);
  });
});
