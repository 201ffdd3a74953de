/**
 * An agent's audit spool (docs/audit.md, "Events from remote agents"). Every event of the
 * agent's sessions is written to a local file before the request it stands
 * for goes on, so it is durable at the agent exactly as the proxy's own
 * events are durable in its trail; then it is shipped to the proxy's trail
 * over the control connection, and forgotten once the proxy stored it
 * (`audit-ack`). The request no longer waits for a round trip to the proxy.
 *
 * - Events are recorded as the proxy would: its `audit:` settings (arguments
 *   policy, redaction, identity budget, fsync) arrive with the roles. Until
 *   they do, appends are refused; with no trail at the proxy (`null`), events
 *   are not kept at all, as the proxy keeps none of its own.
 * - Each event carries an `eventKey` (this process and a count); its id is
 *   derived from it and the agent's name (agentEventId), so the agent knows
 *   the id at once and the proxy stores the event under the same one.
 * - Appends of one turn share one write (group commit); the file is a series
 *   of segments `spool-<n>.jsonl`; `acked` names the first event the proxy has
 *   not stored yet, and segments before it are deleted.
 * - What the proxy did not acknowledge goes again: after a lost connection
 *   (through another replica if there is one), after a refusal (with backoff),
 *   and after a restart of the agent (the segments are read back). An event
 *   sent twice keeps its id, and the proxy stores it once. At most
 *   MAX_IN_FLIGHT frames wait for an acknowledgement.
 * - Fail closed: when the spool cannot be written, or holds `maxBytes` on
 *   disk from the oldest event the proxy has not stored, appends are
 *   refused, and so are the requests they stand for.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fdatasync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { AccessError, describeError, type ErrorCode } from '../errors.js';
import { argsRecorder, type ArgsRecorder } from '../audit/events.js';
import { acquireLock } from '../audit/log.js';
import {
  agentEventId,
  boundValue,
  IdentityBudget,
  isoNow,
  MAX_REASON_CHARS,
  type AuditEventInput,
} from '../audit/prepare.js';
import type { AgentAuditSettings } from '../tunnel/agent-protocol.js';
import type { Logger } from '../util/log.js';
import type { AuditSink } from './enforcement.js';

/** One proxy the events can go to: sends an `audit` frame (its text); false when it could not. */
export type AuditRoute = (frame: string) => boolean;

export interface AuditSpoolOptions {
  /** The directory of the spool (created 0700). */
  dir: string;
  /** The agent's certified name (event ids are derived from it). */
  agent: string;
  /** Refuse appends while this many bytes of events wait for the proxy. */
  maxBytes: number;
  log: Logger;
  /** A segment is closed and a new one begun past this size. Default 1 MiB. */
  segmentBytes?: number;
  /** Waits after a refusal from the proxy before the events go again: doubled up to the maximum. */
  retryMs?: { first: number; max: number };
  /** For tests: the clock of the identity budget. */
  now?: () => number;
}

/** One event in the spool: its line (without the newline) and where it is. */
interface Entry {
  text: string;
  id: string;
  segment: number;
  line: number;
}

interface Waiting {
  entry: Entry;
  resolve: (v: { id: string }) => void;
  reject: (err: AccessError) => void;
}

interface Frame {
  seq: number;
  route: AuditRoute;
  entries: Entry[];
  acked: boolean;
}

const SEGMENT_RE = /^spool-(\d{1,12})\.jsonl$/;
/** Events per frame, and the size past which a frame takes no more (a frame holds at least one). */
const FRAME_EVENTS = 512;
const FRAME_BYTES = 256 * 1024;
/** An event's fields (without its arguments, bounded by the arguments policy) past this are cut. */
const MAX_LINE_CHARS = 64 * 1024;
const FSYNC_INTERVAL_MS = 1000;
/** Frames sent and not yet acknowledged, at most. */
const MAX_IN_FLIGHT = 8;
/** How soon after an acknowledgement the mark is noted. */
const MARK_INTERVAL_MS = 200;

export class AuditSpool implements NonNullable<AuditSink> {
  /** Undefined until the proxy sent them; null: the proxy keeps no trail. */
  private settings: AgentAuditSettings | null | undefined = undefined;
  private recorder: ArgsRecorder | undefined;
  private budget: IdentityBudget | undefined;
  /** This process, and its count of events: `eventKey` names each event uniquely. */
  private readonly instance = randomBytes(6).toString('base64url');
  private counter = 0;

