/**
 * An agent's audit trail is the proxy's: events go over the control
 * connection and an append resolves only once the proxy stored the event
 * (`audit-ack`). Events appended in the same turn of the event loop travel
 * in one frame (group commit). While the agent is not connected, or when the
 * proxy cannot store them, appends fail, and the gate refuses the requests
 * they stand for: fail closed, as the proxy does with its own log.
 */
import { randomBytes } from 'node:crypto';
import { AccessError, type ErrorCode } from '../errors.js';
import type { AuditEventInput } from '../audit/log.js';
import type { AuditSink } from './enforcement.js';

interface Waiting {
  resolve: (v: { id: string } | undefined) => void;
  reject: (err: AccessError) => void;
}

/** One proxy the events can go to (an agent connected to several replicas has one per replica). */
type Route = (seq: number, events: AuditEventInput[]) => boolean;

export class RemoteAuditSink implements NonNullable<AuditSink> {
  private queue: AuditEventInput[] = [];
  private waiting: Waiting[] = [];
  private readonly inFlight = new Map<number, { route: Route; waiting: Waiting[]; events: AuditEventInput[] }>();
  private seq = 0;
  private scheduled = false;
  /** This agent process, and its count of events: `eventKey` names each event uniquely. */
  private readonly instance = randomBytes(6).toString('base64url');
  private counter = 0;
  /** Connected proxies, in the order they connected: events go to the first. */
  private readonly routes: Route[] = [];

  /**
   * A control connection is up: frames can go out through `send` (which
   * returns false when it could not send). Without an argument: the single
   * route of the tests and of an agent with one proxy.
   */
  connected(send: Route): void {
    if (!this.routes.includes(send)) this.routes.push(send);
  }

  /**
   * A control connection is down: what was sent through it and not yet
   * acknowledged goes again through another proxy (a replica), or fails when
   * none is left; with no route left, so does everything queued. An event
   * sent again may have been stored by the proxy that went away: its `eventKey`
   * (the agent's own id for it) tells the two copies apart from two events.
   */
  disconnected(why: string, send?: Route): void {
    const err = unavailable(why);
    const gone = send ? [send] : [...this.routes];
    for (const r of gone) {
      const i = this.routes.indexOf(r);
      if (i >= 0) this.routes.splice(i, 1);
    }
    for (const [seq, f] of this.inFlight) {
      if (!gone.includes(f.route)) continue;
      const route = this.routes.find((r) => r(seq, f.events));
      if (route) {
        f.route = route;
        continue;
      }
      this.inFlight.delete(seq);
      for (const w of f.waiting) w.reject(err);
    }
    if (this.routes.length > 0) return;
    for (const w of this.waiting) w.reject(err);
    this.waiting = [];
    this.queue = [];
  }

  append(event: AuditEventInput): Promise<{ id: string } | undefined> {
    if (this.routes.length === 0) return Promise.reject(unavailable('the agent is not connected to the proxy'));
    return new Promise((resolve, reject) => {
      this.queue.push({ ...event, eventKey: `${this.instance}:${++this.counter}` });
      this.waiting.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /** `audit-ack`: the events of `seq` are stored, these are their ids. */
  acknowledged(seq: number, ids: unknown): void {
    const list = this.inFlight.get(seq)?.waiting;
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
    const list = this.inFlight.get(seq)?.waiting;
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
    const route = this.routes.find((r) => r(seq, events));
    if (!route) {
      const err = unavailable('the connection to the proxy is down');
      for (const w of waiting) w.reject(err);
      return;
    }
    this.inFlight.set(seq, { route, waiting, events });
  };
}

function unavailable(why: string): AccessError {
  return new AccessError('AUDIT_UNAVAILABLE', `${why}, so the audit trail cannot be written; the request is refused`);
}
