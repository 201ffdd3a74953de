/**
 * Messages over 64 KiB, which the bridge and the proxy route by a scan of
 * their top level instead of a full parse: every kind of message, both ways,
 * with roles and audit in force.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateMessageRequestSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { TestCluster, testServer, resultText } from './helpers/cluster.js';

let cluster: TestCluster;
let user: string;
let auditPath: string;
const EXTRA = 3000; // tools/list ≈ 400 KiB

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [] });
  auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({
    servers: [testServer('test', { env: { TEST_SERVER_EXTRA_TOOLS: String(EXTRA) } })],
    roles: [
      {
        kind: 'role',
        version: 'v7',
        metadata: { name: 'most' },
        spec: {
          allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } },
          deny: { mcp: { tools: ['extra_2*', 'write_note'] } },
        },
      },
    ],
    audit: { path: auditPath },
  });
  await cluster.stopProxy();
  await cluster.startProxy();
  user = await cluster.issue('lara', ['most']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('messages over 64 KiB', () => {
  it('a large tools/list answer is filtered by the roles', async () => {
    const { client } = await cluster.client('test', user);
    const names = (await client.listTools()).tools.map((t) => t.name);
    const denied = names.filter((n) => n.startsWith('extra_2') || n === 'write_note');
    expect(denied).toEqual([]);
    const extras = names.filter((n) => n.startsWith('extra_'));
    expect(extras.length).toBe(EXTRA - 1111); // extra_2, extra_20…29, 200…299, 2000…2999
    expect(names).toContain('echo');
    await client.close();
  });

  it('large requests, results, error answers, notifications and server-to-client requests all arrive, audited', async () => {
    const logs: number[] = [];
    const { client } = await cluster.client('test', user, {
      capabilities: { sampling: {} },
      setup: (c) => {
        c.setRequestHandler(CreateMessageRequestSchema, (req) => ({
          role: 'assistant',
          model: 'test',
          content: {
            type: 'text',
            text: `prompt of ${(req.params.messages[0]!.content as { text: string }).text.length}`,
          },
        }));
        c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
          logs.push(String(n.params.data).length);
        });
      },
    });
    const text = 'ü'.repeat(300_000); // 600,000 bytes
    expect(resultText(await client.callTool({ name: 'digest', arguments: { text } }))).toMatch(/^600000:/);
    expect(resultText(await client.callTool({ name: 'big', arguments: { size: 500_000 } })).length).toBe(500_000);
    await expect(client.callTool({ name: 'big_error', arguments: { size: 200_000 } })).rejects.toThrow(/EEEE/);
    await client.setLoggingLevel('info');
    await client.callTool({ name: 'big_log', arguments: { size: 300_000 } });
    await expect.poll(() => logs, { timeout: 10_000 }).toContain(300_000);
    expect(resultText(await client.callTool({ name: 'sample', arguments: { size: 400_000 } }))).toBe(
      'sampled: prompt of 400000',
    );
    await client.close();

    const events = (await readFile(auditPath, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const outcome = (tool: string) => events.find((e) => e.phase === 'response' && e.tool === tool);
    expect(outcome('big')).toMatchObject({ outcome: 'success' });
    expect(outcome('big_error')).toMatchObject({ outcome: 'error' });
    expect(String(outcome('big_error')!.reason)).toMatch(/E{100}/);
    expect(events.some((e) => e.direction === 'server_to_client' && e.method === 'sampling/createMessage')).toBe(true);
    expect(events.some((e) => e.direction === 'server_to_client' && e.method === 'notifications/message')).toBe(true);
  });
});
