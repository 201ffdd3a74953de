/**
 * Pinned tool definitions (docs/rbac.md, "Pinned tool definitions"): per
 * server, the digest of each approved tool definition (name, title,
 * description, input and output schema, annotations). A tool whose
 * definition differs from its pin, or a name never approved, waits in
 * `pending` until an operator approves it (`mcp-access tools approve`).
 *
 * The gate reaches pins only through `PinStore`, so the store can be served
 * locally (JsonFilePinStore: one JSON file) or by another backend later
 * (a database, or the proxy for a remote agent). Records are plain data.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/** `servers[].tool_pinning`: off (default), auto (first listing pinned; later changes need approval), approve. */
export type PinningMode = 'off' | 'auto' | 'approve';

/** The parts of a tool that are pinned. */
export interface ToolDefinition {
  name: string;
  title?: unknown;
  description?: unknown;
  inputSchema?: unknown;
  outputSchema?: unknown;
  annotations?: unknown;
}

export interface PinRecord {
  digest: string;
  definition: ToolDefinition;
  pinnedAt: string;
  /** `auto` (first listing), or who approved it (the operator's OS user). */
  by: string;
  /** Set by an approval from the CLI; the proxy writes the audit event and clears it. */
  unaudited?: boolean;
  /** The digest this approval replaced, if any. */
  previousDigest?: string;
}

export interface PendingRecord {
  digest: string;
  definition: ToolDefinition;
  firstSeen: string;
  /** The pinned digest it differs from; absent for a name never pinned. */
  pinnedDigest?: string;
}

export interface ServerPins {
  pinned: Record<string, PinRecord>;
  pending: Record<string, PendingRecord>;
}

export interface PinStore {
  /** The pins of one server (empty when it has none). */
  get(server: string): Promise<ServerPins>;
  /**
   * Read-modify-write one server's pins, atomically with respect to other
   * writers (the proxy, the CLI). `change` mutates the copy it is given.
   */
  update<T>(server: string, change: (pins: ServerPins) => T): Promise<T>;
}

export function emptyPins(): ServerPins {
  return { pinned: {}, pending: {} };
}

/** The pinned part of a tool from a tools/list answer (unknown members left out). */
export function toolDefinition(tool: Record<string, unknown>): ToolDefinition {
  const d: ToolDefinition = { name: String(tool.name) };
  for (const k of ['title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const)
    if (tool[k] !== undefined) d[k] = tool[k];
  return d;
}

/** SHA-256 of the canonical JSON (keys sorted at every level) of the definition. */
export function definitionDigest(d: ToolDefinition): string {
  return `sha256:${createHash('sha256').update(canonicalJson(d)).digest('hex')}`;
}

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

interface PinFile {
  version: 1;
  servers: Record<string, ServerPins>;
}

/**
 * Pins in one JSON file (mode 0600), written atomically under a lock file so
 * the proxy and the CLI do not undo each other's changes. Reads are cached
 * and re-read when the file changes.
 */
export class JsonFilePinStore implements PinStore {
  private cache: { mtimeMs: number; size: number; ino: number; data: PinFile } | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  async get(server: string): Promise<ServerPins> {
    const data = await this.read();
    return structuredClone(data.servers[server] ?? emptyPins());
  }

  update<T>(server: string, change: (pins: ServerPins) => T): Promise<T> {
    const run = this.chain.then(() =>
      this.locked(async () => {
        const data = structuredClone(await this.read());
        const pins = data.servers[server] ?? emptyPins();
        const result = change(pins);
        data.servers[server] = pins;
        await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
        await writeFileAtomic(this.path, `${JSON.stringify(data, null, 2)}\n`);
        this.cache = undefined;
        return result;
      }),
    );
    this.chain = run.catch(() => {});
    return run;
  }

  private async read(): Promise<PinFile> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, servers: {} };
      throw this.unreadable(err);
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size && this.cache.ino === st.ino)
      return this.cache.data;
    let data: PinFile;
    try {
      data = JSON.parse(await readFile(this.path, 'utf8')) as PinFile;
    } catch (err) {
      throw this.unreadable(err);
    }
    if (typeof data !== 'object' || data === null || data.version !== 1 || typeof data.servers !== 'object')
      throw this.unreadable(new Error('not a tool pin file (version 1)'));
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, data };
    return data;
  }

  private unreadable(err: unknown): AccessError {
    return new AccessError('CONFIG_INVALID', `tool pins file ${this.path} cannot be read (${(err as Error).message})`, {
      hint: 'fix or remove the file (tool_pins in the proxy configuration); pinned servers refuse their tools until then',
    });
  }

  /** A lock file next to the pins (O_EXCL); one left by a crashed holder is taken over after 30 s. */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = `${this.path}.lock`;
    await mkdir(dirname(lock), { recursive: true, mode: 0o700 });
    const nonce = randomBytes(8).toString('hex');
    const deadline = Date.now() + 10_000;
    for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
      try {
        const fh = await open(lock, 'wx', 0o600);
        await fh.writeFile(nonce);
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > 30_000) await unlink(lock).catch(() => {});
        else if (Date.now() > deadline)
          throw new AccessError('CONFIG_INVALID', `tool pins file ${this.path} is locked (${lock})`, {
            hint: 'another mcp-access process holds the lock; remove the lock file if no such process runs',
          });
        else await sleep(wait);
      }
    }
    try {
      return await fn();
    } finally {
      const holder = await readFile(lock, 'utf8').catch(() => '');
      if (holder === nonce) await unlink(lock).catch(() => {});
    }
  }
}
