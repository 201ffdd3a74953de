/**
 * The `fetch` the proxy hands the SDK's HTTP transports, so that an HTTP or
 * SSE MCP server is bounded like a stdio one:
 *
 * - **Back-pressure.** Response bodies are read only while the session's
 *   tunnel can take more (`flow.wait()`); a paused session stops reading the
 *   server, as it stops reading a child's stdout.
 * - **max_message_size.** A JSON body is read up to the limit (the SDK would
 *   read it whole anyway); an SSE stream is passed on one whole event at a
 *   time, each at most the limit. An over-size answer is dropped as it streams
 *   past (memory stays bounded) and reported once through `onOversize` with the
 *   ids of the requests the POST carried, so each gets a JSON-RPC error; the
 *   stream of that POST is then closed. An over-size event on the standalone
 *   GET stream is dropped and reported without an id.
 * - **2026-07-28 headers.** A request that carries its protocol version in
 *   `_meta` is sent with the `MCP-Protocol-Version` / `Mcp-Method` headers the
 *   revision requires (the SDK v2 transport adds them itself; this covers any
 *   transport).
 */
import type { JsonRpcId } from '../../tunnel/jsonrpc.js';
import { TopLevelScanner } from '../../tunnel/top-level-scanner.js';

export interface FlowControl {
  /** Resolves at once while reading may go on, else when it may again. */
  wait(): Promise<void>;
}

export interface BoundedFetchOptions {
  maxMessageSize: number;
  flow: FlowControl;
  /** An answer over the limit was dropped: `ids` are the requests it answered (empty: unknown). */
  onOversize(ids: JsonRpcId[], size: number): void;
  fetch?: typeof fetch;
}

const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';