  private segment = 0;
  private fd = -1;
  private size = 0;
  private lines = 0;
  /** Segments on disk, oldest first, and their sizes in bytes. */
  private readonly segments: number[] = [];
  private readonly segmentBytes = new Map<number, number>();
  /** Bytes of the segments on disk: everything from the oldest event the proxy has not stored. */
  private diskBytes = 0;
  /** The largest control frame the proxy takes (its `max_message_size`, from the welcome). */
  private frameLimit = 64 * 1024 * 1024;
  private ackFd = -1;
  private ackMark = '';

  /** Appended this turn, to be written together. */
  private queue: Waiting[] = [];
  private writeScheduled = false;
  /** Written, not yet sent, in spool order. */
  private outbox: Entry[] = [];
  /** Sent, in spool order; acknowledged ones leave from the front. */
  private readonly sent: Frame[] = [];
  private readonly bySeq = new Map<number, Frame>();
  /** Frame numbers start at a random point, so an acknowledgement meant for an earlier process matches nothing here. */
  private seq = randomBytes(4).readUInt32BE(0);
  private readonly routes: AuditRoute[] = [];
  private shipScheduled = false;
  private inFlight = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private syncTimer: NodeJS.Timeout | undefined;
  private markTimer: NodeJS.Timeout | undefined;
  private syncError: unknown = null;
  private closed = false;
  private releaseLock: () => Promise<void> = async () => {};

  private constructor(private readonly o: AuditSpoolOptions) {
    this.retryDelay = o.retryMs?.first ?? 1000;
  }

  /** Opens (creates) the spool; events a previous run left unacknowledged are sent first. */
  static async open(o: AuditSpoolOptions): Promise<AuditSpool> {
    const spool = new AuditSpool(o);
    try {
      mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new AccessError('AUDIT_UNAVAILABLE', `audit spool ${o.dir} cannot be created: ${describeError(err)}`, {
        hint: 'set audit_spool.dir in agent.yaml to a directory the agent can write',
      });
    }
    checkSpoolDir(o.dir, o.log);
    spool.releaseLock = await acquireLock(
      join(o.dir, 'spool'),
      `audit spool ${o.dir}`,
      'two agents cannot share one audit spool; give each its own audit_spool.dir',
    );
    try {
      spool.recover();
    } catch (err) {
      await spool.releaseLock();
      throw new AccessError('AUDIT_UNAVAILABLE', `audit spool ${o.dir} cannot be read: ${describeError(err)}`, {
        hint: 'fix its permissions, or move the damaged files away (their events are then not sent)',
      });
    }
    return spool;
  }

  /** Events waiting for the proxy (written, not yet acknowledged). */
  get pending(): number {
    let n = this.outbox.length;
    for (const f of this.sent) if (!f.acked) n += f.entries.length;
    return n;
  }

  /** The proxy's `audit:` settings (from its welcome or a roles frame); undefined: missing or unreadable. */
  configure(settings: AgentAuditSettings | null | undefined): void {
    if (settings === undefined) {
      this.o.log.error(
        'the proxy sent no readable audit settings (is it older than this agent? upgrade proxies before agents); requests are refused until it does',
      );
      this.settings = undefined;
      return;
    }
    const was = this.settings;
    this.settings = settings;
    if (settings === null) return;
    this.frameLimit = settings.maxFrameBytes;
    if (
      !was ||
      was.args !== settings.args ||
      was.redact.join('\0') !== settings.redact.join('\0') ||
      was.identityBudgetBytes !== settings.identityBudgetBytes
    ) {
      this.recorder = argsRecorder(settings.args, settings.redact, 1024 * 1024);
      this.budget = new IdentityBudget(settings.identityBudgetBytes, this.o.now, this.o.log);
    }
  }

  /** A control connection is up: frames can go out through `route`. */
  connected(route: AuditRoute): void {
    if (!this.routes.includes(route)) this.routes.push(route);
    this.scheduleShip();
  }

  /**
   * A control connection is down: what was sent through it and not yet
   * acknowledged goes again (through another replica, or when one is back).
   */
  disconnected(route: AuditRoute): void {
    const i = this.routes.indexOf(route);
    if (i >= 0) this.routes.splice(i, 1);
    const back = this.sent.filter((f) => !f.acked && f.route === route);
    if (back.length > 0) this.takeBack(back);
    this.scheduleShip();
  }

