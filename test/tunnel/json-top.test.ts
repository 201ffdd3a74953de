/**
 * classifyBytes (json-top.ts) reads a message from its bytes; whenever it
 * answers, its answer is `classify(JSON.parse(text))`'s, and it never answers
 * for anything `JSON.parse` refuses (the bridge then answers -32700 as before).
 */
import { describe, expect, it } from 'vitest';
import { readJsonTop } from '../../src/tunnel/json-top.js';
import { classify, classifyBytes, classifyMessage, type Classified } from '../../src/tunnel/jsonrpc.js';
import { Prng } from '../helpers/prng.js';

/** What a full parse says: the classification, or undefined when it is not JSON. */
function byParse(b: Buffer): Classified | undefined {
  try {
    return classify(JSON.parse(b.toString('utf8')));
  } catch {
    return undefined;
  }
}

/** The invariant: an answer is the full parse's answer (and none for what is not JSON). */
function agrees(b: Buffer): Classified | undefined {
  const quick = classifyBytes(b);
  if (quick !== undefined) expect(quick, b.toString('latin1')).toEqual(byParse(b));
  return quick;
}

const SAMPLES = [
  '{"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}},"jsonrpc":"2.0","id":123}',
  '{"result":{"content":[{"type":"text","text":"Echo: hello"}]},"jsonrpc":"2.0","id":123}',
  '{"jsonrpc":"2.0","id":"req-é-😀","method":"initialize","params":{"protocolVersion":"2026-07-28"}}',
  '{ "jsonrpc" : "2.0" , "id" : -12.5e3 , "error" : { "code" : -32602 , "message" : "no" } }',
  '{"jsonrpc":"2.0","method":"notifications/initialized"}',
  '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
  '{"jsonrpc":"2.0","id":-0,"result":{}}',
  '{"jsonrpc":"2.0","id":1e2,"result":[]}',
  '{"jsonrpc":"2.0","id":12345678901234567890,"result":true}',
  '{"jsonrpc":"2.0","id":0.1,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1E+2,"method":"ping"}',
  '{"id":1,"id":"two","method":"m"}',
  '{"method":"a","method":5,"id":1}',
  '{"method":5,"id":1,"result":null}',
  '{"id":true,"method":"m"}',
  '{"id":{"x":1},"result":1}',
  '{"id":[1],"error":{}}',
  '{"result":1}',
  '{"id":1}',
  '{"__proto__":{"id":1,"method":"m"},"x":1}',
  '{}',
  ' \t\r {"id":7,"method":"m","params":{"s":"a\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00"}} \r\t ',
  '{"id":7,"method":"m","params":[1,-1,0,0.5,-0.5e-7,1E9,true,false,null,"",[],{},[[[]]],{"a":{"b":{}}}]}',
  '{"idx":1,"methods":"m","id ":2,"result ":3,"error":{"id":4}}',
  '{"id":1,"result":{"method":"inner","id":99}}',
];

