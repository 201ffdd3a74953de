/**
 * The fetch HTTP upstreams read through: SSE events passed on whole, over-size
 * ones dropped and answered for their id, whatever the line endings. The
 * "server" is a Response built in the test (the e2e file has real servers).
 */
import { describe, expect, it } from 'vitest';
import { boundedFetch } from '../../../src/agent/upstream/bounded-fetch.js';
import type { JsonRpcId } from '../../../src/tunnel/jsonrpc.js';

function sse(chunks: string[]): typeof fetch {
  return () =>
    Promise.resolve(
      new Response(
        new ReadableStream({
          start(c) {
            for (const x of chunks) c.enqueue(new TextEncoder().encode(x));
            c.close();
          },
        }),
        { headers: { 'content-type': 'text/event-stream' } },
      ),
    );
}

async function run(chunks: string[], max: number, body?: unknown) {
  const oversize: Array<{ ids: JsonRpcId[]; size: number }> = [];
  const f = boundedFetch({
    maxMessageSize: max,
    flow: { wait: async () => {} },
    onOversize: (ids, size) => oversize.push({ ids, size }),
    fetch: sse(chunks),
  });
  const res = await f('http://127.0.0.1/', body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  return { text: await res.text(), oversize };
}

const ev = (data: string, nl = '\n') => `event: message${nl}data: ${data}${nl}${nl}`;

describe('boundedFetch: SSE', () => {
  it('passes events through unchanged with LF, CRLF and CR line endings, however the bytes are chunked', async () => {
    const all = ev('{"a":1}') + ev('{"b":2}', '\r\n') + ev('{"c":3}', '\r');
    for (const size of [1, 3, 7, all.length]) {
      const chunks: string[] = [];
      for (let i = 0; i < all.length; i += size) chunks.push(all.slice(i, i + size));
      const { text, oversize } = await run(chunks, 1000);
      expect(text).toBe(all);
      expect(oversize).toEqual([]);
    }
  });

  it('drops an over-size event on a standalone stream, finds its id, and passes the next ones', async () => {
    const big = `{"jsonrpc":"2.0","id":"big-1","result":{"text":"${'x'.repeat(5000)}"}}`;
    const { text, oversize } = await run(
      [ev('{"a":1}'), ev(big).slice(0, 2000), ev(big).slice(2000), ev('{"b":2}', '\r\n')],
      1000,
    );
    expect(text).toBe(ev('{"a":1}') + ev('{"b":2}', '\r\n'));
    expect(oversize).toHaveLength(1);
    expect(oversize[0]!.ids).toEqual(['big-1']);
  });

  it("on a POST's stream, answers the POST's request ids once and ends the stream", async () => {
    const { text, oversize } = await run(
      [ev('{"a":1}'), `data: ${'y'.repeat(3000)}`, 'more', ev('{"never":1}')],
      1000,
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'x' } },
    );
    expect(text).toBe(ev('{"a":1}'));
    expect(oversize.map((o) => o.ids)).toEqual([[7]]);
  });

  it('adds the 2026-07-28 headers to a request that carries its protocol version in _meta', async () => {
    let seen: Headers | undefined;
    const f = boundedFetch({
      maxMessageSize: 1000,
      flow: { wait: () => Promise.resolve() },
      onOversize: () => {},
      fetch: ((_u: unknown, init: RequestInit) => {
        seen = new Headers(init.headers);
        return Promise.resolve(new Response('{}', { headers: { 'content-type': 'application/json' } }));
      }) as typeof fetch,
    });
    await f('http://127.0.0.1/', {
      method: 'POST',
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
      }),
    });
    expect(seen?.get('mcp-protocol-version')).toBe('2026-07-28');
    expect(seen?.get('mcp-method')).toBe('tools/list');
  });
});
