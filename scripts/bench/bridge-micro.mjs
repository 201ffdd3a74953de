#!/usr/bin/env node
/**
 * In-process micro-benchmark of the bridge's own work per call (issue 16):
 * a real Bridge (line framer, classification, in-flight map, reliable
 * channel, acks, stdout writer) on a stand-in socket that costs nothing, so
 * `ws`, TLS and the pipes are not measured. Each round: BATCH requests on
 * stdin in one turn, their BATCH answers from the "proxy" in the next, with
 * the proxy's ack; CPU µs per call (request + answer), five rounds. The
 * same loop without a bridge (a line splitter, a send, a corked stdout
 * write: what the bench's floor relay does) is printed first, for scale.
 * Run after `npm run build`; ROOT=<other checkout> measures another build.
 *
 *   node scripts/bench/bridge-micro.mjs             # N=100000 calls per round, BATCH=64
 *   BATCH=1 node scripts/bench/bridge-micro.mjs
 */
import { EventEmitter } from 'node:events';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = process.env.ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const load = (path) => import(pathToFileURL(join(ROOT, 'dist', path)).href);
const { Bridge } = await load('bridge/bridge.js');
const { FrameHold } = await load('tunnel/frame-hold.js');
const { Logger } = await load('util/log.js');

const N = Number(process.env.N ?? 100_000);
const BATCH = Number(process.env.BATCH ?? 64);

/** What the tunnel needs of a WebSocket, doing nothing. */
class NullSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  isPaused = false;
  frames = 0;
  send() {
    this.frames++;
  }
  ping() {}
  pause() {
    this.isPaused = true;
  }
  resume() {
    this.isPaused = false;
  }
  close() {}
  terminate() {}
}

class Input extends EventEmitter {
  paused = false;
  isPaused() {
    return this.paused;
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
}

const nullOutput = () =>
  new Writable({
    writev(_chunks, cb) {
      cb();
    },
    write(_chunk, _enc, cb) {
      cb();
    },
  });

const request = (id) =>
  Buffer.from(
    `{"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}},"jsonrpc":"2.0","id":${id}}\n`,
  );
const answer = (id) =>
  Buffer.from(`{"result":{"content":[{"type":"text","text":"Echo: hello"}]},"jsonrpc":"2.0","id":${id}}`);
const nextTurn = () => new Promise((r) => setImmediate(r));

/** Rounds of N calls through `input` (stdin) and `socket` (the proxy's frames); CPU µs per call. */
async function measure(input, socket) {
  let id = 0;
  const calls = async (n) => {
    for (let i = 0; i < n; i += BATCH) {
      const first = id + 1;
      for (let k = 0; k < BATCH; k++) input.emit('data', request(++id));
      await nextTurn();
      for (let x = first; x <= id; x++) socket.emit('message', answer(x), true);
      socket.emit('message', Buffer.from(`{"type":"ack","received":${id}}`), false);
      await nextTurn();
    }
  };
  await calls(50_000);
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const t = process.cpuUsage();
    await calls(N);
    const u = process.cpuUsage(t);
    rounds.push(((u.user + u.system) / N).toFixed(2));
  }
  return rounds.join(' ');
}

// For scale: the floor relay's bridge (split lines, send each, write each answer and a newline, corked).
if (!process.env.NOFLOOR) {
  const input = new Input();
  const socket = new NullSocket();
  const out = nullOutput();
  const NEWLINE = Buffer.from('\n');
  let pending = [];
  input.on('data', (chunk) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      pending.push(chunk.subarray(start, nl));
      socket.send(pending.length === 1 ? pending[0] : Buffer.concat(pending), { binary: true });
      pending = [];
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  });
  socket.on('message', (data, isBinary) => {
    if (!isBinary) return;
    out.cork();
    out.write(data);
    out.write(NEWLINE);
    out.uncork();
  });
  console.log(`floor relay's loop, ${BATCH} per turn: µs per call ${await measure(input, socket)}`);
}

{
  const input = new Input();
  let socket;
  const identity = {
    serial: '01',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 3_600_000),
    keyPem: '',
    certPem: '',
    caPems: [],
  };
  const bridge = new Bridge({
    server: 'everything',
    identityPath: join(ROOT, 'no-such-dir', 'identity'),
    proxy: { host: '127.0.0.1', port: 1 },
    extraCa: [],
    maxMessageSize: 64 * 1024 * 1024,
    keepaliveMs: 60_000,
    connectRetries: 0,
    input,
    output: nullOutput(),
    log: new Logger({ sink: () => {} }),
    loadIdentity: () => Promise.resolve(identity),
    dial: () => {
      socket = new NullSocket();
      const hello = {
        type: 'hello',
        session: 's',
        resumeToken: 't',
        server: 'everything',
        resumed: false,
        received: 0,
        graceMs: 1,
      };
      return Promise.resolve({ socket, hello, held: new FrameHold(socket) });
    },
  });
  void bridge.run();
  while (!socket) await nextTurn();
  const result = await measure(input, socket);
  // Every request went out as a frame (the bridge was connected throughout), plus its acks.
  if (socket.frames < 50_000 + 5 * N) throw new Error(`the bridge sent ${socket.frames} frames, not every request`);
  console.log(`bridge, ${BATCH} per turn: µs per call ${result}`);
}
process.exit(0);
