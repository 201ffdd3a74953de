/**
 * MCP 2026-07-28 through the bridge and the proxy: a client on the SDK v2
 * (`@modelcontextprotocol/client`, pinned to 2026-07-28: no initialize,
 * server/discover, version, capabilities and client info in each request's
 * _meta) reaches a stdio server and a strict 2026-era Streamable HTTP server
 * (both built with `@modelcontextprotocol/server`); roles and audit hold; a
 * 2025-era client keeps working.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { TestCluster, ROOT, resultText } from './helpers/cluster.js';

const V2_SERVER = join(ROOT, 'test/fixtures/servers/v2-server.mjs');
let cluster: TestCluster;
let user: string;
let auditPath: string;
const servers: ChildProcess[] = [];

async function startHttp(extra: string[] = []): Promise<number> {
  const p = spawn(process.execPath, [V2_SERVER, '--http', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(p);
  return new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    p.once('exit', (code) => reject(new Error(`v2 server exited (${code})`)));
  });
}

beforeAll(async () => {
  const strict = await startHttp();
  const both = await startHttp(['--legacy']);
  cluster = await TestCluster.start({ servers: [] });
  auditPath = join(cluster.dir, 'audit.jsonl');
  const labels = { env: 'dev' };
  await cluster.writeConfig({
    servers: [
      { name: 'modern-stdio', description: 'SDK v2 over stdio', labels, command: process.execPath, args: [V2_SERVER] },
      {
        name: 'modern-http',
        description: 'SDK v2, strictly 2026-07-28',
        labels,
        url: `http://127.0.0.1:${strict}/mcp`,
      },
      { name: 'both-http', description: 'SDK v2, both eras', labels, url: `http://127.0.0.1:${both}/mcp` },
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
  });
  await cluster.stopProxy();
  await cluster.startProxy();
  user = await cluster.issue('nova', ['most']);
});
afterAll(async () => {
  await cluster?.close();
  for (const p of servers) p.kill('SIGKILL');
});

/** An SDK v2 client pinned to 2026-07-28, speaking to `server` through a spawned `mcp-access connect`. */
async function modernClient(server: string): Promise<Client> {
  const client = new Client(
    { name: 'modern-agent', version: '26.7.28' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: cluster.connectArgs(server, user), stderr: 'pipe' }),
  );
  return client;
}

async function auditEvents(): Promise<Array<Record<string, unknown>>> {
  return (await readFile(auditPath, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('a 2026-07-28 client', () => {
  for (const server of ['modern-stdio', 'modern-http']) {
    it(`reaches ${server}: tools filtered by the roles, calls allowed and denied, audited with its name and version`, async () => {
      const client = await modernClient(server);
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('echo');
      expect(names).not.toContain('write_note');
      expect(resultText(await client.callTool({ name: 'echo', arguments: { text: `2026 via ${server}` } }))).toBe(
        `2026 via ${server}`,
      );
      await expect(client.callTool({ name: 'write_note', arguments: { text: 'x' } })).rejects.toThrow(/denied/);
      await client.close();
      const events = await auditEvents();
      const calls = events.filter(
        (e) =>
          e.server === server &&
          e.type === 'mcp.session.request' &&
          e.method === 'tools/call' &&
          e.direction === 'client_to_server',
      );
      expect(calls.length).toBeGreaterThanOrEqual(2);
      for (const e of calls) expect(e.client).toEqual({ name: 'modern-agent', version: '26.7.28' });
      expect(events.some((e) => e.server === server && e.method === 'server/discover')).toBe(true);
      expect(calls.some((e) => e.tool === 'write_note' && e.outcome === 'denied')).toBe(true);
    });
  }
});

describe('lists the proxy filters per identity', () => {
  it('carry cacheScope: "private" for a 2026-07-28 client, whatever the server said', async () => {
    for (const server of ['modern-stdio', 'modern-http']) {
      const client = await modernClient(server);
      const list = (await client.listTools()) as unknown as { cacheScope?: string; tools: unknown[] };
      expect(list.tools.length).toBeGreaterThan(0);
      expect(list.cacheScope, server).toBe('private');
      await client.close();
    }
  });
});

describe('a 2025-era client', () => {
  for (const server of ['modern-stdio', 'both-http']) {
    it(`keeps working with ${server}`, async () => {
      const { client } = await cluster.client(server, user);
      expect(resultText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
      await client.close();
    });
  }
});
