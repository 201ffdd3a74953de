/**
 * A real mcp-access deployment for tests: a throw-away CA, a proxy started as
 * its own process over real TLS, identities issued from the CA, and MCP
 * clients (the official SDK's) that spawn the real `mcp-access connect`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { makeTestPki, type TestPki } from './pki.js';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'bin/mcp-access.js');
export const TEST_SERVER = join(ROOT, 'test/fixtures/servers/test-server.mjs');
export const EVERYTHING = join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const FILESYSTEM = join(ROOT, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');

/** A role that may use every tool of every server. */
export const ALLOW_ALL_ROLE = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'all' },
  spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } } },
};

/** A low-privilege role: servers labelled env: dev, the tool `echo` only. */
export const ECHO_ONLY_ROLE = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'echo-only' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['echo'] } } },
};

export interface ClusterOptions {
  servers?: Array<Record<string, unknown>>;
  roles?: Array<Record<string, unknown>>;
  /** Extra top-level config keys (audit, sessions, keepalive, …). */
  config?: Record<string, unknown>;
  /** Names in the proxy's certificate (default: localhost and 127.0.0.1). */
  proxyHosts?: string[];
}

export function testServer(name = 'test', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    description: 'SDK-built test server',
    labels: { env: 'dev' },
    command: process.execPath,
    args: [TEST_SERVER],
    ...extra,
  };
}

export class TestCluster {
  proxy: ChildProcess | undefined;
  proxyLog = '';
  port = 0;
  private clients: Array<{ close(): Promise<void> }> = [];

  private constructor(
    readonly dir: string,
    readonly pki: TestPki,
    readonly configPath: string,
    private config: Record<string, unknown>,
  ) {}

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-access-test-'));
    const pki = await makeTestPki(dir, { cluster: 'test-cluster', proxyHosts: opts.proxyHosts });
    const config: Record<string, unknown> = {
      cluster: 'test-cluster',
      listen: '127.0.0.1:0',
      ca_dir: join(dir, 'ca'),
      servers: opts.servers ?? [testServer()],
      roles: opts.roles ?? [ALLOW_ALL_ROLE],
      ...opts.config,
    };
    const cluster = new TestCluster(dir, pki, join(dir, 'proxy.yaml'), config);
    await cluster.writeConfig();
    await cluster.startProxy();
    return cluster;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async writeConfig(patch: Record<string, unknown> = {}): Promise<void> {
    Object.assign(this.config, patch);
    await writeFile(this.configPath, stringify(this.config));
  }

  /** Start (or restart, on the same port) the proxy process; resolves once it listens. */
  async startProxy(): Promise<void> {
    if (this.port) await this.writeConfig({ listen: `127.0.0.1:${this.port}` });
    const proc = spawn(process.execPath, [CLI, 'proxy', 'start', '--config', this.configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.proxy = proc;
    proc.stderr.setEncoding('utf8');
    this.port = await new Promise<number>((resolveListen, reject) => {
      let buf = '';
      proc.stderr.on('data', (t: string) => {
        this.proxyLog += t;
        buf += t;
        const m = /listening on [^\s]+:(\d+)/.exec(buf);
        if (m) {
          buf = '';
          resolveListen(Number(m[1]));
        }
      });
      proc.once('exit', (code) => reject(new Error(`proxy exited with ${code} before listening:\n${this.proxyLog}`)));
    });
  }

  /** Waits until the proxy log matches (bounded). */
  async waitForLog(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = re.exec(this.proxyLog);
      if (m) return m[0];
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`proxy log never matched ${re}:\n${this.proxyLog}`);
  }

  async stopProxy(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const p = this.proxy;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill(signal);
    return exited;
  }

  issue(user: string, roles: string[], ttlMs = 600_000, opts: Parameters<TestPki['issue']>[3] = {}): Promise<string> {
    return this.pki.issue(user, roles, ttlMs, opts);
  }

  connectArgs(server: string, identity: string, extra: string[] = []): string[] {
    return [CLI, 'connect', '-i', identity, '--proxy', this.address, ...extra, server];
  }

  /** An SDK Client speaking to `server` through a spawned `mcp-access connect`. */
  async client(
    server: string,
    identity: string,
    opts: { extraArgs?: string[]; capabilities?: Record<string, unknown>; setup?: (c: Client) => void } = {},
  ): Promise<ConnectedClient> {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: this.connectArgs(server, identity, opts.extraArgs),
      // What Claude Desktop-style hosts pass: a minimal environment.
      env: getDefaultEnvironment(),
      stderr: 'pipe',
      // The SDK caps a stdio line at 10 MiB by default; the tests carry 16 MiB.
      maxBufferSize: 64 * 1024 * 1024,
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const client = new Client({ name: 'mcp-access-test', version: '1.0.0' }, { capabilities: opts.capabilities ?? {} });
    opts.setup?.(client);
    await client.connect(transport);
    const connected: ConnectedClient = { client, transport, stderr: () => stderr, close: () => client.close() };
    this.clients.push(connected);
    return connected;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.clients.map((c) => c.close()));
    await this.stopProxy('SIGTERM');
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface ConnectedClient {
  client: Client;
  transport: StdioClientTransport;
  stderr: () => string;
  close: () => Promise<void>;
}

/** Resolves when `pid` no longer exists (bounded). */
export async function waitForExit(pid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** Text of the first content item of a tool result. */
export function resultText(r: unknown): string {
  const c = (r as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return c[0]?.text ?? '';
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts, or one that must not be there). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

/** What the sample directory of `startSampleFilesCluster` holds. */
export const SAMPLE_FILES: Readonly<Record<string, string>> = {
  'products.csv': 'id,name\n1,widget\n2,gadget\n',
  'docs/readme.txt': 'hello from the sample directory\n',
};

/**
 * A cluster with the seeds' roles (test/fixtures/roles) and the real
 * server-filesystem, enrolled as `name` (labels env: dev), over a sample
 * directory (SAMPLE_FILES) in the cluster's directory, with an audit log.
 */
export async function startSampleFilesCluster(
  name: string,
  extraServers: Array<Record<string, unknown>> = [],
): Promise<{ cluster: TestCluster; sample: string; auditPath: string }> {
  const cluster = await TestCluster.start({ servers: [] });
  const sample = join(cluster.dir, 'sample');
  for (const [file, text] of Object.entries(SAMPLE_FILES)) {
    await mkdir(dirname(join(sample, file)), { recursive: true });
    await writeFile(join(sample, file), text);
  }
  const auditPath = join(cluster.dir, 'audit.jsonl');
  await cluster.writeConfig({
    servers: [
      {
        name,
        description: 'sample files',
        labels: { env: 'dev' },
        command: process.execPath,
        args: [FILESYSTEM, sample],
      },
      ...extraServers,
    ],
    roles: [],
    roles_files: [join(ROOT, 'test/fixtures/roles')],
    audit: { path: auditPath },
  });
  await cluster.stopProxy();
  await cluster.startProxy();
  return { cluster, sample, auditPath };
}
