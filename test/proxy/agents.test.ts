/**
 * AgentDirectory against fake sockets: announcements and conflicts, health,
 * audit events (stored before they are acknowledged), refusals.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog, verifyAuditFile } from '../../src/audit/log.js';
import { fileAuditWriter } from '../../src/backend/local.js';
import type { WebSocket } from 'ws';
import { AccessError } from '../../src/errors.js';
import type { Peer } from '../../src/identity/peer.js';
import { AgentDirectory, HEARTBEAT_STALE_MS } from '../../src/proxy/agents.js';
import { agentEventId } from '../../src/audit/prepare.js';
import { Logger } from '../../src/util/log.js';
import { until } from '../helpers/until.js';

class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readonly CONNECTING = 0;
  readyState = 1;
  isPaused = false;
  bufferedAmount = 0;
  sent: unknown[] = [];
  closedWith: { code: number; reason?: string } | undefined;
  send(data: unknown): void {
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : data);
  }
  close(code: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
    this.emit('close', code, Buffer.from(reason ?? ''));
  }
  terminate(): void {
    this.close(1006);
  }
  frames(type: string): Array<Record<string, unknown>> {
    return (this.sent as Array<Record<string, unknown>>).filter((f) => f?.type === type);
  }
  receive(frame: unknown): void {
    this.emit('message', Buffer.from(JSON.stringify(frame)), false);
  }
}
const ws = (f: FakeSocket) => f as unknown as WebSocket;

function agentPeer(name: string): Peer {
  return {
    user: `agent-${name}`,
    roles: ['agent'],
    agent: { name, generation: 1 },
    notAfter: new Date(Date.now() + 3600_000),
    serial: '1',
    fingerprint256: 'x',
    remoteAddr: '127.0.0.1:1',
  };
}

function directory(opts: Partial<ConstructorParameters<typeof AgentDirectory>[0]> = {}) {
  let now = 1_000_000;
  const stored: Array<Record<string, unknown>> = [];
  const dir = new AgentDirectory({
    cluster: 'c',
    proxyId: 'p1',
    log: new Logger({ sink: () => {} }),
    keepaliveMs: 15_000,
    audit: () => ({
      append: (e: Record<string, unknown>) => {
        stored.push(e);
        return Promise.resolve({ id: `id${stored.length}` });
      },
    }),
    roles: () => [{ where: 'roles[0]', doc: { kind: 'role' } }],
    localNames: () => new Set(['local-only']),
    now: () => now,
    ...opts,
  });
  return { dir, stored, tick: (ms: number) => (now += ms) };
}

const server = (name: string, labels: Record<string, string> = { env: 'dev' }) => ({
  name,
  description: 'd',
  transport: 'stdio',
  labels,
});

describe('AgentDirectory', () => {
  it('welcomes an agent with the cluster and the roles, and lists what it announces', () => {
    const { dir } = directory();
    const control = new FakeSocket();
    dir.attachControl(ws(control), agentPeer('east'));
    expect(control.frames('welcome')[0]).toMatchObject({ cluster: 'c', agent: 'east', roles: [{ where: 'roles[0]' }] });
    control.receive({ type: 'announce', servers: [server('files')], sessions: 0 });
    expect(dir.servers()).toEqual([{ ...server('files'), agents: 1 }]);
  });

  it('counts agents serving the same name with the same labels; refuses other labels and local names', () => {
    const { dir } = directory();
    const [a, b, c] = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
    dir.attachControl(ws(a), agentPeer('a'));
    dir.attachControl(ws(b), agentPeer('b'));
    dir.attachControl(ws(c), agentPeer('c'));
    a.receive({ type: 'announce', servers: [server('files')], sessions: 0 });
    b.receive({ type: 'announce', servers: [server('files')], sessions: 0 });
    c.receive({ type: 'announce', servers: [server('files', { env: 'prod' }), server('local-only'), server('mine')] });
    expect(dir.find('files')).toMatchObject({ agents: 2, labels: { env: 'dev' } });
    const refused = c.frames('refused-servers')[0]!.servers as Array<{ name: string; reason: string }>;
    expect(refused.map((r) => r.name).sort()).toEqual(['files', 'local-only']);
    expect(refused.find((r) => r.name === 'files')!.reason).toMatch(/already serves "files" with other labels/);
    expect(dir.find('mine')).toMatchObject({ agents: 1 });
    // Refusals are reported once, not every heartbeat.
    c.receive({ type: 'announce', servers: [server('files', { env: 'prod' }), server('local-only'), server('mine')] });
    expect(c.frames('refused-servers')).toHaveLength(1);
  });

  it('ignores malformed announcements instead of breaking the listing', () => {
    const { dir } = directory();
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('a'));
    a.receive({ type: 'announce', servers: [null, { name: '../x' }, { name: 'ok', labels: { k: 1, j: 'v' } }] });
    expect(dir.servers()).toEqual([{ name: 'ok', description: '', transport: 'stdio', labels: { j: 'v' }, agents: 1 }]);
  });

  it('an agent not heard from for the heartbeat window gets no new sessions', () => {
    const { dir, tick } = directory();
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('a'));
    a.receive({ type: 'announce', servers: [server('files')] });
    tick(HEARTBEAT_STALE_MS + 1);
    expect(dir.find('files')).toBeUndefined();
  });

  it('stores audit events with the certified agent name before acknowledging them', async () => {
    const { dir, stored } = directory();
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    a.receive({ type: 'audit', seq: 7, events: [{ type: 'x', agent: 'forged' }, { type: 'y' }] });
    await new Promise((r) => setImmediate(r));
    expect(stored.map((e) => e.agent)).toEqual(['east', 'east']);
    expect(a.frames('audit-ack')[0]).toEqual({ type: 'audit-ack', seq: 7, ids: ['id1', 'id2'] });
  });

  it('a hostile agent’s events cannot forge `agent`, ids or the chain, nor add lines to the real trail', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'mcp-access-agents-')), 'audit.jsonl');
    const log = await AuditLog.open(path);
    const writer = fileAuditWriter(log);
    const { dir } = directory({ audit: () => writer });
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    const zeros = '0'.repeat(64);
    // Raw text: an own "__proto__" key, keys JSON.stringify would never write, strings that try to end the line.
    const events = [
      `{"type":"mcp.session.request","agent":"west","id":"mine","time":"then","prev":"${zeros}","hash":"${'f'.repeat(64)}","user":"alice","reason":"x\\n{\\"agent\\":\\"west\\"}\\n","method":"tools/call\\u2028"}`,
      '{"__proto__":{"agent":"west"},"type":"x","agent":null}',
      '{"type":"x","agent":{"name":"west"},"0":"first","client":{"__proto__":{"a":1},"name":"c"}}',
      '"just a string"',
      '[1,"two",{"agent":"west"}]',
      `{"type":"x","user":"\\ud800","tool":"${'a'.repeat(100_000)}","extra":{"prev":"${zeros}"}}`,
    ];
    a.emit('message', Buffer.from(`{"type":"audit","seq":3,"events":[${events.join(',')}]}`), false);
    await until(() => a.frames('audit-ack').length + a.frames('audit-nack').length > 0, 'the answer');
    expect(a.frames('audit-nack')).toEqual([]);
    await log.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(events.length);
    const stored = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(stored.map((e) => e.agent)).toEqual(Array(events.length).fill('east'));
    expect(a.frames('audit-ack')[0]).toEqual({ type: 'audit-ack', seq: 3, ids: stored.map((e) => e.id) });
    expect(stored[0]).toMatchObject({ prev: zeros, user: 'alice' });
    expect(stored[0]!.id).not.toBe('mine');
    expect(stored[0]!.time).not.toBe('then');
    for (let i = 1; i < stored.length; i++) expect(stored[i]!.prev).toBe(stored[i - 1]!.hash);
    expect(stored[3]).toMatchObject({ value: 'just a string' });
    expect(stored[4]).toMatchObject({ 0: 1, 1: 'two', 2: { agent: 'west' }, agent: 'east' });
    expect(String(stored[5]!.tool)).toContain('…[cut: 100000 bytes');
    expect(await verifyAuditFile(path)).toEqual({ ok: true, events: events.length, head: log.head });
  });

  it('stores an agent’s event under the id derived from its certified name and eventKey, never one the agent chose', async () => {
    const ids: unknown[] = [];
    const { dir: d2 } = directory({
      audit: () => ({
        append: (e: Record<string, unknown>, recorded: { id: string }) => {
          ids.push(recorded.id);
          return Promise.resolve({ id: recorded.id });
        },
      }),
    });
    const [east, west] = [new FakeSocket(), new FakeSocket()];
    d2.attachControl(ws(east), agentPeer('east'));
    d2.attachControl(ws(west), agentPeer('west'));
    for (const s of [east, west]) s.receive({ type: 'announce', servers: [] });
    // Both agents claim the same key, and the id of an event that is not theirs.
    const victim = agentEventId('east', 'k:1');
    east.receive({ type: 'audit', seq: 1, events: [{ type: 'x', eventKey: 'k:1' }] });
    west.receive({ type: 'audit', seq: 1, events: [{ type: 'x', eventKey: 'k:1', id: victim }, { type: 'y' }] });
    await until(() => ids.length === 3, 'three events');
    expect(ids[0]).toBe(victim);
    expect(ids[1]).toBe(agentEventId('west', 'k:1'));
    expect(ids[1]).not.toBe(victim);
    expect(ids[2]).toMatch(/^[0-9a-f-]{36}$/); // no key: a fresh id
    await until(() => east.frames('audit-ack').length === 1, 'the acknowledgement');
    expect(east.frames('audit-ack')[0]).toEqual({ type: 'audit-ack', seq: 1, ids: [victim] });
  });

  it('an agent’s recorded arguments: the proxy’s policy applies again, a digest is not digested twice, nothing charged to its budget', async () => {
    const digest = { sha256: 'a'.repeat(64), bytes: 12 };
    const raw = { pin: '1234', text: 'x'.repeat(200) };
    const store = async (args: 'full' | 'digest' | 'none') => {
      const path = join(mkdtempSync(join(tmpdir(), 'mcp-access-agents-')), 'audit.jsonl');
      const log = await AuditLog.open(path, { args, redactKeys: ['pin'], identityBudgetBytes: 100 });
      const { dir } = directory({ audit: () => fileAuditWriter(log) });
      const a = new FakeSocket();
      dir.attachControl(ws(a), agentPeer('east'));
      a.receive({ type: 'announce', servers: [] });
      const events = [digest, raw].map((args, n) => ({
        type: 'mcp.session.request',
        user: 'alice',
        eventKey: `k:${n}`,
        args,
      }));
      a.receive({ type: 'audit', seq: 1, events });
      await until(() => a.frames('audit-ack').length + a.frames('audit-nack').length > 0, 'the answer');
      expect(a.frames('audit-nack')).toEqual([]);
      await log.close();
      const lines = readFileSync(path, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((e) => e.id)).toEqual(events.map((e) => agentEventId('east', e.eventKey)));
      return lines.map((e) => e.args);
    };
    // full: a digest stays a digest; arguments are redacted with the proxy's own keys (any agent's).
    expect(await store('full')).toEqual([digest, { pin: '[REDACTED]', text: 'x'.repeat(200) }]);
    // digest: full arguments (an agent with stale settings) are digested here; a digest is kept as it is.
    const [kept, digested] = await store('digest');
    expect(kept).toEqual(digest);
    expect(digested).toMatchObject({ bytes: Buffer.byteLength(JSON.stringify({ pin: '[REDACTED]', text: raw.text })) });
    expect(JSON.stringify(digested)).not.toContain('x'.repeat(10));
    // none: no arguments at all.
    expect(await store('none')).toEqual([undefined, undefined]);
  });

  it('an event sent again (its acknowledgement was lost) or twice in a frame is stored once, and acknowledged each time', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'mcp-access-agents-')), 'audit.jsonl');
    const log = await AuditLog.open(path);
    const { dir } = directory({ audit: () => fileAuditWriter(log) });
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    const event = { type: 'mcp.session.request', user: 'alice', eventKey: 'k:1' };
    a.receive({ type: 'audit', seq: 1, events: [event, event] });
    a.receive({ type: 'audit', seq: 2, events: [event] });
    await until(() => a.frames('audit-ack').length === 2, 'two acknowledgements');
    const id = agentEventId('east', 'k:1');
    expect(a.frames('audit-ack')).toEqual([
      { type: 'audit-ack', seq: 1, ids: [id, id] },
      { type: 'audit-ack', seq: 2, ids: [id] },
    ]);
    await log.close();
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('sends the audit settings with the welcome and again with the roles', () => {
    const settings = {
      args: 'digest' as const,
      redact: ['pin'],
      identityBudgetBytes: 1024,
      fsync: 'always' as const,
      maxFrameBytes: 1 << 20,
    };
    let current: typeof settings | null = settings;
    const { dir } = directory({ auditSettings: () => current });
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    expect(a.frames('welcome')[0]).toMatchObject({ audit: settings });
    current = null;
    dir.pushRoles();
    expect(a.frames('roles')[0]).toMatchObject({ audit: null });
  });

  it('without a trail, acknowledges an agent’s events under their ids (so its spool can forget them)', async () => {
    const { dir } = directory({ audit: () => undefined });
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    a.receive({ type: 'audit', seq: 4, events: [{ type: 'x', eventKey: 'k:1' }] });
    await until(() => a.frames('audit-ack').length === 1, 'the acknowledgement');
    expect(a.frames('audit-ack')[0]).toEqual({ type: 'audit-ack', seq: 4, ids: [agentEventId('east', 'k:1')] });
  });

  it('answers audit-nack when the trail cannot store them', async () => {
    const { dir } = directory({
      audit: () => ({ append: () => Promise.reject(new AccessError('AUDIT_UNAVAILABLE', 'disk full')) }),
    });
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    a.receive({ type: 'audit', seq: 1, events: [{ type: 'x' }] });
    await new Promise((r) => setImmediate(r));
    expect(a.frames('audit-nack')[0]).toMatchObject({ seq: 1, code: 'AUDIT_UNAVAILABLE' });
  });

  it('refuses an agent the enrolment service refuses (locked), with a fatal frame and a close code', () => {
    const { dir } = directory({
      checkAgent: () => {
        throw new AccessError('SESSION_LOCKED', 'agent east is locked');
      },
    });
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    expect(a.frames('fatal')[0]).toMatchObject({ code: 'SESSION_LOCKED' });
    expect(a.closedWith?.code).toBe(4423);
    expect(dir.connected).toBe(0);
  });

  it('a second control connection becomes the agent’s link only when it announces (a probe that reached a known replica never does)', () => {
    const { dir } = directory();
    const [first, probe] = [new FakeSocket(), new FakeSocket()];
    dir.attachControl(ws(first), agentPeer('east'));
    first.receive({ type: 'announce', servers: [server('files')] });
    dir.attachControl(ws(probe), agentPeer('east'));
    expect(probe.frames('welcome')).toHaveLength(1);
    probe.close(1000);
    expect(first.closedWith).toBeUndefined();
    expect(dir.find('files')).toMatchObject({ agents: 1 });
  });

  it('a data connection without the agent’s control connection is refused', () => {
    const { dir } = directory();
    const d = new FakeSocket();
    dir.attachData(ws(d), agentPeer('nobody'));
    expect(d.closedWith).toBeDefined();
  });

  it('a resume for an agent gone while the proxy ran is "session lost"; for one not seen since start, "going away"', async () => {
    const { dir } = directory();
    const a = new FakeSocket();
    dir.attachControl(ws(a), agentPeer('east'));
    a.receive({ type: 'announce', servers: [] });
    a.close(1006);
    await expect(dir.resume('east~tok', 0, ws(new FakeSocket()), agentPeer('x'))).rejects.toMatchObject({
      code: 'SESSION_LOST',
    });
    await expect(dir.resume('west~tok', 0, ws(new FakeSocket()), agentPeer('x'))).rejects.toMatchObject({
      code: 'PROXY_GOING_AWAY',
    });
  });
});