  append(event: AuditEventInput): Promise<{ id: string } | undefined> {
    const settings = this.settings;
    if (settings === null) return Promise.resolve(undefined);
    const refused = this.refusal(settings);
    if (refused) return Promise.reject(refused);
    const eventKey = `${this.instance}:${++this.counter}`;
    const id = agentEventId(this.o.agent, eventKey);
    let text: string;
    try {
      text = this.line(event, eventKey);
    } catch (err) {
      return Promise.reject(
        new AccessError('AUDIT_UNAVAILABLE', `audit event cannot be recorded: ${describeError(err)}`),
      );
    }
    const over = this.budget!.charge(event, text.length, (e) => {
      const key = `${this.instance}:${++this.counter}`;
      this.enqueue({ text: this.line(e, key), id: agentEventId(this.o.agent, key), segment: 0, line: 0 });
    });
    if (over) return Promise.reject(over);
    return new Promise((resolve, reject) => {
      this.queue.push({ entry: { text, id, segment: 0, line: 0 }, resolve, reject });
      this.scheduleWrite();
    });
  }

  /**
   * `audit-ack`: the events of `seq` are in the proxy's trail under `ids`.
   * An acknowledgement whose ids are not this frame's events' (meant for
   * another frame or another process) is ignored: the events go again rather
   * than being forgotten unstored.
   */
  acknowledged(seq: number, ids: unknown): void {
    const f = this.bySeq.get(seq);
    if (!f) return;
    if (!Array.isArray(ids) || ids.length !== f.entries.length || ids.some((x, i) => x !== f.entries[i]!.id)) {
      this.o.log.warn(`an acknowledgement of audit frame ${seq} names other events; it is ignored`);
      return;
    }
    this.bySeq.delete(seq);
    f.acked = true;
    this.inFlight--;
    this.retryDelay = this.o.retryMs?.first ?? 1000;
    this.advance();
    this.scheduleShip();
  }

