/**
 * Running the real `mcp-access bot …` commands in tests: one-off commands
 * (add, ls, lock, `start --oneshot`) and long-running bots whose stderr can
 * be waited on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { CLI } from './cluster.js';
import { runCli } from './run-cli.js';

/** One-off commands run through the shared spawn-and-collect helper. */
export { runCli, type CliRun as CliResult } from './run-cli.js';

/** `bot add` in JSON: the token and pin. */
export async function addBot(
  configPath: string,
  name: string,
  roles: string[],
  extra: string[] = [],
): Promise<{ token: string; ca_pin: string; start_command: string; token_expires: string }> {
  const r = await runCli([
    'bot',
    'add',
    name,
    '--roles',
    roles.join(','),
    '--config',
    configPath,
    '--format',
    'json',
    ...extra,
  ]);
  if (r.code !== 0) throw new Error(`bot add failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as { token: string; ca_pin: string; start_command: string; token_expires: string };
}

/** A long-running `bot start` whose log lines can be awaited. */
export class RunningBot {
  log = '';
  readonly proc: ChildProcess;
  private exitCode: Promise<number | null>;

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, 'bot', 'start', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.log += d;
    });
    this.exitCode = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  count(re: RegExp): number {
    return this.log.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`))?.length ?? 0;
  }

  /** Resolves once `re` has matched `times` times in the log (bounded). */
  async waitFor(re: RegExp, times = 1, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count(re) < times) {
      if (this.proc.exitCode !== null)
        throw new Error(`bot exited (${this.proc.exitCode}) before ${re} matched ${times}×:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`bot log never matched ${re} ${times}×:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    return this.exitCode;
  }

  exited(): Promise<number | null> {
    return this.exitCode;
  }
}

/** Events of a JSON Lines audit log (empty before the first write). */
export async function auditEvents(path: string): Promise<Array<Record<string, unknown>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Resolves with the events once `match` finds one (bounded). */
export async function waitForAudit(
  path: string,
  match: (e: Record<string, unknown>) => boolean,
  timeoutMs = 15_000,
): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await auditEvents(path);
    if (events.some(match)) return events;
    if (Date.now() > deadline)
      throw new Error(
        `no matching audit event in ${path}; have: ${events.map((e) => `${String(e.type)}/${String(e.code)}`).join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}
