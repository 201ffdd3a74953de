/** The little JSON-RPC 2.0 both ends need: classify a message, build an error. */

export type JsonRpcId = string | number | null;

export const RPC = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
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
    if (hasId && (typeof m.id === 'string' || typeof m.id === 'number')) return { kind: 'request', id: m.id, method: m.method };
    if (!hasId) return { kind: 'notification', method: m.method };
    return { kind: 'other' };
  }
  if (hasId && ('result' in m || 'error' in m)) {
    const id = m.id;
    return { kind: 'response', id: typeof id === 'string' || typeof id === 'number' ? id : null };
  }
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
