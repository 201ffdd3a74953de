/**
 * A bounded, seeded fuzz test of the client-message inspector
 * (src/rbac/inspect.ts): mutated MCP messages and generated JSON, a
 * few thousand cases. Whatever the bytes, the inspector must answer (never
 * throw), refuse with a JSON-RPC code, and whatever it lets through must be
 * what any JSON parser reads: one JSON-RPC object whose method and tool name
 * are exactly the ones the inspector reported.
 */
import { describe, expect, it } from 'vitest';
import { inspectClientMessage } from '../../src/rbac/inspect.js';
import { Prng } from '../helpers/prng.js';

const SEED = 0x5eed10;
const CASES = 4000;

const SEEDS = [
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/a"}}}',
  '{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{"cursor":"c"}}',
  '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}',
  '{"jsonrpc":"2.0","id":2,"result":{"roots":[{"uri":"file:///tmp"}]}}',
  '{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}',
  '{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}',
];
const PIECES = [
  '"',
  '\\',
  '\\u0000',
  '\\u0074',
  '\\ud800',
  '\\"',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '"name":"write_file",',
  '"Name":"x",',
  '"method":"tools/call",',
  '"id":null,',
  '"id":1.5,',
  '"params":[],',
  '\u0000',
  '\u001b',
  '\r',
  '\n',
  '\r\n',
  '\u2028',
  '\u200b',
  '\u202e',
  '\ufeff',
  'ı',
  'İ',
  'ſ',
  'K',
  '\ud83d\ude00',
  '1e999',
  '-0',
  '99999999999999999999',
  'true',
  'null',
  ' ',
  '\t',
  '"__proto__":{},',
  '"constructor":1,',
];
const CONTROL_OR_FORMAT = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]/;

function mutate(rng: Prng, text: string): Buffer {
  let s = text;
  const edits = 1 + rng.int(4);
  for (let i = 0; i < edits; i++) {
    const at = rng.int(s.length + 1);
    switch (rng.int(5)) {
      case 0:
        s = s.slice(0, at) + rng.pick(PIECES) + s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + 1 + rng.int(4));
        break;
      case 2:
        s = s.slice(0, at) + s.slice(at, at + rng.int(20)) + s.slice(at);
        break; // duplicate a run (keys!)
      case 3:
        s = s.slice(0, at) + s.charAt(at).toUpperCase() + s.slice(at + 1);
        break;
      default:
        s = s.slice(0, at);
        break; // truncate
    }
  }
  const bytes = Buffer.from(s, 'utf8');
  // A raw byte: invalid UTF-8, overlongs.
  if (rng.chance(0.1) && bytes.length > 0) bytes[rng.int(bytes.length)] = rng.int(256);
  return bytes;
}

function generate(rng: Prng, depth: number): unknown {
  if (depth > 3 || rng.chance(0.3))
    return rng.pick<unknown>([null, true, 0, -1, 1.5, 'read_file', 'wr\u0131te_file', '', 'tools/call', {}, []]);
  if (rng.chance(0.3)) return Array.from({ length: rng.int(3) }, () => generate(rng, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(5); i > 0; i--)
    o[rng.pick(['jsonrpc', 'id', 'method', 'params', 'name', 'arguments', 'result', 'error', 'code', 'message', 'x'])] =
      generate(rng, depth + 1);
  if (rng.chance(0.6)) o.jsonrpc = '2.0';
  return o;
}

describe('fuzz: the client-message inspector', () => {
  it(`${CASES} seeded cases: always an answer, and what passes is what any parser reads`, () => {
    const rng = new Prng(SEED);
    const counts = { request: 0, notification: 0, response: 0, invalid: 0 };
    for (let i = 0; i < CASES; i++) {
      const bytes = rng.chance(0.75)
        ? mutate(rng, rng.pick(SEEDS))
        : Buffer.from(JSON.stringify(generate(rng, 0)) ?? 'null');
      let m: ReturnType<typeof inspectClientMessage>;
      try {
        m = inspectClientMessage(bytes);
      } catch (err) {
        throw new Error(`case ${i} threw ${(err as Error).message} on ${JSON.stringify(bytes.toString('latin1'))}`, {
          cause: err,
        });
      }
      counts[m.kind]++;
      const shown = `case ${i}: ${JSON.stringify(bytes.toString('utf8'))} → ${JSON.stringify(m)}`;
      if (m.kind === 'invalid') {
        expect([-32700, -32600, -32602], shown).toContain(m.code);
        expect(typeof m.reason, shown).toBe('string');
        continue;
      }
      // Passed: a single JSON-RPC 2.0 object, read the same way by JSON.parse.
      const parsed = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), shown).toBe(true);
      expect(parsed.jsonrpc, shown).toBe('2.0');
      if (m.kind === 'request' || m.kind === 'notification') {
        expect(parsed.method, shown).toBe(m.method);
        expect(CONTROL_OR_FORMAT.test(m.method), shown).toBe(false);
      }
      if (m.kind === 'request') {
        expect(parsed.id, shown).toBe(m.id);
        if (m.method === 'tools/call') {
          expect(m.toolName, shown).toBe((parsed.params as { name: unknown }).name);
          expect(CONTROL_OR_FORMAT.test(m.toolName!), shown).toBe(false);
        }
      }
    }
    // The corpus reaches every verdict, not only refusals.
    expect(counts.invalid).toBeGreaterThan(100);
    expect(counts.request + counts.notification + counts.response).toBeGreaterThan(100);
  });
});
