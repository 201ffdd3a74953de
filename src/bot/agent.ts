/**
 * `mcp-access bot start`: join once with a token, then keep DIR/identity
 * fresh by renewing over mTLS before it expires.
 *
 * First run: fetch the cluster CA from the proxy without trusting it, check
 * it against --ca-pin, and only then open a verified connection that carries
 * the token. Later runs trust the CA stored in DIR and need no token.
 */
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessError, describeError } from '../errors.js';
import { caPin, normalisePin } from '../identity/pin.js';
import type { ExaminedIdentity } from '../identity/load.js';
import { formatDuration } from '../util/duration.js';
import type { Logger } from '../util/log.js';
import { botUserName } from '../identity/names.js';
import {
  fetchClusterCa,
  proxyLabel,
  requestJoin,
  requestRenewal,
  type ProxyAddress,
} from '../tunnel/enrolment-client.js';
import { createCsr, generateBotKey } from '../identity/csr.js';
import { CredentialDir } from '../identity/credential-dir.js';
import type { CertificateResponse } from '../tunnel/enrolment.js';
import { renewalDelay, retryDelay } from '../util/renewal-schedule.js';

export interface BotOptions {
  proxy: ProxyAddress;
  destination: string;
  token?: string;
  /** Pins the cluster CA must match (any one of them); needed for the first join. */
  caPins?: string[];
  /**
   * More directories that get the identity file after every join and
   * renewal (the identity services of a configuration file). `destination`
   * holds the bot's own state and an identity file as well.
   */
  outputs?: string[];
  ttlMs: number;
  renewalIntervalMs: number;
  oneshot: boolean;
  log: Logger;
  /** Stops the renewal loop (SIGTERM/SIGINT). */
  signal?: AbortSignal;
  /** Attempts for a one-shot run before giving up on a proxy that is away. Default 4. */
  oneshotAttempts?: number;
}

/** Failures worth retrying: the proxy may come back, an operator may unlock, the audit log may recover. */
function isRetryable(err: AccessError): boolean {
  return [
    'PROXY_UNREACHABLE',
    'PROXY_GOING_AWAY',
    'AUDIT_UNAVAILABLE',
    'BOT_LOCKED',
    'BOT_JOIN_LIMITED',
    'INTERNAL',
  ].includes(err.code);
}

function asAccessError(err: unknown): AccessError {
  return err instanceof AccessError ? err : new AccessError('INTERNAL', describeError(err));
}

export { normalisePin };

export class BotAgent {
  private readonly dest: CredentialDir;
  private readonly where: string;
  private readonly log: Logger;

  constructor(private readonly o: BotOptions) {
    this.log = o.log;
    this.dest = new CredentialDir(o.destination, o.log);
    this.outputs = (o.outputs ?? []).map((dir) => new CredentialDir(dir, o.log));
    this.where = proxyLabel(o.proxy);
  }

  private readonly outputs: CredentialDir[];

  private get pins(): string[] | undefined {
    return this.o.caPins && this.o.caPins.length > 0 ? this.o.caPins.map((p) => normalisePin(p)) : undefined;
  }

  /** The identity file in every other destination, each written atomically (0600 in a 0700 directory). */
  private async writeOutputs(identityText: string): Promise<void> {
    for (const out of this.outputs) await out.writeIdentity(identityText);
    if (this.outputs.length > 0) this.log.debug(`wrote ${this.outputs.map((o) => o.identityPath).join(', ')}`);
  }

  /** Join or renew once (retrying a proxy that is away a few times), then, unless one-shot, renew forever. */
  async run(): Promise<void> {
    await this.dest.prepare();
    for (const out of this.outputs) await out.prepare();
    let current = await this.firstIssue();
    if (this.o.oneshot) return;
    for (let failures = 0; !this.o.signal?.aborted;) {
      const msLeft = current.notAfter - Date.now();
      const wait = failures === 0 ? renewalDelay(msLeft, this.o.renewalIntervalMs) : retryDelay(failures - 1, msLeft);
      if (failures === 0) this.log.debug(`next renewal in ${formatDuration(wait)}`);
      if (!(await this.pause(wait))) return;
      try {
        current = await this.renew();
        failures = 0;
      } catch (e) {
        const err = asAccessError(e);
        if (this.o.signal?.aborted) return;
        if (current.notAfter <= Date.now() || !isRetryable(err)) throw this.finalError(err, current.notAfter);
        failures++;
        this.log.warn(
          `renewal failed (${err.line}); retrying, the identity is valid until ${new Date(current.notAfter).toISOString()}`,
        );
      }
    }
  }

