/**
 * The operator's side: `bot add | ls | rm | lock | unlock` and the same for
 * `agent`. These change the state directory only; a running proxy notices
 * within a second (service.ts). Which kind is the store's (`store.kind`).
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AccessError } from '../../errors.js';
import { botUserName, nameProblem, type MachineKind } from '../../identity/names.js';
import { caPin } from '../../identity/pin.js';
import { loadProxyConfig, type ProxyConfig } from '../config.js';
import { formatDuration } from '../../util/duration.js';
import { kindSpec } from './kinds.js';
import { isActive, type BotRecord, type EnrolmentStore } from './store.js';
import { openEnrolmentStore } from './pg-store.js';
import { openBackend } from '../../backend/open.js';
import type { Backend } from '../../backend/types.js';
import { hashToken, newJoinToken } from './token.js';
import { TRAIT_KEY, traitValueProblem } from '../../identity/claims.js';

export const MIN_TOKEN_TTL_MS = 1_000;
export const MAX_TOKEN_TTL_MS = 30 * 86_400_000;
export const DEFAULT_TOKEN_TTL = '1h';

/** The proxy config, its backend and the store of bots (or agents) it names. */
export async function openBotState(
  configPath: string,
  kind: MachineKind = 'bot',
): Promise<{ config: ProxyConfig; store: EnrolmentStore; backend: Backend }> {
  const config = await loadProxyConfig(configPath);
  if (!config.bot) {
    throw new AccessError(
      'CONFIG_INVALID',
      `${config.path}: bot: the config has no bot.state_dir, so ${kind}s cannot be registered`,
      {
        hint: 'add `bot: { state_dir: ./bots }` to the proxy config (it holds bots and agents) and restart the proxy',
      },
    );
  }
  const backend = await openBackend(config.backend);
  const store = openEnrolmentStore(config.bot.stateDir, backend, kind);
  await store.ensure();
  return { config, store, backend };
}

export { botUserName };

export interface AddedBot {
  record: BotRecord;
  token: string;
  tokenExpiresAt: Date;
}

/** Register a bot (or, with an agent store, an agent: its roles are fixed and `roles` is ignored). */
export async function addBot(
  store: EnrolmentStore,
  opts: { name: string; roles: string[]; traits?: Record<string, string[]>; tokenTtlMs: number; now?: number },
): Promise<AddedBot> {
  const spec = kindSpec(store.kind);
  const problem =
    nameProblem(spec.kind, opts.name) ??
    (spec.fixedRoles ? undefined : opts.roles.map((r) => nameProblem('role', r)).find(Boolean));
  if (problem) throw new AccessError('USAGE', problem);
  const roles = [...new Set(spec.fixedRoles ?? opts.roles)];
  if (roles.length === 0)
    throw new AccessError('USAGE', 'a bot needs at least one role', { hint: 'pass --roles R1,R2' });
  for (const [key, values] of Object.entries(opts.traits ?? {})) {
    if (!TRAIT_KEY.test(key))
      throw new AccessError('USAGE', `trait name ${JSON.stringify(key)} must be 1-64 letters, digits, _, . or -`);
    for (const v of values) {
      const why = traitValueProblem(v);
      if (why) throw new AccessError('USAGE', `trait ${key} value ${JSON.stringify(v)} ${why}`);
    }
  }
  if (!Number.isFinite(opts.tokenTtlMs) || opts.tokenTtlMs < MIN_TOKEN_TTL_MS || opts.tokenTtlMs > MAX_TOKEN_TTL_MS) {
    throw new AccessError(
      'USAGE',
      `--token-ttl ${formatDuration(opts.tokenTtlMs)} is out of range (${formatDuration(MIN_TOKEN_TTL_MS)} to ${formatDuration(MAX_TOKEN_TTL_MS)})`,
    );
  }
  const now = opts.now ?? Date.now();
  const token = newJoinToken(spec.tokenPrefix);
  const tokenExpiresAt = new Date(now + opts.tokenTtlMs);
  const record = await store.locked(async () => {
    const existing = await store.read(opts.name);
    if (existing && existing.removedAt === undefined) {
      throw new AccessError(spec.codes.exists, `${spec.kind} "${opts.name}" already exists in ${store.dir}`, {
        hint: `to give it a new join token, remove it first: mcp-access ${spec.kind} rm ${opts.name}`,
      });
    }
    // A re-added name continues the numbering, so the old registration's
    // certificates (still valid until they expire) are told apart and refused.
    const base = existing ? existing.generation + 1 : 1;
    const rec: BotRecord = {
      version: 1,
      name: opts.name,
      roles,
      ...(opts.traits && Object.keys(opts.traits).length ? { traits: opts.traits } : {}),
      createdAt: new Date(now).toISOString(),
      minGeneration: base,
      generation: base - 1,
      token: { hash: hashToken(token), expiresAt: tokenExpiresAt.toISOString() },
    };
    await store.write(rec);
    return rec;
  });
  return { record, token, tokenExpiresAt };
}

export type BotStatus = 'awaiting join' | 'token expired' | 'active' | 'expired' | 'locked';

export interface BotSummary {
  name: string;
  roles: string[];
  status: BotStatus;
  generation: number;
  createdAt: string;
  joinedAt?: string;
  renewedAt?: string;
  certNotAfter?: string;
  tokenExpiresAt?: string;
  lock?: BotRecord['lock'];
}

export function botStatus(r: BotRecord, now = Date.now()): BotStatus {
  if (r.lock) return 'locked';
  if (!r.joinedAt) return r.token && Date.parse(r.token.expiresAt) > now ? 'awaiting join' : 'token expired';
  return r.certNotAfter && Date.parse(r.certNotAfter) > now ? 'active' : 'expired';
}

