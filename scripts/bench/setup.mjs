/**
 * A throw-away cluster for the benchmark, all in one temp directory: a CA, an
 * identity for user "bench", a proxy.yaml enrolling the two echo servers, and
 * the proxy itself as a child process; for the agent path, an agent host
 * certificate, an agent.yaml enrolling the same two servers under other names
 * and `mcp-access agent start` as a second child process. Nothing outside the
 * temp dir is used or changed, and everything started here is stopped by
 * `teardown`.
 */
import { spawn, execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';

const run = promisify(execFile);

/**
 * The environment every process of the bench gets: the minimal one MCP
 * clients give the servers they spawn (HOME, PATH, USER, …). The proxy passes
 * its own environment on to its upstreams, so starting it with the full one
 * would make the through path's server start differently from the direct one.
 */
export const MINIMAL_ENV = getDefaultEnvironment();

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'bin', 'mcp-access.js');
export const EVERYTHING = join(ROOT, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
export const BIG_ECHO = join(ROOT, 'scripts', 'bench', 'echo-server.mjs');

/** The two enrolled servers, and how the direct path starts the same programs. */
export const SERVERS = {
  everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] },
  bigecho: { command: process.execPath, args: [BIG_ECHO] },
};

/**
 * The agent path enrolls the same programs at the agent under these names
 * (the proxy refuses an agent announcing a name of its own configuration).
 */
export const AGENT_NAME = 'bench';
/** The proxy's audit log, relative to the bench's temp dir. */
export const AUDIT_FILE = join('proxy-audit', 'audit.jsonl');
export const agentServerName = (server) => `${server}-agent`;

/** A port nobody is listening on right now (the proxy binds it a moment later). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function cli(args) {
  try {
    await run(process.execPath, [CLI, ...args], { cwd: ROOT, env: MINIMAL_ENV, timeout: 60_000 });
  } catch (err) {
    throw new Error(`mcp-access ${args.slice(0, 2).join(' ')} failed: ${err.stderr || err.message}`, { cause: err });
  }
}

/** One stdio server entry of a `servers:` list, as proxy.yaml and agent.yaml both take it. */
function serverEntry(name, { args }, extraNodeArgs) {
  return [
    `  - name: ${name}`,
    `    description: benchmark echo server`,
    `    labels: {env: bench}`,
    `    command: ${JSON.stringify(process.execPath)}`,
    `    args: ${JSON.stringify([...extraNodeArgs, ...args])}`,
  ].join('\n');
}

/**
 * The proxy configuration. The role and the audit log are written even while
 * the proxy does not enforce them yet, so the bench measures the real,
 * role-checked and audited path as soon as it exists.
 */
function proxyYaml({ port, dir, extraNodeArgs }) {
  const server = (name, def) => serverEntry(name, def, extraNodeArgs);
  return [
    'cluster: bench',
    `listen: 127.0.0.1:${port}`,
    `ca_dir: ${JSON.stringify(join(dir, 'ca'))}`,
    'log_level: info',
    'servers:',
    server('everything', SERVERS.everything),
    server('bigecho', SERVERS.bigecho),
    'roles:',
    '  - kind: role',
    '    version: v7',
    '    metadata: {name: bench}',
    "    spec: {allow: {app_labels: {'*': '*'}, mcp: {tools: ['*']}}}",
    // In a directory of its own, as on a real proxy: next to the client's identity file,
    // every audit write would wake the bridge's watcher of that file's directory.
    ...(process.env.BENCH_POSTGRES_URL
      ? // The trail in PostgreSQL (docs/backend.md), for a run of the hot-path tool against it.
        [`backend: {type: postgres, url: ${JSON.stringify(process.env.BENCH_POSTGRES_URL)}}`, 'audit: {}']
      : [`audit: {path: ${JSON.stringify(join(dir, AUDIT_FILE))}}`]),
    '',
  ].join('\n');
}

/**
 * Make the CA, the identity and the config; start the proxy and wait for its
 * "listening on" line. `proxyNodeArgs` go to the proxy's node (e.g. --cpu-prof).
 */
