/**
 * The bridge's tunnel handling against fake sockets (the dialer is injected;
 * stdin, stdout and the Bridge itself are real): what it does to each socket
 * of a session across a reconnect.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import type { ConnectParams, Opened } from '../../src/bridge/connection.js';
import type { Identity } from '../../src/identity/load.js';
import { FrameHold } from '../../src/tunnel/frame-hold.js';
import { Logger } from '../../src/util/log.js';
import { FakeSocket } from '../helpers/fake-socket.js';

const until = (check: () => void) => vi.waitFor(check, { timeout: 20_000, interval: 5 });

/** A client that reads nothing until `startReading()`: until then every write reports a full buffer. */
class StuckStdout extends Writable {
  readonly lines: string[] = [];
  private waiting: (() => void) | undefined;
  private reading = false;
  constructor() {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(chunk.toString());
    if (this.reading) cb();
    else this.waiting = cb;
  }
  /** The client reads what was written and all that follows. */
  startReading(): void {
    this.reading = true;
    const cb = this.waiting;
    this.waiting = undefined;
    cb?.();
  }
}

function bridgeWithFakeSockets() {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-test-'));
  const identity = {
    path: join(dir, 'identity'),
    keyPem: '',
    certPem: '',
    caPems: [],
    serial: '01',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 3_600_000),
  } as unknown as Identity;
  const sockets: FakeSocket[] = [];
  const dials: ConnectParams[] = [];
  const input = new PassThrough();
  const output = new StuckStdout();
  const bridge = new Bridge({
    server: 'files',
    identityPath: identity.path,
    proxy: { host: '127.0.0.1', port: 1 },
    extraCa: [],
    maxMessageSize: 1024 * 1024,
    keepaliveMs: 60_000,
    connectRetries: 0,
    input,
    output,
    log: new Logger({ sink: () => {} }),
    loadIdentity: () => Promise.resolve(identity),
    dial: (params): Promise<Opened> => {
      dials.push(params);
      const socket = new FakeSocket();
      sockets.push(socket);
      const hello = {
        type: 'hello' as const,
        session: 'session-1',
        resumeToken: 'token-1',
        server: 'files',
        resumed: params.resume !== undefined,
        received: 0,
        graceMs: 120_000,
      };
      return Promise.resolve({ socket, hello, held: new FrameHold(socket) });
    },
  });
  return { bridge, sockets, dials, input, output };
}

const note = (n: number) => JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { n } });

describe('Bridge: stdout backpressure across a reconnect', () => {
  it('pauses the new socket at once while stdout is still blocked, and resumes it when stdout drains', async () => {
    const { bridge, sockets, dials, input, output } = bridgeWithFakeSockets();
    const finished = bridge.run();
    await until(() => expect(sockets).toHaveLength(1));
    const s1 = sockets[0]!;
    s1.peerData(note(1)); // the client's buffer is now full
    expect(s1.isPaused).toBe(true);
    s1.peerData(note(2)); // in flight before the pause took effect: kept in stdout's buffer

    s1.peerClose(1006); // the tunnel drops while the client still reads nothing
    await until(() => expect(sockets).toHaveLength(2));
    const s2 = sockets[1]!;
    expect(dials[1]!.resume).toEqual({ token: 'token-1', received: 2 });
    expect(s2.isPaused).toBe(true);
    expect(s2.log[0]).toBe('pause'); // before anything else was done with it

    output.startReading(); // the client catches up: 'drain'
    await until(() => expect(s2.isPaused).toBe(false));
    s2.peerData(note(3));
    await until(() =>
      expect(output.lines.map((l) => (JSON.parse(l) as { params: { n: number } }).params.n)).toEqual([1, 2, 3]),
    );

    input.end();
    await until(() => expect(s2.log).toContain('close 1000'));
    s2.peerClose(1000);
    expect(await finished).toBe(0);
    // The first socket was let go reading again (it reads its close frame), and nothing more went to it.
    expect(s1.log).toEqual(['pause', 'resume']);
  });
});

describe('Bridge: what reaches stdout', () => {
  it('writes every message from the proxy as one line, raw CR and LF turned into spaces', async () => {
    const { bridge, sockets, input, output } = bridgeWithFakeSockets();
    output.startReading();
    const finished = bridge.run();
    await until(() => expect(sockets).toHaveLength(1));
    const s = sockets[0]!;
    const big = `{"jsonrpc":"2.0",\n"method":"notifications/message","params":{"s":"${'x'.repeat(70_000)}"}}`;
    const frames = [
      '{"jsonrpc":"2.0",\r\n"method":"notifications/message",\n"params":{"n":1}}',
      'not json\r\nat all',
      note(3),
      big,
      '{"jsonrpc":"2.0","method":"notifications/message","params":{"s":"a\\nb"}}',
    ];
    for (const f of frames) s.peerData(f);
    const want = frames.map((f) => `${f.replace(/[\r\n]/g, ' ')}\n`).join('');
    await until(() => expect(output.lines.join('').length).toBe(want.length));
    expect(output.lines.join('')).toBe(want);
    input.end();
    await until(() => expect(s.log).toContain('close 1000'));
    s.peerClose(1000);
    expect(await finished).toBe(0);
  });
});
