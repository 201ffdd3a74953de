/**
 * An agent's host certificate (docs/agent.md): join once with a one-time
 * token, keep the key, certificate and pinned cluster CA in the data
 * directory, and renew before expiry, as the bot does for its identity.
 *
 *   const creds = await AgentCredentials.open({ proxy, dataDir, token, caPin, log });
 *   creds.current()                 // { keyPem, certPem, caPems, notAfter, name, generation, cluster }
 *   creds.on('renewed', (c) => …)   // a new generation: reconnect with it
 *   creds.on('fatal', (err) => …)   // no renewal will ever work again (removed, expired): stop
 *   await creds.close();
 *
 * The first run fetches the cluster CA from the proxy without trusting it,
 * checks it against the pin, and only then sends the token over a connection
 * that trusts that CA alone. The key is made here and never leaves: the proxy
 * gets a certificate request. Later runs load the directory and need no token.
 *
 *   DATA_DIR/        0700 (created; another user's, or one others may write to, is refused)
 *     identity       0600  key, certificate, cluster CA (identity-file layout: `identity show -i` reads it)
 *     ca.crt         0644  the pinned cluster CA
 *     agent.json     0600  agent, cluster, proxy, generation, not-after, pin
 *     pending.key    0600  only between sending a request and storing its answer
 */
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { AccessError, describeError } from '../errors.js';
import { claimsFromCertificate } from '../identity/claims.js';
import { CredentialDir } from '../identity/credential-dir.js';
import { createCsr, generateMachineKey } from '../identity/csr.js';
import { agentUserName } from '../identity/names.js';
import { caPin, normalisePin } from '../identity/pin.js';
import { fetchClusterCa, proxyLabel, requestJoin, requestRenewal } from '../tunnel/enrolment-client.js';
import { AGENT_PATHS, cleanToken, type AgentCertificateResponse } from '../tunnel/enrolment.js';
import type { ProxyAddress } from '../tunnel/proxy-address.js';
import { formatDuration } from '../util/duration.js';
import type { Logger } from '../util/log.js';
import { renewalDelay, retryDelay } from '../util/renewal-schedule.js';

/** Time as the renewal loop sees it; tests pass a fake one. */
export interface CredentialsClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const SYSTEM_CLOCK: CredentialsClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface AgentCredentialsOptions {
  proxy: ProxyAddress;
  /** Key, certificate and pinned CA live here (created 0700). */
  dataDir: string;
  /** The one-time join token from `agent add`; needed only while the directory holds no usable certificate. */
  token?: string;
  /** `sha256:HEX` from `agent add` (one of them must match); needed for the first join, checked on later runs. */
  caPin?: string | string[];
  /** Lifetime of each certificate (5 s to 30 d); default 1 h. */
  ttlMs?: number;
  /** Renew at least this often; default 20 m (never later than half the remaining lifetime). */
  renewalIntervalMs?: number;
  log: Logger;
  clock?: CredentialsClock;
  /** Jitter source for the schedule (tests: () => 0). */
  random?: () => number;
  /** Per HTTPS call; default 15 s. */
  timeoutMs?: number;
}

/** What the agent presents to the proxy. */
export interface AgentCredentialSet {
  keyPem: string;
  certPem: string;
  caPems: string[];
  notAfter: Date;
  name: string;
  generation: number;
  cluster: string;
}

export const DEFAULT_AGENT_TTL_MS = 3_600_000;
export const DEFAULT_AGENT_RENEWAL_INTERVAL_MS = 20 * 60_000;

/** Failures that waiting can cure: the proxy may come back, an operator may unlock, the audit log may recover. */
const RETRYABLE = new Set([
  'PROXY_UNREACHABLE',
  'PROXY_GOING_AWAY',
  'AUDIT_UNAVAILABLE',
  'AGENT_LOCKED',
  'BOT_JOIN_LIMITED',
  'INTERNAL',
]);

function asAccessError(err: unknown): AccessError {
  return err instanceof AccessError ? err : new AccessError('INTERNAL', describeError(err));
}

const PIN_HINT = 'copy it from the output of `mcp-access agent add`';

export interface AgentCredentialsEvents {
  renewed: [AgentCredentialSet];
  /** A renewal failed and will be retried at `retryAt` (ms since epoch) while the certificate lasts. */
  renewalFailed: [AccessError, { retryAt: number }];
  /** No renewal will work again (removed, expired before it could renew, a tampered directory): stop the agent. */
  fatal: [AccessError];
}