  /** The first join or renewal of this run. */
  private async firstIssue(): Promise<{ notAfter: number }> {
    let existing: ExaminedIdentity | undefined;
    try {
      existing = await this.dest.identity();
    } catch (err) {
      if (!this.o.token) throw err;
      this.log.warn(
        `${this.dest.identityPath} is unusable (${asAccessError(err).message}); joining with the token instead`,
      );
    }
    const usable = existing && existing.status === 'valid' && existing.trusted && existing.identity.bot !== undefined;
    const attempts = this.o.oneshot ? (this.o.oneshotAttempts ?? 4) : Number.POSITIVE_INFINITY;
    if (usable) {
      if (this.o.token)
        this.log.info(
          `${this.dest.identityPath} already holds bot "${existing!.identity.bot!.name}"'s identity; renewing it (the token was not used)`,
        );
      return this.withRetries(() => this.renew(), attempts, existing!.identity.notAfter.getTime());
    }
    if (!this.o.token) {
      if (existing?.status === 'expired') {
        throw new AccessError(
          'IDENTITY_EXPIRED',
          `the bot identity in ${this.dest.identityPath} expired at ${existing.identity.notAfter.toISOString()}, so it can no longer be renewed`,
          {
            hint: `ask the operator for a new join token (mcp-access bot rm NAME; mcp-access bot add NAME …) and run bot start again with --token`,
          },
        );
      }
      throw new AccessError(
        'USAGE',
        `${this.dest.dir} holds no bot identity yet, so this first run needs a join token`,
        {
          hint: 'pass --token (or --token-file) and --ca-pin, both printed by `mcp-access bot add`',
        },
      );
    }
    return this.withRetries(() => this.join(this.o.token!), attempts, Number.POSITIVE_INFINITY);
  }

