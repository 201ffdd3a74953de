/**
 * The proxy's lifecycle and trust, end to end: graceful SIGTERM, the
 * bridge's traces, and verifying the proxy against the identity's CAs only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, testServer, resultText, waitForExit } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';
import { makeTestPki } from './helpers/pki.js';

let cluster: TestCluster;
let alice: string;

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [testServer('test')] });
  alice = await cluster.issue('alice', ['all']);
});
afterAll(async () => {
  await cluster?.close();
});

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe('bridge traces', () => {
  it('--debug --log-file records every message with direction, method, id, size and latency; stdout stays pure JSON-RPC', async () => {
    const log = join(cluster.dir, 'bridge.log');
    const b = RawBridge.spawn(cluster.connectArgs('test', alice, ['--debug', '--log-file', log]));
    b.send(INIT(1));
    await b.response(1);
    b.send(call(2, 'echo', { text: 'traced' }));
    await b.response(2);
    expect(await b.end()).toBe(0);
    const text = await readFile(log, 'utf8');
    expect(text).toMatch(/→ tools\/call id=2 \d+B/);
    expect(text).toMatch(/← response id=2 \d+B \d+\.\d+ms/);
    for (const line of b.stdoutText.trim().split('\n'))
      expect((JSON.parse(line) as { jsonrpc: unknown }).jsonrpc).toBe('2.0');
  });
});

describe('trust', () => {
  it('refuses a proxy whose certificate is not from the identity file’s CAs; --ca-file adds roots', async () => {
    const other = await mkdtemp(join(tmpdir(), 'mcp-access-other-'));
    try {
      const otherPki = await makeTestPki(other, { cluster: 'other-cluster' });
      const stranger = await otherPki.issue('stranger', ['all'], 600_000);
      const b = RawBridge.spawn(cluster.connectArgs('test', stranger, ['--connect-retries', '0']));
      b.send(INIT(1));
      const r = await b.response(1);
      expect((r.error as { message: string }).message).toMatch(/could not be verified: its certificate is not trusted/);
      expect(await b.end()).toBe(4);
      // Trusting the proxy's CA with --ca-file gets past TLS verification; the
      // proxy then refuses a certificate it did not issue.
      const b2 = RawBridge.spawn(
        cluster.connectArgs('test', stranger, ['--connect-retries', '0', '--ca-file', cluster.pki.ca.caCertPath]),
      );
      b2.send(INIT(1));
      const r2 = await b2.response(1);
      expect((r2.error as { data: { code: string } }).data.code).toBe('IDENTITY_REJECTED');
      expect(await b2.end()).toBe(3);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM: sessions are closed with "going away", upstreams stopped, exit 0; bridges come back when it does', async () => {
    const { client, stderr } = await cluster.client('test', alice);
    const pid = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    expect(await cluster.stopProxy('SIGTERM')).toBe(0);
    await expect.poll(() => stderr(), { timeout: 10_000 }).toMatch(/the proxy is shutting down/);
    expect(await waitForExit(pid)).toBe(true);
    expect(cluster.proxyLog).toMatch(/SIGTERM: shutting down/);
    await cluster.startProxy();
    // The same client goes on, on a new session.
    let text = '';
    for (let i = 0; i < 20 && text !== 'back'; i++) {
      text = await client
        .callTool({ name: 'echo', arguments: { text: 'back' } })
        .then(resultText, (e: Error) => e.message);
    }
    expect(text).toBe('back');
    await client.close();
  });
});
