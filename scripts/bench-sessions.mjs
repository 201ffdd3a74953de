#!/usr/bin/env node
/**
 * `npm run bench:sessions`: one proxy and one agent holding many concurrent
 * sessions (1,000 by default), mostly idle with a trickle of calls, and the
 * HA path (two proxies behind HAProxy, the agent connected to both) next to
 * the single-proxy path. See docs/performance.md, "Many sessions".
 *
 *   node scripts/bench-sessions.mjs [--sessions N] [--quick] [--bridges N] [--no-ha] [--json FILE] [--keep]
 *
 * The sessions are opened by this one Node process speaking the tunnel
 * protocol (docs/protocol.md) over mTLS, as `mcp-access connect` does, not by
 * 1,000 `connect` processes (~57 MB each). A few real `connect` bridges
 * (--bridges, default 20) with the SDK client show the bridge's own cost.
 * The upstream is ONE Streamable HTTP MCP server that every session shares
 * (bench/http-echo-server.mjs: stateless, no SDK, so it costs little per
 * call), enrolled at the agent as `url:`.
 *
 * --sessions N  concurrent sessions at the agent (default 1000)
 * --quick       a small smoke run (50 sessions, short phases)
 * --bridges N   real `mcp-access connect` bridges opened next to them (default 20; 0 skips)
 * --no-ha       skip the HAProxy comparison
 * --json FILE   also write the raw results as JSON
 * --keep        keep the temp directory (CA, identities, configs, audit logs)
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { parseArgs, promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import WebSocket from 'ws';
import { cpuMs, memory, sleep } from './bench/clients.mjs';
import { median, percentile } from './bench/measure.mjs';
import { CLI, MINIMAL_ENV, ROOT, freePort } from './bench/setup.mjs';

const run = promisify(execFile);
const { values: opt } = parseArgs({
  options: {
    sessions: { type: 'string' },
    quick: { type: 'boolean', default: false },
    bridges: { type: 'string' },
    'no-ha': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(
    'usage: node scripts/bench-sessions.mjs [--sessions N] [--quick] [--bridges N] [--no-ha] [--json FILE] [--keep]\n',
  );
  process.exit(0);
}

const PLAN = opt.quick
  ? { sessions: 50, openInFlight: 8, rate: 5, trickleS: 5, idleS: 3, bridges: 3, haSessions: 4, seq: 200, tp: 1000 }
  : {
      sessions: 1000,
      openInFlight: 8,
      rate: 5,
      trickleS: 20,
      idleS: 10,
      bridges: 20,
      haSessions: 4,
      seq: 1000,
      tp: 4000,
    };
if (opt.sessions !== undefined) PLAN.sessions = positiveInt(opt.sessions, '--sessions');
if (opt.bridges !== undefined) PLAN.bridges = positiveInt(opt.bridges, '--bridges', true);
const IN_FLIGHT = 64;
const SERVER = 'shared';
const LIMIT = PLAN.sessions + PLAN.bridges + 64;

function positiveInt(text, flag, zeroOk = false) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < (zeroOk ? 0 : 1)) {
    process.stderr.write(`bench-sessions: ${flag} takes a whole number${zeroOk ? '' : ' above 0'} (got ${text})\n`);
    process.exit(2);
  }
  return n;
}

const t0 = performance.now();
const step = (what) =>
  process.stderr.write(`bench-sessions [${((performance.now() - t0) / 1000).toFixed(1)}s] ${what}\n`);
const children = [];
const results = { date: new Date().toISOString(), mode: opt.quick ? 'quick' : 'full', plan: PLAN };
let dir;

// ---- processes --------------------------------------------------------------------

/** Spawn a child whose stderr (or stdout) we scan; resolves with the first match of `ready`. */
function startChild(name, cmd, args, ready, { stream = 'stderr', timeoutMs = 30_000 } = {}) {
  const proc = spawn(cmd, args, { cwd: dir, env: MINIMAL_ENV, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  const log = [];
  const entry = { name, proc, log };
  children.push(entry);
  return new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`${name} not ready within ${timeoutMs} ms:\n${log.slice(-10).join('\n')}`)),
      timeoutMs,
    );
    for (const s of ['stdout', 'stderr']) {
      let partial = '';
      proc[s].setEncoding('utf8');
      proc[s].on('data', (text) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop();
        for (const line of lines) {
          log.push(line);
          if (log.length > 200) log.shift();
          const m = s === stream ? ready.exec(line) : null;
          if (m) {
            clearTimeout(timer);
            res({ ...entry, match: m });
          }
        }
      });
    }
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      rej(new Error(`${name} exited (${sig ?? code}):\n${log.slice(-10).join('\n')}`));
    });
  });
}

