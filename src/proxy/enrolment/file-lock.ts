/**
 * A cross-process mutex on a lock file (O_CREAT|O_EXCL), for the bot state
 * directory: the operator's CLI and the running proxy both change bot records
 * (the CLI adds, removes and locks; the proxy consumes tokens and bumps
 * generations), and a read-modify-write by one must not undo the other's.
 *
 * Holders keep it for milliseconds. A lock file left by a crashed holder is
 * taken over when its process is gone (same host) or it is older than
 * `staleMs` (a holder on another host or PID namespace, e.g. a container).
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessError } from '../../errors.js';

interface Holder {
  pid: number;
  host: string;
  at: string;
  nonce: string;
}

export interface FileLockOptions {
  timeoutMs?: number;
  staleMs?: number;
}

export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const staleMs = opts.staleMs ?? 30_000;
  const me: Holder = {
    pid: process.pid,
    host: hostname(),
    at: new Date().toISOString(),
    nonce: randomBytes(8).toString('hex'),
  };
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify(me));
      } finally {
        await fh.close();
      }
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new AccessError('BOT_STATE', `cannot create the lock file ${path} (${code ?? (err as Error).message})`, {
          hint: 'check that the bot state directory exists and is writable by this user',
        });
      }
      const holder = await readHolder(path);
      if (await isStale(path, holder, staleMs)) {
        await unlink(path).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) {
        const who = holder ? `process ${holder.pid} on ${holder.host} since ${holder.at}` : 'another process';
        throw new AccessError('BOT_STATE', `the bot state is locked by ${who} (${path})`, {
          hint: `if no mcp-access process is using it, remove ${path}`,
        });
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 50);
    }
  }
  try {
    return await fn();
  } finally {
    // Only remove our own lock (a very slow holder may have been declared stale).
    const holder = await readHolder(path);
    if (holder?.nonce === me.nonce) await unlink(path).catch(() => {});
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

async function isStale(path: string, holder: Holder | undefined, staleMs: number): Promise<boolean> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch {
    return false; // gone already: the next attempt will create it
  }
  if (Date.now() - mtimeMs > staleMs) return true;
  if (holder && holder.host === hostname() && !processExists(holder.pid)) return true;
  return false;
}

function processExists(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
