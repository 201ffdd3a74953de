#!/usr/bin/env node
/**
 * A quick look at the per-call hot path, one path at a time (the bench's
 * set-up, its SDK client and server-everything's echo): p50/p90 of N
 * sequential calls, calls/s with 64 in flight, and the CPU each process
 * used per call in both phases (from /proc). Made for A/B runs of two builds
 * in turn (`npm run build` in each checkout, then run it from each root);
 * `npm run bench` is the full, interleaved comparison.
 *
 *   node scripts/bench/hot-path.mjs [--paths through,agent,floor] [--seq 2000] [--calls 3000]
 *                                   [--strace bridge|proxy|agent|server] [--profile-proxy DIR]
 *
 * --strace         `strace -c -f` that process during the 64-in-flight phase (system calls per call)
 * --profile-proxy  run the proxy with --cpu-prof (100 µs interval) into DIR
 *
 * With BENCH_POSTGRES_URL set (a PostgreSQL the proxy may create its tables in),
 * the proxy keeps its audit trail there instead of in a file.
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { childrenOf, closeAll, cpuTimes, echo, launchParams, oldestOf, openClient } from './clients.mjs';
import { setUp, startAgent, startRelay, tearDown } from './setup.mjs';

const { values: opt } = parseArgs({
  options: {
    paths: { type: 'string', default: 'through' },
    seq: { type: 'string', default: '2000' },
    calls: { type: 'string', default: '3000' },
    strace: { type: 'string' },
    'profile-proxy': { type: 'string' },
  },
});
const paths = opt.paths.split(',');
const SEQ = Number(opt.seq);
const CALLS = Number(opt.calls);

function perCall(procs, before, calls) {
  return Object.fromEntries(
    Object.entries(procs).map(([k, pid]) => {
      const now = cpuTimes(pid);
      const us = (ms) => Math.round((ms / calls) * 1000);
      return [k, `${us(now.user - before[k].user)}u+${us(now.system - before[k].system)}s`];
    }),
  );
}
const snapshot = (procs) => Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuTimes(pid)]));

const env = await setUp(
  opt['profile-proxy']
    ? { proxyNodeArgs: ['--cpu-prof', '--cpu-prof-interval', '100', `--cpu-prof-dir=${opt['profile-proxy']}`] }
    : {},
);
if (paths.includes('agent')) await startAgent(env);
if (paths.includes('floor')) await startRelay(env);
try {
  for (const path of paths) {
    const h = await openClient(launchParams(path, 'everything', env));
    for (let i = 0; i < 300; i++) await echo(h, 'warm-up');
    const relay = path === 'floor' ? env.relay.pid : env.proxy.pid;
    const procs = { bridge: h.pid, proxy: relay };
    if (path === 'agent') procs.agent = env.agent.pid;
    procs.server = oldestOf(childrenOf(path === 'agent' ? env.agent.pid : relay, 'server-everything'));

    const lat = [];
    let before = snapshot(procs);
    for (let i = 0; i < SEQ; i++) {
      const t0 = performance.now();
      await echo(h, 'hello');
      lat.push(performance.now() - t0);
    }
    const seqCpu = perCall(procs, before, SEQ);
    lat.sort((a, b) => a - b);

    const strace = opt.strace
      ? spawn('strace', ['-c', '-f', '-p', String(procs[opt.strace])], { stdio: ['ignore', 'ignore', 'inherit'] })
      : undefined;
    if (strace) await new Promise((r) => setTimeout(r, 500));
    before = snapshot(procs);
    let started = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (started < CALLS) {
          started++;
          await echo(h, 'hello');
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const loadCpu = perCall(procs, before, CALLS);
    if (strace) {
      strace.kill('SIGINT');
      await new Promise((r) => strace.on('exit', r));
    }
    const ms = (v) => v.toFixed(3);
    process.stdout.write(
      `${path}: sequential p50 ${ms(lat[Math.floor(SEQ / 2)])} ms, p90 ${ms(lat[Math.floor(SEQ * 0.9)])} ms, ` +
        `CPU µs/call ${JSON.stringify(seqCpu)}\n` +
        `${path}: 64 in flight ${Math.round(CALLS / seconds)} calls/s, CPU µs/call ${JSON.stringify(loadCpu)}\n`,
    );
  }
} finally {
  await closeAll();
  await tearDown(env);
}
