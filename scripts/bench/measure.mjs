/**
 * The measurements. Each one runs the direct and the through path in the same
 * way, interleaved where it matters (so that a neighbour's load on a shared
 * machine hits both), and every loop is bounded by a count.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, MINIMAL_ENV, ROOT } from './setup.mjs';
import {
  childrenOf,
  closeClient,
  cpuMs,
  echo,
  launchParams,
  memory,
  oldestOf,
  openClient,
  sleep,
  tunnelMs,
} from './clients.mjs';

const run = promisify(execFile);
export const PATHS = ['direct', 'through'];

// ---- statistics ---------------------------------------------------------------

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}
export const median = (values) => percentile(values, 50);

// ---- process start ------------------------------------------------------------

/** Wall time of a command that starts and exits (median of `runs`), and its output. */
export async function timeCommand(args, runs) {
  const times = [];
  let stdout = '';
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    ({ stdout } = await run(process.execPath, args, { cwd: ROOT, env: MINIMAL_ENV, timeout: 30_000 }));
    times.push(performance.now() - t0);
  }
  return { ms: median(times), stdout: stdout.trim() };
}

export async function versionTimes(runs) {
  const node = await timeCommand(['-e', '0'], runs);
  const version = await timeCommand([CLI, '--version'], runs);
  return { nodeMs: node.ms, versionMs: version.ms, version: version.stdout };
}

/**
 * Cold starts: spawn, initialize, one `echo`, close — what LangGraph pays per
 * tool call. Also reads each bridge's RSS once idle after initialize. The order of paths rotates; one untimed
 * round warms the disk
 * cache. Waits until the proxy (or relay) has stopped each session's
 * upstream before the next spawn, so no leftover process competes for the CPU.
 */
export async function coldStarts(env, samples, paths = PATHS) {
  const out = Object.fromEntries(paths.map((p) => [p, { init: [], first: [], tunnel: [], idleRss: [] }]));
  for (let i = -1; i < samples; i++) {
    const k = ((i % paths.length) + paths.length) % paths.length;
    for (const path of [...paths.slice(k), ...paths.slice(0, k)]) {
      const h = await openClient(launchParams(path, 'everything', env));
      // The bridge's RSS once idle after initialize; the pause is left out of "first result".
      const rss = path === 'direct' ? undefined : (await idleMemory(h.pid))?.rss;
      const t1 = performance.now();
      await echo(h, 'hi');
      const firstMs = h.initMs + (performance.now() - t1);
      const tMs = tunnelMs(h);
      await closeClient(h);
      // The proxy keeps one warm spare per stdio server (sessions.prestart):
      // wait until only those are left and idle, as between an agent's calls.
      if (path === 'through') await settled(env.proxy.pid, SPARES);
      if (path === 'agent') await settled(env.agent.pid, SPARES);
      if (path === 'floor') await settled(env.relay.pid, 0);
      if (path === 'crelay') await settled(env.crelay.pid, 0);
      if (i < 0) continue;
      out[path].init.push(h.initMs);
      out[path].first.push(firstMs);
      if (path === 'through' || path === 'agent') out[path].tunnel.push(tMs);
      if (rss !== undefined) out[path].idleRss.push(rss);
    }
  }
  return out;
}

/** Stdio servers the bench enrols (at the proxy, and at the agent): each keeps one warm spare of each. */
const SPARES = 2;

/**
 * Waits (bounded) until `pid` has `expected` child processes (the session's
 * server stopped, the spares started) and they have stopped using CPU.
 */
async function settled(pid, expected, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end && childrenOf(pid).length !== expected) await sleep(20);
  let last = -1;
  while (Date.now() < end) {
    const cpu = childrenOf(pid).reduce((sum, c) => sum + cpuMs(c), 0);
    if (cpu === last) return;
    last = cpu;
    await sleep(100);
  }
}

// ---- calls on an open session --------------------------------------------------

/** Sequential small calls, in alternating blocks; latencies in ms per path (each key of `sessions`). */
export async function sequential(sessions, { calls, warmup, block = 250 }) {
  const paths = Object.keys(sessions);
  for (const path of paths) for (let i = 0; i < warmup; i++) await echo(sessions[path], 'warm-up');
  const lat = Object.fromEntries(paths.map((p) => [p, []]));
  for (let done = 0; done < calls; done += block) {
    const n = Math.min(block, calls - done);
    for (const path of paths) {
      const h = sessions[path];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await echo(h, 'hello');
        lat[path].push(performance.now() - t0);
      }
    }
  }
  return lat;
}

/**
 * `total` calls with `inFlight` outstanding at any time. Also reads the CPU
 * time each process of the path used, to show where the work is done.
 */
