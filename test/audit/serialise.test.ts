/**
 * The event serialiser writes an event's JSON directly (src/audit/prepare.ts).
 * Its text must be byte for byte what the writer stored before: the fields
 * object built the old way (below, `reference`), then `JSON.stringify`. The
 * two are compared over many generated events: long strings cut at a
 * surrogate pair, non-ASCII, lone surrogates, nested and odd objects, keys
 * such as `__proto__`, array indices and long ones, and every arguments policy.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACT_KEYS, eventCode, normaliseKey, redact, type ArgsPolicy } from '../../src/audit/events.js';
import {
  boundString,
  EventPreparer,
  MAX_FIELD_CHARS,
  MAX_REASON_CHARS,
  type AuditEventInput,
} from '../../src/audit/prepare.js';

// ---- the fields object as src/audit/prepare.ts built it before the direct serialiser ----
function boundValue(v: unknown, max: number, depth: number): unknown {
  if (typeof v === 'string') return boundString(v, max);
  if (typeof v !== 'object' || v === null || depth > 4) return v;
  if (Array.isArray(v)) return v.map((x) => boundValue(x, max, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>))
    out[boundString(k, MAX_FIELD_CHARS)] = boundValue(x, max, depth + 1);
  return out;
}
const FIELD_ORDER = [
  'sessionId',
  'user',
  'roles',
  'server',
  'client',
  'remoteAddr',
  'direction',
  'method',
  'rpcId',
  'tool',
  'args',
  'outcome',
  'reason',
  'latencyMs',
];
const RESERVED = new Set(['time', 'id', 'type', 'code', 'prev', 'hash']);
/** What the arguments recorder stored: the redacted arguments, or a digest (over the limit, or by policy). */
function recordArgs(args: unknown, policy: ArgsPolicy, maxArgs: number): unknown {
  if (args === undefined || policy === 'none') return undefined;
  const redacted = redact(args, new Set([...DEFAULT_REDACT_KEYS, 'x-custom'].map(normaliseKey)), 0);
  const json = JSON.stringify(redacted);
  const digest = { sha256: createHash('sha256').update(json).digest('hex'), bytes: Buffer.byteLength(json) };
  if (policy === 'full') return Buffer.byteLength(json) <= maxArgs ? redacted : { truncated: true, ...digest };
  return digest;
}
function reference(event: AuditEventInput, time: string, id: string, policy: ArgsPolicy, maxArgs: number): string {
  const out: Record<string, unknown> = { time, id, type: event.type };
  const code = event.code ?? eventCode(event.type, event.outcome);
  if (code !== undefined) out.code = code;
  const put = (k: string, v: unknown) => {
    if (v === undefined) return;
    if (k === 'args') {
      const recorded = recordArgs(v, policy, maxArgs);
      if (recorded !== undefined) out.args = recorded;
      return;
    }
    out[k] = boundValue(v, k === 'reason' ? MAX_REASON_CHARS : MAX_FIELD_CHARS, 0);
  };
  for (const k of FIELD_ORDER) put(k, event[k]);
  for (const k of Object.keys(event))
    if (!RESERVED.has(k) && !FIELD_ORDER.includes(k)) put(boundString(k, MAX_FIELD_CHARS), event[k]);
  return JSON.stringify(out);
}

