import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { holdWrites } from '../../src/tunnel/write-batch.js';
import { writeLine } from '../../src/tunnel/write-line.js';
import { until } from '../helpers/until.js';

/** A stream that records each system-call-sized piece it is handed: one entry per _write or _writev. */
class Recorder extends Writable {
  readonly calls: string[][] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.calls.push([chunk.toString()]);
    cb();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this.calls.push(chunks.map((c) => c.chunk.toString()));
    cb();
  }
}

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('holdWrites / writeLine', () => {
  it('sends the messages written in one turn in one writev, in order', async () => {
    const s = new Recorder();
    for (let i = 0; i < 5; i++) writeLine(s, Buffer.from(`m${i}`));
    expect(s.calls).toEqual([]); // held until the turn's work is done
    await turn();
    expect(s.calls).toEqual([['m0\n', 'm1\n', 'm2\n', 'm3\n', 'm4\n']]);
  });

  it('includes what promise jobs of the same turn write', async () => {
    const s = new Recorder();
    writeLine(s, Buffer.from('a'));
    await Promise.resolve();
    writeLine(s, Buffer.from('b'));
    await turn();
    expect(s.calls).toEqual([['a\n', 'b\n']]);
  });

  it('lets a lone message go at the end of its turn, without waiting for a timer', async () => {
    const s = new Recorder();
    writeLine(s, Buffer.from('only'));
    await new Promise<void>((r) => process.nextTick(r));
    // The release was queued before this tick, so it has run.
    expect(s.calls).toEqual([['only\n']]);
  });

  it('holds each stream once per turn and releases every stream', async () => {
    const a = new Recorder();
    const b = new Recorder();
    holdWrites(a);
    holdWrites(a);
    a.write('x');
    b.write('y'); // not held: goes at once
    expect(b.calls).toEqual([['y']]);
    holdWrites(b);
    b.write('z');
    await turn();
    expect(a.calls).toEqual([['x']]);
    expect(b.calls).toEqual([['y'], ['z']]);
    expect(a.writableCorked).toBe(0);
    expect(b.writableCorked).toBe(0);
  });

  it('keeps a large message whole: the message, then its newline, one writev', async () => {
    const s = new Recorder();
    const big = Buffer.alloc(100_000, 0x61);
    writeLine(s, big);
    await turn();
    expect(s.calls).toHaveLength(1);
    expect(s.calls[0]!.join('')).toBe(`${big.toString()}\n`);
  });

  it('reports a full buffer while held, so the caller still pauses', () => {
    const s = new Recorder({ highWaterMark: 8 });
    expect(writeLine(s, Buffer.from('1234'))).toBe(true);
    expect(writeLine(s, Buffer.from('5678'))).toBe(false);
  });
});

describe('TunnelEndpoint over a real WebSocket', () => {
  it('sends the frames of one turn in one write of the socket underneath', async () => {
    const { WebSocketServer, WebSocket } = await import('ws');
    const { TunnelEndpoint } = await import('../../src/tunnel/endpoint.js');
    const { underlyingSocket } = await import('../../src/tunnel/socket.js');
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const got: string[] = [];
    const reads: number[] = [];
    wss.on('connection', (ws) => {
      (ws as unknown as { _socket: NodeJS.EventEmitter })._socket.on('data', (d: Buffer) => reads.push(d.length));
      ws.on('message', (d: Buffer) => got.push(d.toString()));
    });
    const port = (wss.address() as { port: number }).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((r) => ws.once('open', () => r()));
    const raw = underlyingSocket(ws)!;
    expect(raw).toBeDefined();
    const end = new TunnelEndpoint({ highWaterBytes: 1 << 20, keepaliveMs: 0 });
    end.attach(ws, 0);
    try {
      for (let i = 0; i < 20; i++) end.send(Buffer.from(`frame ${i}`));
      expect((raw as unknown as Writable).writableCorked).toBe(1);
      await until(() => got.length === 20, 'the 20 frames');
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `frame ${i}`));
      expect((raw as unknown as Writable).writableCorked).toBe(0);
      expect(reads).toHaveLength(1); // one write on loopback: one read
    } finally {
      end.destroy();
      wss.close();
    }
  });
});
