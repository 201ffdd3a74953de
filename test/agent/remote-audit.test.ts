import { describe, expect, it } from 'vitest';
import { RemoteAuditSink } from '../../src/agent/remote-audit.js';

const flush = () => new Promise((r) => setImmediate(r));

describe('RemoteAuditSink (an agent’s audit trail, stored by the proxy)', () => {
  it('refuses appends while not connected (fail closed)', async () => {
    const sink = new RemoteAuditSink();
    await expect(sink.append({ type: 'mcp.session.request' })).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
  });

  it('sends the events of one turn in one frame and resolves each with its id once acknowledged', async () => {
    const sink = new RemoteAuditSink();
    const sent: Array<{ seq: number; n: number }> = [];
    sink.connected((seq, events) => {
      sent.push({ seq, n: events.length });
      return true;
    });
    const a = sink.append({ type: 'a' });
    const b = sink.append({ type: 'b' });
    let settled = false;
    void Promise.all([a, b]).then(() => (settled = true));
    await flush();
    expect(sent).toEqual([{ seq: 1, n: 2 }]);
    expect(settled).toBe(false); // not durable until the proxy says so
    sink.acknowledged(1, ['id-a', 'id-b']);
    expect(await a).toEqual({ id: 'id-a' });
    expect(await b).toEqual({ id: 'id-b' });
  });

  it('an acknowledgement without ids (a proxy without an audit trail) resolves without an id', async () => {
    const sink = new RemoteAuditSink();
    sink.connected(() => true);
    const a = sink.append({ type: 'a' });
    await flush();
    sink.acknowledged(1, []);
    expect(await a).toBeUndefined();
  });

  it('a refusal from the proxy rejects every event of the frame with its code', async () => {
    const sink = new RemoteAuditSink();
    sink.connected(() => true);
    const a = sink.append({ type: 'a' });
    await flush();
    sink.refused(1, 'AUDIT_UNAVAILABLE', 'disk full');
    await expect(a).rejects.toMatchObject({
      code: 'AUDIT_UNAVAILABLE',
      message: expect.stringMatching(/disk full/) as unknown,
    });
  });

  it('losing the connection rejects events in flight and queued, and later appends', async () => {
    const sink = new RemoteAuditSink();
    sink.connected(() => true);
    const inFlight = sink.append({ type: 'a' });
    await flush();
    const queued = sink.append({ type: 'b' });
    sink.disconnected('the connection to the proxy was lost');
    await expect(inFlight).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    await expect(queued).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    await expect(sink.append({ type: 'c' })).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
  });

  it('a frame that cannot be sent fails its events at once', async () => {
    const sink = new RemoteAuditSink();
    sink.connected(() => false);
    await expect(sink.append({ type: 'a' })).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
  });

  it('acknowledgements for unknown frames are ignored', async () => {
    const sink = new RemoteAuditSink();
    sink.connected(() => true);
    const a = sink.append({ type: 'a' });
    await flush();
    sink.acknowledged(99, ['x']);
    sink.refused(98, 'INTERNAL', 'x');
    sink.acknowledged(1, ['ok']);
    expect(await a).toEqual({ id: 'ok' });
  });
});

describe('RemoteAuditSink with several proxies (replicas)', () => {
  it('events in flight to a proxy that went away go again through another, with the same eventKey', async () => {
    const sink = new RemoteAuditSink();
    const viaA: unknown[][] = [];
    const viaB: unknown[][] = [];
    const a = (_seq: number, events: unknown[]) => (viaA.push(events), true);
    const b = (_seq: number, events: unknown[]) => (viaB.push(events), true);
    sink.connected(a);
    sink.connected(b);
    const p = sink.append({ type: 'x' });
    await flush();
    expect(viaA).toHaveLength(1);
    sink.disconnected('proxy A went away', a);
    expect(viaB).toHaveLength(1);
    expect((viaB[0]![0] as { eventKey: string }).eventKey).toBe((viaA[0]![0] as { eventKey: string }).eventKey);
    sink.acknowledged(1, ['from-b']);
    expect(await p).toEqual({ id: 'from-b' });
  });

  it('every event gets its own eventKey', async () => {
    const sink = new RemoteAuditSink();
    const sent: Array<Array<{ eventKey: string }>> = [];
    sink.connected((_seq, events) => (sent.push(events as unknown as Array<{ eventKey: string }>), true));
    void sink.append({ type: 'a' });
    void sink.append({ type: 'b' });
    await flush();
    const keys = sent[0]!.map((e) => e.eventKey);
    expect(new Set(keys).size).toBe(2);
  });
});
