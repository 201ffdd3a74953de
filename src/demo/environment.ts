/**
 * The demo's cluster, built for real in one directory: a CA, the roles,
 * a proxy (in this process) with two published MCP servers enrolled, an
 * operator identity and a bot that joined with the read-only roles.
 *
 * Layout of the directory (kept with --dir, otherwise removed at the end):
 *   ca/            the cluster CA (`mcp-access ca init`)
 *   roles/         example-role.yaml, llm-access.yaml, prod-get-tools.yaml (roles_files)
 *   sample/        what server-filesystem serves
 *   proxy.yaml     the proxy configuration (listen names the real port)
 *   proxy.log      the proxy's log
 *   audit.jsonl    the audit trail
 *   bots/          the proxy's bot state (bot.state_dir)
 *   machine-id/    the bot's destination: identity, renewed on disk
 *   bot.log        the bot's log
 *   operator.identity  an identity with example-role, for contrast
 */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { AccessError } from '../errors.js';
import { Logger } from '../util/log.js';
import { DEMO_ROLES, SAMPLE_FILES } from './content.js';
import { EVERYTHING_PACKAGE, FILESYSTEM_PACKAGE, findPublishedServer, type PublishedServer } from './packages.js';
import { joinDemoBot, type DemoBot } from './bot.js';
import type { DemoProgress } from './progress.js';
import type { RunningProxy } from '../proxy/run.js';

export const DEMO_CLUSTER = 'demo';
export const DEMO_BOT = 'demo-agent';
/** Teleport's read-only role, and the demo's role for the env: prod server. */
export const DEMO_BOT_ROLES = ['llm-access', 'prod-get-tools'];
export const OPERATOR_USER = 'operator';
export const OPERATOR_ROLE = 'example-role';
/** Marks a directory this demo created, so a later run with the same --dir may empty it. */
const MARKER = '.mcp-access-demo';

export interface DemoOptions {
  /** Keep everything in this directory (created if missing) instead of a temporary one. */
  dir?: string;
  /** Listen on this port of 127.0.0.1 (0 or absent: a free one). */
  port?: number;
}

export interface EnrolledServer {
  name: string;
  labels: Record<string, string>;
  description: string;
  published: PublishedServer;
}

export interface DemoEnvironment {
  dir: string;
  /** True when the directory is removed on close (no --dir). */
  temporary: boolean;
  startedAt: number;
  configPath: string;
  proxyLogPath: string;
  auditPath: string;
  sampleDir: string;
  /** host:port clients dial. */
  proxyAddress: string;
  servers: EnrolledServer[];
  roles: Array<{ name: string; path: string }>;
  operatorIdentityPath: string;
  bot: DemoBot;
  /** Stops the bot and the proxy; removes a temporary directory. Safe to call twice. */
  close(): Promise<void>;
}