export async function listBots(store: EnrolmentStore, now = Date.now()): Promise<BotSummary[]> {
  return (await store.readAll()).filter(isActive).map((r) => {
    const s: BotSummary = {
      name: r.name,
      roles: r.roles,
      status: botStatus(r, now),
      generation: r.generation,
      createdAt: r.createdAt,
    };
    if (r.joinedAt) s.joinedAt = r.joinedAt;
    if (r.renewedAt) s.renewedAt = r.renewedAt;
    if (r.certNotAfter) s.certNotAfter = r.certNotAfter;
    if (!r.joinedAt && r.token) s.tokenExpiresAt = r.token.expiresAt;
    if (r.lock) s.lock = r.lock;
    return s;
  });
}

/** Change one active bot's (or agent's) record under the state lock. */
async function changeBot(
  store: EnrolmentStore,
  name: string,
  change: (r: BotRecord) => BotRecord | undefined,
): Promise<BotRecord> {
  const spec = kindSpec(store.kind);
  const problem = nameProblem(spec.kind, name);
  if (problem) throw new AccessError('USAGE', problem);
  return store.locked(async () => {
    const r = await store.read(name);
    if (!isActive(r))
      throw new AccessError(spec.codes.unknown, `no ${spec.kind} named "${name}" in ${store.dir}`, {
        hint: `run \`mcp-access ${spec.kind} ls\` to see the registered ${spec.plural}`,
      });
    const next = change(r);
    if (next) await store.write(next);
    return next ?? r;
  });
}

/** Forget a bot: its token stops working, its renewals are refused, its sessions end. */
export async function removeBot(store: EnrolmentStore, name: string, now = Date.now()): Promise<BotRecord> {
  return changeBot(store, name, (r) => {
    const { token: _token, lastIssue: _lastIssue, ...rest } = r;
    return { ...rest, removedAt: new Date(now).toISOString() };
  });
}

/**
 * Change a bot's roles (`bot update NAME --add-roles R --remove-roles S`).
 * Its certificates carry its roles, so the change reaches its sessions with
 * its next renewal (within `--renewal-interval`); a certificate issued
 * before keeps the roles it names until it expires.
 */
export async function updateBotRoles(
  store: EnrolmentStore,
  name: string,
  change: { add: string[]; remove: string[] },
): Promise<{ record: BotRecord; before: string[] }> {
  const problem = [...change.add, ...change.remove].map((r) => nameProblem('role', r)).find(Boolean);
  if (problem) throw new AccessError('USAGE', problem);
  if (change.add.length === 0 && change.remove.length === 0)
    throw new AccessError('USAGE', 'nothing to change', { hint: 'pass --add-roles and/or --remove-roles' });
  let before: string[] = [];
  const record = await changeBot(store, name, (r) => {
    before = r.roles;
    const roles = [...new Set([...r.roles.filter((x) => !change.remove.includes(x)), ...change.add])];
    if (roles.length === 0)
      throw new AccessError('USAGE', `bot "${name}" would have no role left`, {
        hint: 'a bot needs at least one role; add one, or remove the bot',
      });
    if (roles.join(',') === r.roles.join(',')) return undefined;
    return { ...r, roles };
  });
  return { record, before };
}

/** Refuse renewals and new sessions, end live sessions. Returns whether it was already locked. */
export async function lockBot(
  store: EnrolmentStore,
  name: string,
  reason: string,
  now = Date.now(),
): Promise<{ record: BotRecord; already: boolean }> {
  let already = false;
  const record = await changeBot(store, name, (r) => {
    if (r.lock) {
      already = true;
      return undefined;
    }
    return { ...r, lock: { at: new Date(now).toISOString(), reason, by: 'operator' } };
  });
  return { record, already };
}

export async function unlockBot(
  store: EnrolmentStore,
  name: string,
): Promise<{ record: BotRecord; was?: BotRecord['lock'] }> {
  let was: BotRecord['lock'];
  const record = await changeBot(store, name, (r) => {
    if (!r.lock) return undefined;
    was = r.lock;
    const { lock: _lock, ...rest } = r;
    return rest;
  });
  return { record, was };
}

/**
 * The address a bot should dial, for the printed `bot start` command: the
 * listen host unless it is a wildcard, else the first name in the proxy's
 * certificate (the bot verifies the proxy's host name against it).
 */
export function suggestProxyAddress(config: ProxyConfig, proxyCertPem: string): string {
  const { host, port } = config.listen;
  let h = host;
  if (h === '' || h === '0.0.0.0' || h === '::') {
    const sans = (new X509Certificate(proxyCertPem).subjectAltName ?? '')
      .split(', ')
      .map((s) => s.replace(/^(DNS|IP Address):/, ''))
      .filter(Boolean);
    h = sans[0] ?? 'localhost';
  }
  // Port 0 means "any free port": the real one is only known to the running proxy.
  return `${h.includes(':') ? `[${h}]` : h}:${port === 0 ? 'PORT' : port}`;
}

/**
 * The cluster CA's pin and the proxy certificate, read from the public files
 * of the CA directory only (the operator running `bot add` need not be able
 * to read the CA's private key).
 */
export async function readCaPublic(config: ProxyConfig): Promise<{ caPin: string; proxyCertPem: string }> {
  const read = async (file: string): Promise<string> => {
    const path = join(config.caDir, file);
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new AccessError(
        'CA_MISSING',
        `cannot read ${path} named by ca_dir in ${config.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  };
  const caPem = await read('ca.crt');
  let pin: string;
  try {
    pin = caPin(caPem);
  } catch {
    throw new AccessError('CA_INVALID', `${join(config.caDir, 'ca.crt')} is not a certificate`);
  }
  return { caPin: pin, proxyCertPem: await read('proxy.crt') };
}
