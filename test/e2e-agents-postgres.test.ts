/**
 * Agents on the PostgreSQL backend, end to end with real processes: the
 * agent's enrolment record lives in the database (`agent add` writes it, the
 * proxy's join reads and updates it, nothing goes to the state directory), a
 * real `agent start` process serves a server through the proxy, roles created
 * with `role create` reach the session at the agent (the proxy pushes the
 * backend's role documents to its agents), the metrics count the connected
 * agent, and `agent lock` through the database disconnects it.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentCredentials } from '../src/agent/credentials.js';
import { parseProxyAddress } from '../src/tunnel/proxy-address.js';
import { Logger } from '../src/util/log.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { TestCluster, freePort, resultText, testServer } from './helpers/cluster.js';
import { startAgentProcess, type AgentProcess } from './helpers/agent.js';
import { runCli } from './helpers/run-cli.js';
import { until } from './helpers/until.js';

/** Defined in proxy.yaml: reaches the server, allows only `stats`. */
const BASE = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'base' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['stats'] } } },
};

/** Created with `role create`: adds `echo`. */
const READER = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'reader' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['echo', 'stats'] } } },
};

let pg: TestPostgres;
let cluster: TestCluster;
let secrets: string;
let metricsPort: number;
let creds: AgentCredentials | undefined;
let agent: AgentProcess | undefined;
let alice: string;

function getMetrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

beforeAll(async () => {
  pg = await startPostgres();
  pg.psql('CREATE DATABASE proxy');
  secrets = await mkdtemp(join(tmpdir(), 'mcp-access-pgpw-'));
  const passwordFile = join(secrets, 'pg.pass');
  await writeFile(passwordFile, `${pg.password}\n`, { mode: 0o600 });
  metricsPort = await freePort();
  cluster = await TestCluster.start({
    servers: [],
    config: {
      backend: {
        type: 'postgres',
        url: `postgres://postgres@127.0.0.1:${pg.port}/proxy`,
        password_file: passwordFile,
        connect_timeout: '2s',
      },
      bot: {},
      audit: {},
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      roles: [BASE],
    },
  });
  alice = await cluster.issue('alice', ['base', 'reader']);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await creds?.close();
  await cluster?.close();
  await pg?.destroy();
  if (secrets) await rm(secrets, { recursive: true, force: true });
});

describe('an agent on the PostgreSQL backend', () => {
  it('enrols through the database: agent add, join, agent ls; nothing in the state directory', async () => {
    const added = await runCli(['agent', 'add', 'east', '--config', cluster.configPath, '--format', 'json']);
    expect(added.code, added.stderr).toBe(0);
    const { token, ca_pin } = JSON.parse(added.stdout) as { token: string; ca_pin: string };
    expect(
      pg.psql("SELECT count(*) FROM records WHERE kind = 'agent-enrolment' AND name = 'east'", 'proxy').trim(),
    ).toBe('1');
    creds = await AgentCredentials.open({
      proxy: parseProxyAddress(cluster.address, ''),
      dataDir: join(cluster.dir, 'agent-east-data'),
      token,
      caPin: ca_pin,
      ttlMs: 600_000,
      log: new Logger({ name: 'agent', level: 'error', sink: () => {} }),
    });
    expect(creds.current()).toMatchObject({ name: 'east', generation: 1 });
    const ls = await runCli(['agent', 'ls', '--config', cluster.configPath, '--format', 'json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect((JSON.parse(ls.stdout) as { agents: unknown[] }).agents).toEqual([
      expect.objectContaining({ name: 'east', status: 'active', generation: 1 }),
    ]);
    expect(existsSync(join(cluster.dir, 'bots', 'agents', 'east.json'))).toBe(false);
    // A bot of the same name is another record: agents and bots do not share names' records.
    expect(pg.psql("SELECT count(*) FROM records WHERE kind = 'bot' AND name = 'east'", 'proxy').trim()).toBe('0');
  }, 60_000);

  it('serves through the proxy; a role created in the backend reaches the session at the agent', async () => {
    agent = await startAgentProcess(cluster, 'east', {
      servers: [testServer('remote-tools')],
      identity: join(cluster.dir, 'agent-east-data', 'identity'),
    });
    await agent.waitForLog(/connected to the proxy/);
    await cluster.waitForLog(/agent east connected/);
    await until(async () => metric(await getMetrics(), 'mcp_access_agents_connected') === 1, 'the agents gauge');

    const c = await cluster.client('remote-tools', alice);
    expect(resultText(await c.client.callTool({ name: 'stats', arguments: {} }))).toBeTruthy();
    // No role "reader" yet: the agent refuses echo.
    await expect(c.client.callTool({ name: 'echo', arguments: { text: 'before' } })).rejects.toThrow();
    const file = join(cluster.dir, 'reader.yaml');
    await writeFile(file, stringify(READER));
    const created = await runCli(['role', 'create', '-f', file, '--config', cluster.configPath]);
    expect(created.code, created.stderr).toBe(0);
    await until(async () => {
      try {
        return resultText(await c.client.callTool({ name: 'echo', arguments: { text: 'after' } })) === 'after';
      } catch {
        return false;
      }
    }, 'the backend role to reach the agent');
    const removed = await runCli(['role', 'rm', 'reader', '--config', cluster.configPath]);
    expect(removed.code, removed.stderr).toBe(0);
    await until(async () => {
      try {
        await c.client.callTool({ name: 'echo', arguments: { text: 'gone' } });
        return false;
      } catch {
        return true;
      }
    }, 'the removed backend role to stop granting at the agent');
    await c.close();
  }, 90_000);

  it('agent lock through the database disconnects the agent', async () => {
    const locked = await runCli(['agent', 'lock', 'east', '--reason', 'test', '--config', cluster.configPath]);
    expect(locked.code, locked.stderr).toBe(0);
    await cluster.waitForLog(/agent east disconnected/);
    await until(
      async () => metric(await getMetrics(), 'mcp_access_agents_connected') === 0,
      'the agents gauge to drop',
    );
  }, 60_000);
});
