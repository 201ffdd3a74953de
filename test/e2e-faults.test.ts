/**
 * Sessions that survive (issue 5), with real processes on loopback: a fault
 * relay between bridge and proxy, a proxy killed with SIGKILL, an upstream
 * that crashes, identities rotated every few seconds, a client that stops
 * reading. Every test counts answers per request id: exactly one each.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, testServer } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';
import { FaultRelay } from './helpers/fault-relay.js';
import { waitForAudit } from './helpers/bot.js';
import { issueIdentity, writeIdentityFile } from '../src/identity/ca.js';

let cluster: TestCluster;
let alice: string;
let relay: FaultRelay;
let bridges: RawBridge[] = [];

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [testServer('test')],
    config: { keepalive: '300ms', sessions: { grace_period: '60s' } },
  });
  alice = await cluster.issue('alice', ['all']);
});
afterEach(async () => {
  for (const b of bridges) {
    b.proc.kill('SIGKILL');
  }
  bridges = [];
  await relay?.close().catch(() => {});
});
afterAll(async () => {
  await cluster?.close();
});

function bridge(proxy: string, identity = alice): RawBridge {
  const b = RawBridge.spawn([
    ...cluster.connectArgs('test', identity).slice(0, 4),
    '--proxy',
    proxy,
    '--keepalive',
    '300ms',
    '--connect-retries',
    '20',
    ...(process.env.BRIDGE_DEBUG ? ['--debug'] : []),
    'test',
  ]);
  bridges.push(b);
  return b;
}

const call = (id: number | string, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

/** Answers per id, and the ids answered more than once. */
function answers(b: RawBridge): { count: Map<unknown, number>; duplicated: unknown[] } {
  const count = new Map<unknown, number>();
  for (const m of b.messages)
    if ('id' in m && ('result' in m || 'error' in m)) count.set(m.id, (count.get(m.id) ?? 0) + 1);
  return { count, duplicated: [...count].filter(([, n]) => n > 1).map(([id]) => id) };
}

const textOf = (m: Record<string, unknown>) => (m.result as { content: Array<{ text: string }> }).content[0]!.text;

async function serverCalls(b: RawBridge, id: string): Promise<number> {
  b.send(call(id, 'stats'));
  return (JSON.parse(textOf(await b.response(id))) as { calls: number }).calls;
}

describe('resume across a broken tunnel: nothing lost, nothing twice', () => {
  it('survives repeated cuts while requests flow', async () => {
    relay = await FaultRelay.start(cluster.port);
    const b = bridge(relay.address);
    b.send(INIT(0));
    await b.response(0);
    const N = 120;
    for (let i = 1; i <= N; i++) {
      b.send(call(i, 'echo', { text: `message ${i}` }));
      if (i % 20 === 0) {
        await b.response(i - 10); // some answered, some in flight
        relay.cut();
      }
    }
    for (let i = 1; i <= N; i++) expect(textOf(await b.response(i))).toBe(`message ${i}`);
    const { count, duplicated } = answers(b);
    expect(duplicated).toEqual([]);
    expect(count.size).toBe(N + 1);
    expect(b.messages.filter((m) => m.error)).toEqual([]);
    // The server ran each call exactly once (+1 for this stats call).
    expect(await serverCalls(b, 'stats-1')).toBe(N + 1);
    expect(relay.connections).toBeGreaterThan(5);
    expect(b.stderr).toMatch(/resumed session/);
  });

  it('survives resets (RST) and a stall found by keepalive', async () => {
    relay = await FaultRelay.start(cluster.port);
    const b = bridge(relay.address);
    b.send(INIT(0));
    await b.response(0);
    b.send(call(1, 'echo', { text: 'before' }));
    await b.response(1);
    relay.reset();
    b.send(call(2, 'echo', { text: 'after reset' }));
    expect(textOf(await b.response(2))).toBe('after reset');
    relay.stall();
    b.send(call(3, 'echo', { text: 'during stall' }));
    expect(textOf(await b.response(3))).toBe('during stall');
    expect(answers(b).duplicated).toEqual([]);
    expect(b.stderr).toMatch(/stopped answering keepalives|tunnel lost/);
    expect(await serverCalls(b, 'stats-2')).toBe(4);
  });

  it('survives a cut in the middle of a 1 MiB message', async () => {
    relay = await FaultRelay.start(cluster.port);
    const b = bridge(relay.address);
    b.send(INIT(0));
    await b.response(0);
    relay.cutAfterClientBytes(300_000);
    const text = 'z'.repeat(1024 * 1024);
    b.send(call(1, 'digest', { text }));
    expect(textOf(await b.response(1))).toMatch(/^1048576:/);
    expect(answers(b).duplicated).toEqual([]);
    expect(await serverCalls(b, 'stats-3')).toBe(2);
  });
});