async function stopChild(entry) {
  const p = entry.proc;
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function cli(args) {
  try {
    await run(process.execPath, [CLI, ...args], { cwd: ROOT, env: MINIMAL_ENV, timeout: 60_000 });
  } catch (err) {
    throw new Error(`mcp-access ${args.slice(0, 2).join(' ')} failed: ${err.stderr || err.message}`, { cause: err });
  }
}

const ROLE = [
  'roles:',
  '  - kind: role',
  '    version: v7',
  '    metadata: {name: bench}',
  "    spec: {allow: {app_labels: {'*': '*'}, mcp: {tools: ['*']}}}",
];
const SESSIONS = `sessions: {max_per_identity: ${LIMIT}, max_total: ${LIMIT}}`;

async function startProxy(name) {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      'cluster: bench',
      `listen: 127.0.0.1:${port}`,
      `ca_dir: ${JSON.stringify(join(dir, 'ca'))}`,
      'log_level: warn',
      'servers: []',
      ...ROLE,
      SESSIONS,
      `audit: {path: ${JSON.stringify(join(dir, `audit-${name}.jsonl`))}}`,
      '',
    ].join('\n'),
  );
  // log_level warn: the proxy's "listening on" line is a warning-free info line, so wait on the port instead.
  const proc = spawn(process.execPath, [CLI, 'proxy', 'start', '--config', file], {
    cwd: dir,
    env: MINIMAL_ENV,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (t) => {
    log.push(...t.split('\n').filter(Boolean));
    if (log.length > 200) log.splice(0, log.length - 200);
  });
  const entry = { name, proc, log, address: `127.0.0.1:${port}`, port };
  children.push(entry);
  await waitForPort(port, () => proc.exitCode !== null && `${name} exited:\n${log.slice(-10).join('\n')}`);
  return entry;
}

