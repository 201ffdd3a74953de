/**
 * What `mcp-access identity show` prints. node:crypto only. An identity that
 * is expired, not yet valid or untrusted is still described (with that
 * status): `show` is the tool for finding out why a file is refused.
 * The JSON field names are documented in docs/identity.md and stable.
 */
import { X509Certificate } from 'node:crypto';
import { formatDuration } from '../util/duration.js';
import type { ExaminedIdentity, IdentityStatus } from './load.js';
import { caPin } from './pin.js';

export interface IdentityDescription {
  path: string;
  user: string;
  roles: string[];
  cluster: string;
  issuer: string;
  bot: { name: string; generation: number } | null;
  agent: { name: string; generation: number } | null;
  /** Traits for role templates; {} when none. */
  traits: Record<string, string[]>;
  serial: string;
  validFrom: string;
  validUntil: string;
  status: IdentityStatus;
  /** Whole seconds until validUntil; negative once expired. */
  secondsLeft: number;
  /** e.g. "59m58s" while valid, otherwise null. */
  timeLeft: string | null;
  /** e.g. "3m" once expired, otherwise null. */
  expiredAgo: string | null;
  keyType: 'rsa' | 'ec' | 'ed25519';
  fingerprint256: string;
  trusted: boolean;
  sshCertificate: boolean;
  cas: Array<{ subject: string; fingerprint256: string; pin: string; validUntil: string }>;
}

const oneLine = (name: string) => name.split('\n').join(', ');

export function describeIdentity(examined: ExaminedIdentity, now = Date.now()): IdentityDescription {
  const { identity: id, status, trusted } = examined;
  const msLeft = id.notAfter.getTime() - now;
  return {
    path: id.path,
    user: id.user,
    roles: id.roles,
    cluster: id.cluster,
    issuer: oneLine(id.issuer),
    bot: id.bot ?? null,
    agent: id.agent ?? null,
    traits: id.traits ?? {},
    serial: id.serial,
    validFrom: id.notBefore.toISOString(),
    validUntil: id.notAfter.toISOString(),
    status,
    secondsLeft: Math.trunc(msLeft / 1000),
    timeLeft: status === 'expired' ? null : formatDuration(msLeft),
    expiredAgo: status === 'expired' ? formatDuration(-msLeft) : null,
    keyType: id.keyType,
    fingerprint256: id.fingerprint256,
    trusted,
    sshCertificate: id.sshCertLine !== undefined,
    cas: id.caPems.map((pem) => {
      const ca = new X509Certificate(pem);
      return {
        subject: oneLine(ca.subject),
        fingerprint256: ca.fingerprint256,
        pin: caPin(pem),
        validUntil: new Date(ca.validTo).toISOString(),
      };
    }),
  };
}

export function formatIdentityText(d: IdentityDescription, now = Date.now()): string {
  const validity =
    d.status === 'expired'
      ? `${d.validUntil} (EXPIRED ${d.expiredAgo} ago)`
      : d.status === 'not-yet-valid'
        ? `${d.validUntil} (NOT YET VALID: starts in ${formatDuration(Date.parse(d.validFrom) - now)})`
        : `${d.validUntil} (${d.timeLeft} left)`;
  const rows: Array<[string, string]> = [
    ['Identity file', d.path],
    ['User', d.user],
    ['Roles', d.roles.join(', ') || '(none)'],
    ['Cluster', d.cluster],
  ];
  if (d.bot) rows.push(['Bot', `${d.bot.name} (generation ${d.bot.generation})`]);
  if (d.agent) rows.push(['Agent', `${d.agent.name} (generation ${d.agent.generation})`]);
  const traits = Object.entries(d.traits);
  if (traits.length) rows.push(['Traits', traits.map(([k, v]) => `${k}=${v.join(',')}`).join('; ')]);
  rows.push(
    ['Issuer', d.issuer],
    ['Serial', d.serial],
    ['Valid from', d.validFrom],
    ['Valid until', validity],
    ['Trusted', d.trusted ? 'yes (signed by a CA in the file)' : 'NO: not signed by any CA in the file'],
    ['Key type', d.keyType],
    ['SHA-256', d.fingerprint256],
  );
  if (d.sshCertificate) rows.push(['SSH cert', 'present (ignored by mcp-access)']);
  d.cas.forEach((ca, i) => {
    rows.push(
      [`CA #${i + 1}`, ca.subject],
      ['  SHA-256', ca.fingerprint256],
      ['  pin', ca.pin],
      ['  valid until', ca.validUntil],
    );
  });
  // A fixed label column, so the layout does not shift with the content.
  const width = 16;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join('\n');
}
