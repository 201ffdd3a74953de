/** The top-level scanner agrees with JSON.parse, however the input is split. */
import { describe, expect, it } from 'vitest';
import { TopLevelScanner, scanTopLevel } from '../../src/tunnel/top-level-scanner.js';

function pieces(text: string, step: number): TopLevelScanner {
  const s = new TopLevelScanner();
  const b = Buffer.from(text);
  for (let i = 0; i < b.length; i += step) s.push(b.subarray(i, i + step));
  s.end();
  return s;
}

const SAMPLES = [
  '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{"id":99,"method":"nested"}}}',
  '{"result":{"content":[{"type":"text","text":"a \\"quoted\\" id: 1, method: x}"}]},"jsonrpc":"2.0","id":"req-é-😀"}',
  '{ "jsonrpc" : "2.0" , "id" : -12.5e3 , "error" : { "code" : -32602 , "message" : "no" } }',
  '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}',
  '{"id":null,"ok":true,"n":false,"z":null,"arr":[1,[2,{"id":3}]],"s":"\\\\"}',
  '{}',
  '{"method":"a\\u005fb","id":"\\n"}',
];

describe('TopLevelScanner', () => {
  it('finds the keys, id and method JSON.parse finds, for every split of the input', () => {
    for (const text of SAMPLES) {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      for (const step of [1, 2, 3, 7, 64, 100_000]) {
        const s = pieces(text, step);
        expect(s.ok, `${text} /${step}`).toBe(true);
        expect([...s.keys].sort(), text).toEqual(Object.keys(parsed).sort());
        expect(s.id, text).toEqual(typeof parsed.id === 'object' && parsed.id !== null ? undefined : parsed.id);
        expect(s.method, text).toEqual(typeof parsed.method === 'string' ? parsed.method : undefined);
      }
    }
  });

  it('says when the input is not one complete object', () => {
    for (const bad of ['[{"id":1}]', '{"id":1', '{"id":1} {"id":2}', 'not json', '{"id" 1}', '42']) {
      expect(scanTopLevel(Buffer.from(bad)).ok, bad).toBe(false);
    }
  });

  it('leaves out values too long to keep, without failing', () => {
    const s = scanTopLevel(
      Buffer.from(JSON.stringify({ id: 'x'.repeat(5000), method: 'm', big: 'y'.repeat(100_000) })),
    );
    expect(s.ok).toBe(true);
    expect(s.id).toBeUndefined();
    expect(s.method).toBe('m');
  });
});
