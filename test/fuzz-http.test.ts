/**
 * A bounded, seeded fuzz test of the proxy's HTTP and upgrade surface, over
 * real TLS against the real proxy process: a couple of thousand odd requests
 * (request lines, targets, query strings, headers, bodies, upgrade headers)
 * without a client certificate, then random control frames on an
 * authenticated tunnel. Asserted: every answer is an HTTP error status (never
 * a 101 without a certificate), the proxy keeps answering /v1/ping, and it
 * logs no internal error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect } from 'node:tls';
import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { TestCluster } from './helpers/cluster.js';
import { Prng } from './helpers/prng.js';
import { SUBPROTOCOL } from '../src/tunnel/control.js';

const SEED = 0x4774;
const HTTP_CASES = 2000;
const PARALLEL = 8;
const CONTROL_FRAMES = 600;

let cluster: TestCluster;

function exchange(data: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port: cluster.port, rejectUnauthorized: false }, () => s.end(data));
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (t: string) => {
      got += t;
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
  });
}

const METHODS = ['GET', 'POST', 'PUT', 'OPTIONS', 'HEAD', 'DELETE', 'get', 'CONNECT', 'G\u0000T', 'X'.repeat(300), ''];
const TARGET_PIECES = [
  '/',
  '//',
  '/v1/ping',
  '/v1/tunnel',
  '/v1/servers',
  '/v1/bot/join',
  '/v1/bot/renew',
  '?',
  '&',
  '=',
  '%',
  '%zz',
  '%ff',
  '%00',
  '%2F',
  '#',
  ':',
  '@',
  '..',
  '*',
  'http://x',
  '//a:99999',
  'server=',
  'resume=',
  'received=-1',
  'received=1e999',
  '\u00e9',
  '\u202e',
  ' ',
  '\t',
  '+',
  ';',
  'a'.repeat(5000),
];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 extra', 'HTTP/9', ''];
const HEADERS = [
  'Host: proxy',
  'Host:',
  'Connection: Upgrade',
  'Connection: close',
  'Connection: keep-alive, Upgrade',
  'Upgrade: websocket',
  'Upgrade: h2c',
  'Upgrade: \u0000',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Key: !!',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Version: 99',
  `Sec-WebSocket-Protocol: ${SUBPROTOCOL}`,
  'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
  'Content-Length: 5',
  'Content-Length: -1',
  'Content-Length: 99999999999999999999',
  'Content-Length: 1, 2',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip, chunked',
  'Expect: 100-continue',
  'X-Forwarded-For: 1.2.3.4',
  'Content-Type: application/json',
  'Bad Header: x',
  ': empty',
  'X-A: \r',
  'X-B: \u00ff\u00fe',
  `X-Big: ${'b'.repeat(9000)}`,
  'Cookie: a=b',
];
const BODIES = [
  '',
  '{}',
  '{"token":"x"',
  '0\r\n\r\n',
  'zz\r\nhello\r\n0\r\n\r\n',
  '\u0000\u0001\u0002',
  'x'.repeat(70_000),
];

function request(rng: Prng): Buffer {
  let target = '';
  for (let n = 1 + rng.int(5); n > 0; n--) target += rng.pick(TARGET_PIECES);
  if (rng.chance(0.5) && !target.startsWith('/')) target = `/${target}`;
  const lines = [`${rng.pick(METHODS)} ${target} ${rng.pick(VERSIONS)}`];
  for (let n = rng.int(8); n > 0; n--) lines.push(rng.pick(HEADERS));
  if (rng.chance(0.3))
    lines.push(
      ...[
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ],
    );
  const eol = rng.chance(0.9) ? '\r\n' : rng.pick(['\n', '\r', '\r\r\n']);
  let text = `${lines.join(eol)}${eol}${eol}${rng.pick(BODIES)}`;
  if (rng.chance(0.1)) text = text.slice(0, rng.int(text.length));
  const bytes = Buffer.from(text, 'latin1');
  if (rng.chance(0.1) && bytes.length > 0) bytes[rng.int(bytes.length)] = rng.int(256);
  return bytes;
}

async function ping(): Promise<void> {
  const answer = await exchange(Buffer.from('GET /v1/ping HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n'));
  expect(answer).toMatch(/^HTTP\/1\.1 200 /);
}

beforeAll(async () => {
  cluster = await TestCluster.start({ config: { audit: { path: './audit.jsonl' } } });
});
afterAll(async () => {
  await cluster?.close();
});

describe('fuzz: the HTTP surface', () => {
  it(`${HTTP_CASES} seeded odd requests without a certificate: error statuses only, never 101, the proxy keeps answering`, async () => {
    const rng = new Prng(SEED);
    const statuses = new Map<string, number>();
    for (let done = 0; done < HTTP_CASES; done += PARALLEL) {
      const batch = Array.from({ length: PARALLEL }, () => request(rng));
      const answers = await Promise.all(batch.map(exchange));
      answers.forEach((a, i) => {
        const status = /^HTTP\/1\.[01] (\d{3}) /.exec(a)?.[1] ?? (a === '' ? 'closed' : 'garbage');
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        expect(
          ['closed', '200', '400', '401', '404', '408', '413', '431', '503'],
          `case ${done + i}: ${JSON.stringify(batch[i]!.toString('latin1').slice(0, 300))} → ${a.slice(0, 200)}`,
        ).toContain(status);
        if (status === '200') expect(a).toContain('"version"'); // only /v1/ping may answer 200
      });
      if (done % 400 === 0) await ping();
    }
    await ping();
    expect(statuses.get('400') ?? 0).toBeGreaterThan(100);
    expect(cluster.proxy!.exitCode).toBeNull();
    expect(cluster.proxyLog).not.toMatch(/INTERNAL|TypeError|RangeError|URIError|\n\s+at /);
  }, 120_000);

  it(`${CONTROL_FRAMES} random control frames on an authenticated tunnel: the proxy keeps answering`, async () => {
    const rng = new Prng(SEED + 1);
    const id = await cluster.issue('fuzzer', ['all']);
    const blocks = (await readFile(id, 'utf8')).match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----/g)!;
    const frames = [
      () => JSON.stringify({ type: 'ack', received: rng.pick<unknown>([-1, 1e308, 'x', null, 2 ** 60, 1.5, {}, 3]) }),
      () => JSON.stringify({ type: rng.pick(['hello', 'fatal', 'resume', '__proto__', '', 'ack']), code: 'x' }),
      () => '{"type":"ack","received":1,"type":"fatal"}',
      // A fatal frame from the bridge's side: read (the tunnel end reads them both ways), never trusted.
      () =>
        JSON.stringify({
          type: 'fatal',
          code: rng.pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'ACCESS_DENIED', 'SESSION_LOCKED']),
          message: rng.pick<unknown>(['m', {}, null, 'x'.repeat(10_000)]),
          hint: rng.pick<unknown>(['h', 7, undefined]),
        }),
      () => rng.pick(['', 'null', '[]', '{', '"ack"', '\u0000', 'x'.repeat(70_000)]),
    ];
    let sent = 0;
    while (sent < CONTROL_FRAMES) {
      const ws = new WebSocket(`wss://127.0.0.1:${cluster.port}/v1/tunnel?server=test`, SUBPROTOCOL, {
        key: blocks[0],
        cert: blocks[1],
        rejectUnauthorized: false,
      });
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      ws.on('error', () => {});
      await new Promise<void>((r) => ws.once('message', () => r()));
      for (let n = 0; n < 100 && ws.readyState === WebSocket.OPEN; n++, sent++) {
        if (rng.chance(0.1)) ws.ping(Buffer.from(rng.pick(['', 'x', '\u0000'.repeat(100)])));
        else ws.send(rng.pick(frames)());
      }
      // Any close code a client may pick, final ones included: the session just waits for a resume.
      ws.close(rng.pick([1000, 4000, 4002, 4401, 4403, 4409, 4500, 4999]));
      await closed;
      await ping();
    }
    expect(cluster.proxy!.exitCode).toBeNull();
    expect(cluster.proxyLog).not.toMatch(/INTERNAL|TypeError|RangeError|\n\s+at /);
  }, 60_000);
});
