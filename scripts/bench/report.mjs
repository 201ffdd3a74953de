/**
 * Turns the results into the table (Markdown, readable in a terminal too),
 * checks the performance targets, and can put the table into
 * docs/performance.md between its markers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './setup.mjs';

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

/**
 * The performance targets. With the C relay column, the per-call targets are
 * relative to it (what the topology itself costs); without it, the older
 * targets relative to direct stdio are checked instead.
 */
export const TARGETS = {
  startupExtraMs: 100,
  p50Ratio: 1.5, // × direct, without the C relay
  throughputRatio: 0.7, // × direct, without the C relay
  p50RatioCRelay: 1.5, // × the C relay
  throughputRatioCRelay: 0.85, // × the C relay
  bridgeCpuUs: 20, // per small call at 64 in flight
  proxyCpuUs: 40,
  bridgeIdleRssBytes: 60e6,
};

/** Column headings of the paths, in table order. */
export const PATH_LABELS = {
  direct: 'direct stdio',
  crelay: 'C relay: socat mTLS',
  floor: 'floor: minimal Node relay',
  through: 'through connect + proxy',
  agent: 'agent: connect + proxy + agent',
};

export function ms(v) {
  if (!Number.isFinite(v)) return 'n/a';
  if (v < 10) return `${v.toFixed(2)} ms`;
  if (v < 100) return `${v.toFixed(1)} ms`;
  return `${Math.round(v).toLocaleString('en-US')} ms`;
}
/** A signed difference: `+12 ms`, `-91 ms`. */
export function deltaMs(v) {
  if (!Number.isFinite(v)) return 'n/a';
  const r = Math.round(v);
  return `${r < 0 ? '-' : '+'}${Math.abs(r)} ms`;
}
const mb = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : 'n/a');
const int = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');
const verdict = (ok) => (ok === undefined ? '' : ok ? 'met' : '**missed**');
const sum = (o) => Object.values(o).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
const cpuParts = (o) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${Math.round(v)}`)
    .join(' + ');

/**
 * The ratio columns: through / direct always; C relay / direct and through / C
 * relay with the C relay; with the agent path, agent / direct, agent / C relay
 * and agent / through (what the extra hop costs).
 */
function ratioColumns(paths) {
  const c = paths.includes('crelay');
  const a = paths.includes('agent');
  return [
    ...(c ? [['crelay', 'direct', 'C relay / direct']] : []),
    ['through', 'direct', 'through / direct'],
    ...(c ? [['through', 'crelay', 'through / C relay']] : []),
    ...(a ? [['agent', 'direct', 'agent / direct']] : []),
    ...(a && c ? [['agent', 'crelay', 'agent / C relay']] : []),
    ...(a ? [['agent', 'through', 'agent / through']] : []),
  ];
}

/** The paths a target is checked on: through, and the agent path when it was measured. */
const targetPaths = (paths) => paths.filter((p) => p === 'through' || p === 'agent');

/** One verdict per checked path: `met` alone, or `through met · agent **missed**` with the agent path. */
function verdicts(paths, ok) {
  const checked = targetPaths(paths);
  if (checked.length === 1) return verdict(ok(checked[0]));
  return checked.map((p) => `${p} ${verdict(ok(p)) || 'n/a'}`).join(' · ');
}

/**
 * Rows: [measure, one cell per path of `r.paths`, the ratio columns, target, status].
 * Each row is given its values per path (numbers, for the ratios) and how to show them.
 */
export function buildRows(r) {
  const paths = r.paths ?? ['direct', 'through'];
  const hasC = paths.includes('crelay');
  const rows = [];
  /** `values`: { path: number }; `show(v, path)`: its cell; `withDelta`: ratios also give the difference in ms. */
  const row = (
    label,
    { values = {}, cells = {}, show = String, withDelta = false, ratios = true, target = '—', status = '' },
  ) => {
    const cell = (p) => cells[p] ?? (Number.isFinite(values[p]) ? show(values[p], p) : '—');
    const rel = ([a, b]) => {
      if (!ratios) return '—';
      const x = ratio(values[a], values[b]);
      return withDelta && x !== '—' ? `${x} (${deltaMs(values[a] - values[b])})` : x;
    };
    rows.push([label, ...paths.map(cell), ...ratioColumns(paths).map(rel), target, status]);
  };
  const c = r.cold;
  if (c) {
    const m = c.median;
    for (const [label, key] of [
      [`initialize, spawn → answered (median of ${c.samples})`, 'init'],
      [`spawn → first tool result (median of ${c.samples})`, 'first'],
    ]) {
      const values = Object.fromEntries(paths.map((p) => [p, m[p]?.[key]]));
      row(label, {
        values,
        show: ms,
        withDelta: true,
        target: `≤ direct + ${TARGETS.startupExtraMs} ms`,
        status: verdicts(paths, (p) => values[p] - values.direct <= TARGETS.startupExtraMs),
      });
    }
  }
  const s = r.sequential;
  if (s) {
    const p50 = Object.fromEntries(paths.map((p) => [p, s[p]?.p50]));
    const p50Target = hasC
      ? {
          target: `≤ ${TARGETS.p50RatioCRelay}× C relay`,
          status: verdicts(paths, (p) => p50[p] <= TARGETS.p50RatioCRelay * p50.crelay),
        }
      : {
          target: `≤ ${TARGETS.p50Ratio}× direct`,
          status: verdicts(paths, (p) => p50[p] <= TARGETS.p50Ratio * p50.direct),
        };
    row(`sequential echo p50 (${s.calls} calls)`, { values: p50, show: ms, ...p50Target });
    row(`sequential echo p99 (${s.calls} calls)`, {
      values: Object.fromEntries(paths.map((p) => [p, s[p]?.p99])),
      show: ms,
    });
  }
  const t = r.throughput;
  if (t) {
    const rate = Object.fromEntries(paths.map((p) => [p, t[p]?.callsPerSec]));
    const rateTarget = hasC
      ? {
          target: `≥ ${TARGETS.throughputRatioCRelay}× C relay`,
          status: verdicts(paths, (p) => rate[p] >= TARGETS.throughputRatioCRelay * rate.crelay),
        }
      : {
          target: `≥ ${TARGETS.throughputRatio}× direct`,
          status: verdicts(paths, (p) => rate[p] >= TARGETS.throughputRatio * rate.direct),
        };
    row(`throughput, ${t.inFlight} in flight (calls/s, median of ${t.rounds}×${t.total})`, {
      values: rate,
      show: int,
      ...rateTarget,
    });
    const cpu = Object.fromEntries(paths.map((p) => [p, t[p] && sum(t[p].cpuPerCallUs)]));
    // On the agent path the proxy target applies to each of the two processes between bridge and server.
    const cpuOk = (p) => {
      const c = t[p]?.cpuPerCallUs ?? {};
      return (
        c.bridge <= TARGETS.bridgeCpuUs &&
        c.proxy <= TARGETS.proxyCpuUs &&
        (p !== 'agent' || c.agent <= TARGETS.proxyCpuUs)
      );
    };
    row('CPU per call at that load (µs, per process)', {
      values: cpu,
      show: (v, p) => `${cpuParts(t[p].cpuPerCallUs)} = ${Math.round(v)}`,
      target: `bridge ≤ ${TARGETS.bridgeCpuUs}, proxy ≤ ${TARGETS.proxyCpuUs}${paths.includes('agent') ? `, agent ≤ ${TARGETS.proxyCpuUs}` : ''}`,
      status: verdicts(paths, cpuOk),
    });
  }
  for (const big of r.large ?? []) {
    const show = (v, p) => `${ms(v)}${big[p].intact ? ', intact' : ', **corrupted**'}`;
    const cells = Object.fromEntries(paths.filter((p) => big[p]?.error).map((p) => [p, `fails: ${big[p].error}`]));
    const values = Object.fromEntries(paths.map((p) => [p, big[p]?.ms]));
    const ok = paths.every((p) => !big[p] || big[p].intact);
    row(`${big.label} argument, echo round trip (${big.server}, median of ${big.reps})`, {
      values,
      cells,
      show,
      target: `intact on every path`,
      status: verdict(big.required ? ok : undefined) || (ok ? 'intact' : 'corrupted'),
    });
  }
  const m = r.memory;
  if (m) {
    // Median over the cold-start bridges when there are some: one process's figure moves with its GC timing.
    const fromCold = Number.isFinite(r.cold?.median.through.idleRss);
    const idle = {
      through: fromCold ? r.cold.median.through.idleRss : m.bridgeIdle?.rss,
      agent: Number.isFinite(r.cold?.median.agent?.idleRss) ? r.cold.median.agent.idleRss : m.agentBridgeIdle?.rss,
      floor: Number.isFinite(r.cold?.median.floor?.idleRss) ? r.cold.median.floor.idleRss : m.floorBridgeIdle?.rss,
      crelay: Number.isFinite(r.cold?.median.crelay?.idleRss) ? r.cold.median.crelay.idleRss : m.crelayBridgeIdle?.rss,
    };
    row(
      fromCold
        ? `bridge RSS, idle after initialize (median of ${r.cold.samples})`
        : 'bridge RSS, idle after initialize',
      {
        values: idle,
        show: mb,
        target: `≤ ${TARGETS.bridgeIdleRssBytes / 1e6} MB`,
        status: verdicts(paths, (p) => idle[p] <= TARGETS.bridgeIdleRssBytes),
      },
    );
    row('bridge peak RSS (VmHWM), small calls + 1 MiB', {
      values: { through: m.bridgePeakSmall?.hwm, agent: m.agentBridgePeakSmall?.hwm },
      show: mb,
    });
    if (m.bridgePeakBig)
      row('bridge peak RSS (VmHWM), 16 MiB session', {
        values: { through: m.bridgePeakBig?.hwm, agent: m.agentBridgePeakBig?.hwm },
        show: mb,
      });
    row('server RSS idle after initialize (for scale)', { values: { direct: m.serverIdle?.rss }, show: mb });
    row(`proxy peak RSS (VmHWM), whole run${m.agentPeak ? ' (it serves both paths)' : ''}`, {
      values: { through: m.proxyPeak?.hwm },
      show: mb,
    });
    if (m.agentPeak) row('agent peak RSS (VmHWM), whole run', { values: { agent: m.agentPeak.hwm }, show: mb });
  }
  return rows;
}

export function markdownTable(rows, paths = ['direct', 'through']) {
  const head = [
    'measure',
    ...paths.map((p) => PATH_LABELS[p]),
    ...ratioColumns(paths).map(([, , label]) => label),
    'target',
    'status',
  ];
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export function notes(r) {
  const out = [];
  if (r.cRelay?.socat)
    out.push(
      `- C relay: socat ${r.cRelay.socat}, \`STDIO OPENSSL:…\` spawned by the client with the identity file's certificate and key, \`OPENSSL-LISTEN:…,fork,verify=1 EXEC:<server>\` on the other side`,
    );
  else if (r.cRelay?.skipped)
    out.push(`- C relay column skipped: ${r.cRelay.skipped}; ratios and targets are against direct only`);
  if (r.version)
    out.push(
      `- \`mcp-access --version\`: ${ms(r.version.versionMs)} (bare \`node -e 0\`: ${ms(r.version.nodeMs)}); version ${r.version.version}`,
    );
  if (r.cold) {
    const m = r.cold.median;
    out.push(
      `- \`connect\` start-up: spawn → tunnel open ("connected" on stderr) ${ms(m.through.tunnel)} median; through − direct initialize ${ms(m.through.init - m.direct.init)}${m.agent ? `; agent path: tunnel open ${ms(m.agent.tunnel)}, agent − direct initialize ${ms(m.agent.init - m.direct.init)}` : ''}`,
    );
  }
  const hop = agentHop(r);
  if (hop) out.push(hop);
  for (const big of r.large ?? []) {
    const cpu = (x) =>
      Object.entries(x.cpuMsPerCall ?? {})
        .map(([k, v]) => `${k} ${Math.round(v)}`)
        .join(' + ');
    const per = (r.paths ?? ['direct', 'through'])
      .filter((p) => big[p])
      .map((p) => `${p === 'crelay' ? 'C relay' : p === 'agent' ? 'agent path' : p} ${cpu(big[p]) || 'n/a'}`);
    out.push(`- CPU ms per ${big.label} round trip: ${per.join('; ')}`);
  }
  if (r.audit) out.push(`- roles + audit: ${r.audit}`);
  if (r.agent?.skipped) out.push(`- agent path skipped: ${r.agent.skipped}`);
  return out.join('\n');
}

