/**
 * The official SDK client, over stdio, on any path:
 *   direct  — spawns the MCP server itself;
 *   crelay  — spawns `socat STDIO OPENSSL:…` (the C relay, see setup.mjs);
 *   floor   — spawns the minimal Node relay's bridge (bench/floor/);
 *   through — spawns `mcp-access connect <server>`, which tunnels to the proxy;
 *   agent   — spawns `mcp-access connect <server>-agent`: the proxy relays the
 *             tunnel to the agent process, which holds the session.
 * Every client opened here is remembered so that `closeAll` can stop it even
 * when the bench fails half-way.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { join } from 'node:path';
import { agentServerName, CLI, CRELAY_FILES, ROOT, SERVERS } from './setup.mjs';

const RELAY_BRIDGE = join(ROOT, 'scripts', 'bench', 'floor', 'relay-bridge.mjs');

const MAX_MESSAGE = 64 * 1024 * 1024;
const open = new Set();

/**
 * How to start `server` on `path`: 'direct', 'through' and 'agent'
 * (`env.bridgeNodeArgs` go to the bridge's node), 'floor' (the minimal relay) or 'crelay' (socat;
 * these two relay server-everything only).
 */
export function launchParams(path, server, env) {
  if (path === 'direct') return { command: SERVERS[server].command, args: SERVERS[server].args };
  if (path === 'crelay') {
    // The client certificate, key and CA split out of the identity file, in the
    // bench's temp dir (its cwd, so socat's address parser sees plain names).
    // verify=1: the proxy's certificate is checked against the cluster CA and 127.0.0.1.
    const { cert, key, ca } = CRELAY_FILES;
    return {
      command: env.socat,
      args: ['STDIO', `OPENSSL:${env.crelayAddress},nodelay,verify=1,cert=${cert},key=${key},cafile=${ca}`],
      cwd: env.dir,
    };
  }
  if (path === 'floor') return { command: process.execPath, args: [RELAY_BRIDGE, env.identity, env.relayAddress] };
  const name = path === 'agent' ? agentServerName(server) : server;
  return {
    command: process.execPath,
    args: [...(env.bridgeNodeArgs ?? []), CLI, 'connect', name, '-i', env.identity, '--proxy', env.proxyAddress],
  };
}

/**
 * Spawn and initialize. `initMs` is spawn → initialize answered (what
 * `Client.connect` resolves on); `tunnelMs()` is spawn → the bridge's
 * "connected to" line on stderr (through and agent only).
 */
export async function openClient(params, { name = 'mcp-access-bench' } = {}) {
  const transport = new StdioClientTransport({ cwd: ROOT, ...params, stderr: 'pipe', maxBufferSize: MAX_MESSAGE });
  const client = new Client({ name, version: '1.0.0' });
  const handle = { client, transport, pid: undefined, initMs: NaN, tunnelAt: undefined, stderrTail: [], t0: 0 };
  let partial = '';
  transport.stderr.setEncoding('utf8');
  transport.stderr.on('data', (text) => {
    const now = performance.now();
    const lines = (partial + text).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (handle.tunnelAt === undefined && /connected to /.test(line)) handle.tunnelAt = now;
      handle.stderrTail.push(line);
      if (handle.stderrTail.length > 20) handle.stderrTail.shift();
    }
  });
  open.add(handle);
  handle.t0 = performance.now();
  try {
    await client.connect(transport);
  } catch (err) {
    await closeClient(handle);
    throw new Error(`${params.args.slice(-5).join(' ')}: ${err.message}\n${handle.stderrTail.join('\n')}`, {
      cause: err,
    });
  }
  handle.initMs = performance.now() - handle.t0;
  handle.pid = transport.pid;
  return handle;
}

export function tunnelMs(handle) {
  return handle.tunnelAt === undefined ? NaN : handle.tunnelAt - handle.t0;
}

/** One `echo` call; returns the text of the result. */
export async function echo(handle, message, timeoutMs = 60_000) {
  const r = await handle.client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: timeoutMs });
  const text = r.content?.[0]?.text;
  if (r.isError || typeof text !== 'string') throw new Error(`echo failed: ${JSON.stringify(r).slice(0, 300)}`);
  return text;
}

/** Close (stdin EOF → SIGTERM → SIGKILL inside the SDK), never waiting more than ~5 s. */
export async function closeClient(handle) {
  open.delete(handle);
  const pid = handle.transport.pid ?? handle.pid;
  await Promise.race([handle.client.close().catch(() => {}), sleep(5000, { unref: true })]);
  if (pid && alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export async function closeAll() {
  await Promise.all([...open].map((h) => closeClient(h)));
}

// ---- /proc readings (Linux) --------------------------------------------------

/** VmRSS and VmHWM (peak) of a process, in bytes; undefined where /proc is unavailable. */
export function memory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** User and system CPU time a process has used so far, in ms (10 ms resolution); NaN when it is gone. */
export function cpuTimes(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) * TICK_MS, system: Number(f[12]) * TICK_MS };
  } catch {
    return { user: NaN, system: NaN };
  }
}

/** User + system CPU time a process has used so far, in ms (10 ms resolution). */
export function cpuMs(pid) {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

/** Direct children of `pid` whose command line contains `needle`. */
export function childrenOf(pid, needle = '') {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      if (needle && !readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) continue;
      out.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * The process of `pids` that started first (by its start time in /proc, not
 * its pid: pids wrap around on a busy machine); undefined for none.
 */
export function oldestOf(pids) {
  const started = (pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    } catch {
      return Infinity;
    }
  };
  return pids.map((pid) => ({ pid, t: started(pid) })).sort((a, b) => a.t - b.t || a.pid - b.pid)[0]?.pid;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `unref`: a timer that does not keep the bench alive on its own (for races). */
export function sleep(ms, { unref = false } = {}) {
  return new Promise((r) => {
    const t = setTimeout(r, ms);
    if (unref) t.unref();
  });
}
