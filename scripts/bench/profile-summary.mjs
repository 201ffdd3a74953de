#!/usr/bin/env node
/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`): where the CPU time
 * went, by area (our code, ws, TLS, streams, GC, …) and by function (self time,
 * and inclusive time for our own functions).
 *
 *   node scripts/bench/profile-summary.mjs FILE.cpuprofile [...]
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The area a stack frame belongs to, from its script URL. */
export function area(frame) {
  const url = frame.url ?? '';
  const fn = frame.functionName;
  if (!url) {
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(idle)') return 'idle';
    if (fn === '(program)' || fn === '(root)') return 'native (program: libuv, TLS record crypto, pipe I/O)';
    return `native builtin`;
  }
  const ours = /\/dist\/(agent|audit|bot|bridge|cli|client|identity|proxy|rbac|tunnel|util)\//.exec(url);
  if (ours) return `mcp-access ${ours[1]}/`;
  if (/\/dist\/[^/]+\.js$/.test(url)) return 'mcp-access (top level)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1] === 'ws' ? 'ws (framing, masking)' : `package ${pkg[1]}`;
  if (/node:(internal\/)?(tls|_tls|crypto)|_tls_wrap|internal\/tls/.test(url)) return 'node TLS / crypto (JS side)';
  if (/node:internal\/(modules|bootstrap|main|process\/pre_execution|vm)|node:module/.test(url))
    return 'node module loading';
  if (/node:internal\/(child_process|streams|stream_base_commons)|node:(net|stream)/.test(url))
    return 'node streams, sockets, pipes';
  if (/node:(https|http|_http|internal\/http)/.test(url)) return 'node http';
  if (/node:/.test(url)) return 'node other';
  return 'other';
}

function shortUrl(url) {
  if (!url) return '';
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) return url.slice(i + 14);
  const d = url.lastIndexOf('/dist/');
  if (d >= 0) return url.slice(d + 1);
  return url.replace(/^file:\/\/.*\//, '');
}

export function analyse(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = (timeDeltas[i + 1] ?? 0) / 1000; // ms until the next sample
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const areas = new Map();
  const fnSelf = new Map();
  const fnTotal = new Map();
  for (const [id, ms] of self) {
    const node = byId.get(id);
    const a = area(node.callFrame);
    areas.set(a, (areas.get(a) ?? 0) + ms);
    const key = frameKey(node.callFrame);
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + ms);
    // Inclusive: every distinct function on this stack gets the time once.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = frameKey(byId.get(cur).callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      fnTotal.set(k, (fnTotal.get(k) ?? 0) + ms);
    }
  }
  const busy = total - (areas.get('idle') ?? 0);
  return { total, busy, areas, fnSelf, fnTotal };
}

function frameKey(f) {
  return `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
}

const pct = (v, of) => `${((100 * v) / of).toFixed(1).padStart(5)}%`;

/** `calls`: when given, each line also shows the time per call in µs. */
export function report(title, a, { top = 12, calls } = {}) {
  const fmt = (v) =>
    `${v.toFixed(0).padStart(6)} ms${calls ? ` ${((v * 1000) / calls).toFixed(1).padStart(6)} µs/call` : ''}`;
  const lines = [
    `## ${title}: ${a.busy.toFixed(0)} ms on CPU (${(a.total - a.busy).toFixed(0)} ms idle)${calls ? `, ${calls.toLocaleString('en-US')} calls` : ''}`,
  ];
  lines.push('', 'by area (self time, share of CPU time):');
  for (const [k, v] of [...a.areas]
    .filter(([k]) => k !== 'idle')
    .sort((x, y) => y[1] - x[1])
    .slice(0, 14))
    lines.push(`  ${fmt(v)} ${pct(v, a.busy)}  ${k}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const [k, v] of [...a.fnSelf]
    .filter(([k]) => !k.startsWith('(idle)'))
    .sort((x, y) => y[1] - x[1])
    .slice(0, top))
    lines.push(`  ${fmt(v)} ${pct(v, a.busy)}  ${k}`);
  lines.push('', 'mcp-access functions by inclusive time:');
  for (const [k, v] of [...a.fnTotal]
    .filter(([k]) => / dist\//.test(k))
    .sort((x, y) => y[1] - x[1])
    .slice(0, top))
    lines.push(`  ${fmt(v)} ${pct(v, a.busy)}  ${k}`);
  return lines.join('\n');
}

export async function summarizeFile(file, title = file, opts = {}) {
  return report(title, analyse(JSON.parse(await readFile(file, 'utf8'))), opts);
}

/**
 * After `bench --profile DIR`: the proxy, the agent (when the agent path ran),
 * the long-lived bridges, and one cold-start bridge.
 */
export async function summarizeRun(dir, { bridgePid, agentBridgePid, calls }) {
  const out = [`# CPU profiles in ${dir}`];
  const list = async (sub) =>
    (await readdir(join(dir, sub)).catch(() => []))
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => join(dir, sub, f));
  const proxies = await list('proxy');
  const agents = await list('agent');
  const bridges = await list('bridge');
  const pidOf = (f) => Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(f)?.[1]);
  // µs/call includes the cold-start sessions' set-up: an upper bound per call.
  // With the agent path the proxy carries both paths' calls (it holds the
  // single-process sessions and relays the agent's), so it is per call of either.
  if (proxies[0])
    out.push(
      await summarizeFile(
        proxies[0],
        agentBridgePid ? 'proxy (whole run: both paths, per call of either)' : 'proxy (whole run)',
        { calls: agentBridgePid ? 2 * calls : calls },
      ),
    );
  else out.push('(no proxy profile: it is written when the proxy exits cleanly)');
  // The agent holds only the agent path's sessions: its own calls.
  if (agents[0]) out.push(await summarizeFile(agents[0], 'agent (whole run: the agent path)', { calls }));
  else if (agentBridgePid) out.push('(no agent profile: it is written when the agent exits cleanly)');
  const main = bridges.find((f) => pidOf(f) === bridgePid);
  if (main)
    out.push(
      await summarizeFile(main, 'bridge of the long-lived session (start-up, warm-up, sequential, 64 in flight)', {
        calls,
      }),
    );
  const agentMain = bridges.find((f) => pidOf(f) === agentBridgePid);
  if (agentMain)
    out.push(await summarizeFile(agentMain, 'bridge of the long-lived agent-path session (same phases)', { calls }));
  const coldOne = bridges.find((f) => f !== main && f !== agentMain);
  if (coldOne) out.push(await summarizeFile(coldOne, 'one cold-start bridge (spawn, initialize, one call, exit)'));
  return out.join('\n\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const f of process.argv.slice(2)) process.stdout.write(`${await summarizeFile(f)}\n\n`);
}
