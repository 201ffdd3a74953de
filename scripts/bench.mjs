#!/usr/bin/env node
/**
 * `npm run bench`: the official SDK client against the same MCP server,
 * directly over stdio, through `mcp-access connect` + the proxy (single
 * process: the session lives in the proxy) and through connect + proxy + a
 * remote agent (`mcp-access agent start`, which holds the session), in one
 * run on one machine. Prints a table with ratios and the
 * performance targets. See docs/performance.md for what each row means.
 *
 *   node scripts/bench.mjs [--quick] [--no-agent] [--no-c-relay] [--no-floor] [--write-docs]
 *                          [--json FILE] [--profile DIR] [--keep]
 *
 * The "C relay" column is socat, a relay written in C, with the same
 * processes and real mTLS (client certificate from the identity file): what
 * the topology itself costs. It is left out, with a note, when no socat with
 * OpenSSL is on PATH; the bench never installs it.
 * The "floor" column is a minimal Node relay with the same processes, mTLS and
 * WebSocket and nothing else (bench/floor/): what Node and `ws` cost on top.
 *
 * --quick       fewer samples (about a third of the time), for a smoke check
 * --no-agent    skip the agent path (bridge → proxy → agent → server)
 * --no-c-relay  skip the C relay (socat)
 * --no-floor    skip the minimal Node relay
 * --write-docs  put the table into docs/performance.md (between its markers)
 * --json FILE   also write the raw results as JSON
 * --profile DIR run the bridges, the proxy and the agent with --cpu-prof into DIR and
 *               summarise where their CPU time goes per small call (skips the
 *               large arguments; timings are skewed by the profiler)
 * --keep        keep the temp directory (CA, identities, proxy.yaml, agent.yaml, audit log)
 */
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { closeAll, closeClient, echo, launchParams, memory, openClient } from './bench/clients.mjs';
import {
  bigMessage,
  coldStarts,
  idleMemory,
  largeArgument,
  median,
  pathProcesses,
  percentile,
  sequential,
  throughputRounds,
  versionTimes,
} from './bench/measure.mjs';
import { machine, render, writeDocs } from './bench/report.mjs';
import {
  AGENT_NAME,
  AUDIT_FILE,
  findSocat,
  setUp,
  startAgent,
  startCRelay,
  startRelay,
  stopCRelay,
  tearDown,
} from './bench/setup.mjs';

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-agent': { type: 'boolean', default: false },
    'no-c-relay': { type: 'boolean', default: false },
    'no-floor': { type: 'boolean', default: false },
    'write-docs': { type: 'boolean', default: false },
    json: { type: 'string' },
    profile: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(
    'usage: node scripts/bench.mjs [--quick] [--no-agent] [--no-c-relay] [--no-floor] [--write-docs] [--json FILE] [--profile DIR] [--keep]\n',
  );
  process.exit(0);
}

const PLAN = opt.quick
  ? {
      versionRuns: 3,
      coldSamples: 4,
      warmup: 100,
      seqCalls: 500,
      tpTotal: 1500,
      tpRounds: 1,
      inFlight: 64,
      mib1Reps: 2,
      mib16Reps: 1,
    }
  : {
      versionRuns: 7,
      coldSamples: 10,
      warmup: 300,
      seqCalls: 2000,
      tpTotal: 4000,
      tpRounds: 3,
      inFlight: 64,
      mib1Reps: 5,
      mib16Reps: 3,
    };
// A profile is about the cost of a small call: few cold starts and no large
// arguments (one 16 MiB message would outweigh thousands of calls).
if (opt.profile) Object.assign(PLAN, { coldSamples: 2, mib1Reps: 0, mib16Reps: 0 });

const started = performance.now();
const step = (what) => process.stderr.write(`bench [${((performance.now() - started) / 1000).toFixed(1)}s] ${what}\n`);

const results = {
  date: new Date().toISOString().slice(0, 10),
  mode: opt.profile ? 'profiled' : opt.quick ? 'quick' : 'full',
  machine: machine(),
  plan: PLAN,
  large: [],
  memory: {},
};

let env;
const profileDir = opt.profile ? resolve(opt.profile) : undefined;
let cleaning;
const cleanup = () =>
  (cleaning ??= (async () => {
    await closeAll();
    if (env) await tearDown(env, { keepDir: opt.keep });
  })());
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    step(`${sig}: stopping every process the bench started`);
    void cleanup().finally(() => process.exit(130));
  });
}

