/**
 * The enrolment service inside the proxy, one per kind of machine (bots and
 * agents, kinds.ts): the join/renew endpoints, a guard that refuses
 * connections from locked or removed machines, and a watcher that notices
 * what `mcp-access bot|agent lock|rm|…` changed in the state directory and
 * ends the affected sessions (bots) or tells whoever listens (`onRevoked`:
 * the proxy drops an agent's connections).
 *
 * The watcher polls (one readdir + one stat per bot each second): fs.watch
 * misses events on network file systems and some container volumes, and a
 * poll of a few small files is cheap. A lock therefore takes effect within
 * about a second, well inside the 5 s the issue asks for.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AccessError, describeError, isAccessError } from '../../errors.js';
import type { CertificateAuthority } from '../../identity/ca.js';
import type { ProxyConfig } from '../config.js';
import type { Peer } from '../../identity/peer.js';
import type { GateFactory } from '../../agent/gate.js';
import type { AccessDecider, ProxyRoutes } from '../server.js';
import type { Logger } from '../../util/log.js';
import { BotRefusal, joinWithToken, lockedError, renewBot, type Issued } from './issuer.js';
import { MAX_BOT_REQUEST_BYTES, type CaResponse } from '../../tunnel/enrolment.js';
import { AGENT_KIND, BOT_KIND, kindSpec, type MachineKind } from './kinds.js';
import { BotStore, isActive, type BotRecord, type EnrolmentStore } from './store.js';
import { AddressRateLimiter, JOIN_RATE_LIMIT, type RateLimitOptions } from './rate-limit.js';

/** Where bot events go (the proxy's audit log). Append must resolve once the event is stored. */
export interface BotAuditSink {
  append(event: Record<string, unknown>): Promise<unknown>;
}

/** The part of ProxyServer the service needs. */
export interface SessionEnder {
  endSessionsWhere(match: (peer: Peer) => boolean, reason: AccessError): number;
}

export interface BotServiceOptions {
  /** Bots (default) or agents. */
  kind?: MachineKind;
  config: ProxyConfig;
  ca: CertificateAuthority;
  log: Logger;
  audit?: BotAuditSink;
  /** How often the state directory is checked for changes; default 1 s. */
  pollMs?: number;
  /** Join attempts per source address (default JOIN_RATE_LIMIT). */
  joinRateLimit?: RateLimitOptions;
  /** A limiter shared with the other kind's service (one budget per address for every join). */
  joinLimiter?: AddressRateLimiter;
  /** The records (default: files in bot.state_dir); another backend can take their place. */
  store?: EnrolmentStore;
}

/**
 * A machine's certificate may no longer be used: the proxy should drop the
 * connections of every peer `applies` accepts, with `error`.
 */
export interface Revocation {
  kind: MachineKind;
  name: string;
  /**
   * locked, removed, re-registered (an earlier registration's certificates),
   * unreadable (its record is damaged: fail closed), or superseded (a renewal
   * issued a newer generation and the grace period after it ran out).
   */
  why: 'locked' | 'removed' | 'reregistered' | 'unreadable' | 'superseded';
  error: AccessError;
  applies(peer: Peer): boolean;
}

