#!/usr/bin/env node
/**
 * The architecture floor, bridge side: stdin lines → one WebSocket message
 * each over mTLS → the relay proxy, and back to stdout. Reads the identity
 * file's PEM blocks (key, certificate, CAs) and nothing else.
 *
 *   node relay-bridge.mjs IDENTITY_FILE HOST:PORT
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { splitLines } from './lines.mjs';

const [identity, address] = process.argv.slice(2);
const pem = readFileSync(identity, 'utf8').match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----/g) ?? [];
const ws = new WebSocket(`wss://${address}/`, {
  key: pem[0],
  cert: pem[1],
  ca: pem.slice(2),
  perMessageDeflate: false,
  maxPayload: 80 << 20,
});
const NEWLINE = Buffer.from('\n');
const early = [];

ws.on('open', () => {
  for (const line of early) ws.send(line, { binary: true });
  early.length = 0;
});
ws.on('message', (data) => {
  process.stdout.cork();
  process.stdout.write(data);
  process.stdout.write(NEWLINE);
  process.stdout.uncork();
});
ws.on('close', () => process.exit(0));
ws.on('error', (err) => {
  process.stderr.write(`relay bridge: ${err.message}\n`);
  process.exit(1);
});
process.stdin.on(
  'data',
  splitLines((line) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(line, { binary: true });
    else early.push(line);
  }),
);
process.stdin.on('end', () => ws.close());
