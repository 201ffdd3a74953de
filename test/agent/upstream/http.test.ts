/**
 * HttpUpstream holds a bounded amount: while the session is paused (its
 * tunnel full) answers are held, and once what it holds is over the bound
 * `send` returns false until `onDrain`. Against a real Streamable HTTP server
 * (the SDK v2 test server).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

/** Waits on a condition (never a fixed delay), bounded only by a generous timeout. */
const until = (check: () => void) => vi.waitFor(check, { timeout: 20_000, interval: 10 });
import { HttpUpstream } from '../../../src/agent/upstream/http.js';
import type { AccessError } from '../../../src/errors.js';
import { Logger } from '../../../src/util/log.js';
import { freePort, ROOT } from '../../helpers/cluster.js';

let server: ChildProcess;
let url = '';

beforeAll(async () => {
  server = spawn(process.execPath, [join(ROOT, 'test/fixtures/servers/v2-server.mjs'), '--http', '--legacy'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once('exit', (code) => reject(new Error(`v2-server exited (${code})`)));
  });
  url = `http://127.0.0.1:${port}/mcp`;
});

afterAll(() => {
  server?.kill();
});

const ping = (id: number) => Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }));

function upstream(at: string) {
  const got: string[] = [];
  const closed: AccessError[] = [];
  const counts = { drains: 0 };
  const up = new HttpUpstream(
    'v2',
    { transport: 'http', url: at, headers: {} } as never,
    { onMessage: (m) => got.push(m.toString()), onClose: (e) => closed.push(e), onDrain: () => counts.drains++ },
    new Logger({ sink: () => {} }),
    { maxMessageSize: 1024 * 1024, highWaterBytes: 2000 },
  );
  return { up, got, closed, counts };
}

const ids = (messages: string[]) => messages.map((m) => (JSON.parse(m) as { id: number }).id).sort((a, b) => a - b);

describe('HttpUpstream: what it holds is bounded', () => {
  it('returns false from send once the requests it holds are over the bound, and drains once they finish', async () => {
    const { up, got, closed, counts } = upstream(url);
    await up.start();
    const init = {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    };
    expect(up.send(Buffer.from(JSON.stringify(init)))).toBe(true);
    await until(() => expect(got).toHaveLength(1));
    await until(() => expect(up.queuedBytes).toBe(0));

    // The session's tunnel is full: no answer body is read meanwhile.
    up.pause();
    const accepted: boolean[] = [];
    for (let id = 1; id <= 8; id++) accepted.push(up.send(ping(id)));
    // Each ping counts its bytes plus 512: the fourth crosses 2000.
    expect(accepted).toEqual([true, true, true, false, false, false, false, false]);
    expect(counts.drains).toBe(0);
    expect(got).toHaveLength(1);

    up.resume();
    await until(() => expect(ids(got.slice(1))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]));
    await until(() => expect(up.queuedBytes).toBe(0));
    expect(counts.drains).toBe(1); // owed once, paid once
    expect(up.send(ping(9))).toBe(true);
    await until(() => expect(got).toHaveLength(10));
    await up.stop();
    expect(closed).toEqual([]);
  });

  it('counts answers held while paused (here: the errors of a server that cannot be reached) against the bound', async () => {
    const { up, got, counts } = upstream(`http://127.0.0.1:${await freePort()}/mcp`);
    await up.start();
    up.pause();
    const accepted: boolean[] = [];
    for (let id = 1; id <= 8; id++) accepted.push(up.send(ping(id)));
    expect(accepted).toEqual([true, true, true, false, false, false, false, false]);
    // Every request fails at once; its error answer is held, not delivered.
    await until(() => expect(up.heldCount).toBe(8));
    expect(got).toEqual([]);
    expect(up.queuedBytes).toBeGreaterThan(2000);
    expect(up.send(ping(9))).toBe(false);
    await until(() => expect(up.heldCount).toBe(9));
    expect(counts.drains).toBe(0);

    up.resume();
    expect(ids(got)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(got.every((m) => m.includes('"error"'))).toBe(true);
    expect(up.queuedBytes).toBe(0);
    expect(up.heldCount).toBe(0);
    expect(counts.drains).toBe(1);
    await up.stop();
  });
});
