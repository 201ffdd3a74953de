/**
 * Who a certificate says its holder is. The encoding (docs/identity.md):
 *
 *   subject CN      = user name
 *   subject O       = one attribute per role
 *   issuer CN       = cluster name (the CA's subject CN)
 *   SAN URI         = mcp-access://<cluster>/bot/<name>?generation=<n>   (bot identities only)
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
  agent?: { name: string; generation: number };
}

export const BOT_URI_SCHEME = 'mcp-access:';

/** The SAN URI that marks a bot identity. */
export function botUri(cluster: string, name: string, generation: number): string {
  return `mcp-access://${cluster}/bot/${name}?generation=${generation}`;
}

const BOT_URI = /^mcp-access:\/\/([^/?#]+)\/bot\/([^/?#]+)\?generation=(\d+)$/;

/** The SAN URI that marks an agent's host certificate. */
export function agentUri(cluster: string, name: string, generation: number): string {
  return `mcp-access://${cluster}/agent/${name}?generation=${generation}`;
}

const AGENT_URI = /^mcp-access:\/\/([^/?#]+)\/agent\/([^/?#]+)\?generation=(\d+)$/;

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
  const uris = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith(`URI:${BOT_URI_SCHEME}`) || entry.startsWith(`"URI:${BOT_URI_SCHEME}`));
  if (uris.length > 1) throw bad('certificate carries more than one mcp-access URI');
  if (uris.length === 1) {
    const uri = uris[0]!.replace(/^"/, '').replace(/"$/, '').slice('URI:'.length);
    const m = BOT_URI.exec(uri) ?? AGENT_URI.exec(uri);
    if (!m) throw bad(`certificate URI ${JSON.stringify(uris[0])} is malformed`);
    const [, uriCluster, name, gen] = m;
    const generation = Number(gen);
    if (uriCluster !== cluster)
      throw bad(
        `certificate URI names cluster ${JSON.stringify(uriCluster)} but was issued by ${JSON.stringify(cluster)}`,
      );
    if (!isValidName('bot', name!) || !isValidGeneration(generation))
      throw bad(`certificate URI ${JSON.stringify(uris[0])} is malformed`);
    if (BOT_URI.test(uri)) claims.bot = { name: name!, generation };
    else claims.agent = { name: name!, generation };
  }
  return claims;
}
