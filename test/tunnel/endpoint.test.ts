/**
 * TunnelEndpoint against a fake socket: raw frames in, and exactly what goes
 * out (frames, pauses, closes) asserted, with time driven by a manual clock.
 */
import { describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { TunnelEndpoint, type TunnelEndpointOptions } from '../../src/tunnel/endpoint.js';
import { FrameHold } from '../../src/tunnel/frame-hold.js';
import { FakeSocket } from '../helpers/fake-socket.js';
import { ManualClock } from '../helpers/manual-clock.js';

const HELLO = {
  type: 'hello' as const,
  session: 's-1',
  resumeToken: 'tok',
  server: 'files',
  resumed: false,
  received: 0,
  graceMs: 1000,
};

function setup(opts: Partial<TunnelEndpointOptions> = {}) {
  const clock = new ManualClock();
  const endpoint = new TunnelEndpoint({
    highWaterBytes: 1 << 20,
    keepaliveMs: 1000,
    clock,
    peerName: 'the proxy',
    ...opts,
  });
  const messages: string[] = [];
  const disconnects: Array<{ err: AccessError | undefined; code: number; reason: string }> = [];
  endpoint.on('message', (d) => messages.push(d.toString()));
  endpoint.on('disconnect', (err, code, reason) => disconnects.push({ err, code, reason }));
  return { clock, endpoint, messages, disconnects };
}

describe('TunnelEndpoint: data frames and acknowledgements', () => {
  it('sends data frames as binary frames in order and hands received ones to "message"', () => {
    const { endpoint, messages } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.send(Buffer.from('A'));
    endpoint.send(Buffer.from('B'));
    s.peerData('x');
    s.peerData('y');
    expect(s.dataSent).toEqual(['A', 'B']);
    expect(messages).toEqual(['x', 'y']);
    expect(endpoint.receivedCount).toBe(2);
  });

  it('acknowledges 20 ms after the first unacknowledged frame, not before (injected clock)', () => {
    const { endpoint, clock } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    s.peerData('1');
    clock.advance(10);
    s.peerData('2');
    clock.advance(9);
    expect(s.controlSent).toEqual([]);
    clock.advance(1);
    expect(s.controlSent).toEqual([{ type: 'ack', received: 2 }]);
    clock.advance(1000);
    expect(s.controlSent.filter((f) => (f as { type: string }).type === 'ack')).toHaveLength(1);
  });

  it('acknowledges at once after 64 frames', () => {
    const { endpoint } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    for (let i = 0; i < 63; i++) s.peerData(String(i));
    expect(s.controlSent).toEqual([]);
    s.peerData('63');
    expect(s.controlSent).toEqual([{ type: 'ack', received: 64 }]);
  });

  it('drops acknowledged frames from the outbox and says "writable" when it has room again', () => {
    const { endpoint } = setup({ highWaterBytes: 1000 });
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    let writable = 0;
    endpoint.on('writable', () => writable++);
    const frame = Buffer.alloc(200, 0x61); // each counts 200 bytes + 512 of overhead
    expect(endpoint.send(frame)).toBe(true);
    expect(endpoint.send(frame)).toBe(false); // over 1000
    expect(endpoint.send(frame)).toBe(false);
    expect(endpoint.full).toBe(true);
    s.peerControl({ type: 'ack', received: 1 });
    expect(writable).toBe(0); // still over
    s.peerControl({ type: 'ack', received: 2 });
    expect(writable).toBe(1);
    s.peerControl({ type: 'ack', received: 3 });
    expect(writable).toBe(1); // once per send that returned false
    expect(endpoint.pendingBytes).toBe(0);
  });
});

describe('TunnelEndpoint: attach and resume', () => {
  it('sends the hello first, then re-sends exactly the frames the peer has not acknowledged, in order', () => {
    const { endpoint, disconnects } = setup();
    const s1 = new FakeSocket();
    endpoint.attach(s1, 0);
    for (const t of ['1', '2', '3', '4', '5']) endpoint.send(Buffer.from(t));
    s1.peerControl({ type: 'ack', received: 2 });
    s1.peerData('from-peer');
    s1.peerClose(1006);
    expect(disconnects).toEqual([{ err: undefined, code: 1006, reason: '' }]);
    expect(endpoint.attached).toBe(false);
    endpoint.send(Buffer.from('6')); // while detached: queued
    const s2 = new FakeSocket();
    // The peer says it got 3 (frame 3 arrived before the drop, its ack did not).
    endpoint.attach(s2, 3, { hello: { ...HELLO, resumed: true, received: endpoint.receivedCount } });
    expect(s2.log).toEqual(['control hello 1', 'data 4', 'data 5', 'data 6', 'control ack 1']);
    expect(s2.controlSent[0]).toMatchObject({ type: 'hello', received: 1, resumed: true });
  });

  it('ignores frames from a socket it no longer uses: not counted, not delivered (the peer re-sends them)', () => {
    const { endpoint, messages, disconnects } = setup();
    const s1 = new FakeSocket();
    endpoint.attach(s1, 0);
    const s2 = new FakeSocket();
    endpoint.attach(s2, 0);
    expect(s1.log).toContain('terminate');
    s1.peerData('late');
    s1.peerControl({ type: 'ack', received: 99 });
    s1.peerClose(4404);
    expect(messages).toEqual([]);
    expect(endpoint.receivedCount).toBe(0);
    expect(disconnects).toEqual([]);
    expect(endpoint.attached).toBe(true);
  });

  it('handles frames that arrived before it took the socket (a FrameHold) in order, then the close', () => {
    const { endpoint, messages, disconnects } = setup();
    const s = new FakeSocket();
    const hold = new FrameHold(s);
    endpoint.send(Buffer.from('mine'));
    s.peerData('e1');
    s.peerControl({ type: 'ack', received: 1 });
    s.peerData('e2');
    s.peerData('e3');
    s.peerClose(4502, 'upstream exited');
    expect(messages).toEqual([]);
    endpoint.attach(s, 0, { held: hold });
    expect(messages).toEqual(['e1', 'e2', 'e3']);
    expect(endpoint.receivedCount).toBe(3);
    expect(endpoint.pendingBytes).toBe(0); // the held ack counted
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]!.code).toBe(4502);
    expect(disconnects[0]!.err?.code).toBe('UPSTREAM_EXITED');
    expect(disconnects[0]!.err?.message).toBe('the proxy closed the tunnel (4502: upstream exited)');
  });

  it('treats a socket that closed before anyone listened as a drop', () => {
    const { endpoint, disconnects } = setup();
    const s = new FakeSocket();
    s.peerClose(1006);
    endpoint.attach(s, 0, { hello: HELLO });
    expect(s.log).toEqual([]); // no hello on a closed socket
    expect(disconnects).toEqual([{ err: undefined, code: 1006, reason: '' }]);
    expect(endpoint.attached).toBe(false);
  });

  it('stops handling held frames once a held frame made it let go of the socket', () => {
    const { endpoint, messages } = setup();
    const s = new FakeSocket();
    const hold = new FrameHold(s);
    s.peerData('e1');
    s.peerData('e2');
    endpoint.on('message', () => endpoint.detach());
    endpoint.attach(s, 0, { held: hold });
    expect(messages).toEqual(['e1']);
  });
});