  /** `audit-nack`: the proxy could not store them; they go again after a while. */
  refused(seq: number, code: ErrorCode, message: string): void {
    const f = this.bySeq.get(seq);
    if (!f) return;
    this.o.log.error(
      `the proxy could not store ${f.entries.length} audit event(s) (${code}: ${message}); they stay in the spool and go again in ${(this.retryDelay / 1000).toFixed(1)}s`,
    );
    this.takeBack([f]);
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.scheduleShip();
    }, this.retryDelay);
    this.retryTimer.unref();
    this.retryDelay = Math.min(this.retryDelay * 2, this.o.retryMs?.max ?? 30_000);
  }

  /**
   * Stops: what is written stays in the spool and goes to the proxy when the
   * agent starts again. Memoised.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.queue.length > 0) this.write();
    for (const t of [this.retryTimer, this.syncTimer, this.markTimer]) if (t) clearTimeout(t);
    this.markTimer = undefined;
    this.noteMark();
    this.closeSegment(); // fsynced first (unless fsync: never)
    if (this.ackFd >= 0) {
      try {
        closeSync(this.ackFd);
      } catch {
        /* the mark was written; nothing is lost */
      }
      this.ackFd = -1;
    }
    const left = this.pending;
    if (left > 0)
      this.o.log.info(
        `${left} audit event(s) the proxy has not stored yet are kept in ${this.o.dir}; they go to the proxy when the agent starts again`,
      );
    return this.releaseLock();
  }

  /** Why an append is refused now, if it is. */
  private refusal(settings: AgentAuditSettings | undefined): AccessError | undefined {
    if (this.closed) return unavailable('the agent is shutting down');
    if (settings === undefined) return unavailable('the agent has not received the proxy’s audit settings yet');
    if (this.diskBytes >= this.o.maxBytes && this.heldBytes() >= this.o.maxBytes)
      return new AccessError(
        'AUDIT_UNAVAILABLE',
        `the agent's audit spool holds ${mib(this.heldBytes())} from the oldest event the proxy has not stored yet (audit_spool.max_size), so no more can be recorded; the request is refused`,
        { hint: 'see why the proxy does not store them (its log names the reason), or raise audit_spool.max_size' },
      );
    return undefined;
  }

  /** The oldest event the proxy has not stored (frames sent again go to the end of `sent`: all are looked at). */
  private firstUnstored(): Entry | undefined {
    let first: Entry | undefined;
    for (const f of this.sent) if (!f.acked && (!first || before(f.entries[0]!, first))) first = f.entries[0];
    if (this.outbox[0] && (!first || before(this.outbox[0], first))) first = this.outbox[0];
    return first;
  }

  /** Bytes on disk the spool must keep: its segments from the one of the oldest event not stored. */
  private heldBytes(): number {
    const from = this.firstUnstored()?.segment ?? this.segment;
    let n = 0;
    for (const s of this.segments) if (s >= from) n += this.segmentBytes.get(s) ?? 0;
    return n;
  }

  /**
   * The spool's line for an event: the event with its arguments recorded, its
   * key and the agent's time. An event whose other fields are huge (a hostile
   * server's error message, say) has its strings cut as the proxy would cut
   * them, so it stays far below the size of a control frame.
   */
  private line(event: AuditEventInput, eventKey: string): string {
    // The event without its arguments (left out for the moment, not copied), then its key and time:
    // both are plain ASCII (the key is this process's, the time ISO 8601).
    const raw = event.args;
    if (raw !== undefined) event.args = undefined;
    let text: string;
    try {
      text = JSON.stringify(event);
    } finally {
      if (raw !== undefined) event.args = raw;
    }
    const own = `"eventKey":"${eventKey}","agentTime":"${isoNow()}"}`;
    text = text.length > 2 ? `${text.slice(0, -1)},${own}` : `{${own}`;
    if (text.length > Math.min(MAX_LINE_CHARS, this.frameLimit / 8))
      text = JSON.stringify(boundValue(JSON.parse(text), MAX_REASON_CHARS, 0));
    let args = raw === undefined ? undefined : this.recorder!.recordJson(raw);
    // An event must fit in one control frame (at most 3 bytes per UTF-16 unit): larger arguments are kept as a digest.
    if (args !== undefined && (text.length + args.length) * 3 > this.frameLimit / 2) args = truncatedDigest(args);
    return args === undefined ? text : `${text.slice(0, -1)},"args":${args}}`;
  }

  private enqueue(entry: Entry): void {
    this.queue.push({ entry, resolve: () => {}, reject: () => {} });
    this.scheduleWrite();
  }

  private scheduleWrite(): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    // Appends made in the same synchronous run join one write.
    queueMicrotask(this.write);
  }

  /** Writes what was appended this turn; each append resolves once its line is in the file. */
  private readonly write = (): void => {
    this.writeScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const fail = (e: AccessError, of: Waiting[]) => {
      for (const w of of) w.reject(e);
    };
    try {
      if (this.syncError !== null) {
        // An earlier fsync failed: what was written may not be on disk. Try again before writing more.
        if (this.fd >= 0) fdatasyncSync(this.fd);
        this.syncError = null;
      }
      // Segments of at most a quarter of max_size, so stored ones can go while the limit is far.
      if (this.fd < 0 || this.size >= Math.min(this.o.segmentBytes ?? 1024 * 1024, this.o.maxBytes / 4))
        this.startSegment();
    } catch (err) {
      return fail(this.fault('cannot be written', err), batch);
    }
    let text = '';
    for (const w of batch) {
      w.entry.segment = this.segment;
      w.entry.line = this.lines++;
      text += `${w.entry.text}\n`;
    }
    const buf = Buffer.from(text, 'utf8');
    let written = 0;
    let error: unknown;
    try {
      while (written < buf.length) written += writeSync(this.fd, buf, written, buf.length - written);
    } catch (err) {
      error = err;
    }
    this.size += written;
    this.diskBytes += written;
    this.segmentBytes.set(this.segment, this.size);
    // Exactly the lines that reached the file count; a torn one starts a new segment.
    let done = batch;
    if (written < buf.length) {
      let offset = 0;
      done = batch.filter((w) => (offset += Buffer.byteLength(w.entry.text) + 1) <= written);
      fail(this.fault('write failed', error), batch.slice(done.length));
      this.closeSegment(); // fsyncs what was written
    } else if (this.settings?.fsync === 'always') {
      // The operator asked for every write on disk before it counts: the agent waits for the disk.
      try {
        fdatasyncSync(this.fd);
      } catch (err) {
        this.syncError = err;
        return fail(this.fault('fsync failed', err), done);
      }
    } else if (this.settings?.fsync === 'interval') this.scheduleSync();
    for (const w of done) {
      this.outbox.push(w.entry);
      w.resolve({ id: w.entry.id });
    }
    this.scheduleShip();
  };

  /** A write failed: this batch is refused; the next one tries a new segment. */
  private fault(what: string, err: unknown): AccessError {
    const e = new AccessError(
      'AUDIT_UNAVAILABLE',
      `audit spool ${this.o.dir}: ${what}: ${(err as NodeJS.ErrnoException)?.code ?? describeError(err)}`,
    );
    this.o.log.error(e.message);
    return e;
  }

  private scheduleSync(): void {
    if (this.syncTimer) return;
    const fd = this.fd;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (fd !== this.fd || fd < 0) return;
      fdatasync(fd, (err) => {
        if (!err) return;
        this.syncError = err;
        this.o.log.error(`audit spool ${this.o.dir}: fsync failed: ${err.code ?? err.message}`);
      });
    }, FSYNC_INTERVAL_MS);
    this.syncTimer.unref();
  }

  private startSegment(): void {
    this.closeSegment();
    const next = this.segment + 1;
    this.fd = openSync(segmentPath(this.o.dir, next), 'a', 0o600);
    this.segment = next;
    this.segments.push(next);
    this.segmentBytes.set(next, 0);
    this.size = 0;
    this.lines = 0;
  }

  private closeSegment(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      if (this.settings?.fsync !== 'never') fdatasyncSync(fd);
    } catch (err) {
      this.o.log.error(`audit spool ${this.o.dir}: fsync failed: ${describeError(err)}`);
    }
    try {
      closeSync(fd);
    } catch (err) {
      this.o.log.warn(`audit spool ${this.o.dir}: cannot close a segment: ${describeError(err)}`);
    }
  }

  private scheduleShip(): void {
    if (this.shipScheduled || this.closed) return;
    this.shipScheduled = true;
    // After this turn's writes: the requests go on first.
    setImmediate(this.ship);
  }

  /**
   * Sends what is written and not yet sent, in frames, through the first
   * route that takes them; at most MAX_IN_FLIGHT frames wait for their
   * acknowledgement (a backlog after an outage does not arrive all at once).
   */
  private readonly ship = (): void => {
    this.shipScheduled = false;
    if (this.retryTimer || this.closed) return;
    const maxBytes = Math.min(FRAME_BYTES, this.frameLimit / 2);
    while (this.outbox.length > 0 && this.routes.length > 0 && this.inFlight < MAX_IN_FLIGHT) {
      let n = 0;
      let bytes = 0;
      while (n < this.outbox.length && n < FRAME_EVENTS) {
        const next = this.outbox[n]!.text.length * 3; // at most 3 bytes per UTF-16 unit
        if (n > 0 && bytes + next > maxBytes) break;
        bytes += next;
        n++;
      }
      const entries = this.outbox.slice(0, n);
      const seq = ++this.seq;
      const text = `{"type":"audit","seq":${seq},"events":[${entries.map((e) => e.text).join(',')}]}`;
      const route = this.routes.find((r) => r(text));
      if (!route) return;
      this.outbox = this.outbox.slice(n);
      const frame: Frame = { seq, route, entries, acked: false };
      this.sent.push(frame);
      this.bySeq.set(seq, frame);
      this.inFlight++;
    }
  };

  /** Frames that will not be acknowledged: their events go back to be sent again, in spool order. */
  private takeBack(frames: Frame[]): void {
    for (const f of frames) {
      this.bySeq.delete(f.seq);
      this.sent.splice(this.sent.indexOf(f), 1);
      this.inFlight--;
      this.outbox.push(...f.entries);
    }
    this.outbox.sort((a, b) => a.segment - b.segment || a.line - b.line);
  }

  /** Acknowledged frames leave from the front; the mark is noted soon after (not for every frame). */
  private advance(): void {
    while (this.sent[0]?.acked) this.sent.shift();
    if (this.markTimer || this.closed) return;
    this.markTimer = setTimeout(this.noteMark, MARK_INTERVAL_MS);
    this.markTimer.unref();
  }

  /**
   * Notes the first event the proxy has not stored (`acked`) and deletes the
   * segments before it. Between two notes, a crash costs only duplicates: the
   * events acknowledged since go to the proxy again after the restart.
   */
  private readonly noteMark = (): void => {
    this.markTimer = undefined;
    const first = this.firstUnstored();
    // Nothing pending: the mark is the next line to be written (in the open segment, or the next one).
    const [segment, line] = first
      ? [first.segment, first.line]
      : this.fd >= 0
        ? [this.segment, this.lines]
        : [this.segment + 1, 0];
    const mark = `${segment} ${line}`;
    if (mark === this.ackMark) return;
    this.ackMark = mark;
    try {
      if (this.ackFd < 0) this.ackFd = openSync(join(this.o.dir, 'acked'), 'w', 0o600);
      writeSync(this.ackFd, mark.padEnd(32) + '\n', 0);
    } catch (err) {
      // Only duplicates after a restart are at stake: the events themselves are in the proxy's trail.
      this.o.log.warn(`audit spool ${this.o.dir}: cannot note what the proxy stored: ${describeError(err)}`);
      return;
    }
    while (this.segments.length > 0 && this.segments[0]! < segment) {
      const old = this.segments.shift()!;
      this.diskBytes -= this.segmentBytes.get(old) ?? 0;
      this.segmentBytes.delete(old);
      try {
        unlinkSync(segmentPath(this.o.dir, old));
      } catch (err) {
        this.o.log.warn(`audit spool ${this.o.dir}: cannot delete a stored segment: ${describeError(err)}`);
      }
    }
  };

  /** Reads back what a previous run left: segments after the mark, complete lines only. */
  private recover(): void {
    const found = readdirSync(this.o.dir)
      .map((f) => SEGMENT_RE.exec(f)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    let markSegment = 0;
    let markLine = 0;
    try {
      const [s, l] = readFileSync(join(this.o.dir, 'acked'), 'utf8').trim().split(/\s+/).map(Number);
      if (Number.isInteger(s) && Number.isInteger(l)) [markSegment, markLine] = [s!, l!];
    } catch {
      /* no mark: nothing was acknowledged */
    }
    let torn = 0;
    for (const n of found) {
      const path = segmentPath(this.o.dir, n);
      if (n < markSegment) {
        unlinkSync(path);
        continue;
      }
      this.segments.push(n);
      const content = readFileSync(path, 'utf8');
      const bytes = Buffer.byteLength(content);
      this.segmentBytes.set(n, bytes);
      this.diskBytes += bytes;
      const lines = content.split('\n');
      const last = lines.pop(); // after the final newline: empty, or a torn line
      if (last) torn++;
      lines.forEach((text, line) => {
        if (n === markSegment && line < markLine) return;
        const entry = recoveredEntry(text, this.o.agent, n, line);
        if (!entry) return void torn++;
        this.outbox.push(entry);
      });
    }
    // New lines go to a new segment, numbered after every one read or named by the mark.
    this.segment = Math.max(markSegment, found.length > 0 ? found[found.length - 1]! : 0);
    if (torn > 0)
      this.o.log.warn(`audit spool ${this.o.dir}: ${torn} incomplete line(s) skipped (an interrupted write)`);
    if (this.outbox.length > 0)
      this.o.log.info(
        `audit spool: ${this.outbox.length} event(s) the proxy had not stored when the agent stopped go to it first`,
      );
  }
}