export class AgentCredentials extends EventEmitter<AgentCredentialsEvents> {
  private readonly dir: CredentialDir;
  private readonly clock: CredentialsClock;
  private readonly where: string;
  private readonly ttlMs: number;
  private readonly intervalMs: number;
  private creds!: AgentCredentialSet;
  private timer: unknown;
  /** When the scheduled renewal runs (ms since epoch). */
  private nextAt = 0;
  private failures = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private renewing: Promise<AgentCredentialSet> | undefined;
  private readonly abort = new AbortController();

  private constructor(private readonly o: AgentCredentialsOptions) {
    super();
    this.dir = new CredentialDir(o.dataDir, o.log, 'agent');
    this.clock = o.clock ?? SYSTEM_CLOCK;
    this.where = proxyLabel(o.proxy);
    this.ttlMs = o.ttlMs ?? DEFAULT_AGENT_TTL_MS;
    this.intervalMs = o.renewalIntervalMs ?? DEFAULT_AGENT_RENEWAL_INTERVAL_MS;
  }

  /**
   * Load the stored certificate, or join with the token when there is none
   * (or it expired); then renew in the background. Throws AccessError with a
   * one-line reason: no token on a first run, a wrong pin, a refused token, a
   * locked agent, an unreachable proxy, an unsafe directory.
   */
  static async open(o: AgentCredentialsOptions): Promise<AgentCredentials> {
    const c = new AgentCredentials(o);
    await c.start();
    return c;
  }

  /** When the next renewal (or retry) is due, ms since epoch. */
  nextRenewalAt(): number {
    return this.nextAt;
  }

  /** The certificate to present now. */
  current(): AgentCredentialSet {
    return this.creds;
  }

  /** Renew now (e.g. after the proxy said this generation was superseded); resolves with the new set. */
  renewNow(): Promise<AgentCredentialSet> {
    if (this.closed) return Promise.reject(new AccessError('INTERNAL', 'the agent credentials are closed'));
    this.renewing ??= this.renew().then(
      (set) => {
        // Cleared before listeners run, so that one of them may ask for the next renewal at once.
        this.renewing = undefined;
        this.emit('renewed', set);
        return set;
      },
      (err: unknown) => {
        this.renewing = undefined;
        throw err;
      },
    );
    return this.renewing;
  }

