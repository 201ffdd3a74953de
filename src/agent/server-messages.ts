/**
 * The check every server→client message passes in the proxy, as strict as
 * the one for client messages (rbac/inspect.ts): a server is not trusted
 * either. Refused (dropped, audited, the session goes on):
 *
 *  - bytes that are not UTF-8, a byte-order mark, text that is not one JSON
 *    value (whatever its size: large messages are parsed in full too);
 *  - a bare CR or LF anywhere in the frame (a line-based reader would cut it);
 *  - JSON-RPC batches, values that are not a JSON-RPC 2.0 object, members
 *    JSON-RPC does not define, ids that are not a string or a safe integer.
 *
 * Whether a response answers a request the client really sent (once) is the
 * gate's business: it holds the ids in flight.
 */
import type { JsonRpcId } from '../tunnel/jsonrpc.js';
import { excerpt } from './upstream/stderr-lines.js';
import { isPlainAscii } from '../rbac/inspect.js';

export type ServerInspected =
  | { kind: 'request'; id: string | number; method: string; message: Record<string, unknown> }
  | { kind: 'notification'; method: string; message: Record<string, unknown> }
  | { kind: 'response'; id: JsonRpcId; isError: boolean; message: Record<string, unknown> }
  | { kind: 'invalid'; reason: string; id?: string | number };

const TOP_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'method', 'params', 'result', 'error']);
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function inspectServerMessage(bytes: Uint8Array): ServerInspected {
  if (bytes.indexOf(0x0d) !== -1 || bytes.indexOf(0x0a) !== -1)
    return { kind: 'invalid', reason: 'the message holds a bare CR or LF (a message is one line)' };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { kind: 'invalid', reason: 'the message is not valid UTF-8' };
  }
  if (text.charCodeAt(0) === 0xfeff) return { kind: 'invalid', reason: 'the message starts with a byte-order mark' };
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    return { kind: 'invalid', reason: `the message is not valid JSON (${excerpt((err as Error).message, 120)})` };
  }
  if (Array.isArray(msg))
    return { kind: 'invalid', reason: 'a JSON-RPC batch (MCP removed batching in revision 2025-06-18)' };
  if (typeof msg !== 'object' || msg === null)
    return { kind: 'invalid', reason: 'not a JSON-RPC message (not a JSON object)' };
  const m = msg as Record<string, unknown>;
  for (const k of Object.keys(m)) {
    if (!TOP_KEYS.has(k)) return { kind: 'invalid', reason: `"${excerpt(k, 40)}" is not a JSON-RPC member` };
  }
  if (m.jsonrpc !== '2.0') return { kind: 'invalid', reason: 'jsonrpc must be "2.0"' };
  const hasId = Object.hasOwn(m, 'id');
  const id = isId(m.id) ? m.id : undefined;
  if (Object.hasOwn(m, 'method')) {
    if (Object.hasOwn(m, 'result') || Object.hasOwn(m, 'error'))
      return { kind: 'invalid', reason: 'a message with a method cannot carry result or error', id };
    if (
      typeof m.method !== 'string' ||
      m.method === '' ||
      (!isPlainAscii(m.method) && /[\p{Cc}\p{Cf}\p{Z}\s]/u.test(m.method))
    )
      return { kind: 'invalid', reason: 'method must be a non-empty string without spaces or control characters', id };
    if (Object.hasOwn(m, 'params') && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params)))
      return { kind: 'invalid', reason: 'params must be an object', id };
    if (!hasId) return { kind: 'notification', method: m.method, message: m };
    if (id === undefined) return { kind: 'invalid', reason: 'id must be a string or an integer' };
    return { kind: 'request', id, method: m.method, message: m };
  }
  if (!hasId)
    return { kind: 'invalid', reason: 'a message needs a method (request or notification) or an id (response)' };
  if (m.id !== null && id === undefined) return { kind: 'invalid', reason: 'id must be a string or an integer' };
  const hasResult = Object.hasOwn(m, 'result');
  const hasError = Object.hasOwn(m, 'error');
  if (hasResult === hasError) return { kind: 'invalid', reason: 'a response carries exactly one of result and error' };
  if (hasError) {
    const e = m.error as Record<string, unknown> | null;
    if (
      typeof e !== 'object' ||
      e === null ||
      Array.isArray(e) ||
      !Number.isSafeInteger(e.code) ||
      typeof e.message !== 'string'
    ) {
      return { kind: 'invalid', reason: 'error must be an object with an integer code and a message' };
    }
  }
  return { kind: 'response', id: id ?? null, isError: hasError, message: m };
}

function isId(v: unknown): v is string | number {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
}
