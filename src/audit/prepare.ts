/**
 * What every audit writer does before an event is chained: fields in their
 * fixed order, client- and server-chosen strings bounded, arguments recorded
 * per the arguments policy, and the per-identity budget charged. Shared by
 * the JSON Lines file (./log.ts) and the PostgreSQL backend, so both store
 * the same events (docs/audit.md).
 */
import { createHash, randomUUID } from 'node:crypto';
import { AccessError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { argsRecorder, eventCode, recordedArgsRecorder, type ArgsPolicy, type ArgsRecorder } from './events.js';

/**
 * Any string; the names are there for readers and editors (`string & NonNullable<unknown>` keeps them from
 * collapsing into `string`).
 */
export type AuditEventType =
  | 'mcp.session.start'
  | 'mcp.session.end'
  | 'mcp.session.request'
  | 'mcp.session.notification'
  | (string & NonNullable<unknown>);

export interface AuditEventInput {
  type: AuditEventType;
  /** Teleport's event code; derived from type and outcome when left out (see EVENT_CODES). */
  code?: string;
  sessionId?: string;
  user?: string;
  roles?: string[];
  server?: string;
  client?: { name?: string; version?: string };
  remoteAddr?: string;
  method?: string;
  rpcId?: string | number | null;
  tool?: string;
  /** Recorded according to the log's args policy (full with redaction, digest, or none). */
  args?: unknown;
  outcome?: 'success' | 'error' | 'denied';
  reason?: string;
  latencyMs?: number;
  direction?: 'client_to_server' | 'server_to_client';
  [k: string]: unknown;
}

/** Longest stored string: `reason` (error messages, denial reasons) and every other field (see docs/audit.md). */
export const MAX_REASON_CHARS = 2048;
export const MAX_FIELD_CHARS = 256;
export const DEFAULT_IDENTITY_BUDGET_BYTES = 256 * 1024 * 1024;

/**
 * A string cut to `max` characters, followed by the size and SHA-256 of the
 * whole value, so a copy can still be matched: `abc…[cut: 1048576 bytes, sha256 …]`.
 */
export function boundString(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max;
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--; // do not split a surrogate pair
  return `${s.slice(0, end)}…[cut: ${Buffer.byteLength(s)} bytes, sha256 ${createHash('sha256').update(s).digest('hex')}]`;
}

/** A value with every string (and key) in it cut to `max` characters (boundString), four levels deep. */
export function boundValue(v: unknown, max: number, depth: number): unknown {
  if (typeof v === 'string') return boundString(v, max);
  if (typeof v !== 'object' || v === null || depth > 4) return v;
  if (Array.isArray(v)) return v.map((x) => boundValue(x, max, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>))
    out[boundString(k, MAX_FIELD_CHARS)] = boundValue(x, max, depth + 1);
  return out;
}

/** Fields in the order they are written; anything else follows, `prev` is last. */
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
/** Keys written by the writer (time, id, type, code) or in FIELD_ORDER's place: not repeated among the others. */
const NOT_EXTRA = new Set(['time', 'id', 'type', 'code', 'prev', 'hash', ...FIELD_ORDER]);

export interface EventPreparerOptions {
  args?: ArgsPolicy;
  redactKeys?: string[];
  maxArgsBytes?: number;
  identityBudgetBytes?: number;
  now?: () => number;
  logger?: Logger;
}

/**
 * An event an agent recorded (its spool holds it): its id is derived from
 * the agent's certified name and the event's `eventKey` (agentEventId), its
 * `args` were recorded by the agent under the settings the proxy sent it (the
 * writer applies its arguments policy again: redacted again, a digest kept,
 * which changes nothing an honest agent with current settings sent), and it
 * is not charged to the identity's budget: the agent charged it before the
 * request went on, and an event of something that happened is stored, never
 * refused for its size.
 */
export interface RecordedEvent {
  id: string;
}

/**
 * The id of an agent's event: a UUID (version 8) derived from the agent's
 * certified name and the event's `eventKey`. Both sides compute it, so the
 * agent knows the id before the proxy stores the event; an event sent twice
 * keeps its id, and no agent can take the id of another's event.
 *
 * A key as the spool writes it (`<process>:<count>`) gives 60 bits of SHA-256
 * of the agent's name and the process (computed once per process), then the
 * count: one hash per agent process instead of one per event. Any other key
 * is hashed whole.
 */
export function agentEventId(agent: string, eventKey: string): string {
  const m = SPOOL_KEY.exec(eventKey);
  if (m) {
    const prefix = processPrefix(agent, m[1]!);
    const count = Number(m[2]).toString(16).padStart(15, '0');
    return `${prefix.slice(0, 8)}-${prefix.slice(8, 12)}-8${prefix.slice(12, 15)}-8${count.slice(0, 3)}-${count.slice(3)}`;
  }
  const h = createHash('sha256').update(`${agent}\n${eventKey}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 3) | 8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** `<process>:<count>`, the count below 2^53 (15 hex digits hold it). */
const SPOOL_KEY = /^([A-Za-z0-9_-]{1,64}):([1-9][0-9]{0,14})$/;
const prefixes = new Map<string, string>();

/** 15 hex digits of SHA-256 of the agent and its process, remembered for the last 1,000 processes. */
function processPrefix(agent: string, process: string): string {
  const key = `${agent}\n${process}`;
  let p = prefixes.get(key);
  if (p === undefined) {
    // A domain of its own: no whole-key hash (above) can give this prefix on purpose.
    p = createHash('sha256').update(`spool\n${key}`).digest('hex').slice(0, 15);
    if (prefixes.size >= 1000) prefixes.delete(prefixes.keys().next().value!);
    prefixes.set(key, p);
  }
  return p;
}

/** An event ready to be chained: its JSON (without `prev`), and what writers index it by. */
export interface PreparedEvent {
  /** `{"time":…,"id":…,"type":…,…}`: the stored line is this with `prev` and `hash` added before the `}`. */
  json: string;
  id: string;
  time: string;
  /** The event as given (PostgreSQL indexes some of its fields). */
  event: Readonly<AuditEventInput>;
}

const quote = JSON.stringify as (s: string) => string;

/** An array index ("0" … "4294967294"): JavaScript lists such keys first, in numeric order, in every object. */
function isArrayIndex(k: string): boolean {
  const c = k.charCodeAt(0);
  if (!(c >= 48 && c <= 57) || k.length > 10 || (c === 48 && k.length > 1)) return false;
  for (let i = 1; i < k.length; i++) {
    const d = k.charCodeAt(i);
    if (d < 48 || d > 57) return false;
  }
  return Number(k) < 4294967295;
}

/**
 * The JSON of one field's value, bounded: exactly `JSON.stringify(boundValue(v, max, 0))` as a member of the
 * event (undefined: the member is left out). Strings, numbers, arrays of them and flat objects (the client's
 * name and version, roles) are written directly; anything else takes the general path.
 */
function fieldJson(v: unknown, max: number): string | undefined {
  const scalar = scalarJson(v, max);
  if (scalar !== undefined) return scalar;
  if (typeof v === 'object') {
    return (
      (Array.isArray(v) ? flatArrayJson(v, max) : flatObjectJson(v!, max)) ?? JSON.stringify(boundValue(v, max, 0))
    );
  }
  // undefined, a function or a symbol: left out; a bigint throws, as it always did.
  return typeof v === 'bigint' ? JSON.stringify(v) : undefined;
}

/** A scalar (a string, finite or not number, boolean, null) as JSON, else undefined. */
function scalarJson(x: unknown, max: number): string | undefined {
  if (typeof x === 'string') return quote(x.length <= max ? x : boundString(x, max));
  if (typeof x === 'number') return Number.isFinite(x) ? String(x) : 'null';
  if (typeof x === 'boolean') return x ? 'true' : 'false';
  if (x === null) return 'null';
  return undefined;
}

function flatArrayJson(a: unknown[], max: number): string | undefined {
  let out = '[';
  for (let i = 0; i < a.length; i++) {
    const j = scalarJson(a[i], max);
    if (j === undefined) return undefined;
    out += i === 0 ? j : `,${j}`;
  }
  return `${out}]`;
}

function flatObjectJson(o: object, max: number): string | undefined {
  const proto = Object.getPrototypeOf(o) as unknown;
  if (proto !== Object.prototype && proto !== null) return undefined;
  let out = '{';
  let first = true;
  for (const k of Object.keys(o)) {
    if (k === '__proto__') return undefined;
    const j = scalarJson((o as Record<string, unknown>)[k], max);
    if (j === undefined) return undefined;
    out += `${first ? '' : ','}${quote(k.length <= MAX_FIELD_CHARS ? k : boundString(k, MAX_FIELD_CHARS))}:${j}`;
    first = false;
  }
  return `${out}}`;
}

/** `JSON.stringify(v)` as a member's value (undefined: left out), for the writer's own unbounded `type` and `code`. */
function rawJson(v: unknown): string | undefined {
  return v === undefined || typeof v === 'function' || typeof v === 'symbol' ? undefined : JSON.stringify(v);
}

let lastMs = NaN;
let lastIso = '';
/** `new Date().toISOString()`, computed once per millisecond. */
export function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/**
 * Bytes of audit events each identity may cause per hour (`audit.identity_budget`):
 * a bucket that refills continuously. The first refusal of an overrun is itself
 * recorded (once, not charged), so the trail says why that identity's requests
 * stopped. Used by the proxy's writers and by an agent's spool.
 */
export class IdentityBudget {
  /** Per identity: bytes left in its budget, when last refilled, whether the overrun was recorded. */
  private readonly budgets = new Map<string, { bytes: number; at: number; announced: boolean }>();

  constructor(
    private readonly bytesPerHour: number,
    private readonly now: () => number = Date.now,
    private readonly logger?: Logger,
  ) {}

  /**
   * Charges `bytes` of `event` to its identity; an error when the budget is
   * spent, after handing the one `audit.budget_exceeded` event of the overrun
   * to `announce`.
   */
  charge(event: AuditEventInput, bytes: number, announce: (e: AuditEventInput) => void): AccessError | undefined {
    const user = event.user;
    if (this.bytesPerHour <= 0 || typeof user !== 'string' || event.type === 'mcp.session.end') return undefined;
    const t = this.now();
    let b = this.budgets.get(user);
    if (!b) {
      if (this.budgets.size >= 100_000) this.budgets.delete(this.budgets.keys().next().value!);
      b = { bytes: this.bytesPerHour, at: t, announced: false };
      this.budgets.set(user, b);
    }
    b.bytes = Math.min(this.bytesPerHour, b.bytes + ((t - b.at) / 3_600_000) * this.bytesPerHour);
    b.at = t;
    if (b.bytes >= bytes) {
      b.bytes -= bytes;
      b.announced = false;
      return undefined;
    }
    const mib = Math.round(this.bytesPerHour / (1024 * 1024));
    const message = `identity ${boundString(user, MAX_FIELD_CHARS)} has used up its audit budget (${mib} MiB per hour); its requests are refused until the budget refills`;
    if (!b.announced) {
      b.announced = true;
      announce({
        type: 'audit.budget_exceeded',
        user,
        outcome: 'denied',
        reason: message,
        budgetBytesPerHour: this.bytesPerHour,
      });
      this.logger?.warn(`audit: ${message}`);
    }
    return new AccessError('AUDIT_UNAVAILABLE', message, {
      hint: 'raise audit.identity_budget, or find out why this identity sends so much (see docs/audit.md)',
    });
  }
}

export class EventPreparer {
  private readonly args: ArgsRecorder;
  /** `args` an agent recorded already: the policy applies again, a digest is not digested twice. */
  private readonly recordedArgs: ArgsRecorder;
  private readonly budget: IdentityBudget;

  constructor(opts: EventPreparerOptions = {}) {
    const maxArgsBytes = opts.maxArgsBytes ?? 1024 * 1024;
    this.args = argsRecorder(opts.args ?? 'full', opts.redactKeys ?? [], maxArgsBytes);
    this.recordedArgs = recordedArgsRecorder(opts.args ?? 'full', opts.redactKeys ?? [], maxArgsBytes);
    this.budget = new IdentityBudget(
      opts.identityBudgetBytes ?? DEFAULT_IDENTITY_BUDGET_BYTES,
      opts.now ?? Date.now,
      opts.logger,
    );
  }

  /**
   * The event's JSON, its identity charged. Throws AUDIT_UNAVAILABLE when it
   * cannot be serialised or the identity's budget is spent; `announce` is the
   * one `audit.budget_exceeded` event to record (not charged, nobody waits for
   * it) the first time a budget runs out. An agent's event (`recorded`) keeps
   * its id and is not charged.
   */
  prepare(event: AuditEventInput, announce: (e: PreparedEvent) => void, recorded?: RecordedEvent): PreparedEvent {
    let prepared: PreparedEvent;
    try {
      prepared = this.serialise(event, recorded);
    } catch (err) {
      throw new AccessError('AUDIT_UNAVAILABLE', `audit event cannot be recorded: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (recorded) return prepared;
    const over = this.overBudget(event, prepared.json, announce);
    if (over) throw over;
    return prepared;
  }

  /** Fields of an event the writer adds itself (recovered, reopened): time, id, type, code, then `extra`. */
  own(type: string, extra: Record<string, unknown>): Record<string, unknown> {
    return { time: isoNow(), id: randomUUID(), type, code: eventCode(type), ...extra };
  }

  /**
   * The event's JSON, written directly: `time`, `id`, `type`, `code`, the
   * fields of FIELD_ORDER, then the others in the event's order (array-index
   * keys, which JavaScript puts first in any object, before `time`).
   * Client- and server-chosen strings (client name, method, tool, error
   * messages) are bounded; `args` is recorded per the arguments policy.
   * The text is the same as `JSON.stringify` of the fields object it replaces
   * (test/audit/serialise.test.ts compares the two).
   */
  serialise(event: AuditEventInput, recorded?: RecordedEvent): PreparedEvent {
    const time = isoNow();
    const id = recorded?.id ?? randomUUID();
    const type = rawJson(event.type);
    const codeValue = event.code ?? eventCode(event.type, event.outcome);
    const code = rawJson(codeValue);
    let body = `"time":"${time}","id":"${id}"`;
    if (type !== undefined) body += `,"type":${type}`;
    if (code !== undefined) body += `,"code":${code}`;
    for (const k of FIELD_ORDER) {
      const v = event[k];
      if (v === undefined) continue;
      let j: string | undefined;
      if (k === 'args') j = (recorded ? this.recordedArgs : this.args).recordJson(v);
      else j = fieldJson(v, k === 'reason' ? MAX_REASON_CHARS : MAX_FIELD_CHARS);
      if (j !== undefined) body += `,"${k}":${j}`;
    }
    let head = '';
    for (const k of Object.keys(event)) {
      if (NOT_EXTRA.has(k) || k === '__proto__') continue;
      const j = fieldJson(event[k], MAX_FIELD_CHARS);
      if (j === undefined) continue;
      const member = `${quote(k.length <= MAX_FIELD_CHARS ? k : boundString(k, MAX_FIELD_CHARS))}:${j}`;
      if (isArrayIndex(k)) head += `${member},`;
      else body += `,${member}`;
    }
    return { json: `{${head}${body}}`, id, time, event };
  }

  /** Charges the event to its identity's budget (see IdentityBudget). */
  private overBudget(
    event: AuditEventInput,
    json: string,
    announce: (e: PreparedEvent) => void,
  ): AccessError | undefined {
    return this.budget.charge(event, json.length, (e) => announce(this.serialise(e)));
  }
}
