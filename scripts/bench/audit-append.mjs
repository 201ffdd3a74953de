#!/usr/bin/env node
/**
 * In-process micro-benchmark of the audit trail's share of the hot path
 * (issue 16): events of the shape the gate writes for a small tools/call
 * (the request, awaited as before forwarding; its response outcome, not
 * awaited) appended to a real AuditLog in a temporary directory. Prints CPU
 * µs per event (user + system, process.cpuUsage) for three runs.
 *
 *   npm run build && node scripts/bench/audit-append.mjs
 *   N=100000 node scripts/bench/audit-append.mjs      # events per run (default 50,000)
 *   STACK=1 node scripts/bench/audit-append.mjs      # through the proxy's writer: metrics + file writer
 *   NULL=1 node scripts/bench/audit-append.mjs       # the harness alone (subtract it)
 *   ROOT=<another build> node …                      # compare two builds
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = process.env.ROOT ?? process.cwd();
const load = (p) => import(pathToFileURL(join(ROOT, p)).href);
const { AuditLog } = await load('dist/audit/log.js');
const N = Number(process.env.N ?? 50_000);

const base = {
  sessionId: 'c0ffee00-1111-4222-8333-444455556666',
  user: 'alice',
  roles: ['dev', 'mcp-user'],
  server: 'everything',
  remoteAddr: '127.0.0.1',
};
const client = { name: 'bench-client', version: '1.0.0' };
const request = (i) => ({
  ...base,
  client,
  direction: 'client_to_server',
  type: 'mcp.session.request',
  method: 'tools/call',
  rpcId: i,
  tool: 'echo',
  args: { message: 'hello' },
});
const response = (i, requestEventId) => ({
  ...base,
  client,
  direction: 'server_to_client',
  type: 'mcp.session.request',
  phase: 'response',
  rpcId: i,
  method: 'tools/call',
  tool: 'echo',
  requestEventId,
  outcome: 'success',
  reason: undefined,
  latencyMs: 0.42,
});

async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-access-bench-'));
  const log = await AuditLog.open(join(dir, 'audit.jsonl'), { identityBudgetBytes: 0 });
  let append;
  if (process.env.NULL) append = async () => ({ id: 'x' });
  else if (process.env.STACK) {
    const { fileAuditWriter } = await load('dist/backend/local.js');
    const { ProxyMetrics } = await load('dist/proxy/metrics.js');
    const writer = new ProxyMetrics(() => 0).observeAudit(fileAuditWriter(log));
    append = (e) => writer.append(e);
  } else append = log.write ? (e) => log.write(e) : (e) => log.append(e); // builds before `write` existed
  const calls = async (n) => {
    for (let i = 0; i < n; i += 8) {
      const outcomes = [];
      for (let j = 0; j < 8; j++) {
        const stored = await append(request(i + j));
        outcomes.push(append(response(i + j, stored.id)));
      }
      await Promise.all(outcomes);
    }
  };
  await calls(2000);
  const c0 = process.cpuUsage();
  await calls(N / 2);
  const c = process.cpuUsage(c0);
  await log.close();
  rmSync(dir, { recursive: true });
  return { user: c.user / N, system: c.system / N };
}

for (let r = 0; r < 3; r++) {
  const { user, system } = await run();
  console.log(
    `${N} events: ${(user + system).toFixed(1)} µs CPU per event (user ${user.toFixed(1)}, system ${system.toFixed(1)})`,
  );
}
