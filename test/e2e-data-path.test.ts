/**
 * The data path end to end: the SDK Client spawns the real `mcp-access
 * connect`, which reaches the real proxy over real mTLS, which runs real MCP
 * servers (an SDK-built test server and the published server-everything).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { TestCluster, EVERYTHING, testServer, resultText, waitForExit } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';

let cluster: TestCluster;
let alice: string;

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [
      testServer('test'),
      {
        name: 'everything',
        description: 'reference server',
        labels: { env: 'prod' },
        command: process.execPath,
        args: [EVERYTHING, 'stdio'],
      },
      { name: 'broken', labels: { env: 'dev' }, command: '/nonexistent/mcp-server' },
    ],
  });
  alice = await cluster.issue('alice', ['all']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('through connect and the proxy', () => {
  it('lists and calls tools, reads resources and gets prompts', async () => {
    const { client } = await cluster.client('test', alice);
    expect(client.getServerVersion()?.name).toBe('test-server');
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('echo');
    expect(resultText(await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } }))).toBe('42');
    const res = await client.readResource({ uri: 'test://hello' });
    expect((res.contents[0] as { text: string }).text).toBe('hello resource');
    const prompt = await client.getPrompt({ name: 'greet', arguments: { who: 'Ada' } });
    expect((prompt.messages[0]!.content as { text: string }).text).toBe('Hello, Ada!');
    await client.close();
  });

  it('carries progress notifications with the client’s own progress token, in order, before the result', async () => {
    // Observed on the raw stream: the SDK Client dispatches notifications a
    // microtask later than responses, so progress that arrives in the same
    // read as the result is dropped by the client itself (not by mcp-access).
    const b = RawBridge.spawn(cluster.connectArgs('test', alice));
    b.send(INIT(1));
    await b.response(1);
    const token = 'client-token-\u00e9-42';
    b.send({
      jsonrpc: '2.0',
      id: 'call-7',
      method: 'tools/call',
      params: { name: 'slow', arguments: { steps: 4, ms: 5 }, _meta: { progressToken: token } },
    });
    const result = await b.response('call-7');
    expect((result.result as { content: Array<{ text: string }> }).content[0]!.text).toBe('done 4');
    const resultAt = b.messages.indexOf(result);
    const progress = b.messages.filter((m) => m.method === 'notifications/progress');
    expect(progress.map((m) => (m.params as { progress: number }).progress)).toEqual([1, 2, 3, 4]);
    for (const m of progress) {
      expect((m.params as { progressToken: string }).progressToken).toBe(token);
      expect(b.messages.indexOf(m)).toBeLessThan(resultAt);
    }
    expect(await b.end()).toBe(0);
  });

  it('carries server-to-client requests: sampling, elicitation and roots', async () => {
    const { client } = await cluster.client('test', alice, {
      capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } },
      setup: (c) => {
        c.setRequestHandler(CreateMessageRequestSchema, () => ({
          role: 'assistant',
          content: { type: 'text', text: 'from the client' },
          model: 'test',
        }));
        c.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'Ada' } }));
        c.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }));
      },
    });
    expect(resultText(await client.callTool({ name: 'sample', arguments: { prompt: 'hi' } }))).toBe(
      'sampled: from the client',
    );
    expect(resultText(await client.callTool({ name: 'elicit', arguments: {} }))).toBe(
      'elicited: accept {"name":"Ada"}',
    );
    // Roots are answered by the proxy from the server's configuration (none
    // here); client roots reach a server only with client_roots: true
    // (test/e2e-enforcement-seal.test.ts).
    expect(resultText(await client.callTool({ name: 'roots', arguments: {} }))).toBe('roots: ');
    await client.close();
  });

  it('carries cancellation to the server (ids untouched)', async () => {
    const { client } = await cluster.client('test', alice);
    const ac = new AbortController();
    const call = client.callTool({ name: 'wait_forever', arguments: {} }, undefined, { signal: ac.signal });
    // Make sure the call reached the server before cancelling it.
    await expect
      .poll(
        async () =>
          (JSON.parse(resultText(await client.callTool({ name: 'stats', arguments: {} }))) as { calls: number }).calls,
        { timeout: 10_000 },
      )
      .toBeGreaterThanOrEqual(2);
    ac.abort('user gave up');
    await expect(call).rejects.toThrow();
    await expect
      .poll(
        async () =>
          (JSON.parse(resultText(await client.callTool({ name: 'stats', arguments: {} }))) as { cancelled: number })
            .cancelled,
        { timeout: 10_000 },
      )
      .toBe(1);
    await client.close();
  });

  it('carries logging notifications', async () => {
    const logs: unknown[] = [];
    const { client } = await cluster.client('test', alice, {
      setup: (c) =>
        c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
          logs.push(n.params.data);
        }),
    });
    await client.setLoggingLevel('info');
    await client.callTool({ name: 'log', arguments: { message: 'over the tunnel' } });
    await expect.poll(() => logs, { timeout: 10_000 }).toContain('over the tunnel');
    await client.close();
  });

  it('carries 16 MiB messages intact both ways', async () => {
    const { client } = await cluster.client('test', alice);
    const size = 16 * 1024 * 1024;
    const text = 'é'.repeat(size / 2); // multi-byte characters across every chunk boundary
    const digest = createHash('sha256').update(text).digest('hex');
    expect(
      resultText(await client.callTool({ name: 'digest', arguments: { text } }, undefined, { timeout: 120_000 })),
    ).toBe(`${size}:${digest}`);
    const big = resultText(
      await client.callTool({ name: 'big', arguments: { size } }, undefined, { timeout: 120_000 }),
    );
    expect(big.length).toBe(size);
    await client.close();
  });

  it('works with the published server-everything', async () => {
    const { client } = await cluster.client('everything', alice);
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('echo');
    expect(resultText(await client.callTool({ name: 'echo', arguments: { message: 'hi there' } }))).toBe(
      'Echo: hi there',
    );
    await client.close();
  });

  it('stops the upstream process when the client closes, leaving no orphan', async () => {
    const { client, transport } = await cluster.client('test', alice);
    const pid = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    expect(pid).toBeGreaterThan(0);
    const bridgePid = transport.pid!;
    await client.close();
    expect(await waitForExit(bridgePid)).toBe(true);
    expect(await waitForExit(pid)).toBe(true);
  });

  it('ends the session with a clear error when the server cannot start', async () => {
    const c = cluster.client('broken', alice);
    await expect(c).rejects.toThrow(
      /MCP server "broken" could not be started: command "\/nonexistent\/mcp-server" was not found/,
    );
  });

  it('ends the session with a clear error when the server exits, and the next session works', async () => {
    const { client } = await cluster.client('test', alice);
    const pid = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(
      /outcome is unknown|exited with code 3/,
    );
    expect(await waitForExit(pid)).toBe(true);
    // The bridge opened a new session with a new server process.
    const pid2 = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    expect(pid2).not.toBe(pid);
    await client.close();
  });
});
