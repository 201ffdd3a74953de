/**
 * The proxy's decisions on join and renewal, and the certificates it issues.
 * Every decision reads the bot's record fresh under the state lock, so a lock
 * or removal made by the CLI a moment ago is honoured, and two renewals
 * racing each other are ordered.
 *
 * Generations: a join issues the first generation of a registration; each
 * renewal must present the generation issued last and gets the next one. An
 * older generation means someone renews with a copy of an earlier credential
 * while the original moved on: the bot is locked (Teleport's rule). The one
 * exception is a retry of the very last renewal (its answer was lost): same
 * certificate renewed, same new key, which gets the certificate issued the
 * first time back (never a second one), while it is still valid.
 */
import { X509Certificate } from 'node:crypto';
import { AccessError } from '../../errors.js';
import { signCertificate, type CertificateAuthority } from '../../identity/ca.js';
import { checkIdentityTtl } from '../../identity/ttl.js';
import { checkCsr } from '../../identity/csr.js';
import type { CertificateResponse } from '../../tunnel/enrolment.js';
import { kindSpec, type KindSpec, type MachineKind } from './kinds.js';
import { isActive, type BotRecord, type EnrolmentStore } from './store.js';
import { tokenMatches } from './token.js';

export interface IssuerDeps {
  /** Bots or agents: the store's kind decides (kinds.ts). */
  store: EnrolmentStore;
  ca: CertificateAuthority;
}

/** What join and renew answer: a bot's answer names `bot`, an agent's `agent`. */
export type EnrolmentResponse = Omit<CertificateResponse, 'bot'> & { bot?: string; agent?: string };

export interface Issued {
  record: BotRecord;
  response: EnrolmentResponse;
  /** A renewal retried after its answer was lost (same generation again). */
  repeated?: boolean;
}

/** A refused join or renewal: the error for the caller and what the audit trail needs. */
export class BotRefusal extends Error {
  constructor(
    readonly error: AccessError,
    readonly bot: string | undefined,
    /** Set when this refusal locked the bot (copied credential). */
    readonly lockedNow?: BotRecord,
    /** What the audit trail records when the client is told less (join refusals). */
    readonly detail?: string,
  ) {
    super(error.message);
  }
}

async function issue(
  deps: IssuerDeps,
  record: BotRecord,
  publicKeyPem: string,
  generation: number,
  ttlMs: number,
  now: number,
): Promise<EnrolmentResponse> {
  const spec = kindSpec(deps.store.kind);
  const certificate = await signCertificate(deps.ca, {
    publicKeyPem,
    user: spec.userName(record.name),
    roles: spec.fixedRoles ?? record.roles,
    ttlMs,
    [spec.kind]: { name: record.name, generation },
    ...(record.traits && spec.kind === 'bot' ? { traits: record.traits } : {}),
    now,
  });
  return answer(deps, record, certificate, generation);
}

function answer(deps: IssuerDeps, record: BotRecord, certificate: string, generation: number): EnrolmentResponse {
  const spec = kindSpec(deps.store.kind);
  return {
    [spec.kind]: record.name,
    user: spec.userName(record.name),
    roles: spec.fixedRoles ?? record.roles,
    generation,
    certificate,
    ca: [deps.ca.caCertPem],
    cluster: deps.ca.cluster,
    not_after: new Date(new X509Certificate(certificate).validTo).toISOString(),
  };
}

/**
 * The answer to a retried request: the very certificate issued the first
 * time, as long as it is still valid (and, for a join, the token has not
 * expired). Never a new certificate: a retry cannot get more than the
 * original request got, and no generation has two certificates.
 */
function repeatAnswer(
  deps: IssuerDeps,
  record: BotRecord,
  now: number,
  deadline: number,
): EnrolmentResponse | undefined {
  if (!record.lastCertificate || !record.certNotAfter) return undefined;
  if (now >= Math.min(Date.parse(record.certNotAfter), deadline)) return undefined;
  return answer(deps, record, record.lastCertificate, record.generation);
}

