/**
 * The agent's audit spool against real files: an event is in the spool file
 * before its append resolves (so before the request goes on), shipped to the
 * proxy afterwards, forgotten once acknowledged, and sent again after a lost
 * connection, a refusal or a restart; fail closed when it cannot be written
 * or is full.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditSpool, type AuditRoute } from '../../src/agent/audit-spool.js';
import { agentEventId } from '../../src/audit/prepare.js';
import type { AccessError } from '../../src/errors.js';
import type { AgentAuditSettings } from '../../src/tunnel/agent-protocol.js';
import { Logger } from '../../src/util/log.js';
import { until } from '../helpers/until.js';

const SETTINGS: AgentAuditSettings = {
  args: 'full',
  redact: [],
  identityBudgetBytes: 0,
  fsync: 'interval',
  maxFrameBytes: 64 * 1024 * 1024,
};
const spools: AuditSpool[] = [];
afterEach(async () => {
  await Promise.all(spools.splice(0).map((s) => s.close()));
});

function newDir(): string {
  return mkdtempSync(join(tmpdir(), 'mcp-access-spool-'));
}

async function open(dir: string, opts: { maxBytes?: number; lines?: string[] } = {}): Promise<AuditSpool> {
  const lines = opts.lines ?? [];
  const spool = await AuditSpool.open({
    dir,
    agent: 'east',
    maxBytes: opts.maxBytes ?? 64 * 1024 * 1024,
    log: new Logger({ sink: (l) => lines.push(l) }),
    retryMs: { first: 1, max: 1 },
  });
  spools.push(spool);
  return spool;
}

type SentFrame = { seq: number; events: Array<Record<string, unknown>> };

/** A route that records the frames it is given (parsed); with `acking`, the proxy acknowledges each at once. */
function recorder(acking?: AuditSpool): { route: AuditRoute; frames: SentFrame[] } {
  const frames: SentFrame[] = [];
  return {
    frames,
    route: (text) => {
      const frame = JSON.parse(text) as SentFrame;
      frames.push(frame);
      if (acking) queueMicrotask(() => ack(acking, frame));
      return true;
    },
  };
}

/** Acknowledges a frame as the proxy does: with the ids derived from each event's key. */
function ack(spool: AuditSpool, frame: SentFrame): void {
  spool.acknowledged(
    frame.seq,
    frame.events.map((e) => agentEventId('east', String(e.eventKey))),
  );
}

/** A spool in a new directory, configured and connected to a recording route. */
async function connectedSpool(
  opts: { maxBytes?: number; settings?: AgentAuditSettings; acking?: boolean } = {},
): Promise<{ dir: string; spool: AuditSpool; frames: SentFrame[] }> {
  const dir = newDir();
  const spool = await open(dir, opts);
  spool.configure(opts.settings ?? SETTINGS);
  const { route, frames } = recorder(opts.acking ? spool : undefined);
  spool.connected(route);
  return { dir, spool, frames };
}