  private async withRetries(
    fn: () => Promise<{ notAfter: number }>,
    attempts: number,
    notAfter: number,
  ): Promise<{ notAfter: number }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const err = asAccessError(e);
        // A lock is worth waiting out in the loop, not at start-up.
        const retry =
          isRetryable(err) &&
          err.code !== 'BOT_LOCKED' &&
          attempt + 1 < attempts &&
          Date.now() < notAfter &&
          !this.o.signal?.aborted;
        if (!retry) throw Number.isFinite(notAfter) ? this.finalError(err, notAfter) : err;
        const wait = retryDelay(attempt, notAfter - Date.now());
        this.log.warn(`${err.line}; retrying in ${formatDuration(wait)}`);
        if (!(await this.pause(wait))) throw err;
      }
    }
  }

  /** The trust anchor for the join: the CA that matches --ca-pin, or the one stored by an earlier join. */
  private async joinCa(): Promise<{ caPem: string; pin: string }> {
    const stored = await this.dest.ca();
    const pins = this.pins;
    if (!pins) {
      if (stored) {
        await this.checkStoredCa(stored);
        this.log.info(`trusting the cluster CA stored in ${this.dest.caPath} (${caPin(stored)})`);
        return { caPem: stored, pin: caPin(stored) };
      }
      throw new AccessError(
        'USAGE',
        'the first join needs --ca-pin, so that the token is only sent to the right proxy',
        {
          hint: 'copy --ca-pin from the output of `mcp-access bot add`',
        },
      );
    }
    // Nothing secret goes out on this connection: it only fetches the CA.
    const { ca, cluster } = await fetchClusterCa(this.o.proxy, { signal: this.o.signal });
    let got: string;
    try {
      got = caPin(ca);
    } catch {
      throw new AccessError('PROXY_PROTOCOL', `the proxy at ${this.where} sent a CA certificate that cannot be parsed`);
    }
    if (!pins.includes(got)) {
      throw new AccessError(
        'BOT_CA_PIN_MISMATCH',
        `the proxy at ${this.where} presents cluster CA ${got} (cluster "${cluster}"), not the pinned ${pins.join(' or ')}; the token was not sent`,
      );
    }
    this.log.info(`the proxy at ${this.where} presents the pinned CA of cluster "${cluster}"`);
    return { caPem: ca, pin: got };
  }

  private async join(token: string): Promise<{ notAfter: number }> {
    const { caPem, pin } = await this.joinCa();
    const keyPem = (await this.dest.pendingKey()) ?? (await this.newPendingKey());
    const csr = await createCsr(keyPem, 'mcp-access-bot');
    // requestJoin verifies the proxy's certificate against the pinned CA before the token leaves.
    const res = await requestJoin(this.o.proxy, caPem, { token, csr, ttl_ms: this.o.ttlMs }, { signal: this.o.signal });
    await this.dest.saveCa(caPem);
    await this.writeOutputs(
      await this.dest.store(keyPem, caPem, { ...res, name: res.bot }, { proxy: this.where, caPin: pin }),
    );
    this.log.info(
      `joined as bot "${res.bot}" (user ${res.user}, roles ${res.roles.join(', ')}, generation ${res.generation}); wrote ${this.dest.identityPath}, valid until ${res.not_after}`,
    );
    this.log.info(
      `use it with: mcp-access connect -i ${(this.outputs[0] ?? this.dest).identityPath} --proxy ${this.where} SERVER`,
    );
    return { notAfter: Date.parse(res.not_after) };
  }

  private async renew(): Promise<{ notAfter: number }> {
    const examined = await this.dest.identity();
    if (!examined)
      throw new AccessError(
        'IDENTITY_MISSING',
        `${this.dest.identityPath} disappeared; the bot cannot renew without it`,
        { hint: 'join again with a new token' },
      );
    const id = examined.identity;
    if (!id.bot) throw new AccessError('IDENTITY_BAD_CERT', `${this.dest.identityPath} is not a bot identity`);
    const caPem = (await this.dest.ca()) ?? id.caPems[0]!;
    await this.checkStoredCa(caPem, id.certPem);
    const pins = this.pins;
    if (pins && !pins.includes(caPin(caPem))) {
      throw new AccessError(
        'BOT_CA_PIN_MISMATCH',
        `the CA stored in ${this.dest.dir} is ${caPin(caPem)}, not the pinned ${pins.join(' or ')}`,
        {
          hint: 'drop --ca-pin, or empty the destination directory and join again',
        },
      );
    }
    const keyPem = (await this.dest.pendingKey(id.keyPem)) ?? (await this.newPendingKey());
    const csr = await createCsr(keyPem, botUserName(id.bot.name));
    const res: CertificateResponse = await requestRenewal(
      this.o.proxy,
      caPem,
      { key: id.keyPem, cert: id.certPem },
      { csr, ttl_ms: this.o.ttlMs },
      { signal: this.o.signal },
    );
    if (res.bot !== id.bot.name)
      throw new AccessError('PROXY_PROTOCOL', `the proxy renewed bot "${res.bot}" instead of "${id.bot.name}"`);
    await this.writeOutputs(
      await this.dest.store(keyPem, caPem, { ...res, name: res.bot }, { proxy: this.where, caPin: caPin(caPem) }),
    );
    const notAfter = Date.parse(res.not_after);
    this.log.info(
      `renewed bot "${res.bot}": generation ${res.generation}, valid until ${res.not_after} (${formatDuration(notAfter - Date.now())} from now)`,
    );
    return { notAfter };
  }

  /**
   * The stored CA is the one this bot joined with: the pin recorded at the
   * join (bot.json) names it, and it signed the stored identity. A ca.crt
   * replaced by someone else is never trusted.
   */
  private async checkStoredCa(caPem: string, certPem?: string): Promise<void> {
    const refuse = (why: string) =>
      new AccessError('BOT_CA_PIN_MISMATCH', `${this.dest.caPath} ${why}, so the bot does not trust it`, {
        hint: `if the cluster CA really changed, empty ${this.dest.dir} and join again with a new token and --ca-pin`,
      });
    let pin: string;
    try {
      pin = caPin(caPem);
    } catch {
      throw refuse('is not a CA certificate');
    }
    const meta = await this.dest.meta();
    if (!meta) {
      if (!certPem) throw refuse('has no record of the join it came from (bot.json)');
    } else if (meta.caPin !== pin) {
      throw refuse(`is ${pin}, not the ${meta.caPin} the bot joined with`);
    }
    if (certPem) {
      const cert = new X509Certificate(certPem);
      const ca = new X509Certificate(caPem);
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw refuse('did not sign the stored identity');
    }
  }

  private async newPendingKey(): Promise<string> {
    const pem = await generateBotKey();
    await this.dest.savePendingKey(pem);
    return pem;
  }

  private finalError(err: AccessError, notAfter: number): AccessError {
    if (notAfter > Date.now() || err.code === 'IDENTITY_EXPIRED') return err;
    return new AccessError(
      'IDENTITY_EXPIRED',
      `the bot identity in ${this.dest.identityPath} expired at ${new Date(notAfter).toISOString()} before it could be renewed (last error: ${err.message})`,
      {
        hint: 'the proxy no longer renews it; ask the operator for a new join token and run bot start with --token',
      },
    );
  }

  /** Sleep unless stopped; false when stopped. */
  private async pause(ms: number): Promise<boolean> {
    if (this.o.signal?.aborted) return false;
    try {
      await sleep(ms, undefined, { signal: this.o.signal });
      return true;
    } catch {
      return false;
    }
  }
}

/** Run the bot; resolves when stopped (or after one issue with oneshot). */
export async function runBot(o: BotOptions): Promise<void> {
  try {
    await new BotAgent(o).run();
  } catch (err) {
    // Stopped by a signal mid-request: not a failure (the next run retries with the same key).
    if (o.signal?.aborted) return;
    throw err;
  }
}
