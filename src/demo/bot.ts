/**
 * The demo's machine identity, the way Teleport's machine-identity guide does it with tbot:
 * the operator registers a bot (a one-time join token and the CA pin), and
 * `mcp-access bot start` — a real child process, the command a machine would
 * run — joins with them and keeps renewing DIR/machine-id/identity.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/** Short enough that renewals show while the demo runs, long enough to be calm. */
export const DEMO_BOT_TTL = '10m';
export const DEMO_BOT_RENEWAL = '1m';
const JOIN_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;

export interface DemoBot {
  name: string;
  user: string;
  roles: string[];
  caPin: string;
  /** What the bot writes and `connect -i` reads. */
  identityPath: string;
  logPath: string;
  validUntil: Date;
  renewalInterval: string;
  /** The `mcp-access bot start …` arguments it runs with (the token file is deleted once it joined). */
  args: string[];
  pid: number;
  /** Each line the bot logs from now on (renewals), without its timestamp. */
  onLog(listener: (line: string) => void): void;
  stop(): Promise<void>;
}

export function cliScript(): string {
  return fileURLToPath(new URL('../../bin/mcp-access.js', import.meta.url));
}

export async function joinDemoBot(o: {
  dir: string;
  configPath: string;
  proxyAddress: string;
  name: string;
  roles: string[];
}): Promise<DemoBot> {
  const { openBotState, addBot, readCaPublic, botUserName } = await import('../proxy/enrolment/admin.js');
  const { config, store } = await openBotState(o.configPath);
  const { caPin } = await readCaPublic(config);
  const { token } = await addBot(store, { name: o.name, roles: o.roles, tokenTtlMs: 10 * 60_000 });

  const destination = join(o.dir, 'machine-id');
  const identityPath = join(destination, 'identity');
  const logPath = join(o.dir, 'bot.log');
  // A file keeps the token out of the process list, as docs/bot.md recommends.
  const tokenFile = join(o.dir, 'join-token');
  await writeFileAtomic(tokenFile, `${token}\n`, 0o600);
  const args = [
    'bot',
    'start',
    '--proxy',
    o.proxyAddress,
    '--destination',
    destination,
    '--token-file',
    tokenFile,
    '--ca-pin',
    caPin,
    '--ttl',
    DEMO_BOT_TTL,
    '--renewal-interval',
    DEMO_BOT_RENEWAL,
  ];
  const child = spawn(process.execPath, [cliScript(), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const log = createWriteStream(logPath, { flags: 'a' });
  let stderr = '';
  const listeners: Array<(line: string) => void> = [];
  let partial = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    log.write(chunk);
    stderr += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) for (const l of listeners) l(line.replace(/^\S+Z mcp-access bot: /, ''));
  });
  child.stderr.once('end', () => log.end());

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  try {
    const validUntil = await waitForJoin(child, exited, identityPath, () => stderr);
    await rm(tokenFile, { force: true });
    return {
      name: o.name,
      user: botUserName(o.name),
      roles: o.roles,
      caPin,
      identityPath,
      logPath,
      validUntil,
      renewalInterval: DEMO_BOT_RENEWAL,
      args,
      pid: child.pid!,
      onLog: (l) => {
        listeners.push(l);
      },
      stop,
    };
  } catch (err) {
    await stop();
    await rm(tokenFile, { force: true });
    throw err;
  }
}

/** Resolves with the expiry once the bot's identity file holds a valid bot identity; fails if the bot exits first. */
async function waitForJoin(
  child: ChildProcess,
  exited: Promise<number | null>,
  identityPath: string,
  stderr: () => string,
): Promise<Date> {
  const { examineIdentity } = await import('../identity/load.js');
  let exitCode: number | null | undefined;
  void exited.then((c) => {
    exitCode = c;
  });
  const deadline = Date.now() + JOIN_TIMEOUT_MS;
  for (;;) {
    try {
      const examined = await examineIdentity(identityPath, { warn: () => {}, retries: 0 });
      if (examined.status === 'valid' && examined.identity.bot) return examined.identity.notAfter;
    } catch {
      // Not written yet: the bot is still joining.
    }
    if (exitCode !== undefined || child.exitCode !== null) {
      const last = stderr().trim().split('\n').pop() ?? '';
      throw new AccessError('DEMO_UNEXPECTED', `the bot exited (status ${child.exitCode}) before it joined: ${last}`);
    }
    if (Date.now() > deadline)
      throw new AccessError(
        'DEMO_UNEXPECTED',
        `the bot did not join within ${JOIN_TIMEOUT_MS / 1000}s: ${stderr().trim().split('\n').pop() ?? 'no log'}`,
      );
    await sleep(50);
  }
}
