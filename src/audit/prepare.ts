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
import { argsRecorder, eventCode, type ArgsPolicy, type ArgsRecorder } from './events.js';

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

function boundValue(v: unknown, max: number, depth: number): unknown {
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
const RESERVED = new Set(['time', 'id', 'type', 'code', 'prev', 'hash']);

export interface EventPreparerOptions {
  args?: ArgsPolicy;
  redactKeys?: string[];
  maxArgsBytes?: number;
  identityBudgetBytes?: number;
  now?: () => number;
  logger?: Logger;
}

/** An event ready to be chained: its fields and their JSON (without `prev`). */
export interface PreparedEvent {
  fields: Record<string, unknown>;
  json: string;
}

export class EventPreparer {
  private readonly args: ArgsRecorder;
  /** Per identity: bytes left in its budget, when last refilled, whether the overrun was recorded. */
  private readonly budgets = new Map<string, { bytes: number; at: number; announced: boolean }>();
  private readonly identityBudget: number;
  private readonly now: () => number;

  constructor(private readonly opts: EventPreparerOptions = {}) {
    this.args = argsRecorder(opts.args ?? 'full', opts.redactKeys ?? [], opts.maxArgsBytes ?? 1024 * 1024);
    this.identityBudget = opts.identityBudgetBytes ?? DEFAULT_IDENTITY_BUDGET_BYTES;
    this.now = opts.now ?? Date.now;
  }

  /**
   * The event's fields and JSON, its identity charged. Throws
   * AUDIT_UNAVAILABLE when it cannot be serialised or the identity's budget
   * is spent; `announce` is the one `audit.budget_exceeded` event to record
   * (not charged, nobody waits for it) the first time a budget runs out.
   */
  prepare(event: AuditEventInput, announce: (e: PreparedEvent) => void): PreparedEvent {
    let fields: Record<string, unknown>;
    let json: string;
    try {
      fields = this.buildFields(event);
      json = JSON.stringify(fields);
    } catch (err) {
      throw new AccessError('AUDIT_UNAVAILABLE', `audit event cannot be recorded: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const over = this.overBudget(event, json, announce);
    if (over) throw over;
    return { fields, json };
  }

  /** Fields of an event the writer adds itself (recovered, reopened): time, id, type, code, then `extra`. */
  own(type: string, extra: Record<string, unknown>): Record<string, unknown> {
    return { time: new Date().toISOString(), id: randomUUID(), type, code: eventCode(type), ...extra };
  }

  buildFields(event: AuditEventInput): Record<string, unknown> {
    const out: Record<string, unknown> = {
      time: new Date().toISOString(),
      id: randomUUID(),
      type: event.type,
    };
    const code = event.code ?? eventCode(event.type, event.outcome);
    if (code !== undefined) out.code = code;
    const put = (k: string, v: unknown) => {
      if (v === undefined) return;
      if (k === 'args') {
        const recorded = this.args.record(v);
        if (recorded !== undefined) out.args = recorded;
        return;
      }
      // Client- and server-chosen strings (client name, method, tool, error messages) are bounded.
      out[k] = boundValue(v, k === 'reason' ? MAX_REASON_CHARS : MAX_FIELD_CHARS, 0);
    };
    for (const k of FIELD_ORDER) put(k, event[k]);
    for (const k of Object.keys(event))
      if (!RESERVED.has(k) && !FIELD_ORDER.includes(k)) put(boundString(k, MAX_FIELD_CHARS), event[k]);
    return out;
  }

  /**
   * Charges the event to its identity's budget; an error when the budget is
   * spent. The first refusal of an overrun is itself recorded (once, not
   * charged), so the trail says why that identity's requests stopped.
   */
  private overBudget(
    event: AuditEventInput,
    json: string,
    announce: (e: PreparedEvent) => void,
  ): AccessError | undefined {
    const user = event.user;
    if (this.identityBudget <= 0 || typeof user !== 'string' || event.type === 'mcp.session.end') return undefined;
    const t = this.now();
    let b = this.budgets.get(user);
    if (!b) {
      if (this.budgets.size >= 100_000) this.budgets.delete(this.budgets.keys().next().value!);
      b = { bytes: this.identityBudget, at: t, announced: false };
      this.budgets.set(user, b);
    }
    b.bytes = Math.min(this.identityBudget, b.bytes + ((t - b.at) / 3_600_000) * this.identityBudget);
    b.at = t;
    if (b.bytes >= json.length) {
      b.bytes -= json.length;
      b.announced = false;
      return undefined;
    }
    const mib = Math.round(this.identityBudget / (1024 * 1024));
    const message = `identity ${boundString(user, MAX_FIELD_CHARS)} has used up its audit budget (${mib} MiB per hour); its requests are refused until the budget refills`;
    if (!b.announced) {
      b.announced = true;
      const fields = this.buildFields({
        type: 'audit.budget_exceeded',
        user,
        outcome: 'denied',
        reason: message,
        budgetBytesPerHour: this.identityBudget,
      });
      announce({ fields, json: JSON.stringify(fields) });
      this.opts.logger?.warn(`audit: ${message}`);
    }
    return new AccessError('AUDIT_UNAVAILABLE', message, {
      hint: 'raise audit.identity_budget, or find out why this identity sends so much (see docs/audit.md)',
    });
  }
}