async function waitForPort(port, failed, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((res) => {
      const s = netConnect(port, '127.0.0.1', () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (ok) return;
    const why = failed();
    if (why) throw new Error(why);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function startAgent(name, proxyAddress, upstreamUrl) {
  const { loadCa, issueIdentity, writeIdentityFile } = await import(
    pathToFileURL(join(ROOT, 'dist', 'identity', 'ca.js')).href
  );
  const ca = await loadCa(join(dir, 'ca'));
  const identity = join(dir, `agent-${name}.identity`);
  await writeIdentityFile(
    identity,
    await issueIdentity(ca, {
      user: `agent:${name}`,
      roles: ['system:agent'],
      ttlMs: 3_600_000,
      agent: { name, generation: 1 },
    }),
  );
  const file = join(dir, `agent-${name}.yaml`);
  await writeFile(
    file,
    [
      `proxy: ${proxyAddress}`,
      `identity: ${JSON.stringify(identity)}`,
      'log_level: info',
      'servers:',
      `  - name: ${SERVER}`,
      '    description: one Streamable HTTP server shared by every session',
      '    labels: {env: bench}',
      `    url: ${upstreamUrl}`,
      SESSIONS,
      '',
    ].join('\n'),
  );
  return startChild(
    `agent ${name}`,
    process.execPath,
    [CLI, 'agent', 'start', '--config', file],
    /connected to the proxy/,
  );
}

// ---- a raw tunnel client: many sessions from one process ----------------------------------

let tlsContext;

class Session {
  constructor(address) {
    this.pending = new Map();
    this.received = 0;
    this.nextId = 1;
    this.ackTimer = undefined;
    this.ws = new WebSocket(`wss://${address}/v1/tunnel?server=${SERVER}`, 'mcp-access.v1', {
      secureContext: tlsContext,
      rejectUnauthorized: false,
      perMessageDeflate: false,
    });
    this.hello = new Promise((res, rej) => {
      this.ws.on('message', (data, isBinary) => {
        if (!isBinary) {
          const frame = JSON.parse(data.toString('utf8'));
          if (frame.type === 'hello') res(frame);
          else if (frame.type === 'fatal') this.fatal = frame;
          return;
        }
        this.received++;
        // Acknowledge as the bridge does (after 64 frames or 20 ms), so the session's outbox does not grow.
        this.ackTimer ??= setTimeout(() => {
          this.ackTimer = undefined;
          if (this.ws.readyState === WebSocket.OPEN)
            this.ws.send(JSON.stringify({ type: 'ack', received: this.received }));
        }, 20);
        const msg = JSON.parse(data.toString('utf8'));
        const waiter = msg.id !== undefined && this.pending.get(msg.id);
        if (waiter) {
          this.pending.delete(msg.id);
          if (msg.error) waiter.rej(new Error(`${msg.error.code}: ${msg.error.message}`));
          else waiter.res(msg.result);
        }
      });
      this.ws.on('close', (code, reason) => {
        clearTimeout(this.ackTimer);
        const err = new Error(`tunnel closed ${code} ${this.fatal?.code ?? ''} ${this.fatal?.message ?? reason}`);
        rej(err);
        for (const w of this.pending.values()) w.rej(err);
        this.pending.clear();
      });
      this.ws.on('error', (err) => rej(err));
    });
  }

  request(method, params) {
    const id = this.nextId++;
    return new Promise((res, rej) => {
      this.pending.set(id, { res, rej });
      this.ws.send(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method, params })), { binary: true });
    });
  }

  notify(method) {
    this.ws.send(Buffer.from(JSON.stringify({ jsonrpc: '2.0', method })), { binary: true });
  }

  async echo(text) {
    const r = await this.request('tools/call', { name: 'echo', arguments: { text } });
    if (r?.content?.[0]?.text !== text) throw new Error(`echo answered ${JSON.stringify(r).slice(0, 200)}`);
  }

  close() {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((res) => {
      this.ws.once('close', res);
      this.ws.close(1000);
      setTimeout(() => {
        this.ws.terminate();
        res();
      }, 5000).unref();
    });
  }
}

/** Open a session the way a bridge does: tunnel → hello, initialize → answer, notifications/initialized. */
async function openSession(address) {
  const start = performance.now();
  const s = new Session(address);
  await s.hello;
  const hello = performance.now();
  await s.request('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'bench-sessions', version: '1' },
  });
  s.notify('notifications/initialized');
  return { s, helloMs: hello - start, initMs: performance.now() - start };
}

async function openMany(address, n, inFlight) {
  const sessions = [];
  const helloMs = [];
  const initMs = [];
  let next = 0;
  const errors = [];
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        next++;
        try {
          const o = await openSession(address);
          sessions.push(o.s);
          helloMs.push(o.helloMs);
          initMs.push(o.initMs);
        } catch (err) {
          errors.push(err.message);
        }
      }
    }),
  );
  return { sessions, helloMs, initMs, errors };
}

/** 64 calls outstanding across `sessions` until `total` have completed: calls/s. */
async function throughput(sessions, total) {
  let started = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, w) => {
      const s = sessions[w % sessions.length];
      while (started < total) {
        started++;
        await s.echo('x');
      }
    }),
  );
  return total / ((performance.now() - t) / 1000);
}

// ---- phases ---------------------------------------------------------------------------

const stat = (pid) => ({ ...memory(pid), cpu: cpuMs(pid) });