  /** Stop renewing (a request in flight is abandoned; the next run retries it with the same key). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
      this.timer = undefined;
      this.abort.abort();
      await this.renewing?.catch(() => {});
    })();
    return this.closing;
  }

  private get pins(): string[] | undefined {
    const p = this.o.caPin === undefined ? [] : Array.isArray(this.o.caPin) ? this.o.caPin : [this.o.caPin];
    return p.length > 0 ? p.map((x) => normalisePin(x, PIN_HINT)) : undefined;
  }

  private async start(): Promise<void> {
    const pins = this.pins; // a malformed pin is a usage error before anything happens
    await this.dir.prepare();
    const stored = await this.dir.identity().catch((err: unknown) => {
      if (!this.o.token) throw err;
      this.o.log.warn(`${this.dir.identityPath} is unusable (${asAccessError(err).message}); joining with the token`);
      return undefined;
    });
    const now = this.clock.now();
    if (stored && stored.trusted && stored.identity.agent && stored.identity.notAfter.getTime() > now) {
      const id = stored.identity;
      const caPem = (await this.dir.ca()) ?? id.caPems[0]!;
      await this.checkStoredCa(caPem, id.certPem);
      if (pins && !pins.includes(caPin(caPem))) {
        throw new AccessError(
          'AGENT_CA_PIN_MISMATCH',
          `the CA stored in ${this.dir.dir} is ${caPin(caPem)}, not the pinned ${pins.join(' or ')}`,
          { hint: `drop --ca-pin, or empty ${this.dir.dir} and join again with a new token` },
        );
      }
      if (this.o.token)
        this.o.log.info(
          `${this.dir.dir} already holds agent "${id.agent!.name}"'s certificate; the token was not used`,
        );
      this.creds = {
        keyPem: id.keyPem,
        certPem: id.certPem,
        caPems: [caPem],
        notAfter: id.notAfter,
        name: id.agent!.name,
        generation: id.agent!.generation,
        cluster: id.cluster,
      };
      this.o.log.info(
        `loaded agent "${this.creds.name}" (generation ${this.creds.generation}, valid until ${this.creds.notAfter.toISOString()}) from ${this.dir.dir}`,
      );
    } else {
      if (!this.o.token) {
        if (stored?.identity.agent && stored.identity.notAfter.getTime() <= now) {
          throw new AccessError(
            'IDENTITY_EXPIRED',
            `the agent certificate in ${this.dir.identityPath} expired at ${stored.identity.notAfter.toISOString()}, so it can no longer be renewed`,
            { hint: 'ask the operator for a new join token (mcp-access agent rm NAME; mcp-access agent add NAME)' },
          );
        }
        throw new AccessError(
          'USAGE',
          `${this.dir.dir} holds no agent certificate yet, so the first run needs a token`,
          {
            hint: 'pass --token and --ca-pin, both printed by `mcp-access agent add`',
          },
        );
      }
      this.creds = await this.join(this.o.token, pins);
    }
    this.schedule();
  }

  private async join(tokenText: string, pins: string[] | undefined): Promise<AgentCredentialSet> {
    const token = cleanToken(tokenText);
    if (!token)
      throw new AccessError('USAGE', 'the join token is malformed', {
        hint: 'copy the token printed by `mcp-access agent add` (it starts with mcpag_)',
      });
    let caPem: string;
    let pin: string;
    if (!pins) {
      const stored = await this.dir.ca();
      if (!stored)
        throw new AccessError(
          'USAGE',
          'the first join needs --ca-pin, so that the token only goes to the right proxy',
          {
            hint: PIN_HINT,
          },
        );
      await this.checkStoredCa(stored);
      caPem = stored;
      pin = caPin(stored);
    } else {
      // Nothing secret goes out on this connection: it only fetches the CA.
      const { ca, cluster } = await fetchClusterCa(this.o.proxy, this.callOpts());
      let got: string;
      try {
        got = caPin(ca);
      } catch {
        throw new AccessError(
          'PROXY_PROTOCOL',
          `the proxy at ${this.where} sent a CA certificate that cannot be parsed`,
        );
      }
      if (!pins.includes(got)) {
        throw new AccessError(
          'AGENT_CA_PIN_MISMATCH',
          `the proxy at ${this.where} presents cluster CA ${got} (cluster "${cluster}"), not the pinned ${pins.join(' or ')}; the token was not sent`,
        );
      }
      caPem = ca;
      pin = got;
    }
    const keyPem = (await this.dir.pendingKey()) ?? (await this.newPendingKey());
    const csr = await createCsr(keyPem, 'mcp-access-agent');
    // requestJoin checks the proxy's certificate against the pinned CA before the token leaves.
    const res = await requestJoin<AgentCertificateResponse>(
      this.o.proxy,
      caPem,
      { token, csr, ttl_ms: this.ttlMs },
      this.callOpts(),
    );
    const set = await this.accept(keyPem, caPem, pin, res, undefined);
    await this.dir.saveCa(caPem);
    this.o.log.info(
      `joined as agent "${set.name}" (generation ${set.generation}, valid until ${set.notAfter.toISOString()}); stored in ${this.dir.dir}`,
    );
    return set;
  }

  private async renew(): Promise<AgentCredentialSet> {
    const cur = this.creds;
    const caPem = cur.caPems[0]!;
    const keyPem = (await this.dir.pendingKey(cur.keyPem)) ?? (await this.newPendingKey());
    const csr = await createCsr(keyPem, agentUserName(cur.name));
    const res = await requestRenewal<AgentCertificateResponse>(
      this.o.proxy,
      caPem,
      { key: cur.keyPem, cert: cur.certPem },
      { csr, ttl_ms: this.ttlMs },
      this.callOpts(),
    );
    if (this.closed) throw new AccessError('INTERNAL', 'the agent credentials were closed during a renewal');
    const set = await this.accept(keyPem, caPem, caPin(caPem), res, cur.name);
    this.creds = set;
    this.failures = 0;
    this.o.log.info(
      `renewed agent "${set.name}": generation ${set.generation}, valid until ${set.notAfter.toISOString()} (${formatDuration(set.notAfter.getTime() - this.clock.now())} from now)`,
    );
    this.schedule();
    return set;
  }

  /** Check what the proxy issued (our key, the pinned CA, an agent certificate of the right name), then store it. */
  private async accept(
    keyPem: string,
    caPem: string,
    pin: string,
    res: AgentCertificateResponse,
    expectName: string | undefined,
  ): Promise<AgentCredentialSet> {
    if (typeof res?.certificate !== 'string' || typeof res.agent !== 'string')
      throw new AccessError('PROXY_PROTOCOL', `the proxy at ${this.where} answered without an agent certificate`);
    // CredentialDir.store checks the key pair and the CA's signature before writing.
    let claims;
    try {
      claims = claimsFromCertificate(new X509Certificate(res.certificate));
    } catch (err) {
      throw new AccessError(
        'PROXY_PROTOCOL',
        `the proxy issued a certificate mcp-access cannot read: ${describeError(err)}`,
      );
    }
    if (!claims.agent || claims.agent.name !== res.agent || (expectName !== undefined && res.agent !== expectName))
      throw new AccessError(
        'PROXY_PROTOCOL',
        `the proxy issued a certificate that is not agent "${expectName ?? res.agent}"'s host certificate`,
      );
    await this.dir.store(
      keyPem,
      caPem,
      { name: res.agent, certificate: res.certificate, cluster: claims.cluster, generation: claims.agent.generation },
      { proxy: this.where, caPin: pin },
    );
    return {
      keyPem,
      certPem: res.certificate,
      caPems: [caPem],
      notAfter: new Date(new X509Certificate(res.certificate).validTo),
      name: res.agent,
      generation: claims.agent.generation,
      cluster: claims.cluster,
    };
  }