export interface BotService {
  /** The bot endpoints on their own. */
  routes: ProxyRoutes;
  /** The bot endpoints in front of other routes. */
  withRoutes(other?: ProxyRoutes): ProxyRoutes;
  /** Wrap a decider (listing, resume): bots that are locked, removed or re-registered are refused first. */
  guard(decider: AccessDecider): AccessDecider;
  /** Wrap the session gates (new sessions): the same refusal, audited as a denied session start. */
  guardGates(gates: GateFactory): GateFactory;
  /** The server whose sessions a lock or removal ends. */
  onServer(server: SessionEnder): void;
  /** Replace the audit sink (e.g. after a reload opened a new log). */
  setAudit(audit: BotAuditSink | undefined): void;
  /**
   * Throws AccessError when this certificate of a machine of this kind may not
   * be used now: not one of this kind, unknown or removed, an earlier
   * registration, locked, or a superseded generation past its grace period.
   */
  check(peer: Peer): void;
  /** Be told when certificates stop being usable (see Revocation); returns the unsubscribe function. */
  onRevoked(listener: (r: Revocation) => void): () => void;
  /** Check the state directory now (the poll does it every `pollMs`). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** The agents' enrolment service, as the proxy's agent routing uses it. */
export interface AgentEnrolment extends BotService {
  /** `check` by its name: call it when an agent connects (and on every resume of its connection). */
  checkAgent(peer: Peer): void;
}

/** Audit event types and codes (docs/bot.md, docs/agent.md). */
export const BOT_EVENTS = BOT_KIND.events;
export const AGENT_EVENTS = AGENT_KIND.events;

/** The agents' service: agent.* endpoints, checkAgent, revocations. */
export async function createAgentEnrolment(opts: Omit<BotServiceOptions, 'kind'>): Promise<AgentEnrolment> {
  const service = await createBotService({ ...opts, kind: 'agent' });
  return { ...service, checkAgent: (peer) => service.check(peer) };
}

export async function createBotService(opts: BotServiceOptions): Promise<BotService> {
  const spec = kindSpec(opts.kind ?? 'bot');
  const kind = spec.kind;
  const BOT_EVENTS = spec.events;
  if (!opts.config.bot) throw new AccessError('INTERNAL', `the ${kind} service needs bot.state_dir in the config`);
  const store = opts.store ?? new BotStore(opts.config.bot.stateDir, kind);
  const graceMs = opts.config.bot.supersededGraceMs;
  await store.ensure();
  const log = opts.log.child(`proxy ${kind}`);
  log.level = opts.log.level;
  let audit = opts.audit;
  let server: SessionEnder | undefined;
  const cache = new Map<string, { stamp: string | undefined; record: BotRecord }>();
  const damaged = new Map<string, string | undefined>();
  const deps = { store, ca: opts.ca };
  const joinLimiter = opts.joinLimiter ?? new AddressRateLimiter(opts.joinRateLimit ?? { ...JOIN_RATE_LIMIT });
  const listeners = new Set<(r: Revocation) => void>();
  /** Supersession timers per machine: the grace after a renewal, then the older generations are revoked. */
  const supersede = new Map<string, NodeJS.Timeout>();
  /** Refusals by the limiter are audited at most once per address and minute. */
  const limitAudited = new Map<string, number>();

  const record = async (event: Record<string, unknown>): Promise<void> => {
    if (!audit) return;
    await audit.append(event);
  };
  /** For events nobody waits on (watcher): log a failure instead of throwing. */
  const recordQuietly = (event: Record<string, unknown>): void => {
    record(event).catch((err) => log.error(`audit: could not record ${String(event.type)}: ${describeError(err)}`));
  };

  const endSessions = (
    name: string,
    why: AccessError,
    match: (peer: Peer) => boolean = () => true,
    reason: Revocation['why'] = 'removed',
  ): void => {
    const applies = (peer: Peer): boolean => peer[kind]?.name === name && match(peer);
    if (kind === 'bot') {
      const n = server?.endSessionsWhere(applies, why) ?? 0;
      if (n > 0) log.info(`ended ${n} session(s) of bot "${name}": ${why.message}`);
    }
    for (const l of listeners) {
      try {
        l({ kind, name, why: reason, error: why, applies });
      } catch (err) {
        log.error(`a revocation listener failed: ${describeError(err)}`);
      }
    }
  };

  /** After a renewal: once the grace period is over, the older generations are revoked. */
  const scheduleSupersession = (rec: BotRecord): void => {
    clearTimeout(supersede.get(rec.name));
    supersede.delete(rec.name);
    if (listeners.size === 0 || !rec.renewedAt) return;
    const generation = rec.generation;
    const wait = Math.max(0, Date.parse(rec.renewedAt) + graceMs - Date.now());
    const t = setTimeout(() => {
      supersede.delete(rec.name);
      endSessions(
        rec.name,
        new AccessError(
          'IDENTITY_REJECTED',
          `this certificate of ${kind} "${rec.name}" was superseded by generation ${generation}`,
          { hint: `the ${kind} renews by itself; reconnect with its newest certificate` },
        ),
        (peer) => (peer[kind]?.generation ?? 0) < generation,
        'superseded',
      );
    }, wait);
    t.unref();
    supersede.set(rec.name, t);
  };

  /** What a record change means for live sessions and the audit trail. */
  const applyChange = (
    name: string,
    before: BotRecord | undefined,
    after: BotRecord | undefined,
    quiet: boolean,
  ): void => {
    const wasActive = isActive(before);
    const nowActive = isActive(after);
    if (wasActive && !nowActive) {
      if (!quiet) {
        log.info(`${kind} "${name}" was removed`);
        recordQuietly({ ...BOT_EVENTS.remove, [kind]: name, by: 'operator' });
      }
      clearTimeout(supersede.get(name));
      endSessions(
        name,
        new AccessError(
          kind === 'agent' ? 'AGENT_UNKNOWN' : 'IDENTITY_REJECTED',
          `${kind} "${name}" was removed from this proxy`,
        ),
      );
      return;
    }
    if (!nowActive) return;
    if (!wasActive && !quiet) {
      log.info(`${kind} "${name}" was added${kind === 'bot' ? ` (roles ${after.roles.join(', ')})` : ''}`);
      recordQuietly({ ...BOT_EVENTS.add, [kind]: name, roles: after.roles, by: 'operator' });
    }
    if (after.lock && !(wasActive && before.lock)) {
      if (!quiet) {
        log.warn(`${kind} "${name}" was locked: ${after.lock.reason}`);
        recordQuietly({
          ...(after.lock.by === 'proxy' ? BOT_EVENTS.lockCopied : BOT_EVENTS.lock),
          [kind]: name,
          reason: after.lock.reason,
          by: after.lock.by,
        });
      }
      const err = lockedError(after, kind);
      endSessions(
        name,
        kind === 'agent' ? err : new AccessError('SESSION_LOCKED', err.message, { hint: err.hint }),
        () => true,
        'locked',
      );
    } else if (!after.lock && wasActive && before.lock && !quiet) {
      log.info(`${kind} "${name}" was unlocked`);
      recordQuietly({ ...BOT_EVENTS.unlock, [kind]: name, by: 'operator' });
    }
    // A re-registered name: certificates of the earlier registration lose their sessions.
    if (!wasActive || before.minGeneration !== after.minGeneration)
      endSessions(
        name,
        new AccessError(
          'IDENTITY_REJECTED',
          `${kind} "${name}" was registered again; certificates of its earlier registration no longer work`,
        ),
        (peer) => (peer[kind]?.generation ?? 0) < after.minGeneration,
        'reregistered',
      );
    if (after.generation > (before?.generation ?? after.generation) && after.renewedAt) scheduleSupersession(after);
  };

  // Scans and adoptions run one at a time, so the cache never goes back to an older record.
  let queue: Promise<void> = Promise.resolve();
  const serially = (fn: () => Promise<void>): Promise<void> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => {});
    return next;
  };

  /** Adopt a record this proxy just wrote, so the guard and watcher see it at once. */
  const adopt = (rec: BotRecord): Promise<void> =>
    serially(async () => {
      const before = cache.get(rec.name)?.record;
      cache.set(rec.name, { stamp: await store.stamp(rec.name), record: rec });
      applyChange(rec.name, before, rec, true);
    });

  let scanning: Promise<void> | undefined;
  let stateFailing = false;
  const scan = (quiet: boolean): Promise<void> => {
    scanning ??= serially(async () => {
      try {
        const names = new Set(await store.names());
        for (const name of names) {
          const stamp = await store.stamp(name);
          const cached = cache.get(name);
          if (cached && cached.stamp === stamp) continue;
          let rec: BotRecord | undefined;
          try {
            rec = await store.read(name);
          } catch (err) {
            // Fail closed: a bot whose record cannot be read is refused. Logged
            // once per version of the damaged file, not every second.
            if (damaged.get(name) !== stamp) log.error(describeError(err));
            damaged.set(name, stamp);
            const before = cache.get(name)?.record;
            cache.delete(name);
            if (isActive(before))
              endSessions(
                name,
                new AccessError('IDENTITY_REJECTED', `the record of ${kind} "${name}" cannot be read`),
                () => true,
                'unreadable',
              );
            continue;
          }
          damaged.delete(name);
          if (!rec) continue;
          cache.set(name, { stamp, record: rec });
          applyChange(name, cached?.record, rec, quiet);
        }
        for (const [name, cached] of cache) {
          if (names.has(name)) continue;
          cache.delete(name);
          applyChange(name, cached.record, undefined, quiet);
        }
        if (stateFailing) log.info(`the ${kind} state can be read again`);
        stateFailing = false;
      } catch (err) {
        // Once per outage (a database restart), not every second; the records last read stay in force.
        if (!stateFailing) log.error(`cannot read the ${kind} state: ${describeError(err)}`);
        stateFailing = true;
      } finally {
        scanning = undefined;
      }
    });
    return scanning;
  };
  await scan(true);
  const timer = setInterval(() => {
    void scan(false);
  }, opts.pollMs ?? 1000);
  timer.unref();

  const handle = async (req: IncomingMessage, res: ServerResponse, peer: Peer | undefined): Promise<boolean> => {
    const path = new URL(req.url ?? '/', 'https://proxy').pathname;
    const BOT_PATHS = spec.paths;
    if (path === BOT_PATHS.ca) {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      const body: CaResponse = { cluster: opts.ca.cluster, ca: opts.ca.caCertPem };
      json(res, 200, body);
      return true;
    }
    if (path !== BOT_PATHS.join && path !== BOT_PATHS.renew) return false;
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const joining = path === BOT_PATHS.join;
    if (joining) {
      // Counted before anything is read or checked: a limited address learns nothing.
      const taken = joinLimiter.take(req.socket.remoteAddress);
      if (!taken.ok) {
        limitedJoin(res, req.socket.remoteAddress, remote, taken.retryAfterMs);
        return true;
      }
    }
    let body: Record<string, unknown>;
    try {
      body = await readJson(req);
    } catch (err) {
      sendError(res, err);
      return true;
    }
    // Catch up with the CLI's changes first (e.g. a `bot add` a moment ago),
    // so they are audited before this request's events.
    await scan(false);
    let issued: Issued;
    try {
      issued = joining
        ? await joinWithToken(deps, { token: body.token, csr: body.csr, ttl_ms: body.ttl_ms })
        : await renewBot(deps, peer!, { csr: body.csr, ttl_ms: body.ttl_ms });
      if (joining) joinLimiter.giveBack(req.socket.remoteAddress);
    } catch (err) {
      await refused(err, joining, peer, remote);
      sendError(res, err instanceof BotRefusal ? err.error : err);
      return true;
    }
    await adopt(issued.record);
    const r = issued.response;
    const what = joining ? 'joined' : issued.repeated ? 'repeated its renewal' : 'renewed';
    log.info(
      `${kind} "${issued.record.name}" ${what}: generation ${r.generation}, valid until ${r.not_after} (${remote})`,
    );
    try {
      await record({
        ...(joining ? BOT_EVENTS.join : BOT_EVENTS.renew),
        outcome: 'success',
        [kind]: issued.record.name,
        user: r.user,
        roles: r.roles,
        generation: r.generation,
        notAfter: r.not_after,
        remoteAddr: remote,
        ...(peer ? { fromSerial: peer.serial } : {}),
        ...(issued.repeated ? { repeated: true } : {}),
      });
    } catch (err) {
      // Fail closed: no certificate leaves without its audit event. The bot
      // retries with the same key and gets the same generation again.
      log.error(`audit: ${describeError(err)}; refusing the ${joining ? 'join' : 'renewal'}`);
      sendError(
        res,
        new AccessError(
          'AUDIT_UNAVAILABLE',
          'the proxy cannot write its audit log, so it issues no certificates right now',
        ),
      );
      return true;
    }
    json(res, 200, r);
    return true;
  };

  const limitedJoin = (
    res: ServerResponse,
    address: string | undefined,
    remote: string,
    retryAfterMs: number,
  ): void => {
    const key = AddressRateLimiter.keyOf(address);
    const seconds = Math.ceil(retryAfterMs / 1000);
    const last = limitAudited.get(key);
    if (last === undefined || Date.now() - last >= 60_000) {
      if (limitAudited.size >= 10_000) limitAudited.clear();
      limitAudited.set(key, Date.now());
      log.warn(`join attempts from ${key} are over the limit; refusing them for now`);
      recordQuietly({
        ...BOT_EVENTS.joinDenied,
        outcome: 'denied',
        errorCode: 'BOT_JOIN_LIMITED',
        remoteAddr: remote,
        reason: `more than ${joinLimiter.burst} join attempts from ${key}; further ones are refused (and audited once a minute) until the limit recovers`,
      });
    }
    res.setHeader('retry-after', String(seconds));
    sendError(res, new AccessError('BOT_JOIN_LIMITED', `too many join attempts from ${key}; try again in ${seconds}s`));
  };

  const refused = async (err: unknown, joining: boolean, peer: Peer | undefined, remote: string): Promise<void> => {
    const e =
      err instanceof BotRefusal
        ? err.error
        : isAccessError(err)
          ? err
          : new AccessError('INTERNAL', (err as Error)?.message ?? String(err));
    const bot = err instanceof BotRefusal ? err.bot : peer?.[kind]?.name;
    if (e.code === 'INTERNAL') log.error(`${joining ? 'join' : 'renewal'}: ${describeError(err)}`);
    else
      log.warn(
        `${joining ? 'join' : 'renewal'} refused${bot ? ` for ${kind} "${bot}"` : ''} (${remote}): ${err instanceof BotRefusal && err.detail ? err.detail : e.message}`,
      );
    const base = {
      ...(bot ? { [kind]: bot } : {}),
      ...(peer ? { user: peer.user } : {}),
      ...(peer?.[kind] ? { generation: peer[kind].generation, fromSerial: peer.serial } : {}),
      remoteAddr: remote,
    };
    const reason = err instanceof BotRefusal && err.detail ? err.detail : e.message;
    const events: Record<string, unknown>[] = [
      {
        ...(joining ? BOT_EVENTS.joinDenied : BOT_EVENTS.renewDenied),
        ...base,
        outcome: 'denied',
        errorCode: e.code,
        reason,
      },
    ];
    if (err instanceof BotRefusal && err.lockedNow) {
      events.push({
        ...BOT_EVENTS.lockCopied,
        ...base,
        outcome: 'success',
        reason: err.lockedNow.lock!.reason,
        by: 'proxy',
      });
      await adopt(err.lockedNow);
    }
    for (const ev of events) {
      try {
        await record(ev);
      } catch (auditErr) {
        log.error(`audit: could not record ${String(ev.type)}: ${describeError(auditErr)}`);
      }
    }
  };

  /** Throws when a certificate of this kind may no longer be used (locked, removed, earlier registration). */
  const refuseBot = (peer: Peer): void => {
    const machine = peer[kind];
    if (!machine) return;
    const rec = cache.get(machine.name)?.record;
    if (!isActive(rec))
      throw new AccessError(
        kind === 'agent' ? 'AGENT_UNKNOWN' : 'IDENTITY_REJECTED',
        `${kind} "${machine.name}" is not registered on this proxy`,
      );
    if (machine.generation < rec.minGeneration) {
      throw new AccessError(
        'IDENTITY_REJECTED',
        `this certificate belongs to an earlier registration of ${kind} "${machine.name}"`,
      );
    }
    if (rec.lock) {
      const err = lockedError(rec, kind);
      if (kind === 'agent') throw err;
      throw new AccessError('SESSION_LOCKED', err.message, { hint: err.hint });
    }
    // A superseded generation: a newer certificate exists, so this one opens
    // nothing any more (a stolen older copy is useless once the bot renewed).
    // The generation just before the newest keeps working for
    // bot.superseded_grace after the renewal: the bot writes the new file a
    // moment after it is issued, and a client may read the old one meanwhile.
    const renewedAt = rec.renewedAt ? Date.parse(rec.renewedAt) : NaN;
    const inGrace = machine.generation === rec.generation - 1 && Date.now() - renewedAt < graceMs;
    if (machine.generation < rec.generation && !inGrace) {
      throw new AccessError(
        'IDENTITY_REJECTED',
        `this certificate of ${kind} "${machine.name}" (generation ${machine.generation}) was superseded by generation ${rec.generation}`,
        {
          hint:
            kind === 'bot'
              ? 'use the identity file the bot keeps renewed; `connect` picks up the new one by itself'
              : 'the agent renews by itself; reconnect with its newest certificate',
        },
      );
    }
    // A generation above the cached one is accepted: another proxy sharing the
    // state directory may have issued it a moment before this one's next poll.
  };

  /**
   * The user-facing routes (listing, tunnels, sessions) never take an agent's
   * host certificate: it names no user and carries no role a person has.
   */
  const refuseForSessions = (peer: Peer): void => {
    if (kind === 'bot') return refuseBot(peer);
    if (peer.agent)
      throw new AccessError(
        'ACCESS_DENIED',
        `the certificate of agent "${peer.agent.name}" is an agent's host certificate: it opens no MCP sessions`,
        { hint: 'connect with a user or bot identity' },
      );
  };

  const check = (peer: Peer): void => {
    if (!peer[kind]) {
      throw new AccessError(
        'IDENTITY_REJECTED',
        `the certificate of ${peer.user} is not ${kind === 'agent' ? 'an agent' : 'a bot'} certificate`,
        { hint: `${kind}s connect with the certificate \`${kind} start\` keeps renewed` },
      );
    }
    refuseBot(peer);
  };

  const routes: ProxyRoutes = { handle, openPaths: [spec.paths.ca, spec.paths.join] };

  return {
    routes,
    withRoutes(other?: ProxyRoutes): ProxyRoutes {
      if (!other || (!other.handle && !other.openPaths?.length)) return routes;
      return {
        openPaths: [...routes.openPaths!, ...(other.openPaths ?? [])],
        handle: async (req, res, peer) =>
          (await handle(req, res, peer)) || ((await other.handle?.(req, res, peer)) ?? false),
      };
    },
    guard(decider: AccessDecider): AccessDecider {
      const guarded: AccessDecider = {
        checkServer(peer, s) {
          refuseForSessions(peer);
          decider.checkServer(peer, s);
        },
        checkPeer(peer) {
          refuseForSessions(peer);
          decider.checkPeer?.(peer);
        },
      };
      if (decider.describeServer) guarded.describeServer = decider.describeServer.bind(decider);
      if (decider.describePeer) guarded.describePeer = decider.describePeer.bind(decider);
      if (decider.recordRefusal) guarded.recordRefusal = decider.recordRefusal.bind(decider);
      return guarded;
    },
    guardGates(gates: GateFactory): GateFactory {
      return {
        async open(info) {
          try {
            refuseForSessions(info.peer);
          } catch (err) {
            const e = err as AccessError;
            await record({
              type: 'mcp.session.start',
              outcome: 'denied',
              sessionId: info.sessionId,
              user: info.peer.user,
              roles: info.peer.roles,
              server: info.server.name,
              remoteAddr: info.peer.remoteAddr,
              bot: info.peer.bot?.name,
              ...(info.peer.agent ? { agent: info.peer.agent.name } : {}),
              reason: e.message,
            }).catch((auditErr) => log.error(`audit: ${describeError(auditErr)}`));
            log.info(`session refused for ${info.peer.user}: ${e.message}`);
            throw e;
          }
          return gates.open(info);
        },
      };
    },
    onServer(s: SessionEnder): void {
      server = s;
    },
    setAudit(a: BotAuditSink | undefined): void {
      audit = a;
    },
    check,
    onRevoked(listener: (r: Revocation) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    refresh: () => scan(false),
    async close(): Promise<void> {
      clearInterval(timer);
      for (const t of supersede.values()) clearTimeout(t);
      supersede.clear();
      await scanning;
    },
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BOT_REQUEST_BYTES)
      throw new AccessError('MESSAGE_TOO_LARGE', `the request body is over ${MAX_BOT_REQUEST_BYTES} bytes`);
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new AccessError('USAGE', 'the request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new AccessError('USAGE', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function statusFor(e: AccessError): number {
  if (e.code.startsWith('IDENTITY')) return 401;
  if (
    e.code === 'BOT_TOKEN_INVALID' ||
    e.code === 'BOT_LOCKED' ||
    e.code === 'AGENT_TOKEN_INVALID' ||
    e.code === 'AGENT_LOCKED' ||
    e.code === 'ACCESS_DENIED'
  )
    return 403;
  if (e.code === 'BOT_UNKNOWN' || e.code === 'AGENT_UNKNOWN') return 404;
  if (e.code === 'BOT_STATE') return 409;
  if (e.code === 'MESSAGE_TOO_LARGE') return 413;
  if (e.code === 'BOT_JOIN_LIMITED') return 429;
  if (e.code === 'AUDIT_UNAVAILABLE' || e.code === 'BACKEND_UNAVAILABLE') return 503;
  if (e.code === 'USAGE') return 400;
  return 500;
}

function sendError(res: ServerResponse, err: unknown): void {
  const e = isAccessError(err) ? err : new AccessError('INTERNAL', (err as Error)?.message ?? String(err));
  json(res, statusFor(e), { error: { code: e.code, message: e.message, hint: e.hint } });
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  res.setHeader('allow', allow);
  json(res, 405, { error: { code: 'USAGE', message: `use ${allow}` } });
  return true;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