export async function setUp({ proxyNodeArgs = [], upstreamNodeArgs = [], log = () => {} } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-access-bench-'));
  const env = { dir, identity: join(dir, 'id'), proxy: undefined, proxyAddress: undefined, proxyLog: [] };
  try {
    await cli(['ca', 'init', '--dir', join(dir, 'ca'), '--cluster', 'bench']);
    await cli([
      'identity',
      'issue',
      '--ca-dir',
      join(dir, 'ca'),
      '--user',
      'bench',
      '--roles',
      'bench',
      '--ttl',
      '1h',
      '--out',
      env.identity,
    ]);
    const port = await freePort();
    await writeFile(join(dir, 'proxy.yaml'), proxyYaml({ port, dir, extraNodeArgs: upstreamNodeArgs }));
    env.proxy = spawn(
      process.execPath,
      [...proxyNodeArgs, CLI, 'proxy', 'start', '--config', join(dir, 'proxy.yaml')],
      {
        cwd: dir,
        env: MINIMAL_ENV,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    env.proxyAddress = await waitForListening(env, log);
    env.upstreamNodeArgs = upstreamNodeArgs;
    return env;
  } catch (err) {
    await tearDown(env);
    throw err;
  }
}

function waitForListening(env, log) {
  const proxy = env.proxy;
  return new Promise((res, rej) => {
    let partial = '';
    const timer = setTimeout(
      () => rej(new Error(`the proxy did not say "listening on" within 20s:\n${env.proxyLog.slice(-10).join('\n')}`)),
      20_000,
    );
    proxy.stderr.setEncoding('utf8');
    proxy.stderr.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        // Keep the log bounded: only the tail matters for error reports.
        env.proxyLog.push(line);
        if (env.proxyLog.length > 200) env.proxyLog.shift();
        if (/\b(error|warn)\b/i.test(line) && !/Starting default/.test(line)) log(`proxy: ${line}`);
        const m = /listening on (\S+):(\d+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          res(`${m[1]}:${m[2]}`);
        }
      }
    });
    proxy.once('exit', (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`the proxy exited (${signal ?? code}) before listening:\n${env.proxyLog.slice(-10).join('\n')}`));
    });
  });
}

/**
 * The agent path: an agent host certificate from the bench's CA (there is no
 * CLI command that writes one to a file: `agent add` issues a join token, so
 * this uses the built CA module), an agent.yaml enrolling the same two
 * programs as the proxy under `<name>-agent`, with the same labels (so the
 * same role reaches them; the roles and the audit trail are the proxy's), and
 * `mcp-access agent start`, which dials out to the proxy. Resolves once the
 * agent says "connected to the proxy"; `nodeArgs` go to the agent's node
 * (e.g. --cpu-prof).
 */
export async function startAgent(env, { nodeArgs = [], log = () => {} } = {}) {
  const { loadCa, issueIdentity, writeIdentityFile } = await import(
    pathToFileURL(join(ROOT, 'dist', 'identity', 'ca.js')).href
  );
  const ca = await loadCa(join(env.dir, 'ca'));
  const identity = join(env.dir, 'agent.identity');
  await writeIdentityFile(
    identity,
    await issueIdentity(ca, {
      user: `agent:${AGENT_NAME}`,
      roles: ['system:agent'],
      ttlMs: 3_600_000,
      agent: { name: AGENT_NAME, generation: 1 },
    }),
  );
  const extra = env.upstreamNodeArgs ?? [];
  await writeFile(
    join(env.dir, 'agent.yaml'),
    [
      `proxy: ${env.proxyAddress}`,
      `identity: ${JSON.stringify(identity)}`,
      'log_level: info',
      'servers:',
      serverEntry(agentServerName('everything'), SERVERS.everything, extra),
      serverEntry(agentServerName('bigecho'), SERVERS.bigecho, extra),
      '',
    ].join('\n'),
  );
  const agent = spawn(process.execPath, [...nodeArgs, CLI, 'agent', 'start', '--config', join(env.dir, 'agent.yaml')], {
    cwd: env.dir,
    env: MINIMAL_ENV,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  env.agent = agent;
  env.agentLog = [];
  await new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`the agent did not connect to the proxy within 20s:\n${env.agentLog.slice(-10).join('\n')}`)),
      20_000,
    );
    let partial = '';
    agent.stderr.setEncoding('utf8');
    agent.stderr.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        env.agentLog.push(line);
        if (env.agentLog.length > 200) env.agentLog.shift();
        // Its servers run as its own user, as the proxy's do: that warning is expected here.
        if (/\b(error|warn)\b/i.test(line) && !/SECURITY: stdio server/.test(line)) log(`agent: ${line}`);
        if (/connected to the proxy/.test(line)) {
          clearTimeout(timer);
          res();
        }
      }
    });
    agent.once('close', (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`the agent exited (${signal ?? code}) before connecting:\n${env.agentLog.slice(-10).join('\n')}`));
    });
  });
}

