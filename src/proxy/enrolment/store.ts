/**
 * Bot and agent records in the state directory named by the proxy config's
 * `bot.state_dir`:
 *
 *   STATE/             mode 0700
 *     lock             cross-process mutex (file-lock.ts), exists only while held
 *     bots/NAME.json   one record per bot, mode 0600, replaced atomically
 *     agents/NAME.json one record per agent, the same way
 *
 * The issuer, the operator commands and the proxy's service use the store
 * through `EnrolmentStore`, so that another backend can take the files'
 * place: with `backend: { type: postgres }` the records live in PostgreSQL
 * (./pg-store.ts), shared by several proxies.
 *
 * Readers need no lock: every write is temp file + fsync + rename, so a
 * reader sees the old record or the new one. Writers (the CLI and the proxy)
 * hold the lock around read-modify-write. The proxy notices changes by
 * polling the directory (see service.ts).
 *
 * A removed bot leaves a tombstone (`removedAt`): its generations are
 * remembered, so certificates of an earlier registration of the same name
 * stay refused when the name is added again.
 */
import { chmod, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AccessError } from '../../errors.js';
import { isValidName, type MachineKind } from '../../identity/names.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { withFileLock } from './file-lock.js';

export interface BotLock {
  at: string;
  reason: string;
  by: 'operator' | 'proxy';
}

export interface BotRecord {
  version: 1;
  name: string;
  roles: string[];
  /** Traits written into its certificates (`bot add --trait`); absent when none. */
  traits?: Record<string, string[]>;
  createdAt: string;
  /** Certificates below this generation belong to an earlier registration of the name. */
  minGeneration: number;
  /** The last generation issued; minGeneration - 1 until the bot joins. */
  generation: number;
  token?: { hash: string; expiresAt: string; usedAt?: string };
  joinedAt?: string;
  renewedAt?: string;
  /** not-after of the last certificate issued. */
  certNotAfter?: string;
  /**
   * How `generation` was issued: the serial of the certificate that was
   * renewed (null for a join) and the SHA-256 of the key certified. A renewal
   * retried after a lost answer presents exactly these again.
   */
  lastIssue?: { fromSerial: string | null; keySha256: string };
  /**
   * The certificate issued last (PEM). A retry of a lost answer gets exactly
   * this certificate back, never a new one: no two certificates of one
   * generation exist, and a retry cannot outlive what the original granted.
   */
  lastCertificate?: string;
  lock?: BotLock;
  removedAt?: string;
}

/** A bot's or an agent's record (an agent's `roles` are always `[system:agent]`). */
export type MachineRecord = BotRecord;

/** Where the records of one kind of machine live, and how to change them safely. */
export interface EnrolmentStore {
  readonly kind: MachineKind;
  /** Where the records are, for messages. */
  readonly dir: string;
  /** Create what the store needs (idempotent). */
  ensure(): Promise<void>;
  /** Run `fn` holding the store's lock; only writes made inside it are safe. */
  locked<T>(fn: () => Promise<T>): Promise<T>;
  read(name: string): Promise<BotRecord | undefined>;
  /** Every record, tombstones included, sorted by name. */
  readAll(): Promise<BotRecord[]>;
  /** Call only inside `locked`. */
  write(record: BotRecord): Promise<void>;
  names(): Promise<string[]>;
  /** A cheap marker that changes whenever the record does (undefined: no record). */
  stamp(name: string): Promise<string | undefined>;
}

/** The records of one kind in the state directory (bots/ or agents/), sharing one lock file. */
export class BotStore implements EnrolmentStore {
  readonly dir: string;
  readonly botsDir: string;
  readonly lockPath: string;

  constructor(
    stateDir: string,
    readonly kind: MachineKind = 'bot',
  ) {
    this.dir = stateDir;
    this.botsDir = join(stateDir, kind === 'agent' ? 'agents' : 'bots');
    this.lockPath = join(stateDir, 'lock');
  }

  /** Create the directories (0700) if needed. */
  async ensure(): Promise<void> {
    try {
      await mkdir(this.botsDir, { recursive: true, mode: 0o700 });
      await chmod(this.dir, 0o700);
      await chmod(this.botsDir, 0o700);
    } catch (err) {
      throw new AccessError(
        'BOT_STATE',
        `cannot create the ${this.kind} state directory ${this.dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        {
          hint: 'check bot.state_dir in the proxy config and that this user may write there',
        },
      );
    }
  }

  pathOf(name: string): string {
    if (!isValidName(this.kind, name))
      throw new AccessError('USAGE', `${this.kind} name ${JSON.stringify(name)} is not allowed`);
    return join(this.botsDir, `${name}.json`);
  }

  /** Run `fn` holding the state lock. Only writes made inside it are safe. */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(this.lockPath, fn);
  }

  async read(name: string): Promise<BotRecord | undefined> {
    const path = this.pathOf(name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AccessError(
        'BOT_STATE',
        `cannot read ${this.kind} record ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    return parseRecord(text, path, this.kind);
  }

  /** Every record, tombstones included, sorted by name. */
  async readAll(): Promise<BotRecord[]> {
    const out: BotRecord[] = [];
    for (const name of await this.names()) {
      const r = await this.read(name);
      if (r) out.push(r);
    }
    return out;
  }

  /** Call only inside `locked`. */
  async write(record: BotRecord): Promise<void> {
    const path = this.pathOf(record.name);
    try {
      await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    } catch (err) {
      throw new AccessError(
        'BOT_STATE',
        `cannot write ${this.kind} record ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }

  async names(): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.botsDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new AccessError(
        'BOT_STATE',
        `cannot list ${this.botsDir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    return entries
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -'.json'.length))
      .filter((n) => isValidName(this.kind, n))
      .sort();
  }

  /** A cheap change marker for a record file (a rename gives a new inode). */
  async stamp(name: string): Promise<string | undefined> {
    try {
      const st = await stat(this.pathOf(name));
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return undefined;
    }
  }
}

export function isActive(r: BotRecord | undefined): r is BotRecord {
  return r !== undefined && r.removedAt === undefined;
}

function parseRecord(text: string, path: string, kind: MachineKind): BotRecord {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    throw damaged(path, 'not JSON', kind);
  }
  return checkRecord(r, path, kind);
}

function damaged(path: string, why: string, kind: MachineKind): AccessError {
  return new AccessError('BOT_STATE', `${kind} record ${path} is damaged: ${why}`, {
    hint: `remove the ${kind} (\`mcp-access ${kind} rm\`) and add it again`,
  });
}

/** A bot's (or agent's) record as stored (parsed JSON), checked. */
export function checkRecord(value: unknown, path: string, kind: MachineKind = 'bot'): BotRecord {
  const bad = (why: string) => damaged(path, why, kind);
  const r = value as BotRecord;
  if (typeof r !== 'object' || r === null || r.version !== 1) throw bad('unknown format version');
  if (
    typeof r.name !== 'string' ||
    !Array.isArray(r.roles) ||
    !Number.isSafeInteger(r.generation) ||
    !Number.isSafeInteger(r.minGeneration)
  ) {
    throw bad('missing name, roles or generation');
  }
  return r;
}
