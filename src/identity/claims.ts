/**
 * Who a certificate says its holder is. The encoding (docs/identity.md):
 *
 *   subject CN      = user name
 *   subject O       = one attribute per role
 *   issuer CN       = cluster name (the CA's subject CN)
 *   SAN URI         = mcp-access://<cluster>/bot/<name>?generation=<n>   (bot identities only)
 *                     mcp-access://<cluster>/agent/<name>?generation=<n> (agent host certificates only)
 *
 * An agent's certificate is recognisable three ways at once, and all three
 * must agree: its agent URI, its subject CN `agent:<name>` (a `:` no user
 * name may contain) and its only role `system:agent` (a role prefix no user or
 * bot certificate may carry). Anything in between (a user with a system role,
 * an agent URI on a user's subject, both a bot and an agent URI) is refused.
 *   SAN URI         = mcp-access://<cluster>/trait/<key>?value=<percent-encoded value>  (one per trait value)
 *
 * Read with node:crypto's X509Certificate only: this runs on `connect`'s
 * start-up path and in the proxy for every connection. node prints a subject
 * as one `KEY=value` per line (a repeated O is repeated lines) and escapes
 * specials; names are restricted at issue time (names.ts) so that nothing
 * needs escaping, and anything outside those rules is refused here too.
 */
import type { X509Certificate } from 'node:crypto';
import { AccessError } from '../errors.js';
import { AGENT_ROLE, agentUserName, isSystemRole, isValidGeneration, isValidName } from './names.js';

export interface CertClaims {
  user: string;
  roles: string[];
  cluster: string;
  bot?: { name: string; generation: number };
  /** Set only for an agent's host certificate (then `user` is `agent:<name>`, `roles` is `[system:agent]`). */
  agent?: { name: string; generation: number };
  /** Traits (`identity issue --trait k=v1,v2`), for role templates `{{internal.k}}`; absent when none. */
  traits?: Record<string, string[]>;
}

export const BOT_URI_SCHEME = 'mcp-access:';

/** The SAN URI that carries one value of a trait. */
export function traitUri(cluster: string, key: string, value: string): string {
  return `mcp-access://${cluster}/trait/${key}?value=${encodeURIComponent(value)}`;
}

/** Trait names: letters, digits, `_`, `.`, `-`, at most 64. */
export const TRAIT_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
/** Why a trait value cannot be issued (at most 256 characters, no control characters), or undefined. */
export function traitValueProblem(value: string): string | undefined {
  if (value.length === 0 || value.length > 256) return 'must be 1 to 256 characters';
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'must not contain control characters';
  return undefined;
}

/**
 * `--trait NAME=v1,v2` options (repeatable) as trait name → values. Throws USAGE
 * for an option without `=`; names and values are checked when issuing.
 */
export function parseTraitOptions(options: readonly unknown[]): Record<string, string[]> {
  const traits: Record<string, string[]> = {};
  for (const t of options) {
    const text = String(t);
    const eq = text.indexOf('=');
    if (eq <= 0)
      throw new AccessError('USAGE', `--trait ${JSON.stringify(text)} must be NAME=value[,value…]`, {
        hint: 'e.g. --trait teams=dev,ops',
      });
    const values = text
      .slice(eq + 1)
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    (traits[text.slice(0, eq).trim()] ??= []).push(...values);
  }
  return traits;
}

