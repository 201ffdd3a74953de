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
 * certificate renewed, same new key, which gets the same generation again.
 */
import { X509Certificate } from 'node:crypto';
import { AccessError } from '../errors.js';
import { signCertificate, type CertificateAuthority } from '../identity/ca.js';
import { checkIdentityTtl } from '../identity/ttl.js';
import { botUserName } from './admin.js';
import { checkCsr } from './csr.js';
import type { CertificateResponse } from './protocol.js';
import { isActive, type BotRecord, type BotStore } from './store.js';
import { tokenMatches } from './token.js';

export interface IssuerDeps {
  store: BotStore;
  ca: CertificateAuthority;
}

export interface Issued {
  record: BotRecord;
  response: CertificateResponse;
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
  ) {
    super(error.message);
  }
}

async function issue(deps: IssuerDeps, record: BotRecord, publicKeyPem: string, generation: number, ttlMs: number): Promise<CertificateResponse> {
  const user = botUserName(record.name);
  const certificate = await signCertificate(deps.ca, { publicKeyPem, user, roles: record.roles, ttlMs, bot: { name: record.name, generation } });
  return {
    bot: record.name,
    user,
    roles: record.roles,
    generation,
    certificate,
    ca: [deps.ca.caCertPem],
    cluster: deps.ca.cluster,
    not_after: new Date(new X509Certificate(certificate).validTo).toISOString(),
  };
}

function checkTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number') throw new AccessError('USAGE', 'the request has no ttl_ms');
  return checkIdentityTtl(ttlMs);
}

export async function joinWithToken(deps: IssuerDeps, req: { token: unknown; csr: unknown; ttl_ms: unknown }, now = Date.now): Promise<Issued> {
  const ttlMs = checkTtl(req.ttl_ms);
  const csr = await checkCsr(req.csr);
  if (typeof req.token !== 'string' || req.token === '') throw new BotRefusal(new AccessError('BOT_TOKEN_INVALID', 'the join request carries no token'), undefined);
  const token = req.token;
  return deps.store.locked(async () => {
    const record = (await deps.store.readAll()).find((r) => isActive(r) && r.token !== undefined && tokenMatches(token, r.token.hash));
    if (!record) {
      throw new BotRefusal(new AccessError('BOT_TOKEN_INVALID', 'the join token is not valid: no bot on this proxy was registered with it'), undefined);
    }
    const t = record.token!;
    if (t.usedAt && isJoinRetry(record, csr.keySha256)) {
      // The answer to this very join was lost: same key, nothing renewed since.
      const response = await issue(deps, record, csr.publicKeyPem, record.generation, ttlMs);
      const next: BotRecord = { ...record, certNotAfter: response.not_after };
      await deps.store.write(next);
      return { record: next, response, repeated: true };
    }
    if (t.usedAt) {
      throw new BotRefusal(new AccessError('BOT_TOKEN_INVALID', `the join token of bot "${record.name}" was already used at ${t.usedAt}`, {
        hint: `a token works once; for a new one: mcp-access bot rm ${record.name}, then mcp-access bot add ${record.name} --roles ${record.roles.join(',')}`,
      }), record.name);
    }
    if (Date.parse(t.expiresAt) <= now()) {
      throw new BotRefusal(new AccessError('BOT_TOKEN_INVALID', `the join token of bot "${record.name}" expired at ${t.expiresAt}`, {
        hint: `ask the operator for a new one: mcp-access bot rm ${record.name}, then mcp-access bot add ${record.name} --roles ${record.roles.join(',')}`,
      }), record.name);
    }
    if (record.lock) throw new BotRefusal(lockedError(record), record.name);
    const generation = record.generation + 1;
    const response = await issue(deps, record, csr.publicKeyPem, generation, ttlMs);
    const at = new Date(now()).toISOString();
    const next: BotRecord = {
      ...record,
      token: { ...t, usedAt: at },
      joinedAt: at,
      generation,
      certNotAfter: response.not_after,
      lastIssue: { fromSerial: null, keySha256: csr.keySha256 },
    };
    await deps.store.write(next);
    return { record: next, response };
  });
}

