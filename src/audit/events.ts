/**
 * Audit event names and codes (Teleport's for MCP sessions), and how tool
 * arguments are recorded: in full (with credential-like keys redacted), as a
 * digest, or not at all. Field reference: docs/audit.md.
 */
import { createHash } from 'node:crypto';

export const EVENT_CODES = {
  'mcp.session.start': { ok: 'TMCP001I', failed: 'TMCP001E' },
  'mcp.session.end': { ok: 'TMCP002I', failed: 'TMCP002E' },
  'mcp.session.request': { ok: 'TMCP003I', failed: 'TMCP003E' },
  'mcp.session.notification': { ok: 'TMCP004I', failed: 'TMCP004E' },
  /** Teleport's database session events (databases: docs/databases.md). */
  'db.session.start': { ok: 'TDB00I', failed: 'TDB00W' },
  'db.session.end': { ok: 'TDB01I', failed: 'TDB01I' },
  'db.session.query': { ok: 'TDB02I', failed: 'TDB02W' },
  /** mcp-access's own: pinned tool definitions (docs/rbac.md, "Pinned tool definitions"). */
  'mcp.tool.pinned': { ok: 'TPIN001I', failed: 'TPIN001I' },
  'mcp.tool.changed': { ok: 'TPIN002W', failed: 'TPIN002W' },
  'mcp.tool.approved': { ok: 'TPIN003I', failed: 'TPIN003I' },
  /** mcp-access's own: the log was resumed after an incomplete write (see docs/audit.md). */
  'audit.recovered': { ok: 'TAUD001W', failed: 'TAUD001W' },
  /** mcp-access's own: one identity used up its audit budget (its events and requests are refused). */
  'audit.budget_exceeded': { ok: 'TAUD002W', failed: 'TAUD002W' },
  /** mcp-access's own: the audit file was deleted or rotated and was opened again. */
  'audit.reopened': { ok: 'TAUD003W', failed: 'TAUD003W' },
} as const;

/** The code for an event type and outcome: `…E` for `error` and `denied`, `…I` otherwise. */
export function eventCode(type: string, outcome?: string): string | undefined {
  const entry = (EVENT_CODES as Record<string, { ok: string; failed: string }>)[type];
  if (entry === undefined) return undefined;
  return outcome === 'error' || outcome === 'denied' ? entry.failed : entry.ok;
}

export type ArgsPolicy = 'full' | 'digest' | 'none';

/**
 * Keys redacted wherever they appear in arguments, on top of those
 * configured. Compared after lower-casing and dropping `-` and `_`, so
 * `apiKey`, `api_key` and `API-KEY` are one key.
 */
export const DEFAULT_REDACT_KEYS = [
  'password',
  'passwd',
  'secret',
  'client_secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'api_key',
  'authorization',
  'cookie',
  'private_key',
];

export const REDACTED = '[REDACTED]';
/** Objects nested deeper than this are not walked (the inspector refuses deeper messages anyway). */
const MAX_DEPTH = 600;

export function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

export interface ArgsRecorder {
  readonly policy: ArgsPolicy;
  /** The JSON stored as the event's `args`: redacted, or a digest (over the limit, or by policy); undefined: none. */
  recordJson(args: unknown): string | undefined;
}

export function argsRecorder(policy: ArgsPolicy, redactKeys: string[], maxArgsBytes: number): ArgsRecorder {
  const keys = new Set([...DEFAULT_REDACT_KEYS, ...redactKeys].map(normaliseKey));
  return {
    policy,
    recordJson(args: unknown): string | undefined {
      if (args === undefined || policy === 'none') return undefined;
      const json = JSON.stringify(redact(args, keys, 0));
      if (policy === 'full') {
        // UTF-8 takes at most 3 bytes per UTF-16 unit: most arguments need no byte count.
        if (json.length * 3 <= maxArgsBytes || Buffer.byteLength(json) <= maxArgsBytes) return json;
        return JSON.stringify({ truncated: true, ...digestOf(json) });
      }
      return JSON.stringify(digestOf(json));
    },
  };
}

/**
 * The recorder for arguments an agent recorded already (under the settings
 * this proxy sent it): the policy applies again, without digesting a digest.
 * `full` redacts again (nothing changes for an honest agent); `digest` keeps
 * a digest as it is and digests anything else; `none` drops them.
 */
export function recordedArgsRecorder(policy: ArgsPolicy, redactKeys: string[], maxArgsBytes: number): ArgsRecorder {
  const full = argsRecorder('full', redactKeys, maxArgsBytes);
  const digest = argsRecorder('digest', redactKeys, maxArgsBytes);
  return {
    policy,
    recordJson(args: unknown): string | undefined {
      if (policy === 'none') return undefined;
      if (isDigest(args)) return JSON.stringify(args);
      return policy === 'full' ? full.recordJson(args) : digest.recordJson(args);
    },
  };
}

/** `{sha256, bytes}` or `{truncated: true, sha256, bytes}`: what the policies store in place of arguments. */
function isDigest(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  return (
    typeof o.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(o.sha256) &&
    typeof o.bytes === 'number' &&
    Number.isSafeInteger(o.bytes) &&
    o.bytes >= 0 &&
    (keys.length === 2 || (keys.length === 3 && o.truncated === true))
  );
}

function digestOf(json: string): { sha256: string; bytes: number } {
  return { sha256: createHash('sha256').update(json).digest('hex'), bytes: Buffer.byteLength(json) };
}

export function redact(value: unknown, keys: ReadonlySet<string>, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return '[TOO DEEP]';
  if (Array.isArray(value)) return value.map((v) => redact(v, keys, depth + 1));
  // No prototype: a "__proto__" argument key stays an ordinary, recorded key.
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = keys.has(normaliseKey(k)) ? REDACTED : redact(v, keys, depth + 1);
  }
  return out;
}