let failed;
try {
  step('start-up of the CLI');
  results.version = await versionTimes(PLAN.versionRuns);

  step('CA, identity, proxy');
  env = await setUp({ proxyNodeArgs: await profilerArgs('proxy'), log: (line) => process.stderr.write(`  ${line}\n`) });
  env.bridgeNodeArgs = await profilerArgs('bridge');
  step(`proxy listening on ${env.proxyAddress}${opt.keep ? ` (kept: ${env.dir})` : ''}`);
  const cRelay = await setUpCRelay();
  if (!opt['no-floor']) await startRelay(env);
  const agent = await setUpAgent();
  results.paths = [
    'direct',
    ...(cRelay ? ['crelay'] : []),
    ...(opt['no-floor'] ? [] : ['floor']),
    'through',
    ...(agent ? ['agent'] : []),
  ];

  step(`cold starts: ${PLAN.coldSamples} spawns per path (+1 warm-up)`);
  await measureColdStarts();
  await measureSessions();
  if (PLAN.mib16Reps > 0) await measure16MiB();
  results.memory.proxyPeak = memory(env.proxy.pid);
  if (env.agent) results.memory.agentPeak = memory(env.agent.pid);
  results.audit = await auditState(env);
} catch (err) {
  failed = err;
} finally {
  step('stopping the proxy and every client');
  await cleanup();
}

if (failed) {
  process.stderr.write(`bench failed: ${failed.stack ?? failed}\n`);
  if (env?.proxyLog?.length) process.stderr.write(`last proxy log lines:\n${env.proxyLog.slice(-15).join('\n')}\n`);
  if (env?.agentLog?.length) process.stderr.write(`last agent log lines:\n${env.agentLog.slice(-15).join('\n')}\n`);
  process.exitCode = 1;
}
step('done');
process.stdout.write(`\n${render(results)}`);
if (opt.json) await writeFile(opt.json, `${JSON.stringify(results, null, 2)}\n`);
if (opt['write-docs'] && !failed) {
  if (results.mode === 'profiled') process.stderr.write('not writing docs: a profiled run is not representative\n');
  else process.stderr.write(`wrote ${await writeDocs(results)}\n`);
}
if (profileDir && !failed) {
  const { summarizeRun } = await import('./bench/profile-summary.mjs');
  process.stdout.write(
    `\n${await summarizeRun(profileDir, {
      bridgePid: results.bridgePid,
      agentBridgePid: results.agentBridgePid,
      calls: results.callsPerSession,
    })}\n`,
  );
}

// ---- phases --------------------------------------------------------------------

