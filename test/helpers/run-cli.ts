/**
 * Spawn-and-collect, the one way tests run a process to its end: `run` for
 * any command, `runCli` for `mcp-access` as a person or a script runs it.
 */
import { spawn } from 'node:child_process';
import { CLI } from './cluster.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The whole environment of the process; default: this process's. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Killed (SIGKILL) and rejected after this long; default 30 s. */
  timeoutMs?: number;
}

/** Runs `command ARGS` to its end (bounded), collecting stdout and stderr. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      env: opts.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(
        new Error(
          `${[command, ...args].join(' ').slice(0, 300)} did not finish within ${timeoutMs} ms:\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/**
 * Runs `mcp-access ARGS` with the minimal environment MCP clients give the
 * processes they start (PATH, HOME), plus `opts.env`.
 */
export function runCli(args: string[], opts: Omit<RunOptions, 'cwd'> = {}): Promise<CliRun> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...opts.env };
  return run(process.execPath, [CLI, ...args], { ...opts, env });
}