/**
 * The architecture floor (bench/floor/): a minimal relay with the same
 * processes, mTLS and WebSocket as the proxy, enrolling server-everything.
 */
export async function startRelay(env) {
  const port = await freePort();
  const relay = spawn(
    process.execPath,
    [
      join(ROOT, 'scripts', 'bench', 'floor', 'relay-proxy.mjs'),
      join(env.dir, 'ca'),
      String(port),
      ...[SERVERS.everything.command, ...SERVERS.everything.args],
    ],
    {
      cwd: env.dir,
      env: MINIMAL_ENV,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  env.relay = relay;
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('the relay did not start within 10s')), 10_000);
    relay.stderr.setEncoding('utf8');
    relay.stderr.on('data', (text) => {
      if (/listening on/.test(text)) {
        clearTimeout(timer);
        res();
      }
    });
    relay.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`the relay exited (${code})`));
    });
  });
  env.relayAddress = `127.0.0.1:${port}`;
}

/**
 * The C relay (the "C relay" column): `socat`, a relay written in C, doing the
 * same job with the same processes and real mTLS. The MCP client spawns
 * `socat STDIO OPENSSL:…` with the identity file's client certificate (see
 * `launchParams`); this listener, `socat OPENSSL-LISTEN:…,fork … EXEC:<server>`,
 * requires a client certificate from the cluster CA, presents the proxy's
 * certificate and forks one relay process per connection, which starts the
 * server — client → relay → relay → server, as on the through path.
 *
 * Returns `{ path, version }` for a usable socat on PATH, or `{ skip }` saying
 * why the column is left out. The bench never installs it.
 */
export async function findSocat() {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, 'socat');
    try {
      await access(file, constants.X_OK);
    } catch {
      continue;
    }
    let out;
    try {
      ({ stdout: out } = await run(file, ['-V'], { env: MINIMAL_ENV, timeout: 10_000 }));
    } catch (err) {
      return { skip: `\`${file} -V\` failed (${String(err.message).split('\n')[0]})` };
    }
    const version = /socat version (\S+)/.exec(out)?.[1] ?? 'unknown version';
    if (!/WITH_OPENSSL 1/.test(out)) return { skip: `${file} (socat ${version}) is built without OpenSSL` };
    return { path: file, version };
  }
  return { skip: 'socat is not on PATH (install the socat package, e.g. `apt-get install socat`, to add this column)' };
}

/** Client certificate, key and CAs from the identity file, as files socat can read (in the bench's temp dir). */
export const CRELAY_FILES = { key: 'crelay-client.key', cert: 'crelay-client.crt', ca: 'crelay-ca.crt' };

async function splitIdentity(env) {
  const blocks =
    (await readFile(env.identity, 'utf8')).match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g) ?? [];
  const key = blocks.find((b) => /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(b));
  const certs = blocks.filter((b) => b.startsWith('-----BEGIN CERTIFICATE-----'));
  const leaf = certs.find((c) => !new X509Certificate(c).ca);
  const cas = certs.filter((c) => new X509Certificate(c).ca);
  if (!key || !leaf || cas.length === 0)
    throw new Error(`the identity file ${env.identity} has no key, client certificate and CA certificate`);
  await writeFile(join(env.dir, CRELAY_FILES.key), `${key}\n`, { mode: 0o600 });
  await writeFile(join(env.dir, CRELAY_FILES.cert), `${leaf}\n`);
  await writeFile(join(env.dir, CRELAY_FILES.ca), `${cas.join('\n')}\n`);
}

