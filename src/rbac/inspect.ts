/**
 * The strict check every client→server message passes in the proxy before
 * any policy decision. The proxy forwards the client's bytes verbatim, so
 * what the server parses must be exactly what the proxy judged. Everything
 * that could let two JSON parsers disagree is refused here (decisions and
 * reasons: docs/rbac.md, "Message inspection"):
 *
 *  - bytes that are not UTF-8, a byte-order mark, or text that is not one JSON value;
 *  - JSON-RPC batches (arrays): MCP removed batching in revision 2025-06-18;
 *  - duplicate keys anywhere; keys differing only in case at the message and
 *    `params` level (`Method`, `Params`, `Name`);
 *  - members JSON-RPC does not define; ids that are not a string or a safe integer;
 *  - method names that are a case variant of an MCP method (`Tools/Call`) or
 *    contain spaces or control characters;
 *  - a `tools/call` whose `params.name` is missing, empty, not a string, or
 *    contains control, format or space characters or lone surrogates;
 *  - a raw CR or LF anywhere (JSON whitespace, but a line break to a stdio server);
 *  - a notification whose method is not `notifications/…` (a request without an id).
 *
 * `\u` escapes are not refused: JSON defines them, every conforming parser
 * decodes them identically, and the decoded name is what policy checks.
 */
import { fold, scanKeys } from './json-keys.js';

export type Inspected =
  | { kind: 'request'; id: string | number; method: string; params?: unknown; toolName?: string }
  | { kind: 'notification'; method: string; params?: unknown }
  | { kind: 'response'; id: string | number | null; isError: boolean }
  | { kind: 'invalid'; id: string | number | null; code: number; reason: string };

export const JSONRPC_PARSE_ERROR = -32700;
export const JSONRPC_INVALID_REQUEST = -32600;
export const JSONRPC_INVALID_PARAMS = -32602;

/** Deeper nesting is refused: no MCP message needs it, and recursive consumers (audit, servers) would choke. */
export const MAX_NESTING = 512;

const TOP_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'method', 'params', 'result', 'error']);
const PARAMS_KEYS: ReadonlySet<string> = new Set([
  'name',
  'arguments',
  '_meta',
  'cursor',
  'uri',
  'protocolVersion',
  'capabilities',
  'clientInfo',
  'level',
  'ref',
  'argument',
  'context',
  'requestId',
  'reason',
  'progressToken',
  'progress',
  'total',
  'message',
  'task',
  'taskId',
]);
const MCP_METHODS = [
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/result',
  'tasks/list',
  'tasks/cancel',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
  'notifications/tasks/status',
];
const FOLDED_METHODS = new Map(MCP_METHODS.map((m) => [fold(m), m]));

