/** The little JSON-RPC 2.0 both ends need: classify a message, build an error. */
import { readJsonTop, type JsonTop } from './json-top.js';
import { scanTopLevel } from './top-level-scanner.js';

/**
 * Above this size a message is routed by a scan of its top level (which keys,
 * which id and method) instead of being decoded and parsed whole: a 16 MiB
 * message then costs one pass over its bytes, not a 32 MiB string and its
 * object tree.
 */
export const LARGE_MESSAGE = 64 * 1024;

export type JsonRpcId = string | number | null;

export const RPC = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
} as const;

export type Classified =
  | { kind: 'request'; id: string | number; method: string }
  | { kind: 'notification'; method: string }
  | { kind: 'response'; id: JsonRpcId }
  | { kind: 'batch' }
  | { kind: 'other' };

/** What a parsed message is, by the JSON-RPC 2.0 rules (no schema validation). */
export function classify(msg: unknown): Classified {
  if (Array.isArray(msg)) return { kind: 'batch' };
  if (msg === null || typeof msg !== 'object') return { kind: 'other' };
  const m = msg as Record<string, unknown>;
  const hasId = 'id' in m;
  if (typeof m.method === 'string') {
    if (hasId && (typeof m.id === 'string' || typeof m.id === 'number'))
      return { kind: 'request', id: m.id, method: m.method };
    if (!hasId) return { kind: 'notification', method: m.method };
    return { kind: 'other' };
  }
  if (hasId && ('result' in m || 'error' in m)) {
    const id = m.id;
    return { kind: 'response', id: typeof id === 'string' || typeof id === 'number' ? id : null };
  }
  return { kind: 'other' };
}

/**
 * Classify a message from its bytes without decoding or parsing it
 * (json-top.ts: a strict JSON validator that reads the top level). The
 * answer is `classify(JSON.parse(text))`'s; undefined when the scan cannot
 * be sure (the input is not valid JSON, an escape where it matters, …): the
 * caller then parses in full.
 */
export function classifyBytes(message: Buffer): Classified | undefined {
  const t = readJsonTop(message);
  return t && classifyTop(t);
}

/** What a message is, from its top level as `readJsonTop` read it. */
export function classifyTop(t: JsonTop): Classified {
  if (t.method !== undefined) {
    if (!t.hasId) return { kind: 'notification', method: t.method };
    if (typeof t.id === 'string' || typeof t.id === 'number') return { kind: 'request', id: t.id, method: t.method };
    return { kind: 'other' };
  }
  if (t.hasId && (t.hasResult || t.hasError)) return { kind: 'response', id: t.id ?? null };
  return { kind: 'other' };
}

/** A key for maps of in-flight ids: 1 and "1" are different ids. */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n:${id}` : typeof id === 'string' ? `s:${id}` : 'null';
}

export function errorResponse(id: JsonRpcId, code: number, message: string, data?: unknown): string {
  const error: Record<string, unknown> = { code, message };
  if (data !== undefined) error.data = data;
  return JSON.stringify({ jsonrpc: '2.0', id, error });
}

/**
 * Classify a large message from its top level alone. Undefined when the scan
 * cannot settle it (not one object, an over-long id or method, nothing
 * JSON-RPC): the caller then parses it in full.
 */
export function classifyLarge(message: Uint8Array): { classified: Classified; keys: ReadonlySet<string> } | undefined {
  const s = scanTopLevel(message);
  if (!s.ok) return undefined;
  const { keys, id, method } = s;
  const scalarId = typeof id === 'string' || typeof id === 'number' ? id : undefined;
  let classified: Classified | undefined;
  if (method !== undefined) {
    if (!keys.has('id')) classified = { kind: 'notification', method };
    else if (scalarId !== undefined) classified = { kind: 'request', id: scalarId, method };
  } else if (
    !keys.has('method') &&
    keys.has('id') &&
    (keys.has('result') || keys.has('error')) &&
    (scalarId !== undefined || id === null)
  ) {
    classified = { kind: 'response', id: scalarId ?? null };
  }
  return classified ? { classified, keys } : undefined;
}

/**
 * Classify any message: a large one by its top level, a small one from its
 * bytes (classifyBytes), and what neither settles by a full parse. Undefined when it is not JSON.
 */
export function classifyMessage(message: Buffer): Classified | undefined {
  const quick = message.length > LARGE_MESSAGE ? classifyLarge(message)?.classified : classifyBytes(message);
  if (quick) return quick;
  try {
    return classify(JSON.parse(message.toString('utf8')));
  } catch {
    return undefined;
  }
}
