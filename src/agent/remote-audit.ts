/**
 * An agent's audit trail is the proxy's: events go over the control
 * connection and an append resolves only once the proxy stored the event
 * (`audit-ack`). Events appended in the same turn of the event loop travel
 * in one frame (group commit). While the agent is not connected, or when the
 * proxy cannot store them, appends fail, and the gate refuses the requests
 * they stand for: fail closed, as the proxy does with its own log.
 */
import { AccessError, type ErrorCode } from '../errors.js';
import type { AuditEventInput } from '../audit/log.js';
import type { AuditSink } from './enforcement.js';

interface Waiting {
  resolve: (v: { id: string } | undefined) => void;
  reject: (err: AccessError) => void;
}

export class RemoteAuditSink implements NonNullable<AuditSink> {
  private queue: AuditEventInput[] = [];
  private waiting: Waiting[] = [];
  private readonly inFlight = new Map<number, Waiting[]>();
  private seq = 0;
  private scheduled = false;
  private send: ((seq: number, events: AuditEventInput[]) => boolean) | undefined;

  /** The control connection is up: frames go out through `send` (false when it could not be sent). */
  connected(send: (seq: number, events: AuditEventInput[]) => boolean): void {
    this.send = send;
  }

  /** The control connection is down: everything not yet acknowledged fails. */
  disconnected(why: string): void {
    this.send = undefined;
    const err = unavailable(why);
    for (const list of this.inFlight.values()) for (const w of list) w.reject(err);
    this.inFlight.clear();
    for (const w of this.waiting) w.reject(err);
    this.waiting = [];
    this.queue = [];
  }

  append(event: AuditEventInput): Promise<{ id: string } | undefined> {
    if (!this.send) return Promise.reject(unavailable('the agent is not connected to the proxy'));
    return new Promise((resolve, reject) => {
      this.queue.push(event);
      this.waiting.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /** `audit-ack`: the events of `seq` are stored, these are their ids. */
  acknowledged(seq: number, ids: unknown): void {
    const list = this.inFlight.get(seq);
    if (!list) return;
    this.inFlight.delete(seq);
    const got = Array.isArray(ids) ? ids : [];
    list.forEach((w, i) => {
      const id: unknown = got[i];
      w.resolve(typeof id === 'string' ? { id } : undefined);
    });
  }

  /** `audit-nack`: the proxy could not store them. */
  refused(seq: number, code: ErrorCode, message: string): void {
    const list = this.inFlight.get(seq);
    if (!list) return;
    this.inFlight.delete(seq);
    const err = new AccessError(code, `the proxy could not store the audit events: ${message}`);
    for (const w of list) w.reject(err);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const events = this.queue;
    const waiting = this.waiting;
    this.queue = [];
    this.waiting = [];
    const seq = ++this.seq;
    if (!this.send || !this.send(seq, events)) {
      const err = unavailable('the connection to the proxy is down');
      for (const w of waiting) w.reject(err);
      return;
    }
    this.inFlight.set(seq, waiting);
  };
}

function unavailable(why: string): AccessError {
  return new AccessError('AUDIT_UNAVAILABLE', `${why}, so the audit trail cannot be written; the request is refused`);
}