describe('TunnelEndpoint: the reading pause', () => {
  it('pauses the socket and any socket attached while paused, before it is read', () => {
    const { endpoint } = setup();
    const s1 = new FakeSocket();
    endpoint.attach(s1, 0);
    endpoint.pause();
    expect(s1.isPaused).toBe(true);
    s1.peerClose(1006); // the tunnel drops while the consumer is still blocked
    const s2 = new FakeSocket();
    const hold = new FrameHold(s2);
    endpoint.attach(s2, 0, { held: hold });
    expect(s2.isPaused).toBe(true);
    expect(s2.log[0]).toBe('pause');
    endpoint.resume();
    expect(s2.isPaused).toBe(false);
    expect(endpoint.isPaused).toBe(false);
    const s3 = new FakeSocket();
    endpoint.attach(s3, 0);
    expect(s3.log).not.toContain('pause');
  });

  it('lets go of a paused socket reading again, so that it reads its close frame', () => {
    const { endpoint } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.pause();
    endpoint.release(4002, 'rotating identity');
    expect(s.log).toEqual(['pause', 'resume', 'close 4002']);
    expect(endpoint.isPaused).toBe(true); // the next socket is paused too
  });
});

describe('TunnelEndpoint: keepalive', () => {
  it('pings every interval and drops a peer that missed a ping when the next is due', () => {
    const { endpoint, clock, disconnects } = setup({ keepaliveMs: 1000 });
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    clock.advance(1000);
    expect(s.log).toEqual(['ping']);
    s.peerPong();
    clock.advance(1000);
    expect(s.log).toEqual(['ping', 'ping']);
    expect(disconnects).toEqual([]);
    clock.advance(999);
    expect(disconnects).toEqual([]);
    clock.advance(1); // no pong since the last ping: dead
    expect(s.log).toEqual(['ping', 'ping', 'terminate']);
    expect(disconnects).toEqual([{ err: undefined, code: 1006, reason: 'the proxy stopped answering keepalives' }]);
    expect(endpoint.attached).toBe(false);
    clock.advance(5000);
    expect(s.log.filter((c) => c === 'ping')).toHaveLength(2);
  });

  it('makes no verdict while reading is paused (pongs cannot be read then)', () => {
    const { endpoint, clock, disconnects } = setup({ keepaliveMs: 1000 });
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    clock.advance(1000);
    endpoint.pause();
    clock.advance(10_000);
    expect(disconnects).toEqual([]);
    endpoint.resume();
    clock.advance(1000); // pings again
    expect(disconnects).toEqual([]);
    clock.advance(1000);
    expect(disconnects).toHaveLength(1);
  });

  it('keeps no timer for a socket it let go of', () => {
    const { endpoint, clock } = setup({ keepaliveMs: 1000 });
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.detach();
    expect(clock.pending).toBe(0);
    clock.advance(5000);
    expect(s.log).toEqual([]);
  });
});

