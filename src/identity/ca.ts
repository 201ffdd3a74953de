/**
 * The cluster certificate authority: a directory holding the CA and the
 * proxy's server certificate, plus issuing client certificates from it.
 *
 *   DIR/            mode 0700
 *     ca.crt        CA certificate (PEM), 0644
 *     ca.key        CA private key (PKCS#8 PEM), 0600
 *     proxy.crt     proxy server certificate, signed by the CA, 0644
 *     proxy.key     proxy server private key (PKCS#8 PEM), 0600
 *
 * Keys are EC P-256 with ECDSA-SHA256: fast to generate and sign with (an
 * identity per bot renewal, every few minutes), and every TLS stack accepts it.
 * Certificates are made with @peculiar/x509 on node's WebCrypto.
 */
import {
  X509Certificate as NodeX509,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  type webcrypto as WebCrypto,
} from 'node:crypto';
import { chmod, lstat, mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { AccessError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { agentUri, botUri, TRAIT_KEY, traitUri, traitValueProblem } from './claims.js';
import { formatIdentityFile } from './identity-file.js';
import { generateKeyPairPem, keyIdentifierHex, spkiDer, type KeyType } from './keys.js';
import { AGENT_ROLE, agentUserName, isSystemRole, isValidGeneration, nameProblem } from './names.js';
import { checkIdentityTtl } from './ttl.js';
import { webcrypto, x509 } from './x509.js';

export interface CertificateAuthority {
  dir: string;
  cluster: string;
  caCertPem: string;
  caKeyPem: string;
  proxyCertPem: string;
  proxyKeyPem: string;
  caCertPath: string;
  caKeyPath: string;
  proxyCertPath: string;
  proxyKeyPath: string;
}

export const CA_FILES = { caCert: 'ca.crt', caKey: 'ca.key', proxyCert: 'proxy.crt', proxyKey: 'proxy.key' } as const;
export const DEFAULT_PROXY_HOSTS = ['localhost', '127.0.0.1'];
/** The CA outlives many identities; re-creating it invalidates all of them. */
export const CA_VALIDITY_MS = 10 * 365 * 86_400_000;
/** The proxy certificate, re-created by `ca init --force`. */
export const PROXY_CERT_VALIDITY_MS = 2 * 365 * 86_400_000;
/** Not-before is set this far back so a client whose clock is a little behind accepts a fresh certificate. */
export const CLOCK_SKEW_MS = 60_000;

type CryptoKey = WebCrypto.CryptoKey;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

function paths(dir: string) {
  return {
    caCertPath: join(dir, CA_FILES.caCert),
    caKeyPath: join(dir, CA_FILES.caKey),
    proxyCertPath: join(dir, CA_FILES.proxyCert),
    proxyKeyPath: join(dir, CA_FILES.proxyKey),
  };
}

/** A positive, non-zero-leading 128-bit serial in hex (DER integers must be minimal and positive). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

const signingKeys = new WeakMap<CertificateAuthority, Promise<CryptoKey>>();

/** The CA key as a WebCrypto signing key (cached per loaded CA). */
function caSigningKey(ca: CertificateAuthority): Promise<CryptoKey> {
  let key = signingKeys.get(ca);
  if (!key) {
    const der = createPrivateKey(ca.caKeyPem).export({ type: 'pkcs8', format: 'der' });
    key = webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    signingKeys.set(ca, key);
  }
  return key;
}

/** A copy as a plain ArrayBuffer (what WebCrypto-typed APIs want, whatever Buffer's backing store). */
function toArrayBuffer(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

function caKeyId(caCertPem: string): string {
  return keyIdentifierHex(spkiDer(caCertPem));
}

async function signProxyCertificate(
  ca: Omit<CertificateAuthority, 'proxyCertPem' | 'proxyKeyPem'>,
  signingKey: CryptoKey,
  hosts: string[],
) {
  const { privateKeyPem, publicKeyPem } = await generateKeyPairPem('ec');
  const spki = spkiDer(publicKeyPem);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [hosts[0]!] }, { O: ['mcp-access proxy'] }],
    issuer: new x509.X509Certificate(ca.caCertPem).subjectName,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + PROXY_CERT_VALIDITY_MS),
    publicKey: toArrayBuffer(spki),
    signingKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        hosts.map((h) => (isIP(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h })),
      ),
      new x509.SubjectKeyIdentifierExtension(keyIdentifierHex(spki)),
      new x509.AuthorityKeyIdentifierExtension(caKeyId(ca.caCertPem)),
    ],
  });
  return { proxyCertPem: cert.toString('pem') + '\n', proxyKeyPem: privateKeyPem };
}