export async function throughput(h, { total, inFlight, processes }) {
  const before = Object.fromEntries(Object.entries(processes).map(([k, pid]) => [k, cpuMs(pid)]));
  const self0 = process.cpuUsage();
  let started = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (started < total) {
      started++;
      await echo(h, 'hello');
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  const cpuPerCallUs = { client: ((self.user + self.system) / 1000 / total) * 1000 };
  for (const [k, pid] of Object.entries(processes)) cpuPerCallUs[k] = ((cpuMs(pid) - before[k]) / total) * 1000;
  return { callsPerSec: total / seconds, cpuPerCallUs, seconds };
}

/**
 * The processes of each path whose CPU time is read: the server, and the
 * bridge and proxy in between (on the agent path also the agent, which runs
 * the server).
 */
export function pathProcesses(sessions, env, serverNeedle = 'server-everything') {
  const procs = {};
  for (const path of Object.keys(sessions)) {
    if (path === 'direct') procs.direct = { server: sessions.direct.pid };
    const proxy = path === 'through' ? env.proxy.pid : path === 'floor' ? env.relay.pid : undefined;
    // The session's server is the oldest child; a newer one is the warm spare.
    if (proxy) procs[path] = { bridge: sessions[path].pid, proxy, server: oldestOf(childrenOf(proxy, serverNeedle)) };
    if (path === 'agent') {
      // The proxy relays; the agent holds the session and runs the server (the oldest child; a newer one is the spare).
      procs.agent = {
        bridge: sessions.agent.pid,
        proxy: env.proxy.pid,
        agent: env.agent.pid,
        server: oldestOf(childrenOf(env.agent.pid, serverNeedle)),
      };
    }
    if (path === 'crelay') {
      // socat's listener forks one relay process per connection, and that one starts the server.
      const relay = childrenOf(env.crelay.pid).find((pid) => childrenOf(pid, serverNeedle).length > 0);
      procs.crelay = { bridge: sessions.crelay.pid, proxy: relay, server: relay && childrenOf(relay, serverNeedle)[0] };
    }
  }
  return procs;
}

/** `rounds` throughput runs per path, the order of paths rotating each round; medians. */
export async function throughputRounds(sessions, procs, { total, inFlight, rounds }) {
  const paths = Object.keys(sessions);
  const res = Object.fromEntries(paths.map((p) => [p, []]));
  for (let r = 0; r < rounds; r++) {
    const order = [...paths.slice(r % paths.length), ...paths.slice(0, r % paths.length)];
    for (const path of order)
      res[path].push(await throughput(sessions[path], { total, inFlight, processes: procs[path] }));
  }
  const summarize = (list) => {
    const best = list.map((x) => x.callsPerSec);
    const cpu = {};
    for (const k of Object.keys(list[0].cpuPerCallUs)) cpu[k] = median(list.map((x) => x.cpuPerCallUs[k]));
    return { callsPerSec: median(best), rounds: best, cpuPerCallUs: cpu };
  };
  return Object.fromEntries(paths.map((p) => [p, summarize(res[p])]));
}

// ---- large arguments ----------------------------------------------------------

/**
 * A deterministic message of about `bytes` UTF-8 bytes mixing ASCII with 2-,
 * 3- and 4-byte characters, so that a character split across pipe or TLS
 * chunks would show up as a corrupted hash.
 */
export function bigMessage(bytes) {
  const alphabet = ['a', 'b', 'c', 'x', 'y', 'z', '0', '9', ' ', '"', '\\', 'é', 'ß', '€', '中', '😀'];
  let seed = 0x2f6b;
  const piece = [];
  let pieceBytes = 0;
  while (pieceBytes < 64 * 1024) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const ch = alphabet[(seed >>> 16) % alphabet.length];
    piece.push(ch);
    pieceBytes += Buffer.byteLength(ch);
  }
  const chunk = piece.join('');
  const chunkBytes = Buffer.byteLength(chunk);
  let s = chunk.repeat(Math.max(1, Math.floor(bytes / chunkBytes)));
  while (Buffer.byteLength(s) < bytes) s += 'a'.repeat(Math.min(4096, bytes - Buffer.byteLength(s)));
  return s;
}

const sha256 = (s) => createHash('sha256').update(s, 'utf8').digest('hex');

/**
 * Round trips of `message` on each path of `sessions`, the order rotating: median time, whether
 * every echo came back intact, and the median CPU time (ms) each process of
 * the path spent on one round trip (`procs` as from `pathProcesses`).
 */
export async function largeArgument(sessions, message, reps, procs = {}) {
  const want = { length: message.length, hash: sha256(message) };
  const paths = Object.keys(sessions);
  const out = {};
  for (const path of paths) out[path] = { times: [], cpu: [], intact: true, error: undefined };
  for (let r = 0; r < reps; r++) {
    const order = [...paths.slice(r % paths.length), ...paths.slice(0, r % paths.length)];
    for (const path of order) {
      const o = out[path];
      if (o.error) continue;
      try {
        const ps = procs[path] ?? {};
        const before = Object.fromEntries(Object.entries(ps).map(([k, pid]) => [k, cpuMs(pid)]));
        const self0 = process.cpuUsage();
        const t0 = performance.now();
        const text = await echo(sessions[path], message, 120_000);
        o.times.push(performance.now() - t0);
        const self = process.cpuUsage(self0);
        const cpu = { client: (self.user + self.system) / 1000 };
        for (const [k, pid] of Object.entries(ps)) cpu[k] = cpuMs(pid) - before[k];
        o.cpu.push(cpu);
        const got = text.startsWith('Echo: ') ? text.slice(6) : text;
        if (got.length !== want.length || sha256(got) !== want.hash) o.intact = false;
      } catch (err) {
        o.intact = false;
        o.error = err.message.split('\n')[0].slice(0, 160);
      }
    }
  }
  const summary = (o) => {
    const cpuMsPerCall = {};
    for (const k of Object.keys(o.cpu[0] ?? {})) cpuMsPerCall[k] = median(o.cpu.map((c) => c[k]));
    return { ms: median(o.times), intact: o.intact, error: o.error, cpuMsPerCall };
  };
  return { bytes: Buffer.byteLength(message), ...Object.fromEntries(paths.map((p) => [p, summary(out[p])])) };
}

/** RSS of a process after it has been idle for `settleMs`. */
export async function idleMemory(pid, settleMs = 300) {
  await sleep(settleMs);
  return memory(pid);
}
