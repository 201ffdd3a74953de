/**
 * The audit log: JSON Lines, one event per line, each carrying the hash of
 * the one before (format: ./chain.ts; fields and policies: docs/audit.md).
 *
 * `append` resolves only after the event's bytes were handed to the kernel
 * (and fsynced, with `fsync: 'always'`); it rejects with AUDIT_UNAVAILABLE if
 * they could not be, so the proxy can refuse the request instead of running
 * it unaudited. Appends are serialised in call order, because the chain
 * depends on order; events that arrive while a write is in flight are written
 * together in the next single write (group commit), so the hot path costs one
 * hash and, under load, less than one write per event.
 *
 * One process writes a file at a time: `<file>.lock` holds the writer's pid
 * and a stale lock (dead pid) is taken over.
 *
 * An interrupted write (crash, disk full) leaves an incomplete last line. The
 * next write ends that line and appends an `audit.recovered` event listing the
 * incomplete lines' sizes, chained to the last complete event, so
 * `audit verify` can tell a torn write from an edit.
 */
import { constants as fsc, statSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AccessError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { GENESIS, HASH_SUFFIX_BYTES, seal, trailingHash } from './chain.js';
import type { ArgsPolicy } from './events.js';
import { EventPreparer, type AuditEventInput, type PreparedEvent, type RecordedEvent } from './prepare.js';

export { verifyAuditFile } from './verify.js';

export type { AuditEventInput, AuditEventType } from './prepare.js';

export interface StoredAuditEvent {
  time: string;
  id: string;
  type: string;
  code?: string;
  prev: string;
  hash: string;
  [k: string]: unknown;
}

/** What a writer answers once an event is durable: its id and chain hash. */
export interface AuditReceipt {
  id: string;
  hash: string;
}

export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface AuditLogOptions {
  args?: ArgsPolicy;
  /** Argument keys to redact (any depth), added to DEFAULT_REDACT_KEYS. */
  redactKeys?: string[];
  /** Default `interval`. */
  fsync?: FsyncPolicy;
  /** With `interval`: the longest time a written event waits for an fsync. Default 1000 ms. */
  fsyncIntervalMs?: number;
  /** With `full`: arguments whose JSON is larger are stored as a digest marked truncated. Default 1 MiB. */
  maxArgsBytes?: number;
  /**
   * Bytes of events one identity (`user`) may add per hour (a token bucket
   * holding one hour's worth). Over it, its events are refused (and so its
   * requests); others are unaffected. 0 = no limit. Default 256 MiB.
   */
  identityBudgetBytes?: number;
  /** For tests: the clock of the identity budget. */
  now?: () => number;
  logger?: Logger;
}

export { boundString, DEFAULT_IDENTITY_BUDGET_BYTES, MAX_FIELD_CHARS, MAX_REASON_CHARS } from './prepare.js';

interface Queued {
  /** The event's JSON, serialised once on the caller's turn (which also validates it). */
  json: string;
  id: string;
  /** Resolve with the whole stored event (`append`) rather than a receipt (`write`). */
  whole: boolean;
  resolve: (e: StoredAuditEvent | AuditReceipt) => void;
  reject: (err: unknown) => void;
}

interface Segment {
  /** The line's text (a lone newline ends an incomplete line). */
  line: string;
  /** For event lines: the chain hash and who waits for it. */
  hash?: string;
  waiter?: Queued;
}

const ignore = () => {};

/** Paths open in this process (the lock file only guards against other processes). */
const openHere = new Set<string>();

export class AuditLog {
  private readonly queue: Queued[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private syncError: unknown = null;
  /** The file ends in the middle of a line. */
  private midLine = false;
  /** Byte sizes of incomplete lines after the last complete event, not yet covered by a recovery event. */
  private tornLines: number[] = [];

  /** Device and inode of the open file: a deleted or rotated file is noticed before the next write. */
  private fileDev = -1;
  private fileIno = -1;
  /** Bytes the file should hold (what was there at open plus what we wrote): less means it was truncated. */
  private size = 0;
  private reopenReason: string | undefined;

  private constructor(
    readonly path: string,
    private fh: FileHandle,
    private lastHash: string,
    private readonly preparer: EventPreparer,
    private readonly fsync: FsyncPolicy,
    private readonly fsyncIntervalMs: number,
    private readonly logger: Logger | undefined,
    private readonly releaseLock: () => Promise<void>,
  ) {}

  static async open(path: string, opts: AuditLogOptions = {}): Promise<AuditLog> {
    const file = resolve(path);
    if (openHere.has(file)) {
      throw new AccessError('AUDIT_UNAVAILABLE', `audit log ${path} is already open in this process`, {
        hint: 'close it before opening it again',
      });
    }
    const unavailable = (what: string, err: unknown) =>
      new AccessError(
        'AUDIT_UNAVAILABLE',
        `audit log ${path}: ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { cause: err },
      );
    try {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw unavailable('cannot create its directory', err);
    }
    await checkDirectory(dirname(file), path, opts.logger);
    openHere.add(file);
    let releaseLock: () => Promise<void> = async () => {};
    let fh: FileHandle | undefined;
    try {
      releaseLock = await acquireLock(
        file,
        `audit log ${path}`,
        'two proxies cannot share one audit log; give each its own audit.path',
      );
      fh = await openLogFile(file, path);
      const tail = await readTail(fh, path);
      const log = new AuditLog(
        path,
        fh,
        tail.lastHash,
        new EventPreparer({
          args: opts.args,
          redactKeys: opts.redactKeys,
          maxArgsBytes: opts.maxArgsBytes,
          identityBudgetBytes: opts.identityBudgetBytes,
          now: opts.now,
          logger: opts.logger,
        }),
        opts.fsync ?? 'interval',
        opts.fsyncIntervalMs ?? 1000,
        opts.logger,
        async () => {
          openHere.delete(file);
          await releaseLock();
        },
      );
      log.midLine = tail.midLine;
      log.tornLines = tail.tornLines;
      await log.identify(fh);
      if (tail.midLine || tail.tornLines.length) {
        opts.logger?.warn(
          `audit log ${path} ends with an incomplete event (an interrupted write); it is closed and an audit.recovered event is added`,
        );
        await log.flush();
        if (log.midLine || log.tornLines.length)
          throw new AccessError('AUDIT_UNAVAILABLE', `audit log ${path}: cannot repair its incomplete last line`);
      }
      return log;
    } catch (err) {
      await fh?.close().catch(() => {});
      openHere.delete(file);
      await releaseLock().catch(() => {});
      throw err;
    }
  }

  /** The hash of the last event written (64 zeros for an empty log). */
  get head(): string {
    return this.lastHash;
  }

  /**
   * Writes the event (time RFC 3339 with ms, id, prev hash, hash) BEFORE
   * resolving. Rejects with AccessError('AUDIT_UNAVAILABLE') if it cannot be
   * written. Returns the stored event, as read back from its line.
   */
  append(event: AuditEventInput): Promise<StoredAuditEvent> {
    return this.enqueue(event, true) as Promise<StoredAuditEvent>;
  }

  /**
   * `append` for callers that need only the event's id and hash (the proxy's
   * hot path): the same guarantees, without reading the stored event back.
   */
  write(event: AuditEventInput, recorded?: RecordedEvent): Promise<AuditReceipt> {
    return this.enqueue(event, false, recorded);
  }

  private enqueue(
    event: AuditEventInput,
    whole: boolean,
    recorded?: RecordedEvent,
  ): Promise<StoredAuditEvent | AuditReceipt> {
    if (this.closed) return Promise.reject(new AccessError('AUDIT_UNAVAILABLE', `audit log ${this.path} is closed`));
    let prepared: PreparedEvent;
    try {
      prepared = this.preparer.prepare(event, this.announce, recorded);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ json: prepared.json, id: prepared.id, whole, resolve, reject });
      if (this.flushing === null) void this.flush();
    });
  }

  /** The one `audit.budget_exceeded` event of an overrun: written, nobody waits for it. */
  private readonly announce = (e: PreparedEvent): void => {
    this.queue.push({ json: e.json, id: e.id, whole: false, resolve: ignore, reject: ignore });
    if (this.flushing === null) void this.flush();
  };

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Everything appended before close is written (or rejected) first.
    while (this.flushing || this.queue.length > 0) await (this.flushing ?? this.flush());
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    try {
      if (this.fsync !== 'never') await this.fh.datasync();
    } catch (err) {
      this.logger?.error(
        `audit log ${this.path}: final fsync failed: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    await this.fh.close().catch(() => {});
    await this.releaseLock();
  }

  /** Write everything queued, one write per batch, until the queue is empty. */
  private flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      // Appends made in the same synchronous run as this one (an agent's frame of events) join its write.
      await Promise.resolve();
      try {
        while (this.queue.length > 0 || this.midLine || this.tornLines.length > 0) {
          const batch = this.queue.splice(0, this.queue.length);
          const ok = await this.writeBatch(batch);
          if (!ok) break;
        }
      } finally {
        this.flushing = null;
      }
      // Appends that arrived while a failed batch was being handled.
      if (this.queue.length > 0) void this.flush();
    })();
    return this.flushing;
  }

  private async writeBatch(batch: Queued[]): Promise<boolean> {
    const fail = (why: string, err: unknown, waiters: Queued[]) => {
      const e = new AccessError(
        'AUDIT_UNAVAILABLE',
        `audit log ${this.path}: ${why}: ${(err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? err}`,
        { cause: err },
      );
      this.logger?.error(e.message);
      for (const q of waiters) q.reject(e);
    };
    if (this.syncError !== null) {
      // An earlier fsync failed: events may not be on disk. Try again before writing more.
      try {
        await this.fh.datasync();
        this.syncError = null;
      } catch (err) {
        fail('fsync failed', err, batch);
        return false;
      }
    }

    try {
      await this.followPath();
    } catch (err) {
      fail('it was deleted or replaced and cannot be reopened', err, batch);
      return false;
    }

    const segments: Segment[] = [];
    let text = '';
    let hash = this.lastHash;
    if (this.midLine) {
      segments.push({ line: '\n' });
      text += '\n';
    }
    const addEvent = (json: string, waiter?: Queued) => {
      const sealed = seal(json, hash);
      hash = sealed.hash;
      const line = `${sealed.line}\n`;
      segments.push({ line, hash, waiter });
      text += line;
    };
    if (this.tornLines.length > 0) {
      addEvent(
        JSON.stringify(
          this.preparer.own('audit.recovered', {
            reason:
              'a write was interrupted; the incomplete line(s) before this event are not events, and the chain continues from the last complete event',
            torn: [...this.tornLines],
          }),
        ),
      );
    }
    if (this.reopenReason !== undefined) {
      addEvent(JSON.stringify(this.preparer.own('audit.reopened', { reason: this.reopenReason })));
      this.reopenReason = undefined;
    }
    for (const q of batch) addEvent(q.json, q);

    const buf = Buffer.from(text, 'utf8');
    // Small batches (the common case) are written synchronously: a write to the
    // page cache costs microseconds, a thread-pool round trip tens of them.
    const { written, error } =
      buf.length <= SYNC_WRITE_MAX ? writeAllSync(this.fh.fd, buf) : await writeAll(this.fh, buf);
    this.size += written;

    // Account for exactly what reached the file (line by line only when not all of it did).
    let done: Segment[];
    const failed: Segment[] = [];
    if (written === buf.length) {
      done = segments.filter((seg) => seg.hash !== undefined);
      this.midLine = false;
      this.tornLines = [];
      if (done.length > 0) this.lastHash = done[done.length - 1]!.hash!;
    } else {
      done = [];
      let offset = 0;
      for (const seg of segments) {
        const bytes = Buffer.byteLength(seg.line);
        const got = Math.max(0, Math.min(bytes, written - offset));
        offset += bytes;
        if (seg.hash === undefined) {
          if (got === 1) this.midLine = false;
          continue;
        }
        if (got >= bytes - 1) {
          // Complete (perhaps without its newline, which the next write adds).
          this.lastHash = seg.hash;
          this.tornLines = [];
          this.midLine = got < bytes;
          done.push(seg);
        } else {
          if (got > 0) {
            this.tornLines.push(got);
            this.midLine = true;
          }
          failed.push(seg);
        }
      }
    }
    const waitersDone = done.filter((s) => s.waiter).map((s) => s.waiter!);
    const waitersFailed = failed.filter((s) => s.waiter).map((s) => s.waiter!);
    if (error !== undefined) {
      fail('write failed', error, waitersFailed);
      if (waitersDone.length === 0) return false;
    }
    if (this.fsync === 'always') {
      try {
        await this.fh.datasync();
      } catch (err) {
        this.syncError = err;
        fail('fsync failed', err, waitersDone);
        return false;
      }
    } else if (this.fsync === 'interval') {
      this.scheduleSync();
    }
    for (const seg of done) {
      const w = seg.waiter;
      if (w === undefined) continue;
      w.resolve(w.whole ? (JSON.parse(seg.line) as StoredAuditEvent) : { id: w.id, hash: seg.hash! });
    }
    return error === undefined;
  }

  /** Remember which file `fh` is and how long it is now. */
  private async identify(fh: FileHandle): Promise<void> {
    const st = await fh.stat();
    this.fileDev = st.dev;
    this.fileIno = st.ino;
    this.size = st.size;
  }

  /**
   * A log deleted or moved away (rotation) is noticed before each write: the
   * path is opened again (created if gone) and the next event says so. The
   * chain continues from the new file's own last event (a new file starts
   * from zeros); `audit.reopened` names the previous file's last hash.
   *
   * One stat of the path per batch tells all three cases apart: another
   * device/inode (replaced), none (deleted or moved), or ours but shorter
   * than what we wrote (truncated in place).
   */
  private async followPath(): Promise<void> {
    let st;
    try {
      st = statSync(this.path, { throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    if (st !== undefined && st.ino === this.fileIno && st.dev === this.fileDev) {
      // Same file, but shorter than what we wrote: truncated in place (logrotate's copytruncate).
      if (st.size >= this.size) return;
      const tail = await readTail(this.fh, this.path);
      this.reopenReason = `the audit file was truncated (copytruncate rotation?); events continue in it. The last event written before has hash ${this.lastHash}`;
      this.logger?.warn(`audit log ${this.path} was truncated; continuing in it`);
      this.lastHash = tail.lastHash;
      this.midLine = tail.midLine;
      this.tornLines = tail.tornLines;
      this.size = (await this.fh.stat()).size;
      return;
    }
    const previousHead = this.lastHash;
    const fh = await openLogFile(resolve(this.path), this.path);
    let tail;
    try {
      tail = await readTail(fh, this.path);
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    await this.fh.close().catch(() => {});
    this.fh = fh;
    await this.identify(fh);
    this.lastHash = tail.lastHash;
    this.midLine = tail.midLine;
    this.tornLines = tail.tornLines;
    this.syncError = null;
    const what = st === undefined ? 'was deleted or moved away (rotated)' : 'was replaced by another file (rotated)';
    this.reopenReason = `the audit file ${what}; events continue in the file now at this path. The last event written before has hash ${previousHead}`;
    this.logger?.warn(`audit log ${this.path} ${what}; reopened it`);
  }

  private scheduleSync(): void {
    if (this.syncTimer !== null) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      if (this.closed) return;
      this.fh.datasync().catch((err) => {
        this.syncError = err;
        this.logger?.error(
          `audit log ${this.path}: fsync failed: ${(err as NodeJS.ErrnoException).code ?? err}; requests are refused until it works again`,
        );
      });
    }, this.fsyncIntervalMs);
    this.syncTimer.unref();
  }
}

const SYNC_WRITE_MAX = 64 * 1024;

function writeAllSync(fd: number, buf: Buffer): { written: number; error?: unknown } {
  let written = 0;
  while (written < buf.length) {
    try {
      const n = writeSync(fd, buf, written, buf.length - written);
      if (n <= 0) return { written, error: new Error('the write made no progress') };
      written += n;
    } catch (error) {
      return { written, error };
    }
  }
  return { written };
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<{ written: number; error?: unknown }> {
  let written = 0;
  while (written < buf.length) {
    try {
      const { bytesWritten } = await fh.write(buf, written, buf.length - written);
      if (bytesWritten <= 0) return { written, error: new Error('the write made no progress') };
      written += bytesWritten;
    } catch (error) {
      return { written, error };
    }
  }
  return { written };
}

/**
 * Where the chain continues: the hash at the end of the last complete line.
 * A final line without its newline is an interrupted write: if it is a
 * complete event it only needs its newline, otherwise it is torn.
 */
async function readTail(
  fh: FileHandle,
  shown: string,
): Promise<{ lastHash: string; midLine: boolean; tornLines: number[] }> {
  const { size } = await fh.stat();
  if (size === 0) return { lastHash: GENESIS, midLine: false, tornLines: [] };
  const read = async (pos: number, len: number): Promise<Buffer> => {
    const b = Buffer.alloc(len);
    const { bytesRead } = await fh.read(b, 0, len, pos);
    return b.subarray(0, bytesRead);
  };
  const hashOfLineEndingAt = async (end: number): Promise<string | undefined> =>
    trailingHash(
      (await read(Math.max(0, end - HASH_SUFFIX_BYTES), Math.min(end, HASH_SUFFIX_BYTES))).toString('latin1'),
    );

  const endsWithNewline = (await read(size - 1, 1))[0] === 0x0a;
  if (endsWithNewline) {
    const h = await hashOfLineEndingAt(size - 1);
    if (h === undefined) {
      throw new AccessError('AUDIT_TAMPERED', `audit log ${shown}: its last line is not an audit event`, {
        hint: 'run `mcp-access audit verify` on it; to start a new log, move this file away',
      });
    }
    return { lastHash: h, midLine: false, tornLines: [] };
  }
  const lineStart = (await lastNewlineBefore(read, size)) + 1;
  const own = await hashOfLineEndingAt(size);
  if (own !== undefined) return { lastHash: own, midLine: true, tornLines: [] };
  let lastHash = GENESIS;
  if (lineStart > 0) {
    const h = await hashOfLineEndingAt(lineStart - 1);
    if (h === undefined) {
      throw new AccessError('AUDIT_TAMPERED', `audit log ${shown}: its last two lines are not audit events`, {
        hint: 'run `mcp-access audit verify` on it; to start a new log, move this file away',
      });
    }
    lastHash = h;
  }
  return { lastHash, midLine: true, tornLines: [size - lineStart] };
}

/** Offset of the last newline before `end`, or -1; reads backwards in chunks. */
async function lastNewlineBefore(read: (pos: number, len: number) => Promise<Buffer>, end: number): Promise<number> {
  const CHUNK = 64 * 1024;
  let hi = end;
  while (hi > 0) {
    const lo = Math.max(0, hi - CHUNK);
    const chunk = await read(lo, hi - lo);
    const i = chunk.lastIndexOf(0x0a);
    if (i >= 0) return lo + i;
    hi = lo;
  }
  return -1;
}

/**
 * `<file>.lock` with this process's pid, for as long as it writes `file`
 * (`what` names the file in errors); a lock whose process is gone is taken over.
 */
export async function acquireLock(file: string, what: string, hint: string): Promise<() => Promise<void>> {
  const lockPath = `${file}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      return async () => {
        await unlink(lockPath).catch(() => {});
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AccessError(
          'AUDIT_UNAVAILABLE',
          `${what}: cannot create its lock file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
          { cause: err },
        );
      }
      const pid = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new AccessError('AUDIT_UNAVAILABLE', `${what} is being written by process ${pid}`, { hint });
      }
      await unlink(lockPath).catch(() => {}); // stale: its writer is gone
    }
  }
  throw new AccessError('AUDIT_UNAVAILABLE', `${what}: cannot take its lock file`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Open the log for appending without following a symbolic link (a dangling
 * link is never used to create its target) and only if it is a regular file
 * owned by this user, created with mode 0600.
 */
async function openLogFile(file: string, shown: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(file, fsc.O_RDWR | fsc.O_APPEND | fsc.O_CREAT | (fsc.O_NOFOLLOW ?? 0), 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') {
      throw new AccessError(
        'AUDIT_UNAVAILABLE',
        `audit log ${shown} is a symbolic link; the audit log is never written through a link`,
        { hint: 'set audit.path to the real file, or remove the link', cause: err },
      );
    }
    throw new AccessError(
      'AUDIT_UNAVAILABLE',
      `audit log ${shown}: cannot be opened for writing: ${code ?? (err as Error).message}`,
      { cause: err },
    );
  }
  const st = await fh.stat();
  const uid = process.getuid?.();
  const problem = !st.isFile()
    ? 'is not a regular file'
    : uid !== undefined && st.uid !== uid
      ? `is owned by another user (uid ${st.uid})`
      : undefined;
  if (problem) {
    await fh.close().catch(() => {});
    throw new AccessError('AUDIT_UNAVAILABLE', `audit log ${shown} ${problem}`, {
      hint: "point audit.path at a file of the proxy's own user, in a directory only it can write",
    });
  }
  return fh;
}

/**
 * The audit directory must not let others replace the log: writable by every
 * user (o+w, e.g. 0777) or owned by another user (other than root) is
 * refused; group-writable is a warning.
 */
async function checkDirectory(dir: string, shown: string, logger: Logger | undefined): Promise<void> {
  const st = await stat(dir);
  const uid = process.getuid?.();
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if ((st.mode & 0o002) !== 0) {
    throw new AccessError(
      'AUDIT_UNAVAILABLE',
      `audit log ${shown}: its directory ${dir} is writable by every user (mode ${mode}), so anyone could replace or redirect the log`,
      {
        hint: `run chmod o-w ${dir}, or choose a directory only the proxy's user can write`,
      },
    );
  }
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new AccessError(
      'AUDIT_UNAVAILABLE',
      `audit log ${shown}: its directory ${dir} belongs to another user (uid ${st.uid})`,
      {
        hint: "choose a directory owned by the proxy's user (or root)",
      },
    );
  }
  if ((st.mode & 0o020) !== 0)
    logger?.warn(
      `audit log ${shown}: its directory ${dir} is writable by its group (mode ${mode}); members could replace the log`,
    );
}