describe('when resume is impossible', () => {
  it('proxy killed with SIGKILL and restarted: in-flight requests get "outcome unknown", the client is told to refresh, work goes on', async () => {
    const b = bridge(cluster.address);
    b.send(INIT(0));
    const init = await b.response(0);
    b.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    b.send(call(1, 'wait_forever'));
    await expect.poll(() => cluster.proxyLog.includes('alice → test'), { timeout: 10_000 }).toBe(true);
    await cluster.stopProxy('SIGKILL');
    b.send(call(2, 'echo', { text: 'queued while the proxy was down' }));
    await cluster.startProxy();
    const lost = await b.response(1);
    expect((lost.error as { message: string }).message).toMatch(/outcome is unknown/);
    expect(textOf(await b.response(2))).toBe('queued while the proxy was down');
    await b.next((m) => m.method === 'notifications/tools/list_changed');
    const { count, duplicated } = answers(b);
    expect(duplicated).toEqual([]);
    expect(count.get(0)).toBe(1); // the replayed initialize was swallowed
    expect(b.stderr).not.toMatch(/not .* as before/); // same serverInfo
    expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toBe('test-server');
  });

  it('upstream crash: the crashing call gets one answer and a new session serves the next', async () => {
    const b = bridge(cluster.address);
    b.send(INIT(0));
    await b.response(0);
    b.send(call(1, 'pid'));
    const pid1 = textOf(await b.response(1));
    b.send(call(2, 'crash'));
    b.send(call(3, 'pid'));
    expect((await b.response(2)).error).toBeDefined();
    const pid3 = await b.response(3);
    expect(pid3.result ? textOf(pid3) : (pid3.error as { message: string }).message).not.toBe(pid1);
    b.send(call(4, 'pid'));
    const pid4 = textOf(await b.response(4));
    expect(pid4).not.toBe(pid1);
    expect(answers(b).duplicated).toEqual([]);
  });
});