async function profilerArgs(who) {
  if (!profileDir) return [];
  await mkdir(`${profileDir}/${who}`, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${who}`];
}

/**
 * The C relay column, if socat (with OpenSSL) is on PATH and works: start its
 * listener and make one call through it. Anything that goes wrong leaves the
 * column out with a note in `results.cRelay`; it never fails the bench.
 */
async function setUpCRelay() {
  if (opt['no-c-relay']) {
    results.cRelay = { skipped: 'left out with --no-c-relay' };
    return false;
  }
  const socat = await findSocat();
  if (!socat.path) {
    results.cRelay = { skipped: socat.skip };
    step(`C relay column skipped: ${socat.skip}`);
    return false;
  }
  env.socat = socat.path;
  try {
    await startCRelay(env);
    const probe = await openClient(launchParams('crelay', 'everything', env));
    try {
      await echo(probe, 'probe');
    } finally {
      await closeClient(probe);
    }
  } catch (err) {
    const why = String(err.message).split('\n')[0].slice(0, 200);
    results.cRelay = { skipped: `socat ${socat.version} did not relay (${why})` };
    step(
      `C relay column skipped: ${results.cRelay.skipped}${env.crelayLog?.length ? `\n${env.crelayLog.slice(-5).join('\n')}` : ''}`,
    );
    await stopCRelay(env);
    return false;
  }
  results.cRelay = { socat: socat.version };
  step(`C relay: socat ${socat.version} listening on ${env.crelayAddress}`);
  return true;
}

/**
 * The agent path: `mcp-access agent start` next to the proxy, enrolling the
 * same servers as `<name>-agent`; one call through it before measuring (the
 * proxy routes to the agent once it has announced its servers, right after
 * connecting). Unlike the C relay, a failure here fails the bench: it is our
 * own code.
 */
async function setUpAgent() {
  if (opt['no-agent']) {
    results.agent = { skipped: 'left out with --no-agent' };
    return false;
  }
  await startAgent(env, { nodeArgs: await profilerArgs('agent'), log: (line) => process.stderr.write(`  ${line}\n`) });
  // The announcement follows the welcome at once; a bridge that comes before it is
  // refused, so try a few times (bounded) before calling it a failure.
  let lastErr;
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const probe = await openClient(launchParams('agent', 'everything', env));
      try {
        await echo(probe, 'probe');
      } finally {
        await closeClient(probe);
      }
      lastErr = undefined;
      break;
    } catch (err) {
      lastErr = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  if (lastErr) throw new Error(`no call went through the agent: ${lastErr.message}`, { cause: lastErr });
  results.agent = { name: AGENT_NAME };
  step(`agent ${AGENT_NAME} connected to the proxy and serving`);
  return true;
}

async function measureColdStarts() {
  const raw = await coldStarts(env, PLAN.coldSamples, results.paths);
  const medians = {};
  for (const [path, r] of Object.entries(raw))
    medians[path] = {
      init: median(r.init),
      first: median(r.first),
      tunnel: median(r.tunnel),
      idleRss: median(r.idleRss),
    };
  results.cold = { samples: PLAN.coldSamples, median: medians, raw };
}

/** One long-lived session per path with server-everything: latency, throughput, 1 MiB, memory. */
async function measureSessions() {
  step('long-lived sessions with server-everything');
  const sessions = {};
  for (const path of results.paths) sessions[path] = await openClient(launchParams(path, 'everything', env));
  results.bridgePid = sessions.through.pid;
  results.agentBridgePid = sessions.agent?.pid;
  results.memory.bridgeIdle = await idleMemory(sessions.through.pid);
  results.memory.serverIdle = memory(sessions.direct.pid);
  if (sessions.floor) results.memory.floorBridgeIdle = memory(sessions.floor.pid);
  if (sessions.crelay) results.memory.crelayBridgeIdle = memory(sessions.crelay.pid);
  if (sessions.agent) results.memory.agentBridgeIdle = memory(sessions.agent.pid);

  step(`sequential: ${PLAN.seqCalls} calls per path after ${PLAN.warmup} warm-up`);
  const lat = await sequential(sessions, { calls: PLAN.seqCalls, warmup: PLAN.warmup });
  results.sequential = { calls: PLAN.seqCalls };
  for (const [path, l] of Object.entries(lat))
    results.sequential[path] = { p50: percentile(l, 50), p99: percentile(l, 99) };

  step(`throughput: ${PLAN.tpRounds} round(s) of ${PLAN.tpTotal} calls, ${PLAN.inFlight} in flight`);
  results.throughput = {
    total: PLAN.tpTotal,
    rounds: PLAN.tpRounds,
    inFlight: PLAN.inFlight,
    ...(await throughputRounds(sessions, pathProcesses(sessions, env), {
      total: PLAN.tpTotal,
      inFlight: PLAN.inFlight,
      rounds: PLAN.tpRounds,
    })),
  };
  results.callsPerSession = PLAN.warmup + PLAN.seqCalls + PLAN.tpRounds * PLAN.tpTotal;

  if (PLAN.mib1Reps > 0) {
    step(`1 MiB argument, ${PLAN.mib1Reps} round trips per path`);
    results.large.push({
      label: '1 MiB',
      server: 'server-everything',
      reps: PLAN.mib1Reps,
      required: false,
      ...(await largeArgument(sessions, bigMessage(1 << 20), PLAN.mib1Reps, pathProcesses(sessions, env))),
    });
  }
  results.memory.bridgePeakSmall = memory(sessions.through.pid);
  if (sessions.agent) results.memory.agentBridgePeakSmall = memory(sessions.agent.pid);
  await Promise.all(Object.values(sessions).map((h) => closeClient(h)));
}

/**
 * server-everything cannot read a line over 10 MiB (the SDK's default), so
 * 16 MiB goes to the same SDK code with a 64 MiB limit (bench/echo-server.mjs),
 * on the direct, through and agent paths.
 */
async function measure16MiB() {
  step(`16 MiB argument, ${PLAN.mib16Reps} round trips per path (SDK echo server with a 64 MiB line limit)`);
  const big = {};
  for (const path of ['direct', 'through', ...(results.paths.includes('agent') ? ['agent'] : [])])
    big[path] = await openClient(launchParams(path, 'bigecho', env));
  for (const h of Object.values(big)) await echo(h, 'warm-up');
  results.large.push({
    label: '16 MiB',
    server: 'SDK echo server',
    reps: PLAN.mib16Reps,
    required: true,
    ...(await largeArgument(big, bigMessage(16 << 20), PLAN.mib16Reps, pathProcesses(big, env, 'echo-server'))),
  });
  results.memory.bridgePeakBig = memory(big.through.pid);
  if (big.agent) results.memory.agentBridgePeakBig = memory(big.agent.pid);
  await Promise.all(Object.values(big).map((h) => closeClient(h)));
}

/** Whether the proxy wrote an audit trail for this run (roles + audit enforced) or not yet. */
async function auditState(e) {
  const file = join(e.dir, AUDIT_FILE);
  let size;
  try {
    size = (await stat(file)).size;
  } catch {
    return 'not enforced yet: proxy.yaml has a role and an audit path, but the proxy wrote no audit log (every message passes ungated)';
  }
  let lines = 0;
  let fromAgent = 0;
  // The proxy stores an agent's events with `agent: <name>` (one JSON object per line).
  const mark = `"agent":${JSON.stringify(AGENT_NAME)}`;
  let partial = '';
  for await (const text of createReadStream(file, { encoding: 'utf8' })) {
    const parts = (partial + text).split('\n');
    partial = parts.pop();
    lines += parts.length;
    for (const line of parts) if (line.includes(mark)) fromAgent++;
  }
  const agentPart = results.agent?.name
    ? `, ${fromAgent.toLocaleString('en-US')} of them sent by agent ${AGENT_NAME} over its control connection`
    : '';
  return `enforced: every message passed the role gate; the proxy wrote ${lines.toLocaleString('en-US')} audit events (${(size / 1e6).toFixed(1)} MB) for this run${agentPart}`;
}
