/**
 * Who a certificate says its holder is. The encoding (docs/identity.md):
 *
 *   subject CN      = user name
 *   subject O       = one attribute per role
 *   issuer CN       = cluster name (the CA's subject CN)
 *   SAN URI         = mcp-access://<cluster>/bot/<name>?generation=<n>   (bot identities only)
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
import { isValidGeneration, isValidName } from './names.js';

export interface CertClaims {
  user: string;
  roles: string[];
  cluster: string;
  bot?: { name: string; generation: number };
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

const BOT_URI = /^mcp-access:\/\/([^/?#]+)\/bot\/([^/?#]+)\?generation=(\d+)$/;

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
  if (!isValidName('user', user))
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

  const claims: CertClaims = { user, roles, cluster };
  const sans = (cert.subjectAltName ?? '').split(', ');
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
    claims.traits ??= {};
    (claims.traits[m[2]!] ??= []).push(value);
  }
  const uris = sans.filter(
    (entry) =>
      (entry.startsWith(`URI:${BOT_URI_SCHEME}`) || entry.startsWith(`"URI:${BOT_URI_SCHEME}`)) &&
      !traitUris.includes(entry),
  );
  if (uris.length > 1) throw bad('certificate carries more than one mcp-access bot URI');
  if (uris.length === 1) {
    const m = BOT_URI.exec(uris[0]!.slice('URI:'.length));
    if (!m) throw bad(`certificate bot URI ${JSON.stringify(uris[0])} is malformed`);
    const [, uriCluster, name, gen] = m;
    const generation = Number(gen);
    if (uriCluster !== cluster)
      throw bad(
        `certificate bot URI names cluster ${JSON.stringify(uriCluster)} but was issued by ${JSON.stringify(cluster)}`,
      );
    if (!isValidName('bot', name!) || !isValidGeneration(generation))
      throw bad(`certificate bot URI ${JSON.stringify(uris[0])} is malformed`);
    claims.bot = { name: name!, generation };
  }
  return claims;
}
