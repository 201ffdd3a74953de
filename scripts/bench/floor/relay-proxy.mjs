#!/usr/bin/env node
/**
 * The architecture floor, proxy side: the same shape as the mcp-access proxy
 * (HTTPS that requires a client certificate from the cluster CA, one
 * WebSocket per session, one child MCP server per session) and nothing else —
 * no roles, no audit, no parsing, no resumable sessions. What the bench
 * measures through it is the cost of the extra processes, TLS and WebSocket
 * themselves, which no implementation of this design can avoid.
 *
 *   node relay-proxy.mjs CA_DIR PORT COMMAND [ARGS...]   (prints "listening on" to stderr)
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { WebSocketServer } from 'ws';
import { splitLines } from './lines.mjs';

const [caDir, port, command, ...args] = process.argv.slice(2);
const https = createServer({
  key: readFileSync(`${caDir}/proxy.key`),
  cert: readFileSync(`${caDir}/proxy.crt`),
  ca: readFileSync(`${caDir}/ca.crt`),
  requestCert: true,
  rejectUnauthorized: true,
});
const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 80 << 20 });
const NEWLINE = Buffer.from('\n');

wss.on('connection', (ws) => {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdout.on(
    'data',
    splitLines((line) => ws.send(line, { binary: true })),
  );
  ws.on('message', (data) => {
    child.stdin.cork();
    child.stdin.write(data);
    child.stdin.write(NEWLINE);
    child.stdin.uncork();
  });
  ws.on('close', () => child.kill());
  child.on('exit', () => ws.close());
});
https.listen(Number(port), '127.0.0.1', () => process.stderr.write(`relay: listening on 127.0.0.1:${port}\n`));
process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  process.exit(0);
});
