/**
 * The agent's audit spool end to end, with real processes: the proxy, an
 * `mcp-access agent start` process, the real `connect` and the SDK client,
 * and the real server-filesystem reading the spool itself.
 *
 * - A request's event is in the agent's spool before the server sees the
 *   request: server-filesystem, asked to read the spool, finds the event of
 *   that very call in it. The proxy's trail gets it afterwards, with the
 *   agent's name and the id the agent derived.
 * - A client's secret argument never reaches the agent's disk.
 * - Events an agent could not hand over when it stopped (its sessions' ends)
 *   reach the proxy's trail when it starts again.
 * - A low-privilege identity with an own tunnel client: its denied call is in
 *   the spool before the refusal arrives, under the id the refusal names, and
 *   reaches the trail under that id; its secret argument never reaches the
 *   agent's disk.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentEventId } from '../src/audit/prepare.js';
import { verifyAuditFile } from '../src/audit/log.js';
import { ALLOW_ALL_ROLE, ECHO_ONLY_ROLE, FILESYSTEM, resultText, testServer, TestCluster } from './helpers/cluster.js';
import { startAgentProcess, type AgentProcess } from './helpers/agent.js';
import { auditEvents, waitForAudit } from './helpers/bot.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { INIT } from './helpers/raw-bridge.js';
import { until } from './helpers/until.js';

let cluster: TestCluster;
let auditPath: string;
let root: string;
let spoolDir: string;
let alice: string;
let mallory: string;
const agents: AgentProcess[] = [];

function agentConfig() {
  return {
    servers: [
      {
        name: 'spool-files',
        description: 'the agent’s own spool, read by server-filesystem',
        labels: { env: 'dev' },
        command: process.execPath,
        args: [FILESYSTEM, root],
      },
      testServer('spool-tools'),
    ],
    config: { audit_spool: { dir: spoolDir } },
  };
}

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [], roles: [ALLOW_ALL_ROLE, ECHO_ONLY_ROLE] });
  auditPath = join(cluster.dir, 'audit.jsonl');
  root = join(cluster.dir, 'root');
  spoolDir = join(root, 'spool');
  mkdirSync(root);
  await cluster.writeConfig({ audit: { path: auditPath, redact: ['pin'] } });
  await cluster.stopProxy();
  await cluster.startProxy();
  alice = await cluster.issue('alice', ['all']);
  mallory = await cluster.issue('mallory', ['echo-only']);
}, 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await cluster?.close();
});

async function startAgent(): Promise<AgentProcess> {
  const a = await startAgentProcess(cluster, 'east', agentConfig());
  agents.push(a);
  await a.waitForLog(/connected to the proxy/);
  await cluster.waitForLog(/agent east connected/);
  return a;
}

function spoolLines(): Array<Record<string, unknown>> {
  return readdirSync(spoolDir)
    .filter((f) => f.startsWith('spool-'))
    .sort()
    .flatMap((f) => readFileSync(join(spoolDir, f), 'utf8').split('\n'))
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('an agent’s audit spool', () => {
  it('holds a request’s event before the server sees the request; the proxy’s trail gets it after, under the same id', async () => {
    const agent = await startAgent();
    const { client } = await cluster.client('spool-files', alice);
    const segment = join(spoolDir, 'spool-000001.jsonl');
    const text = resultText(await client.callTool({ name: 'read_file', arguments: { path: segment } }));
    // The server read the spool while it served this call: this call's event was already there.
    const lines = text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const own = lines.find((e) => e.tool === 'read_file' && (e.args as { path?: string })?.path === segment);
    expect(own, text).toMatchObject({ type: 'mcp.session.request', user: 'alice', method: 'tools/call' });
    const id = agentEventId('east', String(own!.eventKey));
    const events = await waitForAudit(auditPath, (e) => e.id === id);
    expect(events.find((e) => e.id === id)).toMatchObject({ agent: 'east', tool: 'read_file', user: 'alice' });
    expect(await verifyAuditFile(auditPath)).toMatchObject({ ok: true });
    await agent.stop();
  });

  it('a secret argument is redacted before it reaches the agent’s disk, with the proxy’s own redaction keys', async () => {
    const agent = await startAgent();
    const { client } = await cluster.client('spool-tools', alice);
    const args = { text: 'visible', pin: '4711', password: 'hunter2' };
    expect(resultText(await client.callTool({ name: 'echo', arguments: args }))).toBe('visible');
    const events = await waitForAudit(auditPath, (e) => (e.args as { text?: string })?.text === 'visible');
    const stored = events.find((e) => (e.args as { text?: string })?.text === 'visible')!;
    expect(stored.args).toEqual({ text: 'visible', pin: '[REDACTED]', password: '[REDACTED]' });
    const spooled = spoolLines().find((e) => (e.args as { text?: string })?.text === 'visible');
    expect(spooled?.args).toEqual(stored.args);
    for (const f of readdirSync(spoolDir)) {
      const content = readFileSync(join(spoolDir, f), 'utf8');
      expect(content).not.toContain('4711');
      expect(content).not.toContain('hunter2');
    }
    await agent.stop();
  });

  it('the ends of sessions an agent stopped with reach the proxy’s trail when it starts again', async () => {
    const first = await startAgent();
    const { client } = await cluster.client('spool-tools', alice);
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: 'before the stop' } }))).toBe(
      'before the stop',
    );
    const started = await waitForAudit(
      auditPath,
      (e) => (e.args as { text?: string })?.text === 'before the stop' && e.agent === 'east',
    );
    const sessionId = started.find((e) => (e.args as { text?: string })?.text === 'before the stop')!.sessionId;
    // Stopping: the link to the proxy goes first, then the sessions end; their end events stay in the spool.
    await first.stop();
    const ended = (e: Record<string, unknown>) => e.type === 'mcp.session.end' && e.sessionId === sessionId;
    expect(spoolLines().some(ended)).toBe(true);
    expect((await auditEvents(auditPath)).some(ended)).toBe(false);
    const second = await startAgent();
    await second.waitForLog(/event\(s\) the proxy had not stored when the agent stopped go to it first/);
    const events = await waitForAudit(auditPath, ended);
    expect(events.filter(ended)).toHaveLength(1);
    expect(events.find(ended)).toMatchObject({ agent: 'east', user: 'alice' });
    expect(await verifyAuditFile(auditPath)).toMatchObject({ ok: true });
    await second.stop();
  });

  it('an own tunnel client’s denied call: in the spool before the refusal, under the id the refusal names; no secret on disk', async () => {
    const agent = await startAgent();
    const t = await RawTunnel.open(cluster.address, mallory, { server: 'spool-tools' });
    try {
      t.send(INIT(0));
      await t.response(0);
      t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      t.send({
        jsonrpc: '2.0',
        id: 'w1',
        method: 'tools/call',
        params: { name: 'write_note', arguments: { text: 'x', api_key: 'sk-live-123' } },
      });
      const res = await t.response('w1');
      const error = res.error as { code: number; data: { auditEventId?: string } };
      expect(error.code).toBe(-32602);
      const id = error.data.auditEventId!;
      // Read at once: the denial's event was in the spool before the refusal was sent.
      const spooled = spoolLines().find((e) => agentEventId('east', String(e.eventKey)) === id);
      expect(spooled).toMatchObject({ user: 'mallory', tool: 'write_note', outcome: 'denied', rpcId: 'w1' });
      expect(spooled!.args).toEqual({ text: 'x', api_key: '[REDACTED]' });
      for (const f of readdirSync(spoolDir)) expect(readFileSync(join(spoolDir, f), 'utf8')).not.toContain('sk-live');
      const events = await waitForAudit(auditPath, (e) => e.id === id);
      expect(events.filter((e) => e.id === id)).toEqual([
        expect.objectContaining({ agent: 'east', user: 'mallory', tool: 'write_note', outcome: 'denied' }),
      ]);
      // The session goes on: an allowed call is answered.
      t.send({ jsonrpc: '2.0', id: 'e1', method: 'tools/call', params: { name: 'echo', arguments: { text: 'ok' } } });
      expect((await t.response('e1')).result).toBeDefined();
    } finally {
      await t.close();
      await agent.stop();
    }
  });

  it('while the proxy cannot store events the agent serves from its spool, refuses at max_size, and catches up once the trail is back', async () => {
    // A second proxy configuration: the trail in a directory of its own, which the test takes away.
    const trail = join(cluster.dir, 'trail');
    mkdirSync(trail);
    const trailPath = join(trail, 'audit.jsonl');
    await cluster.writeConfig({ audit: { path: trailPath } });
    await cluster.stopProxy();
    await cluster.startProxy();
    const agent = await startAgentProcess(cluster, 'east', {
      ...agentConfig(),
      config: { audit_spool: { dir: join(cluster.dir, 'small-spool'), max_size: '64KiB' } },
    });
    agents.push(agent);
    await agent.waitForLog(/connected to the proxy/);
    const { client } = await cluster.client('spool-tools', alice);
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: 'before' } }))).toBe('before');
    await waitForAudit(trailPath, (e) => (e.args as { text?: string })?.text === 'before');

    rmSync(trail, { recursive: true });
    const answered: string[] = [];
    let refused: { code?: number; message?: string } | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const text = `during ${i} ${'p'.repeat(1500)}`;
      await client.callTool({ name: 'echo', arguments: { text } }).then(
        () => answered.push(text),
        (e: typeof refused) => (refused = e),
      );
    }
    // It went on while its spool had room, then refused, naming the audit trail.
    expect(answered.length).toBeGreaterThan(5);
    expect(refused?.code).toBe(-32603);
    expect(refused?.message).toMatch(/audit/);
    await agent.waitForLog(/the proxy could not store/);

    mkdirSync(trail);
    await until(
      async () =>
        resultText(await client.callTool({ name: 'echo', arguments: { text: 'after' } }).catch(() => ({}))) === 'after',
      'requests accepted again',
    );
    // Every answered request's event reached the trail.
    const events = await waitForAudit(trailPath, (e) => (e.args as { text?: string })?.text === answered.at(-1));
    const stored = new Set(events.map((e) => (e.args as { text?: string } | undefined)?.text));
    expect(answered.filter((t) => !stored.has(t))).toEqual([]);
    expect(await verifyAuditFile(trailPath)).toMatchObject({ ok: true });
    await agent.stop();
  });
});