async function manySessions(proxy, agent, upstream) {
  step(`${PLAN.sessions} sessions, ${PLAN.openInFlight} opening at a time`);
  // One session first, opened and closed, so that the code paths are loaded before the baseline.
  const warm = await openSession(proxy.address);
  await warm.s.echo('warm-up');
  await warm.s.close();
  await sleep(1000);
  const before = { proxy: stat(proxy.proc.pid), agent: stat(agent.proc.pid), upstream: stat(upstream.proc.pid) };
  const opened = await openMany(proxy.address, PLAN.sessions, PLAN.openInFlight);
  if (opened.errors.length) step(`${opened.errors.length} sessions failed to open, e.g. ${opened.errors[0]}`);
  const { sessions } = opened;
  await sleep(2000);
  const after = { proxy: stat(proxy.proc.pid), agent: stat(agent.proc.pid), upstream: stat(upstream.proc.pid) };
  const perSession = (who) => (after[who].rss - before[who].rss) / sessions.length;
  Object.assign(results, {
    opened: sessions.length,
    openErrors: opened.errors.length,
    firstOpenError: opened.errors[0],
    open: {
      helloP50: percentile(opened.helloMs, 50),
      helloP99: percentile(opened.helloMs, 99),
      initP50: percentile(opened.initMs, 50),
      initP99: percentile(opened.initMs, 99),
    },
    memory: { before, after, perSession: { proxy: perSession('proxy'), agent: perSession('agent') } },
    // CPU time spent while the sessions opened (TLS handshakes, upgrades, the agent's data connections, initialize).
    openCpuPerSession: {
      proxy: (after.proxy.cpu - before.proxy.cpu) / sessions.length,
      agent: (after.agent.cpu - before.agent.cpu) / sessions.length,
    },
  });

  step(`idle: ${PLAN.idleS} s with ${sessions.length} sessions open and no calls`);
  const idle0 = { proxy: cpuMs(proxy.proc.pid), agent: cpuMs(agent.proc.pid), t: performance.now() };
  await sleep(PLAN.idleS * 1000);
  const idleS = (performance.now() - idle0.t) / 1000;
  results.idleCpu = {
    seconds: idleS,
    proxy: (cpuMs(proxy.proc.pid) - idle0.proxy) / 10 / idleS,
    agent: (cpuMs(agent.proc.pid) - idle0.agent) / 10 / idleS,
  };

  step(`trickle: ${PLAN.rate} calls/s on random sessions for ${PLAN.trickleS} s`);
  const lat = [];
  const errors = [];
  const calls = [];
  const tr0 = { proxy: cpuMs(proxy.proc.pid), agent: cpuMs(agent.proc.pid), t: performance.now() };
  const timer = setInterval(() => {
    const s = sessions[Math.floor(Math.random() * sessions.length)];
    const t = performance.now();
    calls.push(
      s.echo(`trickle ${calls.length}`).then(
        () => lat.push(performance.now() - t),
        (err) => errors.push(err.message),
      ),
    );
  }, 1000 / PLAN.rate);
  await sleep(PLAN.trickleS * 1000);
  clearInterval(timer);
  await Promise.all(calls);
  const trS = (performance.now() - tr0.t) / 1000;
  results.trickle = {
    calls: calls.length,
    errors: errors.length,
    firstError: errors[0],
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: Math.max(...lat),
    cpu: {
      proxy: (cpuMs(proxy.proc.pid) - tr0.proxy) / 10 / trS,
      agent: (cpuMs(agent.proc.pid) - tr0.agent) / 10 / trS,
    },
  };
  results.memory.end = { proxy: stat(proxy.proc.pid), agent: stat(agent.proc.pid), upstream: stat(upstream.proc.pid) };
  return sessions;
}

/** A few real `mcp-access connect` processes with the SDK client, next to the raw sessions. */
async function realBridges(proxy, identity) {
  if (PLAN.bridges === 0) return;
  step(`${PLAN.bridges} real \`mcp-access connect\` bridges with the SDK client`);
  const clients = [];
  const initMs = [];
  const rss = [];
  const lat = [];
  try {
    for (let i = 0; i < PLAN.bridges; i++) {
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'connect', SERVER, '-i', identity, '--proxy', proxy.address],
        env: MINIMAL_ENV,
        stderr: 'ignore',
      });
      const client = new Client({ name: 'bench-sessions', version: '1' });
      const t = performance.now();
      await client.connect(transport);
      initMs.push(performance.now() - t);
      clients.push({ client, transport });
    }
    await sleep(500);
    for (const { transport } of clients) rss.push(memory(transport.pid)?.rss ?? NaN);
    for (let i = 0; i < 5; i++)
      for (const { client } of clients) {
        const t = performance.now();
        await client.callTool({ name: 'echo', arguments: { text: 'b' } });
        lat.push(performance.now() - t);
      }
    results.bridges = {
      count: clients.length,
      initP50: median(initMs),
      initP99: percentile(initMs, 99),
      rssMedian: median(rss),
      rssTotal: rss.reduce((a, b) => a + b, 0),
      callP50: median(lat),
      callP99: percentile(lat, 99),
    };
  } finally {
    await Promise.all(clients.map(({ client }) => client.close().catch(() => {})));
  }
}