// ---- generated events (a seeded generator: the same cases on every run) ----
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generator(seed: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const pieces = ['a', 'é', '日本', '😀', '\ud800', '\udc00', '"', '\\', '\n', '\u0000', '\u2028', ' ', 'Z', '\u007f'];
  const str = (): string => {
    const kind = r();
    const len =
      kind < 0.6 ? Math.floor(r() * 20) : kind < 0.8 ? pick([255, 256, 257, 2047, 2048, 2049]) : Math.floor(r() * 5000);
    let s = '';
    while (s.length < len) s += pick(pieces);
    // Put a surrogate pair across the cut now and then.
    if (r() < 0.2 && s.length > 257) s = `${s.slice(0, 255)}😀${s.slice(257)}`;
    if (r() < 0.2 && s.length > 2049) s = `${s.slice(0, 2047)}😀${s.slice(2049)}`;
    return s;
  };
  const key = (): string =>
    pick([
      '__proto__',
      '0',
      '7',
      '10',
      '01',
      '-1',
      '4294967294',
      '4294967295',
      'toJSON',
      'constructor',
      'agent',
      'phase',
      'requestEventId',
      'password',
      'api-key',
      'x_custom',
      '"quoted"',
      'ключ',
      'k'.repeat(300),
      'time',
      'id',
      'prev',
      'hash',
      'code',
      'type',
      '',
      ...FIELD_ORDER,
    ]);
  const value = (depth: number): unknown => {
    const k = r();
    if (depth > 6 || k < 0.3) return str();
    if (k < 0.4) return pick([0, -0, 1.5, -3, 1e21, 1e-7, NaN, Infinity, -Infinity, 2 ** 53, 0.1 + 0.2]);
    if (k < 0.45) return pick([true, false, null, undefined]);
    if (k < 0.6) return Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1));
    if (k < 0.62) return new Date(0);
    const o: Record<string, unknown> = {};
    const n = Math.floor(r() * 5);
    for (let i = 0; i < n; i++)
      Object.defineProperty(o, key(), {
        value: value(depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return r() < 0.2 ? Object.assign(Object.create(null) as object, o) : o;
  };
  const event = (): AuditEventInput => {
    const e: Record<string, unknown> = {};
    const set = (k: string, v: unknown) =>
      Object.defineProperty(e, k, { value: v, enumerable: true, writable: true, configurable: true });
    if (r() < 0.5) {
      // The gate's shape.
      set('sessionId', 'c0ffee00-1111-4222-8333-444455556666');
      set('user', r() < 0.9 ? 'alice' : str());
      set('roles', r() < 0.8 ? ['dev', 'mcp-user'] : value(1));
      set('server', 'everything');
      set('remoteAddr', '127.0.0.1');
      set('client', r() < 0.7 ? { name: str(), version: '1.0.0' } : value(1));
      set('direction', 'client_to_server');
      set('type', pick(['mcp.session.request', 'mcp.session.start', 'custom', 'mcp.session.end']));
      set('method', 'tools/call');
      set('rpcId', pick([1, 'a', null, 2 ** 40, str()]));
      set('tool', str());
      set('args', r() < 0.7 ? { message: str(), password: 'hunter2', nested: { token: 't', ok: [1, 'x'] } } : value(1));
      if (r() < 0.5) set('outcome', pick(['success', 'error', 'denied', str()]));
      if (r() < 0.3) set('reason', str());
      if (r() < 0.5) set('latencyMs', pick([0.42, 3, NaN, -0]));
      if (r() < 0.3) set('requestEventId', 'f00');
    }
    const extra = Math.floor(r() * 6);
    for (let i = 0; i < extra; i++) set(key(), value(1));
    if (r() < 0.1) set('code', pick(['TX', undefined, null, 5, str()]));
    if (!('type' in e) || r() < 0.05) set('type', pick(['mcp.session.request', str(), undefined]));
    return e as AuditEventInput;
  };
  return { event, pick };
}

function attempt(f: () => string): string | undefined {
  try {
    return f();
  } catch (err) {
    expect(err).toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    return undefined;
  }
}

/** Equal texts; else the first difference, short enough to read. */
function expectSame(got: string, want: string): void {
  if (got === want) return;
  let i = 0;
  while (got[i] === want[i]) i++;
  expect({ at: i, got: got.slice(Math.max(0, i - 40), i + 40), want: want.slice(Math.max(0, i - 40), i + 40) }).toEqual(
    {
      at: -1,
    },
  );
}

describe('the direct event serialiser', () => {
  it.each([
    ['full', 1024 * 1024],
    ['full', 64],
    ['digest', 1024 * 1024],
    ['none', 1024 * 1024],
  ] as const)(
    'writes the same text as JSON.stringify of the old fields object (args %s, max %d bytes)',
    (policy, max) => {
      const prep = new EventPreparer({
        args: policy,
        redactKeys: ['x-custom'],
        maxArgsBytes: max,
        identityBudgetBytes: 0,
      });
      const { event } = generator(policy.length * 7919 + max);
      let cut = 0;
      let refused = 0;
      for (let i = 0; i < 2500; i++) {
        const e = event();
        const got = attempt(() => prep.prepare(e, () => {}).json);
        if (got === undefined) {
          // Refused (a type JSON or the code table cannot take): the old way refused it too.
          expect(() => reference(e, 't', 'i', policy, max)).toThrow();
          refused++;
          continue;
        }
        const { time, id } = JSON.parse(got) as { time: string; id: string };
        expectSame(got, reference(e, time, id, policy, max));
        if (got.includes('…[cut: ')) cut++;
      }
      // The generated events did exercise bounding.
      expect(cut).toBeGreaterThan(100);
      expect(refused).toBeLessThan(250);
    },
  );

  it('a value JSON cannot hold is refused as before (AUDIT_UNAVAILABLE), not written', () => {
    const prep = new EventPreparer({ identityBudgetBytes: 0 });
    expect(() => prep.prepare({ type: 'x', latencyMs: 10n as unknown as number }, () => {})).toThrow(
      expect.objectContaining({ code: 'AUDIT_UNAVAILABLE' }) as Error,
    );
    expect(() => prep.prepare({ type: 'x', weird: { deep: [1n] } }, () => {})).toThrow(
      expect.objectContaining({ code: 'AUDIT_UNAVAILABLE' }) as Error,
    );
  });

  it('ids are fresh UUIDs and times RFC 3339 with milliseconds, per event', () => {
    const prep = new EventPreparer({ identityBudgetBytes: 0 });
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const p = prep.prepare({ type: 'x' }, () => {});
      expect(p.json.startsWith(`{"time":"${p.time}","id":"${p.id}","type":"x"`)).toBe(true);
      ids.add(p.id);
    }
    expect(ids.size).toBe(1000);
    const p = prep.prepare({ type: 'x' }, () => {});
    expect(p.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Math.abs(Date.parse(p.time) - Date.now())).toBeLessThan(60_000);
    expect(createHash('sha256').update(p.json).digest('hex')).toMatch(/^[0-9a-f]{64}$/);
  });
});