async function prepareDirectory(opts: DemoOptions): Promise<{ dir: string; temporary: boolean }> {
  if (opts.dir === undefined) return { dir: await mkdtemp(join(tmpdir(), 'mcp-access-demo-')), temporary: true };
  const dir = resolve(opts.dir);
  let entries: string[] = [];
  try {
    if (!(await stat(dir)).isDirectory())
      throw new AccessError('DEMO_DIR', `--dir ${dir} exists and is not a directory`);
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw err instanceof AccessError
        ? err
        : new AccessError('DEMO_DIR', `--dir ${dir} cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  if (entries.length > 0) {
    // Only a directory an earlier demo made is emptied; anything else is left alone.
    if (!entries.includes(MARKER))
      throw new AccessError(
        'DEMO_DIR',
        `--dir ${dir} is not empty and was not made by an earlier demo, so it was left alone`,
      );
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return { dir, temporary: false };
}

async function writeFiles(base: string, files: Readonly<Record<string, string>>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const path = join(base, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
  }
}

function proxyConfig(env: { sampleDir: string; port: number; servers: EnrolledServer[] }): Record<string, unknown> {
  const [filesystem, everything] = env.servers;
  return {
    cluster: DEMO_CLUSTER,
    listen: `127.0.0.1:${env.port}`,
    ca_dir: './ca',
    servers: [
      {
        name: filesystem!.name,
        description: filesystem!.description,
        labels: filesystem!.labels,
        command: process.execPath,
        args: [filesystem!.published.entry, env.sampleDir],
      },
      {
        name: everything!.name,
        description: everything!.description,
        labels: everything!.labels,
        command: process.execPath,
        args: [everything!.published.entry, 'stdio'],
      },
    ],
    roles_files: ['./roles'],
    audit: { path: './audit.jsonl' },
    bot: { state_dir: './bots' },
  };
}

/** A friendlier line for the one start-up failure people cause themselves: a busy --port. */
function listenError(err: unknown, port: number): unknown {
  // The proxy reports it as a configuration error; the socket's errno is its cause.
  const code = ((err as { cause?: NodeJS.ErrnoException }).cause ?? (err as NodeJS.ErrnoException)).code;
  if (code === 'EADDRINUSE')
    return new AccessError('USAGE', `port ${port} on 127.0.0.1 is already in use`, {
      hint: 'pass another --port, or leave it out to use a free one',
    });
  if (code === 'EACCES')
    return new AccessError('USAGE', `port ${port} on 127.0.0.1 may not be used by this user`, {
      hint: 'pass a port above 1023, or leave --port out',
    });
  return err;
}

export async function createDemoEnvironment(opts: DemoOptions, progress: DemoProgress): Promise<DemoEnvironment> {
  const startedAt = Date.now();
  // Before anything is created: a missing package is the likeliest set-up problem.
  const servers: EnrolledServer[] = [
    {
      name: 'filesystem',
      labels: { env: 'dev' },
      description: 'Files of the demo sample directory',
      published: findPublishedServer(FILESYSTEM_PACKAGE),
    },
    {
      name: 'everything',
      labels: { env: 'prod' },
      description: 'The MCP reference test server',
      published: findPublishedServer(EVERYTHING_PACKAGE),
    },
  ];
  const { dir, temporary } = await prepareDirectory(opts);
  progress.note(`working in ${dir} (${temporary ? 'removed at the end; --dir DIR keeps it' : 'kept at the end'})`);
  const stops: Array<() => Promise<void>> = [];
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      for (const stop of stops.reverse()) await stop().catch(() => {});
      if (temporary) await rm(dir, { recursive: true, force: true });
    })();
    return closed;
  };

  try {
    await writeFile(
      join(dir, MARKER),
      'made by `mcp-access demo`; a later demo with the same --dir empties this directory\n',
    );
    const configPath = join(dir, 'proxy.yaml');
    const proxyLogPath = join(dir, 'proxy.log');
    const auditPath = join(dir, 'audit.jsonl');
    const sampleDir = join(dir, 'sample');
    const operatorIdentityPath = join(dir, 'operator.identity');

    const ca = await progress.run(
      'Creating the cluster certificate authority',
      async () => {
        const { initCa } = await import('../identity/ca.js');
        return initCa({ dir: join(dir, 'ca'), cluster: DEMO_CLUSTER });
      },
      () => `certificate authority for cluster "${DEMO_CLUSTER}" (${join(dir, 'ca')})`,
    );

    await writeFiles(join(dir, 'roles'), Object.fromEntries(DEMO_ROLES.map((r) => [r.file, r.yaml])));
    await writeFiles(sampleDir, SAMPLE_FILES);
    const roles = DEMO_ROLES.map((r) => ({ name: r.name, path: join(dir, 'roles', r.file) }));

    const proxy = await progress.run(
      'Starting the proxy',
      async () => {
        await writeFile(configPath, stringify(proxyConfig({ sampleDir, port: opts.port ?? 0, servers })));
        const { startProxy } = await import('../proxy/run.js');
        // The proxy logs to a file: this terminal belongs to the tour.
        const logger = new Logger({
          name: 'proxy',
          level: 'info',
          timestamps: true,
          file: proxyLogPath,
          sink: () => {},
        });
        let running: RunningProxy;
        try {
          running = await startProxy(configPath, { logger });
        } catch (err) {
          throw listenError(err, opts.port ?? 0);
        }
        stops.push(() => running.close());
        // Commands an operator runs against proxy.yaml (bot add prints --proxy) should see the real port.
        await writeFile(configPath, stringify(proxyConfig({ sampleDir, port: running.address.port, servers })));
        return running;
      },
      (p) => `proxy listening on 127.0.0.1:${p.address.port} (mTLS, audit to ${auditPath})`,
    );
    const proxyAddress = `127.0.0.1:${proxy.address.port}`;
    for (const s of servers)
      progress.done(`enrolled ${s.name} (env: ${s.labels.env}): ${s.published.package} ${s.published.version}`);
    progress.done(`roles loaded: ${roles.map((r) => r.name).join(', ')} (${join(dir, 'roles')})`);

    await progress.run(
      `Issuing an identity with ${OPERATOR_ROLE} for contrast`,
      async () => {
        const { issueIdentity, writeIdentityFile } = await import('../identity/ca.js');
        await writeIdentityFile(
          operatorIdentityPath,
          await issueIdentity(ca, { user: OPERATOR_USER, roles: [OPERATOR_ROLE], ttlMs: 3_600_000 }),
        );
      },
      () => `identity for user ${OPERATOR_USER} (role ${OPERATOR_ROLE}, 1h): ${operatorIdentityPath}`,
    );

    const bot = await progress.run(
      `Registering bot "${DEMO_BOT}" with roles ${DEMO_BOT_ROLES.join(', ')}; the bot joins`,
      async () => {
        const b = await joinDemoBot({ dir, configPath, proxyAddress, name: DEMO_BOT, roles: DEMO_BOT_ROLES });
        stops.push(() => b.stop());
        return b;
      },
      (b) =>
        `bot "${b.name}" joined (user ${b.user}, roles ${b.roles.join(', ')}): ${b.identityPath}, valid until ${b.validUntil.toISOString()}, renewed every ${b.renewalInterval}`,
    );

    return {
      dir,
      temporary,
      startedAt,
      configPath,
      proxyLogPath,
      auditPath,
      sampleDir,
      proxyAddress,
      servers,
      roles,
      operatorIdentityPath,
      bot,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