async function haComparison(upstreamUrl) {
  if (opt['no-ha']) return;
  if (spawnSync('haproxy', ['-v']).status !== 0) {
    results.ha = { skipped: 'haproxy is not on PATH' };
    step('HA comparison skipped: haproxy is not on PATH');
    return;
  }
  step('HA: two proxies behind HAProxy, an agent connected to both through it');
  const p1 = await startProxy('proxy-ha-1');
  const p2 = await startProxy('proxy-ha-2');
  const lbPort = await freePort();
  await writeFile(
    join(dir, 'haproxy.cfg'),
    [
      'global',
      '  maxconn 4000',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 1h',
      '  timeout server 1h',
      '  retries 3',
      '  option redispatch',
      'frontend mcp',
      `  bind 127.0.0.1:${lbPort}`,
      '  default_backend proxies',
      'backend proxies',
      '  balance roundrobin',
      '  option httpchk GET /v1/ping',
      '  http-check expect status 200',
      `  server p1 ${p1.address} check check-ssl verify none inter 1000 fall 2 rise 1`,
      `  server p2 ${p2.address} check check-ssl verify none inter 1000 fall 2 rise 1`,
      '',
    ].join('\n'),
  );
  const lb = spawn('haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lbLog = [];
  lb.stderr.setEncoding('utf8');
  lb.stderr.on('data', (t) => lbLog.push(t));
  children.push({ name: 'haproxy', proc: lb, log: lbLog });
  const lbAddress = `127.0.0.1:${lbPort}`;
  await waitForPort(lbPort, () => lb.exitCode !== null && `haproxy exited: ${lbLog.join('')}`);
  await startAgent('bench-ha', lbAddress, upstreamUrl);
  // The agent reaches each replica by dialling the balancer until it has: wait until both route to it.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await Promise.all(
      [p1, p2].map((p) =>
        openSession(p.address).then(
          (o) => (o.s.close(), true),
          () => false,
        ),
      ),
    );
    if (ok.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error('the agent did not reach both replicas within 30 s');
    await sleep(500);
  }
  const paths = { direct: p1.address, balancer: lbAddress };
  const sess = {};
  for (const [path, address] of Object.entries(paths))
    sess[path] = (await openMany(address, PLAN.haSessions, 1)).sessions;
  for (const list of Object.values(sess)) for (const s of list) for (let i = 0; i < 50; i++) await s.echo('w');
  // Sequential calls, the paths alternating in blocks of 100 so a neighbour's load hits both.
  const lat = { direct: [], balancer: [] };
  for (let done = 0; done < PLAN.seq; done += 100)
    for (const path of Object.keys(paths))
      for (let i = 0; i < 100; i++) {
        const s = sess[path][i % sess[path].length];
        const t = performance.now();
        await s.echo('s');
        lat[path].push(performance.now() - t);
      }
  const tp = { direct: [], balancer: [] };
  for (let round = 0; round < 2; round++)
    for (const path of round === 0 ? ['direct', 'balancer'] : ['balancer', 'direct'])
      tp[path].push(await throughput(sess[path], PLAN.tp));
  results.ha = {};
  for (const path of Object.keys(paths))
    results.ha[path] = {
      p50: percentile(lat[path], 50),
      p99: percentile(lat[path], 99),
      tp: median(tp[path]),
      sessions: sess[path].length,
    };
  for (const list of Object.values(sess)) await Promise.all(list.map((s) => s.close()));
}

