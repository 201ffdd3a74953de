/**
 * The stdio upstream's writes to the server: messages sent in one turn of the
 * event loop arrive each as one line, in order, large ones intact; and
 * backpressure holds: `send` says "wait" once the pipe is full, and
 * `onDrain` comes only once the server reads again.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { StdioUpstream } from '../../../src/agent/upstream/stdio.js';
import type { StdioServerConfig } from '../../../src/agent/servers.js';
import { Logger } from '../../../src/util/log.js';
import { until } from '../../helpers/until.js';

/**
 * A server that reads stdin only after SIGUSR2 (or at once with READ_NOW),
 * and answers each line with {"n": <index>, "len": <bytes>, "sha": <first 16 hex of sha256>}.
 */
const SERVER = `
const { createHash } = require('node:crypto');
let buf = Buffer.alloc(0), n = 0;
function read() {
  process.stdin.on('data', (c) => {
    buf = Buffer.concat([buf, c]);
    let i;
    while ((i = buf.indexOf(10)) !== -1) {
      const line = buf.subarray(0, i);
      buf = buf.subarray(i + 1);
      process.stdout.write(JSON.stringify({ n: n++, len: line.length, sha: createHash('sha256').update(line).digest('hex').slice(0, 16) }) + '\\n');
    }
  });
}
if (process.env.READ_NOW) read(); else process.on('SIGUSR2', read);
setInterval(() => {}, 1 << 30);
process.stdout.write('{"ready":true}\\n');
`;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

interface Harness {
  upstream: StdioUpstream;
  answers: Array<{ n: number; len: number; sha: string }>;
  drains: number;
}

const running: StdioUpstream[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((u) => u.stop()));
});

async function start(readNow: boolean): Promise<Harness> {
  const config: StdioServerConfig = {
    transport: 'stdio',
    command: process.execPath,
    args: ['-e', SERVER],
    env: readNow ? { READ_NOW: '1' } : {},
    inheritEnv: [],
  };
  const h: Harness = { upstream: undefined as unknown as StdioUpstream, answers: [], drains: 0 };
  let ready = false;
  h.upstream = new StdioUpstream(
    'writer',
    config,
    {
      onMessage: (m) => {
        const v = JSON.parse(m.toString()) as { ready?: true; n: number; len: number; sha: string };
        if (v.ready) ready = true;
        else h.answers.push(v);
      },
      onClose: () => {},
      onDrain: () => h.drains++,
    },
    new Logger({ level: 'silent' }),
    { maxMessageSize: 32 * 1024 * 1024, stopGraceMs: 2000 },
  );
  running.push(h.upstream);
  await h.upstream.start();
  await until(() => ready, 'the test server to start');
  return h;
}

const message = (i: number, size: number) => {
  const head = `{"jsonrpc":"2.0","id":${i},"method":"tools/call","params":{"name":"echo","arguments":{"pad":"`;
  const tail = '"}}}';
  return Buffer.from(head + 'x'.repeat(Math.max(0, size - head.length - tail.length)) + tail);
};

describe('stdio upstream writes', () => {
  it('messages sent in one turn arrive as separate lines, in order, a 1 MiB one among them intact', async () => {
    const h = await start(true);
    const sent = [message(1, 100), message(2, 200), message(3, 1024 * 1024), message(4, 50), message(5, 3000)];
    for (const m of sent) h.upstream.send(m);
    await until(() => h.answers.length === sent.length, 'all five lines');
    expect(h.answers.map((a) => a.n)).toEqual([0, 1, 2, 3, 4]);
    expect(h.answers.map((a) => a.len)).toEqual(sent.map((m) => m.length));
    expect(h.answers.map((a) => a.sha)).toEqual(sent.map(sha));
  });

  it('a server that does not read: send says wait, and onDrain comes only after it reads everything out', async () => {
    const h = await start(false);
    const big = message(1, 4 * 1024 * 1024);
    expect(h.upstream.send(big)).toBe(false);
    expect(h.upstream.send(message(2, 100))).toBe(false);
    // The pipe holds far less than 4 MiB: the write cannot finish while the server does not read.
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    expect(h.drains).toBe(0);
    expect(h.answers).toHaveLength(0);
    process.kill(Number(h.upstream.describe().replace('pid ', '')), 'SIGUSR2');
    await until(() => h.drains > 0, 'onDrain once the server reads');
    await until(() => h.answers.length === 2, 'both lines');
    expect(h.answers.map((a) => a.len)).toEqual([big.length, message(2, 100).length]);
    expect(h.answers[0]!.sha).toBe(sha(big));
  });
});