/** What a client is told about any token that does not work: nothing about the bot it belonged to. */
function tokenRefused(spec: KindSpec): AccessError {
  return new AccessError(spec.codes.tokenInvalid, 'the join token is not valid (unknown, already used or expired)', {
    hint: `ask the operator for a new one (\`mcp-access ${spec.kind} add\`)`,
  });
}

function checkTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number') throw new AccessError('USAGE', 'the request has no ttl_ms');
  return checkIdentityTtl(ttlMs);
}

/**
 * Refusals of a join tell the client nothing about the bot (its name, roles
 * or whether the token ever existed); the audit trail gets the specifics via
 * `BotRefusal.bot` and `reason`.
 */
export async function joinWithToken(
  deps: IssuerDeps,
  req: { token: unknown; csr: unknown; ttl_ms: unknown },
  now = Date.now,
): Promise<Issued> {
  const spec = kindSpec(deps.store.kind);
  const ttlMs = checkTtl(req.ttl_ms);
  const csr = await checkCsr(req.csr);
  if (typeof req.token !== 'string' || req.token === '')
    throw new BotRefusal(new AccessError(spec.codes.tokenInvalid, 'the join request carries no token'), undefined);
  const token = req.token;
  return deps.store.locked(async () => {
    const at = now();
    const record = (await deps.store.readAll()).find(
      (r) => isActive(r) && r.token !== undefined && tokenMatches(token, r.token.hash),
    );
    if (!record)
      throw new BotRefusal(
        tokenRefused(spec),
        undefined,
        undefined,
        `no ${spec.kind} on this proxy was registered with this token`,
      );
    const t = record.token!;
    const tokenExpiry = Date.parse(t.expiresAt);
    if (t.usedAt && isJoinRetry(record, csr.keySha256)) {
      // The answer to this very join was lost: same key, nothing renewed
      // since. It gets the same certificate again, only while both the token
      // and that certificate are still valid.
      const response = repeatAnswer(deps, record, at, tokenExpiry);
      if (!response) {
        throw new BotRefusal(
          tokenRefused(spec),
          record.name,
          undefined,
          `a join with the token used at ${t.usedAt} was repeated after the token (${t.expiresAt}) or the certificate it got (${record.certNotAfter ?? '?'}) expired`,
        );
      }
      return { record, response, repeated: true };
    }
    if (t.usedAt)
      throw new BotRefusal(tokenRefused(spec), record.name, undefined, `the token was already used at ${t.usedAt}`);
    if (tokenExpiry <= at)
      throw new BotRefusal(tokenRefused(spec), record.name, undefined, `the token expired at ${t.expiresAt}`);
    if (record.lock) {
      throw new BotRefusal(
        new AccessError(spec.codes.locked, `the ${spec.kind} this token belongs to is locked`, {
          hint: `ask the operator (\`mcp-access ${spec.kind} unlock\`)`,
        }),
        record.name,
        undefined,
        lockedError(record, spec.kind).message,
      );
    }
    const generation = record.generation + 1;
    const response = await issue(deps, record, csr.publicKeyPem, generation, ttlMs, at);
    const when = new Date(at).toISOString();
    const next: BotRecord = {
      ...record,
      token: { ...t, usedAt: when },
      joinedAt: when,
      generation,
      certNotAfter: response.not_after,
      lastIssue: { fromSerial: null, keySha256: csr.keySha256 },
      lastCertificate: response.certificate,
    };
    await deps.store.write(next);
    return { record: next, response };
  });
}

function isJoinRetry(record: BotRecord, keySha256: string): boolean {
  return (
    record.generation === record.minGeneration &&
    record.lastIssue?.fromSerial === null &&
    record.lastIssue.keySha256 === keySha256 &&
    !record.lock
  );
}

export interface RenewingPeer {
  bot?: { name: string; generation: number };
  agent?: { name: string; generation: number };
  serial: string;
}

