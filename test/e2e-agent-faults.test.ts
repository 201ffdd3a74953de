/**
 * Agents under faults, with real processes, counting answers per request:
 * two agents serving one server (one SIGKILLed mid-request), an agent
 * announcing a name another agent serves with other labels, a proxy that
 * restarts under a live session, an agent whose server crashes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ALLOW_ALL_ROLE, resultText, testServer, TestCluster } from './helpers/cluster.js';
import { startAgentProcess, type AgentProcess } from './helpers/agent.js';
import { runCli } from './helpers/run-cli.js';
import { until } from './helpers/until.js';

let cluster: TestCluster;
const agents: AgentProcess[] = [];
let alice: string;

function parentOf(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
}

async function lsServers(): Promise<Array<Record<string, unknown>>> {
  const ls = await runCli(['ls', '-i', alice, '--proxy', cluster.address, '--format', 'json']);
  expect(ls.code, ls.stderr).toBe(0);
  return (JSON.parse(ls.stdout) as { servers: Array<Record<string, unknown>> }).servers;
}

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [], roles: [ALLOW_ALL_ROLE] });
  alice = await cluster.issue('alice', ['all']);
}, 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop('SIGKILL')));
  await cluster?.close();
});

describe('several agents serve one server', () => {
  it('ls counts them; an agent SIGKILLed mid-request: its request is answered "outcome unknown" at once, the session reopens on the other agent', async () => {
    for (const name of ['a1', 'a2']) {
      const a = await startAgentProcess(cluster, name, { servers: [testServer('ha-tools')] });
      agents.push(a);
      await a.waitForLog(/connected to the proxy/);
    }
    await until(
      async () => (await lsServers()).some((s) => s.name === 'ha-tools' && s.agents === 2),
      'both agents listed',
    );

    const { client } = await cluster.client('ha-tools', alice);
    const pid = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    const holder = agents.find((a) => a.proc.pid === parentOf(pid))!;
    const other = agents.find((a) => a !== holder)!;
    expect(holder).toBeDefined();

    // A request in flight when its agent dies: killed once the server reports progress on it.
    let started!: () => void;
    const atServer = new Promise<void>((r) => (started = r));
    const inFlight = client
      .callTool({ name: 'slow', arguments: { steps: 100_000, ms: 20 } }, undefined, {
        timeout: 60_000,
        onprogress: () => started(),
      })
      .then(
        () => ({ answered: 'result' as const, code: undefined, message: undefined }),
        (e: { code?: number; message?: string }) => ({ answered: 'error' as const, code: e.code, message: e.message }),
      );
    await atServer;
    await holder.stop('SIGKILL');
    const outcome = await inFlight;
    expect(outcome).toMatchObject({ answered: 'error', code: -32603 });
    expect(outcome.message).toMatch(/outcome is unknown/);

    // The session continues on the other agent: the next call is served by a process of that agent.
    const pid2 = Number(resultText(await client.callTool({ name: 'pid', arguments: {} })));
    expect(parentOf(pid2)).toBe(other.proc.pid);
    await until(
      async () => (await lsServers()).some((s) => s.name === 'ha-tools' && s.agents === 1),
      'one agent listed',
    );
    // New sessions go to the agent that is left.
    const fresh = await cluster.client('ha-tools', alice);
    const pid3 = Number(resultText(await fresh.client.callTool({ name: 'pid', arguments: {} })));
    expect(parentOf(pid3)).toBe(other.proc.pid);
  });

  it('an agent announcing the same name with other labels is refused, with a clear line on both sides', async () => {
    const rogue = await startAgentProcess(cluster, 'rogue', {
      servers: [{ ...testServer('ha-tools'), labels: { env: 'prod' } }],
    });
    agents.push(rogue);
    await rogue.waitForLog(
      /the proxy refused to route to server "ha-tools": agent a\d already serves "ha-tools" with other labels/,
    );
    await cluster.waitForLog(/agent rogue: server "ha-tools" refused/);
    const listed = (await lsServers()).find((s) => s.name === 'ha-tools')!;
    expect(listed.labels).toEqual({ env: 'dev' });
    expect(listed.agents).toBe(1);
  });
});

describe('a proxy that restarts under a live session', () => {
  it('the session resumes through the agent: same server process, nothing lost', async () => {
    const a = await startAgentProcess(cluster, 'steady', { servers: [testServer('steady-tools')] });
    agents.push(a);
    await a.waitForLog(/connected to the proxy/);
    await until(async () => (await lsServers()).some((s) => s.name === 'steady-tools'), 'steady-tools listed');
    const { client } = await cluster.client('steady-tools', alice);
    const pid = resultText(await client.callTool({ name: 'pid', arguments: {} }));
    for (let i = 0; i < 5; i++) await client.callTool({ name: 'echo', arguments: { text: `before ${i}` } });

    await cluster.stopProxy('SIGTERM');
    await cluster.startProxy();

    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => client.callTool({ name: 'echo', arguments: { text: `after ${i}` } })),
    );
    expect(answers.map(resultText)).toEqual([0, 1, 2, 3, 4].map((i) => `after ${i}`));
    expect(resultText(await client.callTool({ name: 'pid', arguments: {} }))).toBe(pid);
    const stats = JSON.parse(resultText(await client.callTool({ name: 'stats', arguments: {} }))) as {
      calls: number;
    };
    // pid + 5 before + 5 after + pid + stats: each seen exactly once by the server.
    expect(stats.calls).toBe(13);
  });
});

describe('an agent whose server crashes', () => {
  it('the bridge opens a new session on the agent; the client keeps working', async () => {
    const a = await startAgentProcess(cluster, 'crashy', { servers: [testServer('crashy-tools')] });
    agents.push(a);
    await a.waitForLog(/connected to the proxy/);
    await until(async () => (await lsServers()).some((s) => s.name === 'crashy-tools'), 'crashy-tools listed');
    const { client } = await cluster.client('crashy-tools', alice);
    const pid = resultText(await client.callTool({ name: 'pid', arguments: {} }));
    const crashed = await client.callTool({ name: 'crash', arguments: {} }).then(
      () => 'result',
      (e: { code?: number }) => e.code,
    );
    expect(crashed).toBe(-32603);
    const pid2 = resultText(await client.callTool({ name: 'pid', arguments: {} }));
    expect(pid2).not.toBe(pid);
    await a.waitForLog(/crashing on purpose/);
  });
});

describe('an agent whose audit path fails', () => {
  it('fails closed: a request whose event the proxy cannot store is refused, naming the audit trail; other identities go on', async () => {
    const c = await TestCluster.start({ servers: [], roles: [ALLOW_ALL_ROLE] });
    try {
      // A tiny per-identity budget: after a few events, the proxy refuses to store carol's.
      await c.writeConfig({ audit: { path: `${c.dir}/audit.jsonl`, identity_budget: '16KiB' } });
      await c.stopProxy();
      await c.startProxy();
      const a = await startAgentProcess(c, 'budget', { servers: [testServer('budget-tools')] });
      agents.push(a);
      await a.waitForLog(/connected to the proxy/);
      await c.waitForLog(/agent budget connected/);
      const carol = await c.issue('carol', ['all']);
      const dave = await c.issue('dave', ['all']);
      const { client } = await c.client('budget-tools', carol);
      let refused: { code?: number; message?: string } | undefined;
      for (let i = 0; i < 50 && !refused; i++) {
        await client.callTool({ name: 'echo', arguments: { text: 'x'.repeat(2000) } }).catch((e: typeof refused) => {
          refused = e;
        });
      }
      expect(refused?.code).toBe(-32603);
      expect(refused?.message).toMatch(/audit/);
      await a.waitForLog(/audit/);
      // Another identity is unaffected.
      const other = await c.client('budget-tools', dave);
      expect(resultText(await other.client.callTool({ name: 'echo', arguments: { text: 'ok' } }))).toBe('ok');
    } finally {
      await c.close();
    }
  });
});
