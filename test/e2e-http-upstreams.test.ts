/**
 * Streamable HTTP and legacy SSE upstreams: the published server-everything
 * in its HTTP modes, enrolled by `url` and `sse_url`, reached through the
 * real connect and proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { TestCluster, EVERYTHING, freePort, resultText } from './helpers/cluster.js';

let cluster: TestCluster;
let alice: string;
const servers: ChildProcess[] = [];
let httpPort = 0;

/** server-everything in `streamableHttp` or `sse` mode on `port`; resolves once it listens. */
async function startEverything(mode: 'streamableHttp' | 'sse', port: number): Promise<ChildProcess> {
  const p = spawn(process.execPath, [EVERYTHING, mode], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  servers.push(p);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on port|running on port/i.test(err)) resolve();
    });
    p.once('exit', (code) => reject(new Error(`server-everything ${mode} exited (${code}): ${err}`)));
  });
  return p;
}

beforeAll(async () => {
  httpPort = await freePort();
  const ssePort = await freePort();
  await startEverything('streamableHttp', httpPort);
  await startEverything('sse', ssePort);
  cluster = await TestCluster.start({
    servers: [
      {
        name: 'remote',
        description: 'Streamable HTTP',
        labels: { env: 'dev' },
        url: `http://127.0.0.1:${httpPort}/mcp`,
        headers: { 'X-Test': 'yes' },
      },
      { name: 'legacy', description: 'HTTP+SSE', labels: { env: 'dev' }, sse_url: `http://127.0.0.1:${ssePort}/sse` },
    ],
  });
  alice = await cluster.issue('alice', ['all']);
});
afterAll(async () => {
  await cluster?.close();
  for (const p of servers) p.kill('SIGKILL');
});

describe('HTTP upstreams', () => {
  it('Streamable HTTP: lists and calls tools', async () => {
    const { client } = await cluster.client('remote', alice);
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('echo');
    expect(resultText(await client.callTool({ name: 'echo', arguments: { message: 'over http' } }))).toBe(
      'Echo: over http',
    );
    await client.close();
  });

  it('legacy SSE: lists and calls tools', async () => {
    const { client } = await cluster.client('legacy', alice);
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('echo');
    expect(resultText(await client.callTool({ name: 'echo', arguments: { message: 'over sse' } }))).toBe(
      'Echo: over sse',
    );
    await client.close();
  });

  it('Streamable HTTP: a restarted server (it no longer knows the session: 404, or 400 as server-everything answers) leads to a new session', async () => {
    const { client, stderr } = await cluster.client('remote', alice);
    expect(resultText(await client.callTool({ name: 'echo', arguments: { message: 'one' } }))).toBe('Echo: one');
    const old = servers.find((p) => p.spawnargs.includes('streamableHttp'))!;
    const gone = new Promise((r) => old.once('exit', r));
    old.kill('SIGKILL');
    await gone;
    await startEverything('streamableHttp', httpPort);
    // The documented outcome (docs/operations.md, UPSTREAM_EXITED): the call that
    // meets the ended session is answered with -32603 naming it; the proxy ends
    // the session and the bridge opens a new one.
    const first = await client.callTool({ name: 'echo', arguments: { message: 'two' } }).then(
      () => undefined,
      (e: { code?: number; message: string }) => e,
    );
    expect(first?.code).toBe(-32603);
    expect(first?.message).toMatch(/MCP server "remote" failed: its session ended \(HTTP (404|400)\)/);
    // Wait for the event itself: the bridge's replayed initialize was answered.
    await expect.poll(() => stderr(), { timeout: 20_000 }).toMatch(/new session ready/);
    expect(stderr()).toMatch(/MCP server "remote" ended the session \(HTTP (404|400)\).*opening a new session/);
    expect(resultText(await client.callTool({ name: 'echo', arguments: { message: 'three' } }))).toBe('Echo: three');
    await client.close();
  });
});