function checkProxyHosts(hosts: string[]): string[] {
  const clean = [...new Set(hosts.map((h) => h.trim()).filter((h) => h !== ''))];
  if (clean.length === 0) throw new AccessError('USAGE', 'give at least one --proxy-host');
  for (const h of clean) {
    if (!isIP(h) && !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(h)) {
      throw new AccessError('USAGE', `proxy host ${JSON.stringify(h)} is neither a DNS name nor an IP address`);
    }
  }
  return clean;
}

export async function initCa(opts: {
  dir: string;
  cluster: string;
  proxyHosts?: string[];
  force?: boolean;
}): Promise<CertificateAuthority> {
  const problem = nameProblem('cluster', opts.cluster);
  if (problem) throw new AccessError('USAGE', problem);
  const hosts = checkProxyHosts(opts.proxyHosts && opts.proxyHosts.length > 0 ? opts.proxyHosts : DEFAULT_PROXY_HOSTS);
  const dir = opts.dir;
  const p = paths(dir);
  if (!opts.force) {
    // Any one of the four files (a lone proxy.key too, or a symlink in its
    // place) is something --force alone may replace.
    for (const path of [p.caKeyPath, p.caCertPath, p.proxyKeyPath, p.proxyCertPath]) {
      if (await exists(path)) {
        throw new AccessError(
          'CA_EXISTS',
          path === p.caKeyPath || path === p.caCertPath
            ? `a certificate authority already exists in ${dir}`
            : `${path} already exists in ${dir}, so ca init does not overwrite it`,
        );
      }
    }
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  } catch (err) {
    throw new AccessError(
      'USAGE',
      `cannot create the CA directory ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { hint: 'choose a directory you can write to' },
    );
  }

  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const now = Date.now();
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [opts.cluster] }, { O: ['mcp-access'] }],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + CA_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.SubjectKeyIdentifierExtension(keyIdentifierHex(spki)),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const caKeyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  const base = { dir, cluster: opts.cluster, caCertPem: caCert.toString('pem') + '\n', caKeyPem, ...p };
  const proxy = await signProxyCertificate(base, keys.privateKey, hosts);
  const ca: CertificateAuthority = { ...base, ...proxy };

  // Keys first, the CA certificate last: a crash part-way leaves no ca.crt
  // (and loadCa reports CA_MISSING / CA_INVALID rather than a half CA).
  await writeFileAtomic(p.caKeyPath, ca.caKeyPem, 0o600);
  await writeFileAtomic(p.proxyKeyPath, ca.proxyKeyPem, 0o600);
  await writeFileAtomic(p.proxyCertPath, ca.proxyCertPem, 0o644);
  await writeFileAtomic(p.caCertPath, ca.caCertPem, 0o644);
  signingKeys.set(ca, Promise.resolve(keys.privateKey));
  return ca;
}

async function readCaFile(path: string, dir: string, code: 'CA_MISSING' | 'CA_INVALID'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const why =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'is missing'
        : `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    throw new AccessError(
      code,
      code === 'CA_MISSING'
        ? `no certificate authority in ${dir}: ${path} ${why}`
        : `certificate authority in ${dir} is damaged: ${path} ${why}`,
    );
  }
}

export async function loadCa(dir: string): Promise<CertificateAuthority> {
  const p = paths(dir);
  const invalid = (why: string) => new AccessError('CA_INVALID', `certificate authority in ${dir} is damaged: ${why}`);
  const caCertPem = await readCaFile(p.caCertPath, dir, 'CA_MISSING');
  const caKeyPem = await readCaFile(p.caKeyPath, dir, 'CA_INVALID');
  const proxyCertPem = await readCaFile(p.proxyCertPath, dir, 'CA_INVALID');
  const proxyKeyPem = await readCaFile(p.proxyKeyPath, dir, 'CA_INVALID');
  let caCert: NodeX509;
  let proxyCert: NodeX509;
  try {
    caCert = new NodeX509(caCertPem);
  } catch {
    throw invalid(`${CA_FILES.caCert} is not a certificate`);
  }
  try {
    proxyCert = new NodeX509(proxyCertPem);
  } catch {
    throw invalid(`${CA_FILES.proxyCert} is not a certificate`);
  }
  let caKey, proxyKey;
  try {
    caKey = createPrivateKey(caKeyPem);
  } catch {
    throw invalid(`${CA_FILES.caKey} is not a private key`);
  }
  try {
    proxyKey = createPrivateKey(proxyKeyPem);
  } catch {
    throw invalid(`${CA_FILES.proxyKey} is not a private key`);
  }
  if (caKey.asymmetricKeyType !== 'ec' || caKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw invalid(`${CA_FILES.caKey} is not an EC P-256 key`);
  if (!caCert.ca) throw invalid(`${CA_FILES.caCert} is not a CA certificate`);
  if (!caCert.checkPrivateKey(caKey)) throw invalid(`${CA_FILES.caKey} does not match ${CA_FILES.caCert}`);
  if (!proxyCert.checkPrivateKey(proxyKey)) throw invalid(`${CA_FILES.proxyKey} does not match ${CA_FILES.proxyCert}`);
  if (!proxyCert.checkIssued(caCert) || !proxyCert.verify(caCert.publicKey))
    throw invalid(`${CA_FILES.proxyCert} is not signed by ${CA_FILES.caCert}`);
  const cn = /^CN=(.*)$/m.exec(caCert.subject)?.[1];
  if (!cn || nameProblem('cluster', cn)) throw invalid(`${CA_FILES.caCert} has no usable cluster name (subject CN)`);
  return { dir, cluster: cn, caCertPem, caKeyPem, proxyCertPem, proxyKeyPem, ...p };
}

export interface SignOptions {
  /**
   * SubjectPublicKeyInfo PEM (`PUBLIC KEY`); a private key or certificate PEM also works (only its public
   * half is used).
   */
  publicKeyPem: string;
  user: string;
  roles: string[];
  ttlMs: number;
  bot?: { name: string; generation: number };
  /** An agent's host certificate: then `user` must be `agent:<name>` and `roles` `[system:agent]` (names.ts). */
  agent?: { name: string; generation: number };
  /** Trait name → values, as SAN URIs (claims.ts). */
  traits?: Record<string, string[]>;
  now?: number;
}

function checkClaims(opts: {
  user: string;
  roles: string[];
  bot?: { name: string; generation: number };
  agent?: { name: string; generation: number };
  traits?: Record<string, string[]>;
}): void {
  for (const [key, values] of Object.entries(opts.traits ?? {})) {
    if (!TRAIT_KEY.test(key))
      throw new AccessError('USAGE', `trait name ${JSON.stringify(key)} must be 1-64 letters, digits, _, . or -`);
    for (const v of values) {
      const problem = traitValueProblem(v);
      if (problem) throw new AccessError('USAGE', `trait ${key} value ${JSON.stringify(v)} ${problem}`);
    }
  }
  if (opts.agent) {
    const problem = nameProblem('agent', opts.agent.name);
    if (problem) throw new AccessError('USAGE', problem);
    if (opts.bot) throw new AccessError('USAGE', 'a certificate is for a bot or for an agent, not both');
    if (opts.user !== agentUserName(opts.agent.name) || opts.roles.length !== 1 || opts.roles[0] !== AGENT_ROLE)
      throw new AccessError(
        'USAGE',
        `an agent certificate names user ${agentUserName(opts.agent.name)} and role ${AGENT_ROLE} only`,
      );
    if (!isValidGeneration(opts.agent.generation))
      throw new AccessError('USAGE', `agent generation ${opts.agent.generation} must be a non-negative integer`);
    return;
  }
  const system = opts.roles.find(isSystemRole);
  if (system !== undefined)
    throw new AccessError('USAGE', `role ${JSON.stringify(system)} is reserved: only agent certificates carry it`);
  const problems = [nameProblem('user', opts.user), ...opts.roles.map((r) => nameProblem('role', r))].filter(Boolean);
  if (problems.length > 0) throw new AccessError('USAGE', problems[0]!);
  if (opts.roles.length === 0)
    throw new AccessError('USAGE', 'an identity needs at least one role', { hint: 'pass --roles R1,R2' });
  if (opts.bot) {
    const botProblem = nameProblem('bot', opts.bot.name);
    if (botProblem) throw new AccessError('USAGE', botProblem);
    if (!isValidGeneration(opts.bot.generation))
      throw new AccessError('USAGE', `bot generation ${opts.bot.generation} must be a non-negative integer`);
  }
}

export async function signCertificate(ca: CertificateAuthority, opts: SignOptions): Promise<string> {
  checkClaims(opts);
  checkIdentityTtl(opts.ttlMs);
  let spki: Buffer;
  try {
    spki = spkiDer(opts.publicKeyPem);
  } catch {
    throw new AccessError('USAGE', 'the public key to certify cannot be parsed');
  }
  const roles = [...new Set(opts.roles)];
  const now = opts.now ?? Date.now();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // keyEncipherment only means something for RSA key transport.
    new x509.KeyUsagesExtension(
      createPublicKey({ key: spki, format: 'der', type: 'spki' }).asymmetricKeyType === 'rsa'
        ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectKeyIdentifierExtension(keyIdentifierHex(spki)),
    new x509.AuthorityKeyIdentifierExtension(caKeyId(ca.caCertPem)),
  ];
  const sans: Array<{ type: 'url'; value: string }> = [];
  if (opts.bot) sans.push({ type: 'url', value: botUri(ca.cluster, opts.bot.name, opts.bot.generation) });
  else if (opts.agent) sans.push({ type: 'url', value: agentUri(ca.cluster, opts.agent.name, opts.agent.generation) });
  for (const [key, values] of Object.entries(opts.traits ?? {}))
    for (const v of new Set(values)) sans.push({ type: 'url', value: traitUri(ca.cluster, key, v) });
  if (sans.length) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [opts.user] }, ...roles.map((r) => ({ O: [r] }))],
    issuer: new x509.X509Certificate(ca.caCertPem).subjectName,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + opts.ttlMs),
    publicKey: toArrayBuffer(spki),
    signingKey: await caSigningKey(ca),
    signingAlgorithm: SIGNING,
    extensions,
  });
  return cert.toString('pem') + '\n';
}

