/**
 * Turns the results into the table (Markdown, readable in a terminal too),
 * checks the targets from the data-path issue, and can put the table into
 * docs/performance.md between its markers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './setup.mjs';

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

export const TARGETS = {
  startupExtraMs: 100,
  p50Ratio: 1.5,
  throughputRatio: 0.7,
  bridgeIdleRssBytes: 60e6,
};

export function ms(v) {
  if (!Number.isFinite(v)) return 'n/a';
  if (v < 10) return `${v.toFixed(2)} ms`;
  if (v < 100) return `${v.toFixed(1)} ms`;
  return `${Math.round(v).toLocaleString('en-US')} ms`;
}
const mb = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : 'n/a');
const int = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');
const verdict = (ok) => (ok === undefined ? '' : ok ? 'met' : '**missed**');
const sum = (o) => Object.values(o).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
const cpuParts = (o) => Object.entries(o).map(([k, v]) => `${k} ${Math.round(v)}`).join(' + ');

/** Rows: [measure, direct, floor, through, ratio, target, status]. */
export function buildRows(r) {
  const rows = [];
  const floor = r.paths?.includes('floor');
  const row = (label, direct, floorValue, through, ratioText, target, status) => rows.push([label, direct, floor ? floorValue : undefined, through, ratioText, target, status].filter((_, i) => floor || i !== 2));
  const c = r.cold;
  if (c) {
    const m = c.median;
    for (const [label, key] of [[`initialize, spawn → answered (median of ${c.samples})`, 'init'], [`spawn → first tool result (median of ${c.samples})`, 'first']]) {
      const d = m.direct[key];
      const t = m.through[key];
      row(label, ms(d), ms(m.floor?.[key]), ms(t), `${ratio(t, d)} (+${Math.round(t - d)} ms)`, `≤ direct + ${TARGETS.startupExtraMs} ms`, verdict(t - d <= TARGETS.startupExtraMs));
    }
  }
  const s = r.sequential;
  if (s) {
    row(`sequential echo p50 (${s.calls} calls)`, ms(s.direct.p50), ms(s.floor?.p50), ms(s.through.p50), ratio(s.through.p50, s.direct.p50), `≤ ${TARGETS.p50Ratio}× direct`, verdict(s.through.p50 <= TARGETS.p50Ratio * s.direct.p50));
    row(`sequential echo p99 (${s.calls} calls)`, ms(s.direct.p99), ms(s.floor?.p99), ms(s.through.p99), ratio(s.through.p99, s.direct.p99), '—', '');
  }
  const t = r.throughput;
  if (t) {
    row(`throughput, ${t.inFlight} in flight (calls/s, median of ${t.rounds}×${t.total})`, int(t.direct.callsPerSec), int(t.floor?.callsPerSec), int(t.through.callsPerSec), ratio(t.through.callsPerSec, t.direct.callsPerSec), `≥ ${TARGETS.throughputRatio}× direct`, verdict(t.through.callsPerSec >= TARGETS.throughputRatio * t.direct.callsPerSec));
    const cpu = (x) => (x ? `${cpuParts(x.cpuPerCallUs)} = ${Math.round(sum(x.cpuPerCallUs))}` : 'n/a');
    row('CPU per call at that load (µs, per process)', cpu(t.direct), cpu(t.floor), cpu(t.through), ratio(sum(t.through.cpuPerCallUs), sum(t.direct.cpuPerCallUs)), '—', '');
  }
  for (const big of r.large ?? []) {
    const show = (x) => (x.error ? `fails: ${x.error}` : `${ms(x.ms)}${x.intact ? ', intact' : ', **corrupted**'}`);
    const ok = big.direct.intact && big.through.intact;
    row(`${big.label} argument, echo round trip (${big.server}, median of ${big.reps})`, show(big.direct), '—', show(big.through), ratio(big.through.ms, big.direct.ms), 'intact both ways', verdict(big.required ? ok : undefined) || (ok ? 'intact' : 'corrupted'));
  }
  const m = r.memory;
  if (m) {
    // Median over the cold-start bridges when there are some: one process's figure moves with its GC timing.
    const idle = Number.isFinite(r.cold?.median.through.idleRss) ? r.cold.median.through.idleRss : m.bridgeIdle?.rss;
    const floorIdle = Number.isFinite(r.cold?.median.floor?.idleRss) ? r.cold.median.floor.idleRss : m.floorBridgeIdle?.rss;
    const label = Number.isFinite(r.cold?.median.through.idleRss) ? `bridge RSS, idle after initialize (median of ${r.cold.samples})` : 'bridge RSS, idle after initialize';
    row(label, '—', mb(floorIdle), mb(idle), '—', `≤ ${TARGETS.bridgeIdleRssBytes / 1e6} MB`, verdict(idle <= TARGETS.bridgeIdleRssBytes));
    row('bridge peak RSS (VmHWM), small calls + 1 MiB', '—', '—', mb(m.bridgePeakSmall?.hwm), '—', '—', '');
    if (m.bridgePeakBig) row('bridge peak RSS (VmHWM), 16 MiB session', '—', '—', mb(m.bridgePeakBig?.hwm), '—', '—', '');
    row('server RSS idle after initialize (for scale)', mb(m.serverIdle?.rss), '—', '—', '—', '—', '');
    row('proxy peak RSS (VmHWM), whole run', '—', '—', mb(m.proxyPeak?.hwm), '—', '—', '');
  }
  return rows;
}

export function markdownTable(rows, { floor = false } = {}) {
  const head = ['measure', 'direct stdio', ...(floor ? ['floor: minimal relay'] : []), 'through connect + proxy', 'through / direct', 'target', 'status'];
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export function notes(r) {
  const out = [];
  if (r.version) out.push(`- \`mcp-access --version\`: ${ms(r.version.versionMs)} (bare \`node -e 0\`: ${ms(r.version.nodeMs)}); version ${r.version.version}`);
  if (r.cold) {
    const m = r.cold.median;
    out.push(`- \`connect\` start-up: spawn → tunnel open ("connected" on stderr) ${ms(m.through.tunnel)} median; through − direct initialize ${ms(m.through.init - m.direct.init)}`);
  }
  for (const big of r.large ?? []) {
    const cpu = (x) => Object.entries(x.cpuMsPerCall ?? {}).map(([k, v]) => `${k} ${Math.round(v)}`).join(' + ');
    out.push(`- CPU ms per ${big.label} round trip: direct ${cpu(big.direct)}; through ${cpu(big.through)}`);
  }
  if (r.audit) out.push(`- roles + audit: ${r.audit}`);
  return out.join('\n');
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
  return `${header(r)}\n\n${markdownTable(buildRows(r), { floor: r.paths?.includes('floor') })}\n\n${notes(r)}\n`;
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
