#!/usr/bin/env node
/**
 * Memory bounds against untrusted MCP servers (issue: "servers are not trusted
 * either"), measured, not asserted: the proxy's RSS before and after each
 * attack, with a client that stops reading where that is the point.
 *
 *   npm run build && node scripts/untrusted-memory.mjs
 *
 * Scenarios (each against a fresh session; all on 127.0.0.1):
 *   spare      a warm spare floods stdout before any session exists
 *   stdout     a stdio server floods small notifications to a client that does not read
 *   sse        an HTTP server floods SSE notifications to a client that does not read
 *   http-body  an HTTP server answers with a 100 MiB JSON body
 *   stderr     a stdio server writes 64 MiB of stderr without a newline
 *
 * Prints one line per scenario: proxy RSS before → after (and peak), and for
 * the HTTP ones how many bytes the server managed to write.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CLI = join(ROOT, 'bin', 'mcp-access.js');
const HOSTILE = join(ROOT, 'test/fixtures/servers/hostile-server.mjs');
const HOSTILE_HTTP = join(ROOT, 'test/fixtures/servers/hostile-http-server.mjs');
const MiB = 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'mcp-access-untrusted-'));
const children = [];
const started = (p) => {
  children.push(p);
  return p;
};

function rss(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
/** Reset the peak (VmHWM) so that each scenario reports its own. */
function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* not permitted: peaks then accumulate */
  }
}
const mib = (b) => `${(b / MiB).toFixed(0)} MiB`;

function waitFor(stream, re) {
  return new Promise((res, rej) => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (t) => {
      buf += t;
      const m = re.exec(buf);
      if (m) {
        res(m);
        buf = '';
      }
    });
    stream.once('end', () => rej(new Error(`ended before ${re}`)));
  });
}

const cli = (args) => execFileSync(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });

/** A bridge whose stdout we do not read (when `stall`): the tunnel fills, the proxy must stop reading the server. */
function bridge(server, { stall }) {
  const p = started(
    spawn(process.execPath, [CLI, 'connect', '-i', join(dir, 'id'), '--proxy', address, server], {
      stdio: ['pipe', 'pipe', 'ignore'],
    }),
  );
  if (stall) p.stdout.pause();
  else p.stdout.resume();
  const send = (m) => p.stdin.write(`${JSON.stringify(m)}\n`);
  send({
    jsonrpc: '2.0',
    id: 'i',
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'mem', version: '1' } },
  });
  send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    p,
    call: (id, name, args = {}) =>
      send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }),
  };
}

let address;
let proxy;
async function main() {
  cli(['ca', 'init', '--dir', join(dir, 'ca'), '--cluster', 'mem']);
  cli([
    'identity',
    'issue',
    '--ca-dir',
    join(dir, 'ca'),
    '--user',
    'mem',
    '--roles',
    'all',
    '--ttl',
    '1h',
    '--out',
    join(dir, 'id'),
  ]);
  const spareFlood = join(dir, 'spare-flood.mjs');
  writeFileSync(
    spareFlood,
    `const line = JSON.stringify({jsonrpc:'2.0',method:'notifications/message',params:{level:'info',data:'y'.repeat(60000)}})+'\\n';
let n = 0; const go = () => { while (n++ < 40000) { if (!process.stdout.write(line)) return process.stdout.once('drain', go); } }; go(); setInterval(() => {}, 1e6);\n`,
  );
  const http = started(spawn(process.execPath, [HOSTILE_HTTP], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const httpPort = (await waitFor(http.stdout, /listening on (\d+)/))[1];
  const srv = (name, extra) => ({ name, description: name, labels: { env: 'mem' }, ...extra });
  const config = {
    cluster: 'mem',
    listen: '127.0.0.1:0',
    ca_dir: join(dir, 'ca'),
    log_level: 'warn',
    sessions: { prestart: true },
    servers: [
      srv('spareflood', { command: process.execPath, args: [spareFlood] }),
      srv('hostile', { command: process.execPath, args: [HOSTILE] }),
      srv('http', { url: `http://127.0.0.1:${httpPort}/mcp` }),
    ],
    roles: [
      {
        kind: 'role',
        version: 'v7',
        metadata: { name: 'all' },
        spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } } },
      },
    ],
  };
  writeFileSync(join(dir, 'proxy.yaml'), JSON.stringify(config));
  const before = Date.now();
  proxy = started(
    spawn(process.execPath, [CLI, 'proxy', 'start', '--config', join(dir, 'proxy.yaml'), '--log-level', 'info'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  address = `127.0.0.1:${(await waitFor(proxy.stderr, /listening on [^\s]+:(\d+)/))[1]}`;
  proxy.stderr.resume();
  const report = (name, a, b, extra = '') =>
    console.log(`${name.padEnd(10)} proxy RSS ${mib(a.rss)} → ${mib(b.rss)} (peak ${mib(b.hwm)})${extra}`);

  // spare: the spare of "spareflood" started with the proxy and writes 2.4 GB if it may.
  let a = rss(proxy.pid);
  await sleep(5000);
  report('spare', a, rss(proxy.pid), ` after ${((Date.now() - before) / 1000).toFixed(0)} s with no client`);

  resetPeak(proxy.pid);
  a = rss(proxy.pid);
  const s1 = bridge('hostile', { stall: true });
  s1.call(1, 'flood', { mb: 512 });
  await sleep(8000);
  report('stdout', a, rss(proxy.pid), ' (client not reading; 512 MiB offered)');
  s1.p.kill();

  resetPeak(proxy.pid);
  a = rss(proxy.pid);
  const s2 = bridge('http', { stall: true });
  s2.call(1, 'sse_flood', { mb: 512 });
  await sleep(8000);
  const s2b = bridge('http', { stall: false });
  let statsText = '';
  s2b.p.stdout.setEncoding('utf8');
  s2b.p.stdout.on('data', (t) => {
    statsText += t;
  });
  s2b.call(2, 'stats');
  await sleep(3000);
  const written = /sse_flood\\":(\d+)/.exec(statsText)?.[1];
  report(
    'sse',
    a,
    rss(proxy.pid),
    ` (client not reading; server wrote ${written ? mib(Number(written)) : '?'} of 512 MiB)`,
  );
  s2.p.kill();

  resetPeak(proxy.pid);
  a = rss(proxy.pid);
  s2b.call(3, 'huge_json', { mb: 100 });
  await sleep(4000);
  report('http-body', a, rss(proxy.pid), ' (100 MiB JSON body; answered with an error)');

  resetPeak(proxy.pid);
  a = rss(proxy.pid);
  const s3 = bridge('hostile', { stall: false });
  s3.call(1, 'stderr_flood', { mb: 64 });
  await sleep(8000);
  report('stderr', a, rss(proxy.pid), ' (64 MiB without a newline)');
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    // The proxy stops its upstreams (and the spares) on SIGTERM; the rest are ours.
    if (proxy && proxy.exitCode === null) {
      const gone = new Promise((r) => proxy.once('exit', r));
      proxy.kill('SIGTERM');
      await Promise.race([gone, sleep(10_000)]);
    }
    for (const c of children.reverse()) {
      if (c.exitCode === null)
        try {
          c.kill('SIGKILL');
        } catch {
          /* gone */
        }
    }
    rmSync(dir, { recursive: true, force: true });
  });