/**
 * socat's EXEC splits its command at spaces and its address parser gives
 * `,` `:` `!` and quotes a meaning, so the server's command goes in as is when
 * every word is plain, and through a one-line `exec` script (no extra process)
 * otherwise.
 */
async function execCommand(env, words) {
  if (words.every((w) => /^[A-Za-z0-9_./+@=-]+$/.test(w))) return words.join(' ');
  const quote = (w) => `'${w.replaceAll("'", `'\\''`)}'`;
  const script = join(env.dir, 'crelay-server.sh');
  await writeFile(script, `#!/bin/sh\nexec ${words.map(quote).join(' ')}\n`);
  await chmod(script, 0o755);
  return './crelay-server.sh';
}

/** Start the C relay's server side for server-everything (`env.socat` from `findSocat`). */
export async function startCRelay(env) {
  await splitIdentity(env);
  const port = await freePort();
  const listen = [
    `OPENSSL-LISTEN:${port}`,
    'bind=127.0.0.1',
    'reuseaddr',
    'fork',
    'nodelay',
    'cert=ca/proxy.crt',
    'key=ca/proxy.key',
    'cafile=ca/ca.crt',
    'verify=1',
  ].join(',');
  const exec = `EXEC:${await execCommand(env, [SERVERS.everything.command, ...SERVERS.everything.args])}`;
  // Its own process group, so that tearDown stops the per-connection relays and their servers too.
  const relay = spawn(env.socat, ['-d', '-d', listen, exec], {
    cwd: env.dir,
    env: MINIMAL_ENV,
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  env.crelay = relay;
  env.crelayLog = [];
  await new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`socat did not listen within 10s: ${env.crelayLog.filter(Boolean).at(-1) ?? 'no message'}`)),
      10_000,
    );
    let partial = '';
    relay.stderr.setEncoding('utf8');
    relay.stderr.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        env.crelayLog.push(line);
        if (env.crelayLog.length > 50) env.crelayLog.shift();
        if (/listening on/.test(line)) {
          clearTimeout(timer);
          res();
        }
      }
    });
    relay.once('error', (err) => {
      clearTimeout(timer);
      rej(err);
    });
    // 'close', not 'exit': its stderr has been read by then, so its last words are in the message.
    relay.once('close', (code, signal) => {
      clearTimeout(timer);
      rej(
        new Error(
          `socat exited (${signal ?? code}) before listening: ${env.crelayLog.filter(Boolean).at(-1) ?? 'no message'}`,
        ),
      );
    });
  });
  env.crelayAddress = `127.0.0.1:${port}`;
}

/** Stop the C relay's listener and everything it forked (SIGTERM to its process group, SIGKILL after 5 s). */
export async function stopCRelay(env) {
  const relay = env.crelay;
  if (!relay?.pid) return;
  const signalGroup = (sig) => {
    try {
      process.kill(-relay.pid, sig);
    } catch {
      /* the group is gone */
    }
  };
  const running = relay.exitCode === null && relay.signalCode === null;
  const exited = running ? new Promise((r) => relay.once('exit', r)) : Promise.resolve();
  signalGroup('SIGTERM');
  const timer = setTimeout(() => signalGroup('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  env.crelay = undefined;
}

/** SIGTERM, SIGKILL after 5 s; resolves when the child has exited. */
async function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * SIGTERM the agent first (it stops its upstreams; its last audit events still
 * reach the proxy), then the proxy (it stops its upstreams) and the relays,
 * SIGKILL after 5 s; remove the temp dir.
 */
export async function tearDown(env, { keepDir = false } = {}) {
  await stopChild(env.agent);
  await Promise.all([stopCRelay(env), stopChild(env.proxy), stopChild(env.relay)]);
  if (!keepDir && env.dir) await rm(env.dir, { recursive: true, force: true });
}