describe('renewed identities', () => {
  it('a session outlives many short-lived certificates while tools are called continuously', async () => {
    const path = join(cluster.dir, 'rotating.identity');
    let renewals = 0;
    const renew = async () => {
      const text = await issueIdentity(cluster.pki.ca, { user: 'rotor', roles: ['all'], ttlMs: 6_000 });
      // Alternate the two ways agents write: truncate + write in place (tbot), temp + rename.
      if (renewals++ % 2 === 1) await writeFile(path, text, { mode: 0o600 });
      else await writeIdentityFile(path, text);
    };
    await renew();
    const b = bridge(cluster.address, path);
    b.send(INIT(0));
    await b.response(0);
    // A renewal agent: a new 6 s certificate every 1.5 s.
    let renewing = true;
    const agent = (async () => {
      while (renewing) {
        await new Promise((r) => setTimeout(r, 1_500));
        if (renewing) await renew();
      }
    })();
    const rotations = () => b.stderr.split('moving the session onto the renewed certificate').length - 1;
    let id = 1;
    try {
      while (rotations() < 4) {
        b.send(call(id, 'echo', { text: `r${id}` }));
        expect(textOf(await b.response(id))).toBe(`r${id}`);
        id++;
        if (id > 20_000) throw new Error('no rotation happened');
      }
    } finally {
      renewing = false;
      await agent;
    }
    expect(b.messages.filter((m) => m.error)).toEqual([]);
    expect(answers(b).duplicated).toEqual([]);
    expect(await serverCalls(b, 'stats-rot')).toBe(id); // every call ran exactly once (+ this one)
  });

  it('no renewal before expiry: a clear error naming the file; recovers when a valid file appears', async () => {
    const path = join(cluster.dir, 'short.identity');
    await writeIdentityFile(
      path,
      await issueIdentity(cluster.pki.ca, { user: 'shorty', roles: ['all'], ttlMs: 5_000 }),
    );
    const b = bridge(cluster.address, path);
    b.send(INIT(0));
    await b.response(0);
    await cluster.waitForLog(/shorty's certificate expired; closing the tunnel/);
    b.send(call(1, 'echo', { text: 'after expiry' }));
    const r = await b.response(1);
    expect((r.error as { message: string }).message).toContain(path);
    expect((r.error as { message: string }).message).toMatch(/expired .* ago.*renewal bot/);
    expect(b.stderr).toMatch(/expired/);
    await writeIdentityFile(
      path,
      await issueIdentity(cluster.pki.ca, { user: 'shorty', roles: ['all'], ttlMs: 600_000 }),
    );
    await expect.poll(() => b.stderr.includes('a valid identity file appeared'), { timeout: 15_000 }).toBe(true);
    b.send(call(2, 'echo', { text: 'recovered' }));
    expect(textOf(await b.response(2))).toBe('recovered');
    expect(answers(b).duplicated).toEqual([]);
  });
});

describe('a resume by another identity', () => {
  /**
   * A resume token presented by a different identity (at the protocol level:
   * the stock bridge never does this) is refused, audited as a denied session
   * start naming both users, and the owner's session survives it.
   */
  async function refusedAndAudited(config: Record<string, unknown>): Promise<void> {
    const own = await TestCluster.start({
      servers: [testServer('test')],
      config: { audit: { path: './audit.jsonl' }, ...config },
    });
    try {
      const { openTunnel } = await import('../src/bridge/connection.js');
      const { loadIdentity } = await import('../src/identity/load.js');
      const tunnel = async (identity: string, resume?: { token: string; received: number }) => {
        const id = await loadIdentity(identity);
        return openTunnel({
          proxy: { host: '127.0.0.1', port: own.port },
          server: 'test',
          tls: { key: id.keyPem, cert: id.certPem, ca: id.caPems },
          maxMessageSize: 1 << 20,
          resume,
        });
      };
      const alicePath = await own.issue('alice', ['all']);
      const first = await tunnel(alicePath);
      const token = first.hello.resumeToken;
      await expect(tunnel(await own.issue('mallory', ['all']), { token, received: 0 })).rejects.toThrow(
        /only the identity that opened a session can resume it/,
      );
      // The owner's session was not disturbed: alice still resumes it.
      first.socket.terminate();
      const back = await tunnel(alicePath, { token, received: 0 });
      expect(back.hello).toMatchObject({ session: first.hello.session, resumed: true });
      // A marker: audit events are appended in order, so once alice's
      // initialize (sent after the refusal) is recorded, the refusal's event is too.
      back.socket.send(Buffer.from(JSON.stringify(INIT(1))));
      const events = await waitForAudit(
        join(own.dir, 'audit.jsonl'),
        (e) => e.user === 'alice' && e.method === 'initialize',
      );
      expect(events.filter((e) => e.user === 'mallory')).toMatchObject([
        {
          type: 'mcp.session.start',
          outcome: 'denied',
          server: 'test',
          reason: expect.stringMatching(
            new RegExp(`tried to resume session ${first.hello.session} of alice`),
          ) as unknown,
        },
      ]);
      back.socket.close(1000);
    } finally {
      await own.close();
    }
  }

  it('is refused and audited', async () => {
    await refusedAndAudited({});
  });

  // With bots enabled the bot service's guard wraps the access decider; it
  // passes recordRefusal on, so the refusal is audited here too.
  it('is refused and audited with bots enabled', async () => {
    await refusedAndAudited({ bot: { state_dir: './bots' } });
  });
});

describe('a client that stops reading stdout', () => {
  it('loses nothing: the bridge holds back until the client reads again', async () => {
    const b = bridge(cluster.address);
    b.send(INIT(0));
    await b.response(0);
    b.proc.stdout!.pause();
    const N = 40;
    for (let i = 1; i <= N; i++) b.send(call(i, 'big', { size: 256 * 1024 }));
    // The client is busy elsewhere until its side is full: its stream buffer at
    // the high-water mark (so the pipe behind it is full too), and the bridge's
    // writes block; 40 × 256 KiB cannot fit there, so the rest must be held back.
    const out = b.proc.stdout!;
    await expect.poll(() => out.readableLength >= out.readableHighWaterMark, { timeout: 20_000 }).toBe(true);
    b.proc.stdout!.resume();
    for (let i = 1; i <= N; i++) expect(textOf(await b.response(i)).length).toBe(256 * 1024);
    expect(answers(b).duplicated).toEqual([]);
  });
});