describe('classifyBytes', () => {
  it('answers as JSON.parse does for JSON-RPC messages of every shape', () => {
    for (const text of SAMPLES) {
      const b = Buffer.from(text);
      expect(agrees(b), text).toBeDefined();
    }
  });

  it('leaves escaped keys, ids and methods, and very deep values, to the full parse', () => {
    const deep = `{"id":1,"method":"m","params":${'['.repeat(300)}${']'.repeat(300)}}`;
    for (const text of [
      '{"\\u0069d":1,"method":"m"}',
      '{"id":"a\\"b","method":"m"}',
      '{"id":1,"method":"tools\\/call"}',
      '{"id":1,"meth\\u006fd":"m"}',
      '[{"id":1,"method":"m"}]',
      '42',
      '"s"',
      'null',
      deep,
    ]) {
      expect(byParse(Buffer.from(text)), text).toBeDefined();
      expect(classifyBytes(Buffer.from(text)), text).toBeUndefined();
      expect(classifyMessage(Buffer.from(text)), text).toEqual(byParse(Buffer.from(text)));
    }
    // 255 levels are still read from the bytes.
    const nested = `{"id":1,"method":"m","params":${'['.repeat(255)}${']'.repeat(255)}}`;
    expect(agrees(Buffer.from(nested))).toEqual({ kind: 'request', id: 1, method: 'm' });
  });

  it('never answers for what JSON.parse refuses', () => {
    const bad = [
      '',
      ' ',
      'not json',
      '[{"id":1,"method":"m"}',
      '42 43',
      '"s',
      'nul',
      '{"id":1,"method":"m"',
      '{"id":1,"method":"m"}}',
      '{"id":1,"method":"m"} {"id":2}',
      '{"id":1,"method":"m",}',
      '{"id":1,,"method":"m"}',
      '{"id" 1}',
      "{'id':1}",
      '{id:1}',
      '{"id":01,"method":"m"}',
      '{"id":1.,"method":"m"}',
      '{"id":.5,"method":"m"}',
      '{"id":-,"method":"m"}',
      '{"id":1e,"method":"m"}',
      '{"id":+1,"method":"m"}',
      '{"id":NaN,"method":"m"}',
      '{"id":Infinity,"method":"m"}',
      '{"id":tru,"method":"m"}',
      '{"id":nulll,"method":"m"}',
      '{"id":1,"method":"a\tb"}',
      '{"id":1,"method":"m","p":"\\x"}',
      '{"id":1,"method":"m","p":"\\u12G4"}',
      '{"id":1,"method":"m","p":"\\u12"}',
      '{"id":1,"method":"m","p":[1,]}',
      '{"id":1,"method":"m","p":{"a"}}',
      '{"id":1,"method":"m","p":{"a":1,}}',
      '{"id":1,"method":"m","p":[1 2]}',
      '\uFEFF{"id":1,"method":"m"}',
      '{"id":1,"method":"m"}\u00a0',
      '{"id":1,"method":"m","p":"\\',
    ];
    for (const text of bad) {
      expect(byParse(Buffer.from(text)), text).toBeUndefined();
      expect(classifyBytes(Buffer.from(text)), text).toBeUndefined();
    }
  });

  it('reads bytes that are not UTF-8, inside strings, as the decoded text reads', () => {
    const b = Buffer.concat([
      Buffer.from('{"id":"x'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('","method":"m'),
      Buffer.from([0xe2, 0x82]),
      Buffer.from('"}'),
    ]);
    expect(agrees(b)).toEqual({ kind: 'request', id: 'x\uFFFD\uFFFD', method: 'm\uFFFD' });
    // Outside a string they are not JSON.
    expect(classifyBytes(Buffer.concat([Buffer.from('{"id":1,"method":"m"}'), Buffer.from([0xc2, 0xa0])]))).toBe(
      undefined,
    );
  });

  it('reuses the last method only for the same bytes', () => {
    const seq = ['tools/call', 'tools/call', 'tools/cale', 'tools/call', 'ping', 'é', 'é', 'tools/list'];
    for (const [i, m] of seq.entries()) {
      const b = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: i, method: m }));
      expect(agrees(b)).toEqual({ kind: 'request', id: i, method: m });
    }
  });

  it('agrees with JSON.parse on random messages and on random damage to them', () => {
    const rng = new Prng(16);
    const word = () => rng.pick(['id', 'method', 'result', 'error', 'params', 'jsonrpc', 'x', 'é', 'a"b', '']);
    const scalar = (): unknown =>
      rng.pick([
        () => rng.int(1000),
        () => -rng.int(1000) / 8,
        () => rng.next() * 1e21,
        () => word(),
        () => 'tools/call',
        () => true,
        () => false,
        () => null,
        () => '\u2028\n\t"\\😀',
      ])();
    const value = (depth: number): unknown => {
      if (depth > 3 || rng.chance(0.5)) return scalar();
      if (rng.chance(0.5)) return Array.from({ length: rng.int(4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: rng.int(4) }, () => [word(), value(depth + 1)]));
    };
    const spaced = (json: string) => json.replace(/[,:{}[\]]/g, (c) => (rng.chance(0.2) ? ` ${c}\r\n\t` : c));
    let answered = 0;
    for (let n = 0; n < 4000; n++) {
      const msg: Record<string, unknown> = { jsonrpc: '2.0' };
      for (let k = rng.int(5); k > 0; k--) msg[word()] = value(1);
      if (rng.chance(0.5)) msg.method = rng.pick(['tools/call', 'initialize', 'notifications/initialized', 'é']);
      if (rng.chance(0.7)) msg.id = scalar();
      let text = JSON.stringify(msg);
      if (rng.chance(0.3)) text = spaced(text);
      if (rng.chance(0.1)) text = text.replace('"id"', '"id":0,"id"');
      const b = Buffer.from(text);
      if (agrees(b) !== undefined) answered++;
      // Damage: a byte changed, dropped or added, or the message cut short.
      for (let d = 0; d < 5; d++) {
        const bad = Buffer.from(b);
        const at = rng.int(bad.length);
        const kind = rng.int(4);
        const byte = rng.pick([
          0x22, 0x5c, 0x2c, 0x3a, 0x7b, 0x7d, 0x5b, 0x5d, 0x30, 0x2d, 0x65, 0x0a, 0x00, 0x80, 0x20,
        ]);
        let damaged: Buffer;
        if (kind === 0) {
          bad[at] = byte;
          damaged = bad;
        } else if (kind === 1) damaged = Buffer.concat([bad.subarray(0, at), bad.subarray(at + 1)]);
        else if (kind === 2) damaged = Buffer.concat([bad.subarray(0, at), Buffer.from([byte]), bad.subarray(at)]);
        else damaged = bad.subarray(0, at);
        agrees(damaged);
      }
    }
    // Most well-formed messages are read from their bytes (the rest have an escaped id: 'a"b').
    expect(answered).toBeGreaterThan(2500);
  });

  it('says which top-level members a message has, and whether it has a raw line break', () => {
    expect(readJsonTop(Buffer.from('{"id":null,"result":1,"error":2,"method":3}'))).toEqual({
      hasId: true,
      id: null,
      method: undefined,
      hasResult: true,
      hasError: true,
      lineBreaks: false,
    });
    expect(readJsonTop(Buffer.from('{"id":1,"result":"a\\nb\\r"}'))?.lineBreaks).toBe(false);
    for (const text of ['\r{"id":1,"result":1}', '{"id":1,"result":[1,\n2]}', '{"id":1,"result":1}\r\n', '{\n}'])
      expect(readJsonTop(Buffer.from(text))?.lineBreaks, JSON.stringify(text)).toBe(true);
    expect(readJsonTop(Buffer.from('[]'))).toBeUndefined();
  });
});