function spoolText(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.startsWith('spool-'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');
}

const request = (extra: Record<string, unknown> = {}) => ({
  type: 'mcp.session.request',
  user: 'alice',
  method: 'tools/call',
  tool: 'echo',
  ...extra,
});

describe('AuditSpool', () => {
  it('refuses appends until the proxy sent its audit settings; with no trail at the proxy, keeps nothing', async () => {
    const dir = newDir();
    const spool = await open(dir);
    await expect(spool.append(request())).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    spool.configure(null);
    await expect(spool.append(request())).resolves.toBeUndefined();
    expect(spoolText(dir)).toBe('');
    spool.configure(undefined); // settings the agent cannot read: fail closed again
    await expect(spool.append(request())).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
  });

  it('an append resolves once its line is in the spool file, before anything is sent; one write and one frame per turn', async () => {
    const { dir, spool, frames } = await connectedSpool();
    const seenAtResolve: Array<{ inFile: boolean; sent: number }> = [];
    const appends = [1, 2, 3].map((n) =>
      spool.append(request({ rpcId: n })).then((r) => {
        seenAtResolve.push({ inFile: spoolText(dir).includes(`"rpcId":${n}`), sent: frames.length });
        return r!;
      }),
    );
    const receipts = await Promise.all(appends);
    expect(seenAtResolve).toEqual([1, 2, 3].map(() => ({ inFile: true, sent: 0 })));
    await until(() => frames.length > 0, 'the frame');
    expect(frames).toHaveLength(1);
    const events = frames[0]!.events;
    expect(events.map((e) => e.rpcId)).toEqual([1, 2, 3]);
    // The ids are derived from the agent's name and each event's key, as the proxy derives them.
    expect(receipts.map((r) => r.id)).toEqual(events.map((e) => agentEventId('east', String(e.eventKey))));
    expect(new Set(events.map((e) => e.eventKey)).size).toBe(3);
    expect(typeof events[0]!.agentTime).toBe('string');
    expect(spoolText(dir).split('\n')).toHaveLength(4);
  });

  it('records arguments as the proxy would: redacted, digested or left out, so no secret reaches the spool', async () => {
    const dir = newDir();
    const spool = await open(dir);
    const { route, frames } = recorder();
    spool.connected(route);
    spool.configure({ ...SETTINGS, redact: ['pin'] });
    await spool.append(request({ args: { password: 'hunter2', pin: '1234', text: 'hello' } }));
    spool.configure({ ...SETTINGS, args: 'digest' });
    await spool.append(request({ args: { text: 'digested' } }));
    spool.configure({ ...SETTINGS, args: 'none' });
    await spool.append(request({ args: { text: 'dropped' } }));
    await until(() => frames.flatMap((f) => f.events).length === 3, 'three events');
    const [full, digest, none] = frames.flatMap((f) => f.events);
    expect(full!.args).toEqual({ password: '[REDACTED]', pin: '[REDACTED]', text: 'hello' });
    const digested = digest!.args as { sha256: string; bytes: number };
    expect(digested.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(digested.bytes).toBe(19);
    expect(none).not.toHaveProperty('args');
    const text = spoolText(dir);
    for (const secret of ['hunter2', '1234', 'digested', 'dropped']) expect(text).not.toContain(secret);
  });

  it('a hostile server’s huge error message is cut as the proxy would cut it; frames stay small', async () => {
    const { dir, spool, frames } = await connectedSpool({ acking: true });
    const huge = 'e'.repeat(5 * 1024 * 1024);
    await spool.append(request({ outcome: 'error', reason: huge }));
    await Promise.all(Array.from({ length: 200 }, () => spool.append(request({ text: 'y'.repeat(4000) }))));
    await until(() => frames.flatMap((f) => f.events).length === 201, 'every event sent');
    const first = frames[0]!.events[0]!;
    expect(String(first.reason)).toMatch(/^e{2048}…\[cut: 5242880 bytes, sha256 [0-9a-f]{64}\]$/);
    expect(spoolText(dir).length).toBeLessThan(1024 * 1024);
    expect(frames.length).toBeGreaterThan(1);
    for (const f of frames) expect(JSON.stringify(f).length).toBeLessThan(300 * 1024);
  });

  it('what the proxy acknowledged is not sent again after a restart; what it did not is, with the same ids', async () => {
    const dir = newDir();
    const first = await open(dir);
    first.configure(SETTINGS);
    const { route, frames } = recorder();
    first.connected(route);
    const stored = await first.append(request({ rpcId: 'stored' }));
    await until(() => frames.length === 1, 'the first frame');
    first.acknowledged(frames[0]!.seq, [stored!.id]);
    expect(frames[0]!.events.map((e) => agentEventId('east', String(e.eventKey)))).toEqual([stored!.id]);
    const unstored = await first.append(request({ rpcId: 'unstored' }));
    await until(() => frames.length === 2, 'the second frame');
    expect(first.pending).toBe(1);
    await first.close();

    const lines: string[] = [];
    const second = await open(dir, { lines });
    expect(second.pending).toBe(1);
    const again = recorder();
    second.connected(again.route);
    await until(() => again.frames.length === 1, 'the replayed frame');
    const replayed = again.frames[0]!.events;
    expect(replayed.map((e) => e.rpcId)).toEqual(['unstored']);
    expect(agentEventId('east', String(replayed[0]!.eventKey))).toBe(unstored!.id);
    expect(lines.join('\n')).toMatch(/1 event\(s\) the proxy had not stored/);
    // Acknowledged: the spool's old segments go (after the mark is noted, at the latest at close).
    ack(second, again.frames[0]!);
    await second.close();
    const third = await open(dir);
    expect(third.pending).toBe(0);
    third.configure(SETTINGS);
    await third.append(request());
    expect(readdirSync(dir).filter((f) => f.startsWith('spool-'))).toHaveLength(1);
  });

  it('a torn last line (an interrupted write) is skipped at a restart, the complete ones are sent', async () => {
    const dir = newDir();
    const first = await open(dir);
    first.configure(SETTINGS);
    await first.append(request({ rpcId: 1 }));
    await first.close();
    const [segment] = readdirSync(dir).filter((f) => f.startsWith('spool-'));
    writeFileSync(join(dir, segment!), '{"type":"mcp.session.request","eventKey":"x:9","rpcId":2', { flag: 'a' });
    const lines: string[] = [];
    const second = await open(dir, { lines });
    expect(second.pending).toBe(1);
    expect(lines.join('\n')).toMatch(/1 incomplete line\(s\) skipped/);
  });

  it('a refusal from the proxy keeps the events: they go again, in order, until stored', async () => {
    const { spool, frames } = await connectedSpool();
    await Promise.all([spool.append(request({ rpcId: 1 })), spool.append(request({ rpcId: 2 }))]);
    await until(() => frames.length === 1, 'the frame');
    spool.refused(frames[0]!.seq, 'AUDIT_UNAVAILABLE', 'disk full');
    await spool.append(request({ rpcId: 3 }));
    await until(() => frames.length === 2, 'the frame sent again');
    expect(frames[1]!.events.map((e) => e.rpcId)).toEqual([1, 2, 3]);
    expect(frames[1]!.events.map((e) => e.eventKey)).toEqual([
      ...frames[0]!.events.map((e) => e.eventKey),
      expect.any(String),
    ]);
    ack(spool, frames[1]!);
    expect(spool.pending).toBe(0);
  });

  it('events in flight to a proxy that went away go through another; with none left, once one is back', async () => {
    const dir = newDir();
    const spool = await open(dir);
    spool.configure(SETTINGS);
    const a = recorder();
    const b = recorder();
    spool.connected(a.route);
    spool.connected(b.route);
    await spool.append(request({ rpcId: 1 }));
    await until(() => a.frames.length === 1, 'the frame to the first proxy');
    spool.disconnected(a.route);
    await until(() => b.frames.length === 1, 'the frame to the other proxy');
    expect(b.frames[0]!.events[0]!.eventKey).toBe(a.frames[0]!.events[0]!.eventKey);
    ack(spool, a.frames[0]!); // late, from the proxy that went away: ignored
    expect(spool.pending).toBe(1);
    spool.disconnected(b.route);
    await spool.append(request({ rpcId: 2 })); // durable here even with no proxy connected
    const c = recorder();
    spool.connected(c.route);
    await until(() => c.frames.length === 1, 'the frame after reconnecting');
    expect(c.frames[0]!.events.map((e) => e.rpcId)).toEqual([1, 2]);
  });

  it('fails closed when full: appends are refused naming audit_spool.max_size, and accepted again once the proxy stored the rest', async () => {
    const { spool, frames } = await connectedSpool({ maxBytes: 2000 });
    let refused: AccessError | undefined;
    for (let i = 0; i < 50 && !refused; i++)
      await spool.append(request({ text: 'x'.repeat(200) })).catch((e: AccessError) => (refused = e));
    expect(refused?.code).toBe('AUDIT_UNAVAILABLE');
    expect(refused?.message).toMatch(/audit_spool\.max_size/);
    await until(() => frames.length > 0, 'frames');
    for (const f of frames) ack(spool, f);
    expect((await spool.append(request()))?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('charges the identity budget the proxy sent: the overrun is refused and recorded once', async () => {
    const dir = newDir();
    const spool = await open(dir);
    spool.configure({ ...SETTINGS, identityBudgetBytes: 1000 });
    let refused: AccessError | undefined;
    for (let i = 0; i < 20 && !refused; i++)
      await spool.append(request({ text: 'x'.repeat(200) })).catch((e: AccessError) => (refused = e));
    expect(refused?.message).toMatch(/audit budget/);
    await spool.append(request()).catch(() => {});
    await new Promise((r) => setImmediate(r));
    expect(spoolText(dir).match(/audit\.budget_exceeded/g)).toHaveLength(1);
    await expect(spool.append(request({ user: 'bob' }))).resolves.toBeDefined();
  });

  it('refuses appends when the spool cannot be written, and a spool another live process holds', async () => {
    const dir = newDir();
    const spool = await open(dir);
    mkdirSync(join(dir, 'spool-000001.jsonl')); // where the first segment would go
    spool.configure(SETTINGS);
    const unwritable = await spool.append(request()).catch((e: AccessError) => e);
    expect(unwritable).toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    expect((unwritable as AccessError).message).toMatch(/cannot be written/);
    const other = newDir();
    writeFileSync(join(other, 'spool.lock'), '1\n'); // held by a process that is alive (init)
    const held = await open(other).catch((e: AccessError) => e);
    expect(held).toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    expect((held as AccessError).message).toMatch(/is being written by process 1/);
  });

  it('a crash after an event was sent again (refused, then a later one stored) loses nothing: the mark stays before it', async () => {
    const dir = newDir();
    const first = await open(dir);
    first.configure(SETTINGS);
    const { route, frames } = recorder();
    first.connected(route);
    await first.append(request({ rpcId: 'A' }));
    await until(() => frames.length === 1, 'frame A');
    await first.append(request({ rpcId: 'B' }));
    await until(() => frames.length === 2, 'frame B');
    first.refused(frames[0]!.seq, 'AUDIT_UNAVAILABLE', 'disk full');
    await until(() => frames.length === 3, 'A sent again');
    ack(first, frames[1]!); // B stored; A (sent again, last in line) is not
    await until(() => existsSync(join(dir, 'acked')), 'the mark');
    // A crash: nothing closed; another process takes the spool over.
    const second = await open(dir);
    second.configure(SETTINGS);
    const again = recorder();
    second.connected(again.route);
    await until(() => again.frames.length === 1, 'the replay');
    expect(again.frames[0]!.events.map((e) => e.rpcId)).toEqual(['A', 'B']);
  });

  it('an acknowledgement naming other events (a frame of an earlier process) is ignored: nothing unstored is forgotten', async () => {
    const { spool, frames } = await connectedSpool();
    await spool.append(request());
    await until(() => frames.length === 1, 'the frame');
    spool.acknowledged(frames[0]!.seq, [agentEventId('east', 'other:1')]);
    spool.acknowledged(frames[0]!.seq, []);
    expect(spool.pending).toBe(1);
    ack(spool, frames[0]!);
    expect(spool.pending).toBe(0);
  });

  it('at most 8 frames wait for their acknowledgement; the rest follow as they come', async () => {
    const { spool, frames } = await connectedSpool();
    for (let i = 0; i < 12; i++) {
      await spool.append(request({ rpcId: i }));
      await new Promise((r) => setImmediate(r));
    }
    await until(() => frames.length === 8, 'eight frames');
    expect(spool.pending).toBe(12);
    ack(spool, frames[0]!);
    await until(() => frames.length === 9, 'the ninth after an acknowledgement');
  });

  it('one event the proxy never stores bounds the disk: later stored ones cannot let the spool grow past max_size', async () => {
    const { dir, spool, frames } = await connectedSpool({ maxBytes: 64 * 1024 });
    await spool.append(request({ rpcId: 'stuck' }));
    await until(() => frames.length === 1, 'the stuck frame');
    let refused: AccessError | undefined;
    for (let i = 0; i < 400 && !refused; i++) {
      await spool.append(request({ text: 'z'.repeat(500) })).catch((e: AccessError) => (refused = e));
      await new Promise((r) => setImmediate(r));
      for (const f of frames.slice(1)) ack(spool, f);
    }
    expect(refused?.message).toMatch(/audit_spool\.max_size/);
    const onDisk = readdirSync(dir)
      .filter((f) => f.startsWith('spool-'))
      .reduce((n, f) => n + readFileSync(join(dir, f)).length, 0);
    expect(onDisk).toBeLessThan(100 * 1024);
  });

  it('an event too large for the proxy’s frames keeps its arguments as a digest, as the proxy does past its limit', async () => {
    const { spool, frames } = await connectedSpool({
      settings: { ...SETTINGS, maxFrameBytes: 64 * 1024 },
      acking: true,
    });
    await spool.append(request({ args: { text: 'q'.repeat(100 * 1024) } }));
    await Promise.all(Array.from({ length: 50 }, () => spool.append(request({ args: { text: 'r'.repeat(2000) } }))));
    await until(() => frames.flatMap((f) => f.events).length === 51, 'every event sent');
    expect(frames[0]!.events[0]!.args).toMatchObject({ truncated: true, bytes: 100 * 1024 + 11 });
    for (const f of frames) expect(Buffer.byteLength(JSON.stringify(f))).toBeLessThan(64 * 1024);
  });

  it('refuses a spool directory of another user, and closes one open to others', async () => {
    const dir = newDir();
    chmodSync(dir, 0o755);
    const lines: string[] = [];
    await open(dir, { lines });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(lines.join('\n')).toMatch(/was open to other users; it is now 0700/);
    if (process.getuid?.() === 0) {
      const other = newDir();
      chownSync(other, 65534, 65534);
      const err = await open(other).catch((e: AccessError) => e);
      expect((err as AccessError).message).toMatch(/belongs to another user/);
    }
  });
});
