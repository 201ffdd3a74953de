/**
 * Roles as resources on the local backend (the default: files in the
 * proxy's state directory), with a real proxy process: `role create` reaches
 * a running session, proxy.yaml's roles keep working next to them, the state
 * directory is created only when a role is, and a bot's roles change with
 * `bot update`. Also: /healthz and /readyz on the local backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { request as httpRequest } from 'node:http';
import { TestCluster, freePort, resultText, testServer } from './helpers/cluster.js';
import { runCli } from './helpers/run-cli.js';
import { addBot } from './helpers/bot.js';
import { until } from './helpers/until.js';

let cluster: TestCluster;
let bob: string;
let metricsPort: number;

const BASE = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'base' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['stats'] } } },
};
const WRITER = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'writer' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['write_note'] } } },
};

beforeAll(async () => {
  metricsPort = await freePort();
  cluster = await TestCluster.start({
    servers: [testServer('test')],
    roles: [BASE],
    config: {
      bot: { state_dir: './bots' },
      audit: { path: './audit/audit.jsonl' },
      sessions: { max_per_identity: 2 },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    },
  });
  bob = await cluster.issue('bob', ['base', 'writer']);
}, 60_000);
afterAll(async () => {
  await cluster?.close();
});

describe('roles as resources, local backend', () => {
  it('creates the state directory only with the first role; the role reaches a running session', async () => {
    const state = join(cluster.dir, 'state');
    expect(existsSync(state)).toBe(false);
    const c = await cluster.client('test', bob);
    const canWrite = async () => {
      try {
        return resultText(await c.client.callTool({ name: 'write_note', arguments: { text: 'x' } })) === 'written';
      } catch {
        return false;
      }
    };
    expect(await canWrite()).toBe(false);
    // proxy.yaml's role works next to the backend's.
    expect(resultText(await c.client.callTool({ name: 'stats', arguments: {} }))).toContain('calls');

    const file = join(cluster.dir, 'writer.yaml');
    await writeFile(file, stringify(WRITER));
    const r = await runCli(['role', 'create', '-f', file, '--config', cluster.configPath]);
    expect(r.code).toBe(0);
    expect(statSync(state).mode & 0o777).toBe(0o700);
    expect(statSync(join(state, 'roles', 'writer.json')).mode & 0o777).toBe(0o600);
    await until(canWrite, 'the created role to apply');
    // policy check sees it too.
    const check = await runCli([
      'policy',
      'check',
      '--config',
      cluster.configPath,
      '--roles',
      'writer',
      '--server',
      'test',
      '--tool',
      'write_note',
    ]);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/allowed by role writer/);
    expect(resultText(await c.client.callTool({ name: 'stats', arguments: {} }))).toContain('calls');

    // Updating it (create again) narrows it: write_note is no longer allowed.
    await writeFile(
      file,
      stringify({ ...WRITER, spec: { allow: { app_labels: { env: 'dev' } }, deny: { mcp: { tools: ['*'] } } } }),
    );
    const upd = await runCli(['role', 'create', '-f', file, '--config', cluster.configPath]);
    expect(upd.stdout).toContain('role "writer" has been updated');
    await until(async () => !(await canWrite()), 'the updated role to apply');
    // Its deny also overrides proxy.yaml's allow (deny wins, whatever the source).
    await expect(c.client.callTool({ name: 'stats', arguments: {} })).rejects.toThrow(/denied/);

    const rm = await runCli(['role', 'rm', 'writer', '--config', cluster.configPath]);
    expect(rm.code).toBe(0);
    await until(async () => {
      try {
        await c.client.callTool({ name: 'stats', arguments: {} });
        return true;
      } catch {
        return false;
      }
    }, 'the removed deny to stop applying');
    await c.close();
  }, 60_000);

  it('role get of a proxy.yaml role says where it is defined', async () => {
    const r = await runCli(['role', 'get', 'base', '--config', cluster.configPath]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/^mcp-access: role "base" is defined in .*proxy\.yaml \(roles\[0\]\), not in the backend/);
  });

  it('bot update --add-roles / --remove-roles change the record; the last role cannot be removed', async () => {
    await addBot(cluster.configPath, 'builder', ['base']);
    const add = await runCli(['bot', 'update', 'builder', '--add-roles', 'base,extra', '--config', cluster.configPath]);
    expect(add.code).toBe(0);
    expect(add.stderr).toMatch(/warning: .* defines no role named "extra"/);
    const rm = await runCli(['bot', 'update', 'builder', '--remove-roles', 'base', '--config', cluster.configPath]);
    expect(rm.code).toBe(0);
    const { bots } = JSON.parse(
      (await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json'])).stdout,
    ) as {
      bots: Array<{ name: string; roles: string[] }>;
    };
    expect(bots.find((b) => b.name === 'builder')?.roles).toEqual(['extra']);
    const last = await runCli(['bot', 'update', 'builder', '--remove-roles', 'extra', '--config', cluster.configPath]);
    expect(last.code).toBe(2);
    expect(last.stderr).toMatch(/would have no role left/);
  });

  it('/healthz and /readyz answer without a client certificate', async () => {
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request({ host: '127.0.0.1', port: cluster.port, path, ca: cluster.pki.ca.caCertPem }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end();
      });
    expect(await get('/healthz')).toEqual({ status: 200, body: '{"status":"ok"}' });
    expect(await get('/readyz')).toEqual({ status: 200, body: '{"status":"ready"}' });
  });

  it('metrics: per-identity limits hit, denials and requests are counted on the separate listener', async () => {
    const carol = await cluster.issue('carol', ['base']);
    const a = await cluster.client('test', carol);
    const b = await cluster.client('test', carol);
    await expect(cluster.client('test', carol)).rejects.toThrow();
    await a.client.callTool({ name: 'stats', arguments: {} });
    await expect(a.client.callTool({ name: 'write_note', arguments: {} })).rejects.toThrow(/denied/);
    const text = await new Promise<string>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
        .on('error', reject)
        .end();
    });
    expect(text).toMatch(/^mcp_access_limits_hit_total\{limit="sessions.max_per_identity"\} [1-9]/m);
    expect(text).toMatch(/^mcp_access_requests_total\{outcome="denied"\} [1-9]/m);
    expect(text).toMatch(/^mcp_access_requests_total\{outcome="success"\} [1-9]/m);
    expect(text).toMatch(/^mcp_access_denials_total\{type="mcp.session.request"\} [1-9]/m);
    await a.close();
    await b.close();
  }, 60_000);
});