describe('TunnelEndpoint: fatal and close codes, both ways', () => {
  it('close(err) sends the fatal frame, then the close code the catalogue gives the error', async () => {
    const { endpoint, disconnects } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.pause();
    const err = new AccessError('UNKNOWN_SERVER', 'no MCP server named "x"');
    const closed = endpoint.close(err);
    expect(endpoint.close()).toBe(closed); // memoised
    expect(s.log).toEqual(['pause', 'resume', 'control fatal UNKNOWN_SERVER', 'close 4404']);
    expect(s.controlSent[0]).toEqual({
      type: 'fatal',
      code: 'UNKNOWN_SERVER',
      message: 'no MCP server named "x"',
      hint: err.hint,
    });
    expect(s.calls.at(-1)).toEqual({ op: 'close', code: 4404, reason: 'no MCP server named "x"' });
    s.peerClose(4404);
    await closed;
    expect(disconnects).toEqual([]); // its own close is no disconnect
    expect(endpoint.send(Buffer.from('late'))).toBe(false);
    expect(s.dataSent).toEqual([]);
  });

  it('close() without an error closes with 1000, and cuts a peer that does not answer', async () => {
    const { endpoint, clock } = setup({ closeTimeoutMs: 300 });
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    const closed = endpoint.close();
    expect(s.log).toEqual(['close 1000']);
    clock.advance(299);
    expect(s.log).toEqual(['close 1000']);
    clock.advance(1);
    await closed;
    expect(s.log).toEqual(['close 1000', 'terminate']);
  });

  it('cuts a long reason to fit a close frame (123 bytes), on a character boundary; the fatal frame has it whole', () => {
    const { endpoint } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    const message = `the server "${'é'.repeat(100)}" stopped`;
    void endpoint.close(new AccessError('UPSTREAM_EXITED', message));
    const close = s.calls.at(-1) as { op: 'close'; code: number; reason: string };
    expect(close.code).toBe(4502);
    expect(Buffer.byteLength(close.reason)).toBeLessThanOrEqual(123);
    expect(close.reason).toMatch(/^the server "é+\.\.\.$/);
    expect(s.controlSent[0]).toMatchObject({ type: 'fatal', message });
  });

  it('an error without a close code of its own closes with 4400', () => {
    const { endpoint } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    void endpoint.close(new AccessError('AUDIT_UNAVAILABLE', 'the audit log cannot be written'));
    expect(s.log).toEqual(['control fatal AUDIT_UNAVAILABLE', 'close 4400']);
  });

  it('turns a received fatal frame and close code into the AccessError it names', () => {
    const { endpoint, disconnects } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    s.peerControl({ type: 'fatal', code: 'ACCESS_DENIED', message: 'alice may not reach "files"', hint: 'ask' });
    s.peerClose(4403, 'alice may not reach "files"');
    expect(disconnects).toHaveLength(1);
    const { err, code } = disconnects[0]!;
    expect(code).toBe(4403);
    expect(err).toBeInstanceOf(AccessError);
    expect(err).toMatchObject({ code: 'ACCESS_DENIED', message: 'alice may not reach "files"', hint: 'ask' });
  });

  it('reads a bare close code through the catalogue, and normal closes and drops as no error', () => {
    const cases: Array<[number, string | undefined]> = [
      [4001, 'PROXY_GOING_AWAY'],
      [4409, 'SESSION_LOST'],
      [4429, 'LIMIT_REACHED'],
      [1009, 'MESSAGE_TOO_LARGE'],
      [1000, undefined],
      [1006, undefined],
      [4002, undefined],
    ];
    for (const [close, want] of cases) {
      const { endpoint, disconnects } = setup();
      const s = new FakeSocket();
      endpoint.attach(s, 0);
      s.peerClose(close);
      expect(disconnects[0]!.err?.code, String(close)).toBe(want);
    }
  });

  it("forgets a socket's fatal frame when it moves onto another socket", () => {
    const { endpoint, disconnects } = setup();
    const s1 = new FakeSocket();
    endpoint.attach(s1, 0);
    s1.peerControl({ type: 'fatal', code: 'SESSION_LOCKED', message: 'locked' });
    const s2 = new FakeSocket();
    endpoint.attach(s2, 0);
    s2.peerClose(1006);
    expect(disconnects).toEqual([{ err: undefined, code: 1006, reason: '' }]);
  });
});

describe('TunnelEndpoint: garbage control frames', () => {
  it('ignores control frames that are not a well-formed ack or a fatal with a known code', () => {
    const { endpoint, messages, disconnects } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.send(Buffer.from('A'));
    endpoint.send(Buffer.from('B'));
    const before = endpoint.pendingBytes;
    for (const garbage of [
      'not json',
      '',
      'null',
      '[]',
      '"ack"',
      '{"type":"ack"}',
      { type: 'ack', received: -1 },
      { type: 'ack', received: '2' },
      { type: 'ack', received: 1.5 },
      { type: 'ack', received: 1e300 },
      { type: 'ack', received: null },
      { type: 'fatal', code: '__proto__', message: 'x' },
      { type: 'fatal', code: 'constructor', message: 'x' },
      { type: 'fatal', code: 'toString', message: 'x' },
      { type: 'fatal', code: 'NO_SUCH_CODE', message: 'x' },
      { type: 'fatal', code: 'ACCESS_DENIED' },
      { type: 'fatal', code: 'ACCESS_DENIED', message: { no: 1 } },
      { type: 'hello', session: 'other', received: 2 },
      { type: 'something-new' },
    ])
      s.peerControl(garbage);
    expect(endpoint.pendingBytes).toBe(before);
    expect(messages).toEqual([]);
    expect(endpoint.receivedCount).toBe(0);
    expect(s.controlSent).toEqual([]);
    s.peerClose(1006);
    expect(disconnects).toEqual([{ err: undefined, code: 1006, reason: '' }]);
  });
});

describe('TunnelEndpoint: reset and destroy', () => {
  it('reset returns the unacknowledged frames, marking those that went out', () => {
    const { endpoint } = setup();
    endpoint.send(Buffer.from('never-sent'));
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.send(Buffer.from('sent'));
    s.peerClose(1006);
    endpoint.send(Buffer.from('queued'));
    expect(endpoint.reset().map((f) => [f.data.toString(), f.transmitted])).toEqual([
      ['never-sent', true],
      ['sent', true],
      ['queued', false],
    ]);
    expect(endpoint.sentCount).toBe(0);
    expect(endpoint.pendingBytes).toBe(0);
  });

  it('destroy cuts the socket at once, with no event, and refuses later sockets', () => {
    const { endpoint, disconnects } = setup();
    const s = new FakeSocket();
    endpoint.attach(s, 0);
    endpoint.destroy(new AccessError('INTERNAL', 'boom'));
    expect(s.log).toEqual(['terminate']);
    expect(disconnects).toEqual([]);
    const s2 = new FakeSocket();
    endpoint.attach(s2, 0);
    expect(s2.log).toEqual(['terminate']);
    expect(endpoint.isClosed).toBe(true);
  });
});
