/** The line framer, byte by byte. */
import { describe, expect, it } from 'vitest';
import { LineFramer, type FramedLine } from '../../src/tunnel/line-framer.js';

function frame(chunks: Buffer[], max = 1024): FramedLine[] {
  const f = new LineFramer(max);
  const out: FramedLine[] = [];
  for (const c of chunks) f.push(c, (l) => out.push(l));
  f.end((l) => out.push(l));
  return out;
}
const texts = (lines: FramedLine[]) =>
  lines.map((l) => (l.kind === 'line' ? l.bytes.toString('utf8') : `<oversize ${l.size} ${JSON.stringify(l.id)}>`));

describe('LineFramer', () => {
  it('splits lines, strips CRLF, skips blank lines, keeps a final unterminated line', () => {
    expect(texts(frame([Buffer.from('a\r\n\n  \r\nb\nc')]))).toEqual(['a', 'b', 'c']);
  });

  it('reassembles a multi-byte character split across chunks', () => {
    const bytes = Buffer.from('{"t":"€😀é"}\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(texts(frame([bytes.subarray(0, cut), bytes.subarray(cut)]))).toEqual(['{"t":"€😀é"}']);
    }
  });

  it('reports an over-size line with its id and keeps going', () => {
    const big = `{"jsonrpc":"2.0","method":"x","params":{"id":99,"s":"${'y'.repeat(3000)}"},"id":"abc"}`;
    expect(texts(frame([Buffer.from(`${big}\n{"ok":1}\n`)]))).toEqual([`<oversize ${big.length} "abc">`, '{"ok":1}']);
  });

  it('frames the same lines however the input is cut (whole lines in a chunk are views of it)', () => {
    const max = 16;
    const input = Buffer.from(`a\r\n${'x'.repeat(16)}\n${'y'.repeat(17)}\n\n{"id":1}\r\n \nb\nc`);
    const want = ['a', 'x'.repeat(16), '<oversize 17 undefined>', '{"id":1}', 'b', 'c'];
    for (let cut = 0; cut <= input.length; cut++) {
      for (let cut2 = cut; cut2 <= input.length; cut2 += 3) {
        const parts = [input.subarray(0, cut), input.subarray(cut, cut2), input.subarray(cut2)];
        expect(texts(frame(parts, max)), `${cut}/${cut2}`).toEqual(want);
      }
    }
    const chunk = Buffer.from('{"id":1}\n{"id":2}\n');
    const lines = frame([chunk]);
    expect(lines[1]!.kind === 'line' && lines[1]!.bytes.buffer).toBe(chunk.buffer);
  });

  it('scans each byte once: a 32 MiB line in 64 KiB chunks is framed in linear time', () => {
    // Not a timing assertion: counts how many bytes the framer holds and copies.
    const f = new LineFramer(64 * 1024 * 1024);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let maxHeld = 0;
    for (let i = 0; i < 512; i++) {
      f.push(chunk, () => {});
      maxHeld = Math.max(maxHeld, f.buffered);
    }
    const out: FramedLine[] = [];
    f.push(Buffer.from('\n'), (l) => out.push(l));
    expect(maxHeld).toBe(32 * 1024 * 1024);
    expect(out[0]!.kind === 'line' && out[0]!.bytes.length).toBe(32 * 1024 * 1024);
  });
});
