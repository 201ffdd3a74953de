/**
 * Agents in front of the MCP servers, end to end with real processes: a
 * proxy with no servers of its own, `mcp-access agent start` processes that
 * dial out to it, the real `connect` and the SDK client. The session lives at
 * the agent (role gate, audit events, the upstream process); the proxy routes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ALLOW_ALL_ROLE, ECHO_ONLY_ROLE, resultText, testServer, TestCluster } from './helpers/cluster.js';
import { listeningPorts, startAgentProcess, type AgentProcess } from './helpers/agent.js';
import { auditEvents, waitForAudit } from './helpers/bot.js';
import { runCli } from './helpers/run-cli.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { verifyAuditFile } from '../src/audit/log.js';

let cluster: TestCluster;
let agent: AgentProcess;
let admin: string;
let echoer: string;
let auditPath: string;

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [], roles: [ALLOW_ALL_ROLE, ECHO_ONLY_ROLE] });
  auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({ audit: { path: auditPath } });
  await cluster.stopProxy();
  await cluster.startProxy();
  agent = await startAgentProcess(cluster, 'east', { servers: [testServer('remote-tools')] });
  await agent.waitForLog(/connected to the proxy/);
  await cluster.waitForLog(/agent east connected/);
  admin = await cluster.issue('alice', ['all']);
  echoer = await cluster.issue('bob', ['echo-only']);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await cluster?.close();
});

describe('a server served by an agent', () => {
  it('is listed by `ls` with the number of agents serving it', async () => {
    const ls = await runCli(['ls', '-i', admin, '--proxy', cluster.address, '--format', 'json']);
    expect(ls.code, ls.stderr).toBe(0);
    const servers = (JSON.parse(ls.stdout) as { servers: Array<Record<string, unknown>> }).servers;
    expect(servers).toContainEqual(expect.objectContaining({ name: 'remote-tools', agents: 1, transport: 'stdio' }));
  });

  it('answers tool calls through the proxy; the session and its process live at the agent', async () => {
    const { client } = await cluster.client('remote-tools', admin);
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: 'hi' } }))).toBe('hi');
    const pid = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    // The server is the agent's child, not the proxy's.
    const { readFileSync } = await import('node:fs');
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    expect(ppid).toBe(agent.proc.pid);
  });

  it('the agent listens on no port', () => {
    expect(listeningPorts(agent.proc.pid!)).toEqual([]);
  });

  it('roles are enforced at the agent, and the events reach the proxy’s trail with the agent’s name', async () => {
    const { client } = await cluster.client('remote-tools', echoer);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(['echo']);
    const denied = await client.callTool({ name: 'write_note', arguments: { text: 'x' } }).then(
      () => undefined,
      (e: { code?: number }) => e,
    );
    expect(denied?.code).toBe(-32602);
    const events = await waitForAudit(
      auditPath,
      (e) => e.user === 'bob' && e.tool === 'write_note' && e.outcome === 'denied',
    );
    const denial = events.find((e) => e.user === 'bob' && e.tool === 'write_note')!;
    expect(denial.agent).toBe('east');
    expect(denial.server).toBe('remote-tools');
    expect(await verifyAuditFile(auditPath)).toMatchObject({ ok: true });
  });

  it('a user certificate cannot pose as an agent, and an agent certificate cannot open sessions', async () => {
    const asAgent = await RawTunnel.open(cluster.address, agentIdentity(), { server: 'remote-tools' }).then(
      (t) => t,
      (e: Error) => e,
    );
    // Refused before the upgrade (401): the raw client sees no tunnel.
    expect(asAgent instanceof Error || asAgent.hello === undefined).toBe(true);
    const { default: WebSocket } = await import('ws');
    const { parseIdentityFile } = await import('../src/identity/identity-file.js');
    const { readFileSync } = await import('node:fs');
    const parts = parseIdentityFile(readFileSync(admin, 'utf8'), admin);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`wss://${cluster.address}/v1/agent/control`, 'mcp-access.agent.v1', {
        key: parts.keyPem,
        cert: parts.certPem,
        ca: parts.caPems,
        rejectUnauthorized: false,
      });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => {});
    });
    expect(status).toBe(401);
    await cluster.waitForLog(/alice is not an agent/);
  });
});

function agentIdentity(): string {
  return join(cluster.dir, 'agent-east.identity');
}

describe('roles changed at the proxy reach the agent', () => {
  it('a SIGHUP reload applies to a running session from its next message', async () => {
    const { client } = await cluster.client('remote-tools', echoer);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['echo']);
    await cluster.writeConfig({
      roles: [
        ALLOW_ALL_ROLE,
        { ...ECHO_ONLY_ROLE, spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['echo', 'add'] } } } },
      ],
    });
    cluster.proxy!.kill('SIGHUP');
    await cluster.waitForLog(/reloaded/);
    const deadline = Date.now() + 5000;
    let names: string[] = [];
    while (Date.now() < deadline) {
      names = (await client.listTools()).tools.map((t) => t.name).sort();
      if (names.length === 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(names).toEqual(['add', 'echo']);
    const events = await auditEvents(auditPath);
    expect(events.some((e) => e.agent === 'east' && e.type === 'mcp.session.start')).toBe(true);
  });
});

describe('the cluster’s rbac settings reach the agent with the roles', () => {
  it('rbac.default_resources: none at the proxy hides resources at the agent from the next message', async () => {
    const { client } = await cluster.client('remote-tools', admin);
    expect((await client.listResources()).resources.map((r) => r.uri)).toContain('test://hello');
    await cluster.writeConfig({ rbac: { default_resources: 'none' } });
    cluster.proxy!.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    let uris = ['test://hello'];
    while (Date.now() < deadline && uris.length > 0) {
      uris = (await client.listResources()).resources.map((r) => r.uri);
      if (uris.length > 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(uris).toEqual([]);
    const read = await client.readResource({ uri: 'test://hello' }).then(
      () => 'read',
      (e: { code?: number }) => e.code,
    );
    expect(read).toBe(-32602);
  });
});

describe('an attacker with a valid low-privilege identity and a raw tunnel client, against an agent session', () => {
  it('cannot resume another identity’s session on the agent, nor a made-up agent’s; the owner still can', async () => {
    const owner = await RawTunnel.open(cluster.address, admin, { server: 'remote-tools' });
    expect(owner.hello?.resumeToken).toMatch(/^east~/);
    owner.send({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    await owner.response(1);
    const token = owner.hello!.resumeToken;
    owner.drop();

    // bob (echo-only) presents alice's token.
    const thief = await RawTunnel.open(cluster.address, echoer, { resume: token, received: 1 });
    expect(thief.hello?.resumed ?? false).toBe(false);
    await thief.until(() => thief.closed !== undefined, 'the refusal');
    expect(thief.closed!.code).toBe(4401);
    // A token naming an agent that does not exist: never a session.
    const forged = await RawTunnel.open(cluster.address, echoer, { resume: 'nobody~AAAA', received: 0 });
    expect(forged.hello).toBeUndefined();
    await forged.until(() => forged.closed !== undefined, 'the refusal');
    expect([4001, 4409]).toContain(forged.closed!.code);
    // The refusal was audited at the proxy, naming who tried.
    await waitForAudit(
      auditPath,
      (e) => e.user === 'bob' && typeof e.reason === 'string' && e.reason.includes('tried to resume'),
    );

    // The session is intact: alice resumes it and it still answers.
    const back = await RawTunnel.open(cluster.address, admin, { resume: token, received: 1 });
    expect(back.hello?.resumed).toBe(true);
    back.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'mine' } } });
    expect(JSON.stringify(await back.response(2))).toContain('mine');
    await back.close();
  });
});
