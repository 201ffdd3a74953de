/**
 * Proxy replicas behind a real HAProxy (TLS passthrough, `mode tcp`,
 * health-checked), an agent that reaches every replica through the balancer,
 * four clients calling in a loop through the real bridge: SIGKILL the proxy
 * that carries sessions, and count. Nothing lost, nothing duplicated: the
 * sessions live at the agent, and the bridges resume them through the other
 * replica.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { ALLOW_ALL_ROLE, CLI, freePort, resultText, testServer, TestCluster } from './helpers/cluster.js';
import { startAgentProcess, type AgentProcess } from './helpers/agent.js';
import { until } from './helpers/until.js';

const haproxy = spawnSync('haproxy', ['-v']).status === 0;

let cluster: TestCluster;
let second: { proc: ChildProcess; log: () => string; port: number };
let lb: ChildProcess;
let lbPort = 0;
let agent: AgentProcess;

async function startProxy(configPath: string): Promise<{ proc: ChildProcess; log: () => string; port: number }> {
  const proc = spawn(process.execPath, [CLI, 'proxy', 'start', '--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    proc.stderr.on('data', (t: string) => {
      log += t;
      const m = /listening on [^\s]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`proxy exited (${code}):\n${log}`)));
  });
  return { proc, log: () => log, port };
}

beforeAll(async () => {
  if (!haproxy) return;
  cluster = await TestCluster.start({ servers: [], roles: [ALLOW_ALL_ROLE] });
  await cluster.writeConfig({ audit: { path: join(cluster.dir, 'audit-1.jsonl') } });
  await cluster.stopProxy();
  await cluster.startProxy();
  // The second replica: the same CA, roles and servers; its own audit file.
  const config = parse(readFileSync(cluster.configPath, 'utf8')) as Record<string, unknown>;
  const path2 = join(cluster.dir, 'proxy-2.yaml');
  await writeFile(
    path2,
    stringify({ ...config, listen: '127.0.0.1:0', audit: { path: join(cluster.dir, 'audit-2.jsonl') } }),
  );
  second = await startProxy(path2);
  lbPort = await freePort();
  const cfg = join(cluster.dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    [
      'global',
      '  maxconn 2000',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 1h',
      '  timeout server 1h',
      '  retries 3',
      '  option redispatch',
      'frontend mcp',
      `  bind 127.0.0.1:${lbPort}`,
      '  default_backend proxies',
      'backend proxies',
      '  balance roundrobin',
      '  option httpchk GET /v1/ping',
      '  http-check expect status 200',
      `  server p1 127.0.0.1:${cluster.port} check check-ssl verify none inter 300 fall 2 rise 1`,
      `  server p2 127.0.0.1:${second.port} check check-ssl verify none inter 300 fall 2 rise 1`,
      '',
    ].join('\n'),
  );
  lb = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Clients and the agent dial the balancer.
  const lbAddress = `127.0.0.1:${lbPort}`;
  Object.defineProperty(cluster, 'address', { get: () => lbAddress });
  let lbLog = '';
  lb.stderr!.on('data', (d: Buffer) => (lbLog += d.toString()));
  let listening = false;
  await until(() => {
    const s = connect(lbPort, '127.0.0.1', () => {
      listening = true;
      s.destroy();
    });
    s.on('error', () => s.destroy());
    return listening;
  }, `HAProxy to listen (${lbLog})`);
  agent = await startAgentProcess(cluster, 'everywhere', { servers: [testServer('ha')] });
  // The agent reaches both replicas through the balancer.
  await until(
    () => /agent everywhere connected/.test(cluster.proxyLog) && /agent everywhere connected/.test(second.log()),
    'the agent on both replicas',
  );
}, 90_000);

afterAll(async () => {
  await agent?.stop();
  second?.proc.kill('SIGTERM');
  lb?.kill('SIGTERM');
  await cluster?.close();
});

describe.skipIf(!haproxy)('two proxies behind HAProxy, an agent, four clients', () => {
  it('SIGKILL of a proxy carrying sessions: every call answered once, the server saw each exactly once', async () => {
    const alice = await cluster.issue('alice', ['all']);
    const clients = await Promise.all([0, 1, 2, 3].map(() => cluster.client('ha', alice)));
    const CALLS = 40;
    let killed = false;
    const answers = clients.map(() => [] as string[]);
    const errors: string[] = [];
    let progress = 0;
    await Promise.all(
      clients.map(async ({ client }, c) => {
        for (let i = 0; i < CALLS; i++) {
          try {
            answers[c]!.push(resultText(await client.callTool({ name: 'echo', arguments: { text: `${c}:${i}` } })));
          } catch (e) {
            errors.push(`${c}:${i}: ${(e as Error).message}`);
          }
          if (++progress === 40 && !killed) {
            killed = true;
            cluster.proxy!.kill('SIGKILL');
          }
        }
      }),
    );
    expect(killed).toBe(true);
    expect(errors).toEqual([]);
    answers.forEach((got, c) => expect(got).toEqual(Array.from({ length: CALLS }, (_, i) => `${c}:${i}`)));
    // Each session's server counted exactly its calls: CALLS echoes + this stats call.
    for (const { client } of clients) {
      const stats = JSON.parse(resultText(await client.callTool({ name: 'stats', arguments: {} }))) as {
        calls: number;
      };
      expect(stats.calls).toBe(CALLS + 1);
    }
    // The sessions went on through the replica that is left.
    expect(second.log()).toMatch(/agent everywhere connected/);
  });
});