export function boundedFetch(opts: BoundedFetchOptions): typeof fetch {
  const base = opts.fetch ?? fetch;
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const sent = bodyMessages(init?.body);
    const headers = new Headers(init?.headers);
    addRevisionHeaders(headers, sent);
    const res = await base(input, { ...init, headers });
    if (!res.body) return res;
    const ids = sent
      .filter((m) => typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number'))
      .map((m) => m.id as JsonRpcId);
    const type = (res.headers.get('content-type') ?? '').toLowerCase();
    if (type.startsWith('text/event-stream')) {
      return new Response(boundedEvents(res.body, ids, opts), {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    }
    const body = await readBounded(res.body, opts);
    if (body.oversize) {
      opts.onOversize(ids, body.size);
      // Already answered (with an error, above): nothing more for the transport to read.
      return new Response(null, { status: 202, statusText: 'Accepted' });
    }
    return new Response(body.bytes as Uint8Array<ArrayBuffer>, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
}

function bodyMessages(body: unknown): Array<Record<string, unknown>> {
  if (typeof body !== 'string') return [];
  try {
    const parsed: unknown = JSON.parse(body);
    const list = Array.isArray(parsed) ? parsed : [parsed];
    return list.filter((m): m is Record<string, unknown> => m !== null && typeof m === 'object' && !Array.isArray(m));
  } catch {
    return [];
  }
}

function addRevisionHeaders(headers: Headers, sent: Array<Record<string, unknown>>): void {
  if (sent.length !== 1) return;
  const m = sent[0]!;
  if (typeof m.method !== 'string' || !('id' in m)) return;
  const meta = (m.params as { _meta?: Record<string, unknown> } | undefined)?._meta;
  const version = meta?.[PROTOCOL_VERSION_META_KEY];
  if (typeof version !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(version)) return;
  if (!headers.has('mcp-protocol-version')) headers.set('mcp-protocol-version', version);
  if (!headers.has('mcp-method') && /^[\x21-\x7e]{1,256}$/.test(m.method)) headers.set('mcp-method', m.method);
}

async function readBounded(
  body: ReadableStream<Uint8Array>,
  opts: BoundedFetchOptions,
): Promise<{ oversize: false; bytes: Uint8Array } | { oversize: true; size: number }> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let oversize = false;
  for (;;) {
    await opts.flow.wait();
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > opts.maxMessageSize) {
      if (!oversize) parts.length = 0;
      oversize = true;
      // Stop at once: the server gets no more of our time for this answer.
      await reader.cancel().catch(() => {});
      break;
    }
    parts.push(value);
  }
  if (oversize) return { oversize: true, size };
  return { oversize: false, bytes: Buffer.concat(parts, size) };
}

/**
 * Passes SSE events on whole, one at a time, each at most maxMessageSize
 * bytes (an event ends at a blank line: LF LF, CR CR or CRLF CRLF). An
 * over-size event is dropped as it streams past; on a POST's stream the ids
 * are the POST's requests, on the standalone (or legacy SSE) stream the id is
 * found by a scan of the event's JSON top level, so its request still gets
 * its error even when the event never ends.
 */
function boundedEvents(
  body: ReadableStream<Uint8Array>,
  ids: JsonRpcId[],
  opts: BoundedFetchOptions,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  /** The over-size event being dropped, with the scan for its id. */
  let dropping: { size: number; scanner: TopLevelScanner; reported: boolean } | undefined;
  let atLineStart = true;
  let lastWasCR = false;
  let finished = false;

  /** Returns true when the stream is over (a POST's requests are answered). */
  const report = (found: JsonRpcId[], controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    dropping!.reported = true;
    opts.onOversize(found, dropping!.size);
    if (ids.length === 0) return false;
    finished = true;
    void reader.cancel().catch(() => {});
    controller.close();
    return true;
  };
  const scan = (bytes: Uint8Array, controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    const d = dropping!;
    d.size += bytes.length;
    if (d.reported) return false;
    if (ids.length > 0) return report(ids, controller);
    d.scanner.push(bytes);
    const id = d.scanner.id;
    return typeof id === 'string' || typeof id === 'number' ? report([id], controller) : false;
  };
  /** The event grew over the limit: drop what is held, start scanning for its id. */
  const startDropping = (part: Uint8Array, controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    const event = Buffer.concat([...held, part]);
    held = [];
    heldBytes = 0;
    dropping = { size: 0, scanner: new TopLevelScanner(), reported: false };
    const at = event.indexOf('data:');
    const from = at === -1 ? event.length : event[at + 5] === 0x20 ? at + 6 : at + 5;
    dropping.size = from;
    return scan(event.subarray(from), controller);
  };
  /** The over-size event ended: report it if its id was never found (the log line), stop dropping. */
  const endDropping = (controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    const over = dropping!.reported ? false : report([], controller);
    dropping = undefined;
    return over;
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        while (!finished) {
          await opts.flow.wait();
          const { done, value } = await reader.read();
          if (done) {
            finished = true;
            if (dropping && !dropping.reported) opts.onOversize([], dropping.size);
            else if (!dropping && heldBytes > 0) controller.enqueue(Buffer.concat(held, heldBytes));
            controller.close();
            return;
          }
          const out: Uint8Array[] = [];
          const flush = () => {
            if (out.length) {
              controller.enqueue(Buffer.concat(out));
              out.length = 0;
            }
          };
          let start = 0;
          for (let i = 0; i < value.length; i++) {
            const b = value[i]!;
            let boundary = false;
            if (b === 0x0a) {
              if (lastWasCR) {
                lastWasCR = false;
                continue;
              }
              if (atLineStart) boundary = true;
              atLineStart = true;
            } else if (b === 0x0d) {
              if (atLineStart) boundary = true;
              atLineStart = true;
              lastWasCR = true;
            } else {
              atLineStart = false;
              lastWasCR = false;
            }
            if (!boundary) continue;
            const seg = value.subarray(start, i + 1);
            start = i + 1;
            if (dropping) {
              flush();
              if (scan(seg, controller) || endDropping(controller)) return;
            } else if (heldBytes + seg.length > opts.maxMessageSize) {
              flush();
              if (startDropping(seg, controller) || endDropping(controller)) return;
            } else {
              out.push(...held, seg);
              held = [];
              heldBytes = 0;
            }
          }
          const rest = value.subarray(start);
          if (rest.length) {
            if (dropping) {
              if (scan(rest, controller)) {
                flush();
                return;
              }
            } else if (heldBytes + rest.length > opts.maxMessageSize) {
              flush();
              if (startDropping(rest, controller)) return;
            } else {
              // Copy: a small remainder must not pin the whole read chunk.
              held.push(rest.length * 2 < value.length ? Uint8Array.prototype.slice.call(rest) : rest);
              heldBytes += rest.length;
            }
          }
          if (out.length) {
            flush();
            return;
          }
        }
      },
      cancel(reason) {
        finished = true;
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