function recoveredEntry(text: string, agent: string, segment: number, line: number): Entry | undefined {
  try {
    const v = JSON.parse(text) as { eventKey?: unknown };
    if (typeof v !== 'object' || v === null || typeof v.eventKey !== 'string') return undefined;
    return { text, id: agentEventId(agent, v.eventKey), segment, line };
  } catch {
    return undefined;
  }
}

/** What the arguments policy `full` stores for arguments over its limit. */
function truncatedDigest(json: string): string {
  const sha256 = createHash('sha256').update(json).digest('hex');
  return JSON.stringify({ truncated: true, sha256, bytes: Buffer.byteLength(json) });
}

/**
 * The spool holds every user's (redacted) arguments and the events not yet
 * stored: only the agent's user may read or change it. A directory owned by
 * another user is refused; one open to group or others is closed (0700).
 */
function checkSpoolDir(dir: string, log: Logger): void {
  const st = statSync(dir);
  if (!st.isDirectory()) throw new AccessError('AUDIT_UNAVAILABLE', `audit spool ${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new AccessError('AUDIT_UNAVAILABLE', `audit spool ${dir} belongs to another user (uid ${st.uid})`, {
      hint: 'give the agent a directory of its own (audit_spool.dir)',
    });
  if ((st.mode & 0o077) !== 0) {
    chmodSync(dir, 0o700);
    log.warn(`audit spool ${dir} was open to other users; it is now 0700`);
  }
}

function segmentPath(dir: string, n: number): string {
  return join(dir, `spool-${String(n).padStart(6, '0')}.jsonl`);
}

function before(a: Entry, b: Entry): boolean {
  return a.segment < b.segment || (a.segment === b.segment && a.line < b.line);
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function unavailable(why: string): AccessError {
  return new AccessError('AUDIT_UNAVAILABLE', `${why}, so the audit trail cannot be written; the request is refused`);
}