function isJoinRetry(record: BotRecord, keySha256: string): boolean {
  return record.generation === record.minGeneration && record.lastIssue?.fromSerial === null && record.lastIssue.keySha256 === keySha256 && !record.lock;
}

export interface RenewingPeer {
  bot?: { name: string; generation: number };
  serial: string;
}

export async function renewBot(deps: IssuerDeps, peer: RenewingPeer, req: { csr: unknown; ttl_ms: unknown }, now = Date.now): Promise<Issued> {
  if (!peer.bot) throw new BotRefusal(new AccessError('ACCESS_DENIED', 'only a bot certificate can be renewed here (this one names no bot)'), undefined);
  const { name, generation: presented } = peer.bot;
  const ttlMs = checkTtl(req.ttl_ms);
  const csr = await checkCsr(req.csr);
  return deps.store.locked(async () => {
    const record = await deps.store.read(name);
    if (!isActive(record)) {
      throw new BotRefusal(new AccessError('BOT_UNKNOWN', `bot "${name}" is not registered on this proxy (it was removed)`, {
        hint: 'ask the operator to add it again (`mcp-access bot add`) and join with the new token',
      }), name);
    }
    if (presented < record.minGeneration) {
      throw new BotRefusal(new AccessError('IDENTITY_REJECTED', `this certificate (generation ${presented}) belongs to an earlier registration of bot "${name}"`, {
        hint: 'join with the token from the latest `mcp-access bot add`',
      }), name);
    }
    if (record.lock) throw new BotRefusal(lockedError(record), name);

    const retry = presented === record.generation - 1 && record.lastIssue !== undefined
      && record.lastIssue.fromSerial === peer.serial && record.lastIssue.keySha256 === csr.keySha256;
    if (presented < record.generation && !retry) {
      const reason = `credential copied: generation ${presented} was presented after generation ${record.generation} had been issued`;
      const locked: BotRecord = { ...record, lock: { at: new Date(now()).toISOString(), reason, by: 'proxy' } };
      await deps.store.write(locked);
      throw new BotRefusal(new AccessError('BOT_LOCKED', `bot "${name}" is now locked: ${reason} (two machines are renewing the same bot identity)`, {
        hint: `find out where the copy came from; then remove and re-add the bot (mcp-access bot rm ${name}; mcp-access bot add ${name}) and join again`,
      }), name, locked);
    }
    if (presented > record.generation) {
      throw new BotRefusal(new AccessError('BOT_STATE', `bot "${name}" presented generation ${presented}, but this proxy last issued ${record.generation}`, {
        hint: 'the bot state directory looks older than the bot (restored from a backup?); remove and re-add the bot',
      }), name);
    }
    const generation = retry ? record.generation : record.generation + 1;
    const response = await issue(deps, record, csr.publicKeyPem, generation, ttlMs);
    const next: BotRecord = {
      ...record,
      generation,
      renewedAt: new Date(now()).toISOString(),
      certNotAfter: response.not_after,
      lastIssue: { fromSerial: peer.serial, keySha256: csr.keySha256 },
    };
    await deps.store.write(next);
    return { record: next, response, repeated: retry };
  });
}

export function lockedError(record: BotRecord): AccessError {
  const lock = record.lock!;
  return new AccessError('BOT_LOCKED', `bot "${record.name}" is locked since ${lock.at}: ${lock.reason}`, {
    hint: lock.by === 'proxy'
      ? `its credential was used from two places; remove and re-add it (mcp-access bot rm ${record.name}; mcp-access bot add ${record.name})`
      : `an operator locked it; \`mcp-access bot unlock ${record.name}\` lifts the lock`,
  });
}
