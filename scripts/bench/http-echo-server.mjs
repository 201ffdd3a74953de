#!/usr/bin/env node
/**
 * A minimal stateless Streamable HTTP MCP server for `npm run bench:sessions`:
 * one process that every session shares, as cheap per request as it gets
 * (no SDK server, no session state), so that the figures are about the proxy
 * and the agent rather than the upstream. It answers `initialize`,
 * `tools/list`, `tools/call echo` (returns its `text`) and `ping` with
 * `application/json`, notifications with 202, GET with 405 (no server
 * stream). Listens on 127.0.0.1, a free port, printed as `listening on PORT`.
 */
import { createServer } from 'node:http';

const TOOLS = [
  {
    name: 'echo',
    description: 'Returns its text',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
  },
];

function answer(msg) {
  switch (msg.method) {
    case 'initialize':
      return {
        protocolVersion: msg.params?.protocolVersion ?? '2025-06-18',
        capabilities: { tools: {} },
        serverInfo: { name: 'bench-http-echo', version: '1.0.0' },
      };
    case 'tools/list':
      return { tools: TOOLS };
    case 'tools/call':
      return { content: [{ type: 'text', text: String(msg.params?.arguments?.text ?? '') }] };
    case 'ping':
      return {};
    default:
      return undefined;
  }
}

const server = createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(req.method === 'DELETE' ? 200 : 405, { allow: 'POST' }).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let msg;
    try {
      msg = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (msg.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    const result = answer(msg);
    const body = JSON.stringify(
      result === undefined
        ? { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `no method ${msg.method}` } }
        : { jsonrpc: '2.0', id: msg.id, result },
    );
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening on ${server.address().port}\n`));
