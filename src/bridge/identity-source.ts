/**
 * The identity file as it changes on disk. Renewal agents rewrite it in place
 * or rename a new file over it, so the directory is watched (plus a slow
 * poll where watching is not reliable); a change is re-read after a short
 * debounce and fully validated. A torn or half-written file is retried, never
 * used.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Identity } from '../identity/load.js';
import type { Logger } from '../util/log.js';

const DEBOUNCE_MS = 150;
const RETRY_MS = 500;
const POLL_MS = 5_000;

export class IdentitySource {
  current: Identity | undefined;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastStat = '';
  /** Reads may overlap (a reconnect and a renewal): the one that started last wins. */
  private readSeq = 0;
  private appliedSeq = 0;

  constructor(
    readonly path: string,
    private readonly loader: (path: string) => Promise<Identity>,
    private readonly log: Logger,
    private readonly onRenewed: (identity: Identity) => void,
  ) {}

  /** Read and validate the file now (throws the loading error). */
  async load(): Promise<Identity> {
    const seq = ++this.readSeq;
    const id = await this.loader(this.path);
    if (seq > this.appliedSeq) {
      this.appliedSeq = seq;
      this.current = id;
    }
    return this.current ?? id;
  }

  start(): void {
    if (this.watcher || this.poll) return;
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || String(file) === name) this.changed();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // The directory may not exist yet: the poll below notices when it does.
    }
    this.poll = setInterval(() => {
      void this.checkStat();
    }, POLL_MS);
    this.poll.unref();
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
    this.poll = undefined;
  }

  private async checkStat(): Promise<void> {
    try {
      const s = await stat(this.path);
      const sig = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (sig !== this.lastStat) {
        this.lastStat = sig;
        this.changed();
      }
    } catch {
      /* missing for now */
    }
  }

  private changed(delay = DEBOUNCE_MS): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      void this.reread();
    }, delay);
    this.debounce.unref();
  }

  private async reread(): Promise<void> {
    const seq = ++this.readSeq;
    let id: Identity;
    try {
      id = await this.loader(this.path);
    } catch (err) {
      this.log.debug(`identity file changed but is not usable yet: ${(err as Error).message}`);
      this.changed(RETRY_MS);
      return;
    }
    if (seq < this.appliedSeq) return;
    this.appliedSeq = seq;
    if (id.serial === this.current?.serial) return;
    this.current = id;
    this.log.info(`identity renewed: ${id.user}, valid until ${id.notAfter.toISOString()}`);
    this.onRenewed(id);
  }
}

/**
 * When to move onto a renewed certificate: at 80 % of the lifetime, or 60 s
 * before the end, whichever is earlier.
 */
export function rotationTime(id: Identity): number {
  const from = id.notBefore.getTime();
  const to = id.notAfter.getTime();
  return Math.min(from + 0.8 * (to - from), to - 60_000);
}