const TRAIT_URI = /^mcp-access:\/\/([^/?#]+)\/trait\/([^/?#]+)\?value=([^#]*)$/;

/** The SAN URI that marks a bot identity. */
export function botUri(cluster: string, name: string, generation: number): string {
  return `mcp-access://${cluster}/bot/${name}?generation=${generation}`;
}

/** The SAN URI that marks an agent's host certificate. */
export function agentUri(cluster: string, name: string, generation: number): string {
  return `mcp-access://${cluster}/agent/${name}?generation=${generation}`;
}

const MACHINE_URI = /^mcp-access:\/\/([^/?#]+)\/(bot|agent)\/([^/?#]+)\?generation=(\d+)$/;

/** node's printed name (`CN=x\nO=a\nO=b`) as attribute → values. */
export function nameAttributes(printed: string): Map<string, string[]> {
  const attrs = new Map<string, string[]>();
  for (const line of printed.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const list = attrs.get(key) ?? [];
    list.push(line.slice(eq + 1));
    attrs.set(key, list);
  }
  return attrs;
}

function bad(message: string): AccessError {
  return new AccessError('IDENTITY_BAD_CERT', message);
}

export function claimsFromCertificate(cert: X509Certificate): CertClaims {
  const subject = nameAttributes(cert.subject);
  const cns = subject.get('CN') ?? [];
  if (cns.length !== 1) throw bad(`certificate subject must have exactly one CN (the user name), found ${cns.length}`);
  const user = cns[0]!;
  // `agent:<name>` is not a user name; it is only accepted with an agent URI (below).
  const agentForm = user.startsWith('agent:') && isValidName('agent', user.slice('agent:'.length));
  if (!isValidName('user', user) && !agentForm)
    throw bad(`certificate user name ${JSON.stringify(user)} contains characters mcp-access never issues`);
  const roles = subject.get('O') ?? [];
  for (const role of roles) {
    if (!isValidName('role', role))
      throw bad(`certificate role ${JSON.stringify(role)} contains characters mcp-access never issues`);
  }
  const issuerCns = nameAttributes(cert.issuer).get('CN') ?? [];
  if (issuerCns.length !== 1)
    throw bad(`certificate issuer must have exactly one CN (the cluster name), found ${issuerCns.length}`);
  const cluster = issuerCns[0]!;
  if (!isValidName('cluster', cluster))
    throw bad(`certificate issuer (cluster) ${JSON.stringify(cluster)} contains characters mcp-access never issues`);

  const sans = (cert.subjectAltName ?? '')
    .split(', ')
    .map((entry) => (entry.startsWith('"') && entry.endsWith('"') ? entry.slice(1, -1) : entry));
  // Traits first: one URI per value, each of this cluster and well-formed.
  let traits: Record<string, string[]> | undefined;
  const traitUris = sans.filter((e) => e.startsWith(`URI:mcp-access://${cluster}/trait/`));
  if (sans.some((e) => e.includes('/trait/') && !e.startsWith(`URI:mcp-access://${cluster}/trait/`)))
    throw bad('certificate carries a trait URI that is not of its cluster or is malformed');
  for (const entry of traitUris) {
    const m = TRAIT_URI.exec(entry.slice('URI:'.length));
    let value: string | undefined;
    try {
      value = m ? decodeURIComponent(m[3]!) : undefined;
    } catch {
      value = undefined;
    }
    if (!m || value === undefined || !TRAIT_KEY.test(m[2]!) || traitValueProblem(value) !== undefined)
      throw bad(`certificate trait URI ${JSON.stringify(entry)} is malformed`);
    traits ??= {};
    (traits[m[2]!] ??= []).push(value);
  }
  // Every other mcp-access URI (any case of the scheme), so that a second one
  // cannot hide behind an odd spelling.
  const uris = sans.filter(
    (entry) =>
      entry.startsWith('URI:') && entry.slice(4).toLowerCase().startsWith(BOT_URI_SCHEME) && !traitUris.includes(entry),
  );
  if (uris.length > 1) throw bad('certificate carries more than one mcp-access bot or agent URI');
  let machine: { kind: 'bot' | 'agent'; name: string; generation: number } | undefined;
  if (uris.length === 1) {
    const uri = uris[0]!.slice('URI:'.length);
    const m = MACHINE_URI.exec(uri);
    if (!m) throw bad(`certificate mcp-access URI ${JSON.stringify(uri)} is malformed`);
    const [, uriCluster, kind, name, gen] = m;
    const generation = Number(gen);
    if (uriCluster !== cluster)
      throw bad(
        `certificate ${kind} URI names cluster ${JSON.stringify(uriCluster)} but was issued by ${JSON.stringify(cluster)}`,
      );
    if (!isValidName(kind as 'bot' | 'agent', name!) || !isValidGeneration(generation))
      throw bad(`certificate ${kind} URI ${JSON.stringify(uri)} is malformed`);
    machine = { kind: kind as 'bot' | 'agent', name: name!, generation };
  }

  if (machine?.kind === 'agent') {
    // An agent's host certificate: exactly its own CN and the agent role, nothing a user could hold.
    if (user !== agentUserName(machine.name))
      throw bad(`certificate agent URI names agent "${machine.name}" but its subject is ${JSON.stringify(user)}`);
    if (roles.length !== 1 || roles[0] !== AGENT_ROLE)
      throw bad(`an agent certificate carries exactly the role ${AGENT_ROLE}, not ${JSON.stringify(roles)}`);
    return { user, roles, cluster, agent: { name: machine.name, generation: machine.generation } };
  }
  if (agentForm) throw bad(`certificate subject ${JSON.stringify(user)} names an agent but it carries no agent URI`);
  const system = roles.find(isSystemRole);
  if (system !== undefined)
    throw bad(`certificate role ${JSON.stringify(system)} is a system role, which only an agent certificate carries`);
  const claims: CertClaims = { user, roles, cluster };
  if (machine) claims.bot = { name: machine.name, generation: machine.generation };
  if (traits) claims.traits = traits;
  return claims;
}
