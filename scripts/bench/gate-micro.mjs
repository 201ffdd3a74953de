#!/usr/bin/env node
/**
 * In-process micro-benchmark of the per-message gate (issue 16): CPU µs per
 * small tools/call for gate.fromClient (strict inspection, policy decision,
 * audit event handed to the sink) plus gate.fromServer (strict inspection,
 * pending-id check, outcome event), one call at a time and 64 in flight,
 * without an audit sink and with a trivial one (so the audit log itself is
 * not measured); then the two inspectors alone. Run after `npm run build`:
 *
 *   node scripts/bench/gate-micro.mjs          # N=50000 calls per row
 *   N=200000 node scripts/bench/gate-micro.mjs
 */
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = process.env.ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const load = (path) => import(pathToFileURL(join(ROOT, 'dist', path)).href);
const { createEnforcingGates } = await load('agent/enforcement.js');
const { Policy } = await load('rbac/policy.js');
const { loadRoles } = await load('rbac/roles.js');
const { Logger } = await load('util/log.js');
const { inspectClientMessage } = await load('rbac/inspect.js');
const { inspectServerMessage } = await load('agent/server-messages.js');

/** The bench's role: every server, every tool. */
const roles = loadRoles({
  inline: [
    {
      kind: 'role',
      version: 'v7',
      metadata: { name: 'bench' },
      spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } } },
    },
  ],
  files: [],
  baseDir: ROOT,
}).roles;
const policy = new Policy(roles);
const server = {
  name: 'everything',
  description: 'benchmark echo server',
  labels: { env: 'bench' },
  roots: [],
  clientRoots: false,
  toolPinning: 'off',
  transport: 'stdio',
  command: process.execPath,
  args: [],
  env: {},
  inheritEnv: [],
};
const peer = {
  user: 'bench',
  roles: ['bench'],
  notAfter: new Date(Date.now() + 3_600_000),
  serial: '1',
  fingerprint256: 'bench',
  remoteAddr: '127.0.0.1:1',
};
const log = new Logger({ level: 'warn', sink: () => {} });
let eventIds = 0;
const sinks = { none: undefined, trivial: { append: async () => ({ id: String(++eventIds) }) } };

/** What the SDK client sends for server-everything's echo, and what the server answers. */
const request = (id) =>
  Buffer.from(
    `{"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},"_meta":{"progressToken":${id}}},"jsonrpc":"2.0","id":${id}}`,
  );
const response = (id) =>
  Buffer.from(`{"result":{"content":[{"type":"text","text":"Echo: hello"}]},"jsonrpc":"2.0","id":${id}}`);

const N = Number(process.env.N ?? 50_000);
let nextId = 1;

async function measure(label, run) {
  await run(Math.min(N, 5000)); // warm-up
  const cpu = process.cpuUsage();
  await run(N);
  const used = process.cpuUsage(cpu);
  console.log(`${label.padEnd(44)} ${((used.user + used.system) / N).toFixed(2).padStart(7)} µs CPU per op`);
}

for (const [name, audit] of Object.entries(sinks)) {
  const gate = await createEnforcingGates({ policy, audit }, log).open({ sessionId: 'bench', peer, server });
  await measure(`gate, one call at a time (${name} audit)`, async (k) => {
    for (let i = 0; i < k; i++) {
      const id = nextId++;
      const verdict = await gate.fromClient(request(id));
      if (!('forward' in verdict)) throw new Error(`not forwarded: ${verdict.reply?.toString()}`);
      if ((await gate.fromServer(response(id))) === undefined) throw new Error('answer dropped');
    }
  });
  await measure(`gate, 64 in flight (${name} audit)`, async (k) => {
    for (let i = 0; i < k; i += 64) {
      const ids = Array.from({ length: Math.min(64, k - i) }, () => nextId++);
      const verdicts = await Promise.all(ids.map((id) => gate.fromClient(request(id))));
      if (verdicts.some((v) => !('forward' in v))) throw new Error('not forwarded');
      const outs = await Promise.all(ids.map((id) => gate.fromServer(response(id))));
      if (outs.some((o) => o === undefined)) throw new Error('answer dropped');
    }
  });
}
const req = request(7);
const res = response(7);
await measure('inspectClientMessage (tools/call)', async (k) => {
  for (let i = 0; i < k; i++) inspectClientMessage(req);
});
await measure('inspectServerMessage (its result)', async (k) => {
  for (let i = 0; i < k; i++) inspectServerMessage(res);
});
await measure('(the Buffer.from of both, included above)', async (k) => {
  for (let i = 0; i < k; i++) {
    request(i);
    response(i);
  }
});
