/**
 * The local backend: what a single proxy always used. The audit trail is the
 * JSON Lines file at `audit.path` (src/audit/log.ts); bots stay in
 * `bot.state_dir` (src/bot/store.ts); records created at run time (roles from
 * `mcp-access role create`) are files in the state directory:
 *
 *   DIR/            mode 0700, created by the first write
 *     roles/NAME.json   one record, mode 0600, replaced atomically
 *
 * Nothing is created until something is written, so a proxy that never uses
 * these commands sees no change. Readers need no lock (temp file + rename);
 * `locked` serialises writers across processes with a lock file.
 */
import { access, constants, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessError } from '../errors.js';
import { AuditLog } from '../audit/log.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { checkRecordName, isRecordName } from './names.js';
import type { AuditWriter, AuditWriterOptions, Backend, ParseRecord, RecordStore } from './types.js';

export class LocalBackend implements Backend {
  readonly type = 'local' as const;
  readonly description: string;

  constructor(readonly dir: string) {
    this.description = `local (${dir})`;
  }

  async openAudit(options: AuditWriterOptions): Promise<AuditWriter> {
    if (options.path === undefined) throw new AccessError('INTERNAL', 'the local audit trail needs audit.path');
    const log = await AuditLog.open(options.path, {
      args: options.args,
      redactKeys: options.redactKeys,
      fsync: options.fsync,
      identityBudgetBytes: options.identityBudgetBytes,
      logger: options.logger,
    });
    return fileAuditWriter(log);
  }

  records<T>(kind: string, parse: ParseRecord<T>): RecordStore<T> {
    return new LocalRecordStore(join(this.dir, `${kind}s`), kind, parse, join(this.dir, `.${kind}s.lock`));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}

/** The file audit log as an AuditWriter: healthy until a write fails, again once one succeeds. */
export function fileAuditWriter(log: AuditLog): AuditWriter & { log: AuditLog } {
  let healthy = true;
  return {
    key: log.path,
    log,
    get healthy() {
      return healthy;
    },
    append: (event, recorded) =>
      log.write(event, recorded).then(
        (stored) => {
          healthy = true;
          return stored;
        },
        (err: unknown) => {
          healthy = false;
          throw err;
        },
      ),
    probe: async () => {
      try {
        await access(log.path, constants.W_OK);
      } catch (err) {
        throw new AccessError(
          'AUDIT_UNAVAILABLE',
          `audit log ${log.path} cannot be written (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
    },
    close: () => log.close(),
  };
}

class LocalRecordStore<T> implements RecordStore<T> {
  readonly where: string;

  constructor(
    private readonly dir: string,
    readonly kind: string,
    private readonly parse: ParseRecord<T>,
    private readonly lockPath: string,
  ) {
    this.where = dir;
  }

  private pathOf(name: string): string {
    checkRecordName(this.kind, name);
    return join(this.dir, `${name}.json`);
  }

  private failure(what: string, path: string, err: unknown): AccessError {
    return new AccessError(
      'BACKEND_UNAVAILABLE',
      `cannot ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      { hint: 'check that the state directory exists and belongs to this user' },
    );
  }

  async read(name: string): Promise<T | undefined> {
    const path = this.pathOf(name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.failure('read', path, err);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new AccessError('BACKEND_UNAVAILABLE', `${path} is damaged: not JSON`, {
        hint: 'remove it and create the record again',
      });
    }
    return this.parse(value, path);
  }

  async readAll(): Promise<T[]> {
    const out: T[] = [];
    for (const name of await this.names()) {
      const r = await this.read(name);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  async names(): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.failure('list', this.dir, err);
    }
    return entries
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .filter(isRecordName)
      .sort();
  }

  async write(name: string, value: T): Promise<void> {
    const path = this.pathOf(name);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, 0o600);
    } catch (err) {
      throw this.failure('write', path, err);
    }
  }

  async remove(name: string): Promise<boolean> {
    const path = this.pathOf(name);
    try {
      await unlink(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw this.failure('remove', path, err);
    }
  }

  async stamp(name: string): Promise<string | undefined> {
    try {
      const st = await stat(this.pathOf(name));
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return undefined;
    }
  }

  /** One readdir and one stat per record: cheap enough to poll every few hundred ms. */
  async version(): Promise<string> {
    const h = createHash('sha256');
    for (const name of await this.names()) h.update(`${name}=${(await this.stamp(name)) ?? ''}\n`);
    return h.digest('hex');
  }

  async locked<R>(fn: () => Promise<R>): Promise<R> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw this.failure('create', this.dir, err);
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const fh = await open(this.lockPath, 'wx', 0o600);
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw this.failure('create', this.lockPath, err);
        // A holder keeps it for milliseconds; one older than 30 s crashed.
        const st = await stat(this.lockPath).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > 30_000) await unlink(this.lockPath).catch(() => {});
        if (Date.now() > deadline)
          throw new AccessError('BACKEND_UNAVAILABLE', `${this.lockPath} is held by another process`, {
            hint: 'retry; if no mcp-access command is running, remove the lock file',
          });
        await sleep(5);
      }
    }
    try {
      return await fn();
    } finally {
      await unlink(this.lockPath).catch(() => {});
    }
  }
}