// ---- report -------------------------------------------------------------------------

const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const kb = (b) => `${(b / 1024).toFixed(1)} KiB`;
const msf = (v) => (v === undefined || Number.isNaN(v) ? '—' : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);
const pct = (v) => `${v.toFixed(1)} % of a core`;

function render(r) {
  const cpu = cpus();
  const lines = [
    `${r.date.slice(0, 16).replace('T', ' ')} UTC · ${r.mode} run · ${cpu.length} cores (${cpu[0]?.model.trim()}) · node ${process.version}`,
    '',
    '| measure | value |',
    '| --- | --- |',
  ];
  const row = (m, v) => lines.push(`| ${m} | ${v} |`);
  if (r.opened !== undefined) {
    const m = r.memory;
    row(
      'concurrent sessions (one proxy, one agent, one shared HTTP server)',
      `${r.opened} of ${r.plan.sessions}${r.openErrors ? ` (${r.openErrors} failed: ${r.firstOpenError})` : ''}`,
    );
    row(
      `open a session: tunnel → hello, p50 / p99 (${r.plan.openInFlight} opening at a time)`,
      `${msf(r.open.helloP50)} / ${msf(r.open.helloP99)}`,
    );
    row('open a session: tunnel → initialize answered, p50 / p99', `${msf(r.open.initP50)} / ${msf(r.open.initP99)}`);
    row(
      'CPU per session opened: proxy / agent (while opening, incl. 2 s settling)',
      `${msf(r.openCpuPerSession.proxy)} / ${msf(r.openCpuPerSession.agent)}`,
    );
    row('proxy RSS before → with the sessions open', `${mb(m.before.proxy.rss)} → ${mb(m.after.proxy.rss)}`);
    row('agent RSS before → with the sessions open', `${mb(m.before.agent.rss)} → ${mb(m.after.agent.rss)}`);
    row('**memory per session: proxy / agent**', `**${kb(m.perSession.proxy)} / ${kb(m.perSession.agent)}**`);
    row(
      'shared HTTP server RSS before → after (for scale)',
      `${mb(m.before.upstream.rss)} → ${mb(m.after.upstream.rss)}`,
    );
    row(
      `CPU while idle (${r.idleCpu.seconds.toFixed(0)} s, no calls): proxy / agent`,
      `${pct(r.idleCpu.proxy)} / ${pct(r.idleCpu.agent)}`,
    );
    row(
      `trickle: ${r.plan.rate} calls/s on random sessions for ${r.plan.trickleS} s: **p50 / p99** (max)`,
      `${msf(r.trickle.p50)} / **${msf(r.trickle.p99)}** (${msf(r.trickle.max)}), ${r.trickle.calls} calls${r.trickle.errors ? `, ${r.trickle.errors} failed: ${r.trickle.firstError}` : ', 0 failed'}`,
    );
    row('CPU during the trickle: proxy / agent', `${pct(r.trickle.cpu.proxy)} / ${pct(r.trickle.cpu.agent)}`);
    row(
      'proxy / agent RSS at the end (peak)',
      `${mb(m.end.proxy.rss)} (${mb(m.end.proxy.hwm)}) / ${mb(m.end.agent.rss)} (${mb(m.end.agent.hwm)})`,
    );
  }
  if (r.bridges) {
    const b = r.bridges;
    row(
      `${b.count} real \`connect\` bridges (SDK client) on top: initialize p50 / p99`,
      `${msf(b.initP50)} / ${msf(b.initP99)}`,
    );
    row('… RSS per bridge process (median) / all of them', `${mb(b.rssMedian)} / ${mb(b.rssTotal)}`);
    row('… echo through a bridge, p50 / p99 (sequential, 5 per bridge)', `${msf(b.callP50)} / ${msf(b.callP99)}`);
  }
  if (r.ha?.skipped) row('HA path', `skipped: ${r.ha.skipped}`);
  else if (r.ha) {
    const { direct: d, balancer: b } = r.ha;
    row(
      `HA: sequential echo p50 (p99), one proxy directly vs HAProxy → 2 proxies (${d.sessions} sessions each)`,
      `${msf(d.p50)} (${msf(d.p99)}) vs ${msf(b.p50)} (${msf(b.p99)})`,
    );
    row(
      `HA: throughput, ${IN_FLIGHT} in flight, calls/s (median of 2 × ${r.plan.tp}), directly vs HAProxy`,
      `${Math.round(d.tp).toLocaleString('en-US')} vs ${Math.round(b.tp).toLocaleString('en-US')} (${(b.tp / d.tp).toFixed(2)}×)`,
    );
  }
  lines.push('');
  lines.push(`- load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

// ---- main -----------------------------------------------------------------------------

let failed;
let cleaning;
const open = [];
const cleanup = () =>
  (cleaning ??= (async () => {
    await Promise.all(open.map((s) => s.close()));
    // Agents first (their last audit events still reach a proxy), then the rest.
    const agents = children.filter((c) => c.name.startsWith('agent'));
    await Promise.all(agents.map(stopChild));
    await Promise.all(children.filter((c) => !agents.includes(c)).map(stopChild));
    if (dir && !opt.keep) await rm(dir, { recursive: true, force: true });
  })());
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    step(`${sig}: stopping every process the bench started`);
    void cleanup().finally(() => process.exit(130));
  });

try {
  dir = await mkdtemp(join(tmpdir(), 'mcp-access-bench-sessions-'));
  step(`CA, identity, shared HTTP server, proxy, agent${opt.keep ? ` (kept: ${dir})` : ''}`);
  await cli(['ca', 'init', '--dir', join(dir, 'ca'), '--cluster', 'bench']);
  const identity = join(dir, 'id');
  await cli([
    'identity',
    'issue',
    '--ca-dir',
    join(dir, 'ca'),
    '--user',
    'bench',
    '--roles',
    'bench',
    '--ttl',
    '1h',
    '--out',
    identity,
  ]);
  const { parseIdentityFile } = await import(pathToFileURL(join(ROOT, 'dist', 'identity', 'identity-file.js')).href);
  const parts = parseIdentityFile(await readFile(identity, 'utf8'), identity);
  tlsContext = createSecureContext({ key: parts.keyPem, cert: parts.certPem, ca: parts.caPems });
  const upstream = await startChild(
    'HTTP server',
    process.execPath,
    [join(ROOT, 'scripts', 'bench', 'http-echo-server.mjs')],
    /listening on (\d+)/,
    { stream: 'stdout' },
  );
  const upstreamUrl = `http://127.0.0.1:${upstream.match[1]}/mcp`;
  const proxy = await startProxy('proxy');
  const agent = await startAgent('bench', proxy.address, upstreamUrl);
  // The announcement follows the welcome: retry the first session briefly.
  for (let i = 0; ; i++) {
    try {
      const o = await openSession(proxy.address);
      await o.s.echo('probe');
      await o.s.close();
      break;
    } catch (err) {
      if (i >= 20) throw new Error(`no call went through the agent: ${err.message}`, { cause: err });
      await sleep(250);
    }
  }
  const sessions = await manySessions(proxy, agent, upstream);
  open.push(...sessions);
  await realBridges(proxy, identity);
  step('closing the sessions');
  await Promise.all(open.splice(0).map((s) => s.close()));
  await stopChild(agent);
  await haComparison(upstreamUrl);
} catch (err) {
  failed = err;
} finally {
  step('stopping every process the bench started');
  await cleanup();
}
if (failed) {
  process.stderr.write(`bench-sessions failed: ${failed.stack ?? failed}\n`);
  for (const c of children)
    if (c.log?.length) process.stderr.write(`last ${c.name} lines:\n${c.log.slice(-8).join('\n')}\n`);
  process.exitCode = 1;
}
step('done');
let table;
try {
  table = render(results);
} catch {
  // A run that stopped part-way has no figures for the later rows: print what it has.
  table = `the run stopped before every figure was measured; what it has:\n${JSON.stringify(results, null, 2)}\n`;
}
process.stdout.write(`\n${table}`);
if (opt.json) await writeFile(opt.json, `${JSON.stringify(results, null, 2)}\n`);