  /** The stored CA is the one this agent joined with (agent.json's pin) and signed the stored certificate. */
  private async checkStoredCa(caPem: string, certPem?: string): Promise<void> {
    const refuse = (why: string) =>
      new AccessError('AGENT_CA_PIN_MISMATCH', `${this.dir.caPath} ${why}, so the agent does not trust it`, {
        hint: `if the cluster CA really changed, empty ${this.dir.dir} and join again with a new token and --ca-pin`,
      });
    let pin: string;
    try {
      pin = caPin(caPem);
    } catch {
      throw refuse('is not a CA certificate');
    }
    const meta = await this.dir.meta();
    if (!meta) {
      if (!certPem) throw refuse('has no record of the join it came from (agent.json)');
    } else if (meta.caPin !== pin) {
      throw refuse(`is ${pin}, not the ${meta.caPin} the agent joined with`);
    }
    if (certPem) {
      const cert = new X509Certificate(certPem);
      const ca = new X509Certificate(caPem);
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw refuse('did not sign the stored certificate');
    }
  }

  private async newPendingKey(): Promise<string> {
    const pem = await generateMachineKey();
    await this.dir.savePendingKey(pem);
    return pem;
  }

  private callOpts(): { paths: typeof AGENT_PATHS; signal: AbortSignal; timeoutMs?: number } {
    return {
      paths: AGENT_PATHS,
      signal: this.abort.signal,
      ...(this.o.timeoutMs !== undefined ? { timeoutMs: this.o.timeoutMs } : {}),
    };
  }

  /** The next renewal: on schedule, or after a failure with backoff while the certificate lasts. */
  private schedule(): void {
    if (this.closed) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    const msLeft = this.creds.notAfter.getTime() - this.clock.now();
    const wait =
      this.failures === 0
        ? renewalDelay(msLeft, this.intervalMs, this.o.random)
        : retryDelay(this.failures - 1, msLeft, this.o.random);
    this.nextAt = this.clock.now() + wait;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.renewNow().catch((e: unknown) => this.renewalFailed(asAccessError(e)));
    }, wait);
  }

  private renewalFailed(err: AccessError): void {
    if (this.closed) return;
    const expired = this.creds.notAfter.getTime() <= this.clock.now();
    if (expired || !RETRYABLE.has(err.code)) {
      const fatal = expired
        ? new AccessError(
            'IDENTITY_EXPIRED',
            `the certificate of agent "${this.creds.name}" expired at ${this.creds.notAfter.toISOString()} before it could be renewed (last error: ${err.message})`,
            { hint: 'the proxy no longer renews it; ask the operator for a new join token' },
          )
        : err;
      this.o.log.error(`agent certificate: ${fatal.line}`);
      void this.close();
      this.emit('fatal', fatal);
      return;
    }
    this.failures++;
    this.schedule();
    this.o.log.warn(
      `renewal failed (${err.line}); retrying, the certificate is valid until ${this.creds.notAfter.toISOString()}`,
    );
    this.emit('renewalFailed', err, { retryAt: this.nextAt });
  }
}