/**
 * What the agent's extra hop costs: agent path − through path for p50,
 * throughput and CPU per call (the proxy and the agent against the proxy
 * alone), next to what one relay hop costs on this machine: half of what the
 * two relays of the C relay and the floor add to direct.
 */
function agentHop(r) {
  const s = r.sequential;
  const t = r.throughput;
  if (!s?.agent || !s.through) return undefined;
  const us = (v) => (Number.isFinite(v) ? `${v < 0 ? '-' : '+'}${Math.abs(v * 1000).toFixed(0)} µs` : 'n/a');
  const parts = [`p50 ${us(s.agent.p50 - s.through.p50)}`];
  if (t?.agent && t.through) {
    parts.push(`throughput ${ratio(t.agent.callsPerSec, t.through.callsPerSec)} of through`);
    const a = t.agent.cpuPerCallUs;
    const b = t.through.cpuPerCallUs;
    const mid = (a.proxy ?? NaN) + (a.agent ?? NaN) - (b.proxy ?? NaN);
    parts.push(
      `CPU per call: proxy ${Math.round(a.proxy)} + agent ${Math.round(a.agent)} against the single process's proxy ${Math.round(b.proxy)} (${mid < 0 ? '' : '+'}${Math.round(mid)} µs), bridge ${Math.round(a.bridge)} against ${Math.round(b.bridge)}`,
    );
  }
  const perHop = [];
  if (s.crelay) perHop.push(`C relay ${us((s.crelay.p50 - s.direct.p50) / 2)}`);
  if (s.floor) perHop.push(`floor ${us((s.floor.p50 - s.direct.p50) / 2)}`);
  const ref = perHop.length ? `; one relay hop, (path − direct) / 2 at p50: ${perHop.join(', ')}` : '';
  return `- the agent's extra hop (agent path − through): ${parts.join('; ')}${ref}`;
}

export function machine() {
  const cpu = cpus()[0]?.model?.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  return { nproc: availableParallelism(), cpu, node: process.version, platform: `${process.platform}-${process.arch}` };
}

export function header(r) {
  const m = r.machine;
  return `${r.date} · ${r.mode} run · ${m.nproc} cores (${m.cpu}) · node ${m.node} · ${m.platform}`;
}

export function render(r) {
  return `${header(r)}\n\n${markdownTable(buildRows(r), r.paths)}\n\n${notes(r)}\n`;
}

/** Replace the block between the markers in docs/performance.md. */
export async function writeDocs(r) {
  const file = join(ROOT, 'docs', 'performance.md');
  const text = await readFile(file, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/performance.md has no ${BEGIN} … ${END} block`);
  const block = `${BEGIN}\n${render(r)}${END}`;
  await writeFile(file, text.slice(0, a) + block + text.slice(b + END.length));
  return file;
}