export async function issueIdentity(
  ca: CertificateAuthority,
  opts: {
    user: string;
    roles: string[];
    ttlMs: number;
    keyType?: KeyType;
    bot?: { name: string; generation: number };
    agent?: { name: string; generation: number };
    traits?: Record<string, string[]>;
    now?: number;
  },
): Promise<string> {
  checkClaims(opts);
  checkIdentityTtl(opts.ttlMs);
  const { privateKeyPem, publicKeyPem } = await generateKeyPairPem(opts.keyType ?? 'ec');
  const certPem = await signCertificate(ca, {
    publicKeyPem,
    user: opts.user,
    roles: opts.roles,
    ttlMs: opts.ttlMs,
    bot: opts.bot,
    agent: opts.agent,
    traits: opts.traits,
    now: opts.now,
  });
  return formatIdentityFile({ keyPem: privateKeyPem, certPem, authorityLines: [], caPems: [ca.caCertPem] });
}

/** Mode 0600, atomically (temp file in the same directory, fsync, rename). */
export async function writeIdentityFile(path: string, text: string): Promise<void> {
  try {
    await writeFileAtomic(path, text, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `directory ${dirname(path)} does not exist`
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : (code ?? 'error');
    throw new AccessError('USAGE', `cannot write identity file ${path}: ${why}`, {
      hint: 'choose a path in a directory you can write to',
    });
  }
}

export { caPin } from './pin.js';
