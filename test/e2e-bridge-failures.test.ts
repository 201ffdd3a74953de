/**
 * What a person sees when something is wrong, and the byte-level framing of
 * stdin: driven with raw bytes against the real bridge and proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, CLI, freePort, testServer } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';

let cluster: TestCluster;
let alice: string;

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [testServer('test')] });
  alice = await cluster.issue('alice', ['all']);
});
afterAll(async () => {
  await cluster?.close();
});

const call = (id: number, name: string, args: unknown) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe('stdin framing', () => {
  it('answers a line that is not JSON with -32700 (id null) and goes on', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('test', alice));
    b.write('this is not json\n');
    const err = await b.next((m) => (m.error as { code?: number })?.code === -32700);
    expect(err.id).toBeNull();
    b.send(INIT(1));
    const init = await b.response(1);
    expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toBe('test-server');
    expect(await b.end()).toBe(0);
  });

  it('reassembles messages split anywhere, including inside a multi-byte character, with CRLF and blank lines', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('test', alice));
    const text = 'héllo wörld € 😀';
    const bytes = Buffer.from(
      `\r\n\n${JSON.stringify(INIT(1))}\r\n\n   \n${JSON.stringify(call(2, 'echo', { text }))}\r\n`,
    );
    for (let i = 0; i < bytes.length; i++) {
      b.write(bytes.subarray(i, i + 1)); // one byte per chunk: every character is split
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    const r = await b.response(2);
    expect((r.result as { content: Array<{ text: string }> }).content[0]!.text).toBe(text);
    expect(b.messages.filter((m) => m.error)).toEqual([]);
    expect(await b.end()).toBe(0);
  });

  it('answers a request over --max-message-size with an error carrying its id, and goes on', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('test', alice, ['--max-message-size', '4KiB']));
    b.send(INIT(1));
    await b.response(1);
    b.send(call(2, 'echo', { text: 'x'.repeat(10_000) }));
    const r = await b.response(2);
    expect((r.error as { message: string }).message).toMatch(/over the 4096-byte limit/);
    b.send(call(3, 'echo', { text: 'small' }));
    expect(((await b.response(3)).result as { content: Array<{ text: string }> }).content[0]!.text).toBe('small');
    expect(b.stderr).toMatch(/raise --max-message-size/);
    expect(await b.end()).toBe(0);
  });

  it('queues what arrives before the tunnel is up (nothing lost) and accepts flags after the name and env fallbacks', async () => {
    const b = RawBridge.spawn([CLI, 'connect', 'test'], {
      MCP_ACCESS_IDENTITY: alice,
      MCP_ACCESS_PROXY: cluster.address,
    });
    b.send(INIT(1));
    for (let i = 2; i < 30; i++) b.send(call(i, 'add', { a: i, b: 1 }));
    for (let i = 2; i < 30; i++) {
      const r = await b.response(i);
      expect((r.result as { content: Array<{ text: string }> }).content[0]!.text).toBe(String(i + 1));
    }
    expect(await b.end()).toBe(0);
  });
});

describe('failures a person must act on', () => {
  it('proxy down at start: every waiting request is answered, one stderr line, non-zero exit', async () => {
    const port = await freePort();
    const b = RawBridge.spawn([
      CLI,
      'connect',
      '-i',
      alice,
      '--proxy',
      `127.0.0.1:${port}`,
      '--connect-retries',
      '1',
      'test',
    ]);
    b.send(INIT(1));
    const r = await b.response(1);
    expect((r.error as { message: string }).message).toMatch(new RegExp(`no proxy is listening at 127.0.0.1:${port}`));
    expect((r.error as { data: { code: string } }).data.code).toBe('PROXY_UNREACHABLE');
    expect(b.stderr).toMatch(/mcp-access connect: error: no proxy is listening .* \(check the --proxy address/);
    expect(b.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await b.end()).toBe(4);
  });

  it('unknown server: the error names it and says how to list servers', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('nope', alice));
    b.send(INIT(1));
    const r = await b.response(1);
    expect((r.error as { message: string }).message).toMatch(/no MCP server named "nope".*mcp-access ls/);
    expect(await b.end()).toBe(6);
  });

  it('expired identity: says which file expired and when, and how to renew', async () => {
    // Issued by a clock ten minutes back: it expired 9m55s ago (no waiting).
    const expired = await cluster.issue('bob', ['all'], 5_000, { now: Date.now() - 10 * 60_000 });
    const b = RawBridge.spawn(cluster.connectArgs('test', expired));
    b.send(INIT(1));
    const r = await b.response(1);
    const msg = (r.error as { message: string }).message;
    expect(msg).toContain(expired);
    expect(msg).toMatch(/expired (9m5\ds|10m(\d+s)?) ago at \d{4}-/);
    expect(msg).toMatch(/renewal bot|identity issue/);
    expect(await b.end()).toBe(3);
  });

  it('missing identity file is a clear error naming the path', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('test', '/nonexistent/identity'));
    b.send(INIT(1));
    const r = await b.response(1);
    expect((r.error as { message: string }).message).toMatch(/\/nonexistent\/identity/);
    expect(await b.end()).toBe(3);
  });

  it('usage errors exit 2 with one line and no stack trace', async () => {
    const b = RawBridge.spawn([CLI, 'connect', 'test']);
    expect(await b.end()).toBe(2);
    expect(b.stderr.trim()).toMatch(/^mcp-access: no identity file given \(pass -i FILE or set MCP_ACCESS_IDENTITY\)$/);
  });

  it('exits 0 promptly on SIGTERM with the tunnel closed cleanly', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('test', alice));
    b.send(INIT(1));
    await b.response(1);
    b.proc.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    await cluster.waitForLog(/alice closed the session/);
  });
});