export async function renewBot(
  deps: IssuerDeps,
  peer: RenewingPeer,
  req: { csr: unknown; ttl_ms: unknown },
  now = Date.now,
): Promise<Issued> {
  const spec = kindSpec(deps.store.kind);
  const k = spec.kind;
  // Only a certificate of this kind renews here: a bot's never renews as an agent, nor the reverse.
  const machine = peer[k];
  if (!machine)
    throw new BotRefusal(
      new AccessError(
        'ACCESS_DENIED',
        `only ${k === 'agent' ? 'an agent' : 'a bot'} certificate can be renewed here (this one names no ${k})`,
      ),
      undefined,
    );
  const { name, generation: presented } = machine;
  const ttlMs = checkTtl(req.ttl_ms);
  const csr = await checkCsr(req.csr);
  return deps.store.locked(async () => {
    const record = await deps.store.read(name);
    if (!isActive(record)) {
      throw new BotRefusal(
        new AccessError(spec.codes.unknown, `${k} "${name}" is not registered on this proxy (it was removed)`, {
          hint: `ask the operator to add it again (\`mcp-access ${k} add\`) and join with the new token`,
        }),
        name,
      );
    }
    if (presented < record.minGeneration) {
      throw new BotRefusal(
        new AccessError(
          'IDENTITY_REJECTED',
          `this certificate (generation ${presented}) belongs to an earlier registration of ${k} "${name}"`,
          {
            hint: `join with the token from the latest \`mcp-access ${k} add\``,
          },
        ),
        name,
      );
    }
    if (record.lock) throw new BotRefusal(lockedError(record, k), name);

    const retry =
      presented === record.generation - 1 &&
      record.lastIssue !== undefined &&
      record.lastIssue.fromSerial === peer.serial &&
      record.lastIssue.keySha256 === csr.keySha256;
    if (presented < record.generation && !retry) {
      const reason = `credential copied: generation ${presented} was presented after generation ${record.generation} had been issued`;
      const locked: BotRecord = { ...record, lock: { at: new Date(now()).toISOString(), reason, by: 'proxy' } };
      await deps.store.write(locked);
      throw new BotRefusal(
        new AccessError(
          spec.codes.locked,
          `${k} "${name}" is now locked: ${reason} (two machines are renewing the same ${k} identity)`,
          {
            hint: `find out where the copy came from; then remove and re-add the ${k} (mcp-access ${k} rm ${name}; mcp-access ${k} add ${name}) and join again`,
          },
        ),
        name,
        locked,
      );
    }
    if (presented > record.generation) {
      throw new BotRefusal(
        new AccessError(
          'BOT_STATE',
          `${k} "${name}" presented generation ${presented}, but this proxy last issued ${record.generation}`,
          {
            hint: `the state directory looks older than the ${k} (restored from a backup?); remove and re-add the ${k}`,
          },
        ),
        name,
      );
    }
    const at = now();
    if (retry) {
      // A lost answer, or two renewals of the same certificate with the same
      // key racing each other: both get the one certificate of this generation.
      const response = repeatAnswer(deps, record, at, Number.POSITIVE_INFINITY);
      if (!response) {
        throw new BotRefusal(
          new AccessError(
            'IDENTITY_EXPIRED',
            `the certificate issued for this request (generation ${record.generation} of ${k} "${name}") is no longer valid, so it cannot be handed out again`,
            {
              hint: 'ask the operator for a new join token',
            },
          ),
          name,
        );
      }
      return { record, response, repeated: true };
    }
    const generation = record.generation + 1;
    const response = await issue(deps, record, csr.publicKeyPem, generation, ttlMs, at);
    const next: BotRecord = {
      ...record,
      generation,
      renewedAt: new Date(at).toISOString(),
      certNotAfter: response.not_after,
      lastIssue: { fromSerial: peer.serial, keySha256: csr.keySha256 },
      lastCertificate: response.certificate,
    };
    await deps.store.write(next);
    return { record: next, response };
  });
}

export function lockedError(record: BotRecord, kind: MachineKind = 'bot'): AccessError {
  const lock = record.lock!;
  return new AccessError(
    kindSpec(kind).codes.locked,
    `${kind} "${record.name}" is locked since ${lock.at}: ${lock.reason}`,
    {
      hint:
        lock.by === 'proxy'
          ? `its credential was used from two places; remove and re-add it (mcp-access ${kind} rm ${record.name}; mcp-access ${kind} add ${record.name})`
          : `an operator locked it; \`mcp-access ${kind} unlock ${record.name}\` lifts the lock`,
    },
  );
}