/** Control (Cc), format (Cf: zero-width, bidi, BOM) and separator (Z) characters, and any whitespace. */
const UNSAFE_CHARS = /[\p{Cc}\p{Cf}\p{Z}\s]/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function inspectClientMessage(bytes: Buffer): Inspected {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return invalid(null, JSONRPC_PARSE_ERROR, 'the message is not valid UTF-8');
  }
  if (text.charCodeAt(0) === 0xfeff)
    return invalid(null, JSONRPC_PARSE_ERROR, 'the message starts with a byte-order mark');
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    return invalid(null, JSONRPC_PARSE_ERROR, `the message is not valid JSON (${(err as Error).message})`);
  }
  if (Array.isArray(msg)) {
    return invalid(
      null,
      JSONRPC_INVALID_REQUEST,
      'JSON-RPC batches are not supported (MCP removed batching in revision 2025-06-18); send one message at a time',
    );
  }
  if (typeof msg !== 'object' || msg === null)
    return invalid(null, JSONRPC_INVALID_REQUEST, 'a JSON-RPC message must be a JSON object');
  const m = msg as Record<string, unknown>;

  // The id is only trusted once the key scan shows the message has exactly one.
  const keyProblem = scanKeys(text, { topKeys: TOP_KEYS, paramsKeys: PARAMS_KEYS, maxDepth: MAX_NESTING });
  const id = isId(m.id) ? m.id : null;
  if (keyProblem !== undefined) {
    const ambiguousId = keyProblem.path === '' && fold(keyProblem.key) === 'id';
    return invalid(ambiguousId ? null : id, JSONRPC_INVALID_REQUEST, keyProblem.reason);
  }

  // A raw CR or LF is legal JSON whitespace, but a stdio server splits its
  // input into lines: the second line would be a message nobody judged.
  if (bytes.includes(0x0a) || bytes.includes(0x0d)) {
    return invalid(
      id,
      JSONRPC_INVALID_REQUEST,
      'the message contains a raw line break (CR or LF); a message must be one line',
    );
  }
  for (const k of Object.keys(m)) {
    if (!TOP_KEYS.has(k)) return invalid(id, JSONRPC_INVALID_REQUEST, `"${k}" is not a JSON-RPC member`);
  }
  if (m.jsonrpc !== '2.0') return invalid(id, JSONRPC_INVALID_REQUEST, 'jsonrpc must be "2.0"');
  const hasId = Object.hasOwn(m, 'id');

  if (Object.hasOwn(m, 'method')) {
    if (Object.hasOwn(m, 'result') || Object.hasOwn(m, 'error'))
      return invalid(id, JSONRPC_INVALID_REQUEST, 'a message with a method cannot carry result or error');
    const method = m.method;
    if (typeof method !== 'string' || method === '')
      return invalid(id, JSONRPC_INVALID_REQUEST, 'method must be a non-empty string');
    if (!isPlainAscii(method) && (UNSAFE_CHARS.test(method) || LONE_SURROGATE.test(method))) {
      return invalid(id, JSONRPC_INVALID_REQUEST, 'method contains spaces, control or invisible characters');
    }
    const canonical = FOLDED_METHODS.get(fold(method));
    if (canonical !== undefined && canonical !== method)
      return invalid(id, JSONRPC_INVALID_REQUEST, `method "${method}" must be written "${canonical}"`);
    const params = m.params;
    if (Object.hasOwn(m, 'params') && !isPlainObject(params))
      return invalid(id, JSONRPC_INVALID_REQUEST, 'params must be an object');

    if (hasId && !isId(m.id)) return invalid(null, JSONRPC_INVALID_REQUEST, 'id must be a string or an integer');
    if (!hasId) {
      // Every MCP notification is `notifications/…`; anything else without an
      // id (a `tools/call`, say) is a request sent where no answer is awaited.
      if (!method.startsWith('notifications/')) {
        return invalid(
          null,
          JSONRPC_INVALID_REQUEST,
          `"${method}" is not a notification: a request needs an id (notification methods start with "notifications/")`,
        );
      }
      return params === undefined ? { kind: 'notification', method } : { kind: 'notification', method, params };
    }
    const reqId = m.id as string | number;
    if (method === 'tools/call') {
      const p = params as Record<string, unknown> | undefined;
      const problem = toolCallProblem(p);
      if (problem !== undefined) return invalid(reqId, JSONRPC_INVALID_PARAMS, problem);
      return { kind: 'request', id: reqId, method, params, toolName: p!.name as string };
    }
    return params === undefined
      ? { kind: 'request', id: reqId, method }
      : { kind: 'request', id: reqId, method, params };
  }

  // A response to a server→client request (sampling, elicitation, roots).
  const hasResult = Object.hasOwn(m, 'result');
  const hasError = Object.hasOwn(m, 'error');
  if (!hasId)
    return invalid(
      null,
      JSONRPC_INVALID_REQUEST,
      'a message needs a method (request or notification) or an id (response)',
    );
  if (m.id !== null && !isId(m.id)) return invalid(null, JSONRPC_INVALID_REQUEST, 'id must be a string or an integer');
  if (hasResult === hasError)
    return invalid(id, JSONRPC_INVALID_REQUEST, 'a response carries exactly one of result and error');
  if (hasError) {
    const e = m.error;
    if (!isPlainObject(e) || !Number.isSafeInteger(e.code) || typeof e.message !== 'string') {
      return invalid(id, JSONRPC_INVALID_REQUEST, 'error must be an object with an integer code and a message');
    }
  } else if (m.id === null) {
    return invalid(null, JSONRPC_INVALID_REQUEST, 'a successful response needs a string or integer id');
  }
  return { kind: 'response', id: m.id, isError: hasError };
}

function toolCallProblem(p: Record<string, unknown> | undefined): string | undefined {
  if (p === undefined) return 'tools/call needs params with the tool name';
  if (!Object.hasOwn(p, 'name')) return 'tools/call params.name is missing';
  const name = p.name;
  if (typeof name !== 'string') return 'tools/call params.name must be a string';
  if (name === '') return 'tools/call params.name is empty';
  if (!isPlainAscii(name) && (UNSAFE_CHARS.test(name) || LONE_SURROGATE.test(name))) {
    return 'tools/call params.name contains spaces, control or invisible characters, which no tool name has';
  }
  if (Object.hasOwn(p, 'arguments') && !isPlainObject(p.arguments))
    return 'tools/call params.arguments must be an object';
  return undefined;
}

/**
 * Printable ASCII other than space (0x21–0x7e): none of these is a control,
 * format, separator or whitespace character or a surrogate, so a name made
 * only of them passes UNSAFE_CHARS and LONE_SURROGATE without running them.
 */
export function isPlainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/**
 * JSON-RPC ids: MCP allows strings and integers (not null); a non-safe integer would not round-trip in our
 * own answers.
 */
function isId(v: unknown): v is string | number {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(id: string | number | null, code: number, reason: string): Inspected {
  return { kind: 'invalid', id, code, reason };
}
