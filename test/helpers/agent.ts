/**
 * A real `mcp-access agent start` process for a TestCluster: an agent host
 * certificate issued by the cluster's CA, its own YAML, its servers.
 *
 *   const agent = await startAgentProcess(cluster, 'east', { servers: [testServer('files')] });
 *   await agent.waitForLog(/connected to the proxy/);
 *   agent.kill('SIGKILL');
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, type TestCluster } from './cluster.js';

export interface AgentProcess {
  name: string;
  proc: ChildProcess;
  configPath: string;
  log: () => string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM (default) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface AgentOptions {
  servers: Array<Record<string, unknown>>;
  /** Extra top-level keys of the agent's YAML (sessions, log_level…). */
  config?: Record<string, unknown>;
  generation?: number;
  /** An identity file to use instead of a fresh agent certificate. */
  identity?: string;
}

export async function startAgentProcess(cluster: TestCluster, name: string, opts: AgentOptions): Promise<AgentProcess> {
  const identity =
    opts.identity ??
    (await cluster.issue(`agent:${name}`, ['system:agent'], 600_000, {
      agent: { name, generation: opts.generation ?? 1 },
      path: join(cluster.dir, `agent-${name}.identity`),
    }));
  const configPath = join(cluster.dir, `agent-${name}.yaml`);
  await writeFile(
    configPath,
    stringify({ proxy: cluster.address, identity, servers: opts.servers, log_level: 'debug', ...opts.config }),
  );
  const proc = spawn(process.execPath, [CLI, 'agent', 'start', '--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (t: string) => {
    log += t;
  });
  const agent: AgentProcess = {
    name,
    proc,
    configPath,
    log: () => log,
    async waitForLog(re, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const m = re.exec(log);
        if (m) return m[0];
        if (proc.exitCode !== null) throw new Error(`agent ${name} exited (${proc.exitCode}):\n${log}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`agent ${name}'s log never matched ${re}:\n${log}`);
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      proc.kill(signal);
      return exited;
    },
  };
  return agent;
}

/** TCP ports a process listens on (Linux: its socket inodes against /proc/net/tcp{,6} in LISTEN state). */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      if (inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}
