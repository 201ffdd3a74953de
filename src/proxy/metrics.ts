/**
 * Prometheus metrics (prom-client) on their own plain-HTTP listener
 * (`metrics: { listen: 127.0.0.1:9090 }`), never on the proxy's port:
 * scraping needs no client certificate, so keep it on a private interface.
 *
 *   mcp_access_sessions                          gauge    sessions on this proxy (attached or waiting for a resume)
 *   mcp_access_requests_total{outcome}           counter  requests by outcome: success, error, denied
 *   mcp_access_denials_total{type}               counter  denied events (requests, sessions, notifications…)
 *   mcp_access_audit_write_seconds               histogram time from append to durable, per event
 *   mcp_access_audit_write_failures_total        counter  events that could not be written (their requests refused)
 *   mcp_access_backend_errors_total              counter  failed backend operations (queries, lost connections)
 *   mcp_access_agents_connected                  gauge    remote agents connected (set by the agent routing)
 *   mcp_access_limits_hit_total{limit}           counter  per-identity limits reached (sessions, audit budget)
 *   + prom-client's default process metrics (memory, CPU, event loop lag)
 */
import { createServer, type Server } from 'node:http';
import client from 'prom-client';
import { AccessError } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { AuditWriter } from '../backend/types.js';
import { boundString, MAX_FIELD_CHARS, type AuditEventInput } from '../audit/prepare.js';
import type { AccessDecider } from './server.js';

export class ProxyMetrics {
  readonly registry = new client.Registry();
  readonly sessions: client.Gauge;
  readonly requests: client.Counter<'outcome'>;
  readonly denials: client.Counter<'type'>;
  readonly auditWrite: client.Histogram;
  readonly auditFailures: client.Counter;
  readonly backendErrors: client.Counter;
  /** Remote agents connected: read from `agentCount` on each scrape. */
  readonly agentsConnected: client.Gauge;
  readonly limitsHit: client.Counter<'limit'>;
  private http: Server | undefined;
  /** Requests by outcome not yet added to `requests` (done when it is collected). */
  private readonly uncountedRequests = new Map<string, number>();

  constructor(sessionCount: () => number, agentCount: () => number = () => 0) {
    const registers = [this.registry];
    this.sessions = new client.Gauge({
      name: 'mcp_access_sessions',
      help: 'Sessions on this proxy (attached or waiting for a resume)',
      registers,
      collect() {
        this.set(sessionCount());
      },
    });
    const uncounted = this.uncountedRequests;
    this.requests = new client.Counter({
      name: 'mcp_access_requests_total',
      help: 'Requests by outcome (success, error, denied), counted once their audit event is stored',
      labelNames: ['outcome'],
      registers,
      collect() {
        for (const [outcome, n] of uncounted) this.inc({ outcome }, n);
        uncounted.clear();
      },
    });
    this.denials = new client.Counter({
      name: 'mcp_access_denials_total',
      help: 'Denied audit events by type (requests, session starts, notifications)',
      labelNames: ['type'],
      registers,
    });
    this.auditWrite = new client.Histogram({
      name: 'mcp_access_audit_write_seconds',
      help: 'Time from an audit append to the event being durable',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.auditFailures = new client.Counter({
      name: 'mcp_access_audit_write_failures_total',
      help: 'Audit events that could not be written (their requests were refused)',
      registers,
    });
    this.backendErrors = new client.Counter({
      name: 'mcp_access_backend_errors_total',
      help: 'Failed backend operations (queries, lost connections)',
      registers,
    });
    this.agentsConnected = new client.Gauge({
      name: 'mcp_access_agents_connected',
      help: 'Remote agents connected to this proxy',
      registers,
      collect() {
        this.set(agentCount());
      },
    });
    this.limitsHit = new client.Counter({
      name: 'mcp_access_limits_hit_total',
      help: 'Per-identity limits reached, by limit',
      labelNames: ['limit'],
      registers,
    });
    client.collectDefaultMetrics({ register: this.registry });
  }

  /** The audit writer with its appends timed and counted (two appends per call: kept cheap). */
  observeAudit(writer: AuditWriter): AuditWriter {
    const histogram = this.auditWrite;
    const stored = (e: AuditEventInput) => this.count(e);
    const failed = (err: unknown) => {
      this.auditFailures.inc();
      if (err instanceof AccessError && /audit budget/.test(err.message))
        this.limitsHit.inc({ limit: 'audit.identity_budget' });
    };
    return {
      get key() {
        return writer.key;
      },
      get healthy() {
        return writer.healthy;
      },
      probe: () => writer.probe(),
      close: () => writer.close(),
      append(event, recorded) {
        const t0 = performance.now();
        return writer.append(event, recorded).then(
          (e) => {
            histogram.observe((performance.now() - t0) / 1000);
            stored(event);
            return e;
          },
          (err: unknown) => {
            failed(err);
            throw err;
          },
        );
      },
    };
  }

  /** Counted from the event as given; strings bounded as the stored event has them. */
  private count(e: AuditEventInput): void {
    if (e.outcome === 'denied' && typeof e.type === 'string') this.denials.inc({ type: e.type });
    if (e.type === 'mcp.session.request' && (e.phase === 'response' || e.outcome === 'denied')) {
      // Counted here, handed to prom-client on a scrape: it hashes the labels on every `inc`.
      const outcome: unknown = e.outcome;
      const key = boundString(typeof outcome === 'string' ? outcome : String(outcome), MAX_FIELD_CHARS);
      const n = this.uncountedRequests.get(key);
      // An outcome of an agent's own making is counted at once, so the map stays small between scrapes.
      if (n === undefined && this.uncountedRequests.size >= 8) this.requests.inc({ outcome: key });
      else this.uncountedRequests.set(key, (n ?? 0) + 1);
    }
  }

  /** The decider with refusals counted (LIMIT_REACHED: a session limit). */
  observeDecider(decider: AccessDecider): AccessDecider {
    const inner = decider.recordRefusal?.bind(decider);
    return Object.assign(Object.create(decider) as AccessDecider, {
      recordRefusal: (r: Parameters<NonNullable<AccessDecider['recordRefusal']>>[0]) => {
        if (r.code === 'LIMIT_REACHED')
          this.limitsHit.inc({
            limit: /max_total/.test(r.reason)
              ? 'sessions.max_total'
              : /max_processes/.test(r.reason)
                ? 'sessions.max_processes_per_server'
                : 'sessions.max_per_identity',
          });
        inner?.(r);
      },
    });
  }

  async listen(addr: { host: string; port: number }, log: Logger): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) =>
        reject(
          new AccessError(
            'CONFIG_INVALID',
            `metrics.listen: cannot listen on ${addr.host}:${addr.port}: ${err.code === 'EADDRINUSE' ? 'the address is already in use' : err.message}`,
            { hint: 'change metrics.listen, or stop what uses the port' },
          ),
        );
      server.once('error', failed);
      server.listen(addr.port, addr.host, () => {
        server.off('error', failed);
        resolve();
      });
    });
    this.http = server;
    const a = server.address();
    const bound = a && typeof a === 'object' ? { host: a.address, port: a.port } : addr;
    log.info(`metrics on http://${bound.host}:${bound.port}/metrics`);
    return bound;
  }

  async close(): Promise<void> {
    const s = this.http;
    if (!s) return;
    this.http = undefined;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
  }
}
