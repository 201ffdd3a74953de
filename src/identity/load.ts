/**
 * Loading an identity file: read, parse, validate fully. Every failure is a
 * distinct AccessError that names the file (never key material).
 *
 * node:crypto + node:fs only — measured on `connect`'s start-up path.
 *
 * A renewing writer that truncates and rewrites in place can be caught
 * mid-write; a reader then sees an empty file, a torn PEM block, or a file
 * that ends early (no certificate / no CA yet). Those outcomes are retried a
 * couple of times before they are reported.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessError, type ErrorCode } from '../errors.js';
import { formatDuration } from '../util/duration.js';
import { claimsFromCertificate } from './claims.js';
import { parseIdentityFile, type IdentityFileParts } from './identity-file.js';

export interface Identity {
  path: string;
  keyPem: string;
  certPem: string;
  caPems: string[];
  user: string;
  roles: string[];
  cluster: string;
  bot?: { name: string; generation: number };
  /** An agent's host certificate (claims.ts). */
  agent?: { name: string; generation: number };
  /** Traits for role templates (claims.ts); absent when the certificate carries none. */
  traits?: Record<string, string[]>;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  keyType: 'rsa' | 'ec' | 'ed25519';
  /** The certificate's issuer as node prints it (`CN=<cluster>\nO=mcp-access`). */
  issuer: string;
  /** SHA-256 fingerprints of the CA certificates, in file order. */
  caFingerprints256: string[];
  sshCertLine?: string;
  authorityLines: string[];
}

export interface LoadIdentityOptions {
  /** Clock for validity checks (ms since epoch); default Date.now(). */
  now?: number;
  /** Where the permission warning goes; default one line on stderr. */
  warn?: (msg: string) => void;
  /** Re-reads after an empty/torn/short file (a writer may be mid-rewrite). Default 2. */
  retries?: number;
  /** Pause before each re-read, in ms. Default 100. */
  retryDelayMs?: number;
  /** Called before each re-read (tests use it to finish a "writer"'s work). */
  onRetry?: (err: AccessError, attempt: number) => void | Promise<void>;
}

/** Outcomes a mid-rewrite read produces: worth another look. */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'IDENTITY_EMPTY',
  'IDENTITY_TORN',
  'IDENTITY_NO_CERT',
  'IDENTITY_NO_CA',
]);

export type IdentityStatus = 'valid' | 'not-yet-valid' | 'expired';

/** A structurally sound identity plus what is wrong with it in time or trust. */
export interface ExaminedIdentity {
  identity: Identity;
  status: IdentityStatus;
  /** True when some CA in the file signed the certificate. */
  trusted: boolean;
  /** ms until notAfter (negative once expired). */
  msLeft: number;
}

function defaultWarn(msg: string): void {
  process.stderr.write(`mcp-access: warning: ${msg}\n`);
}

async function readIdentityText(path: string, warn: (msg: string) => void): Promise<string> {
  let mode: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw isADirectory(path);
    mode = st.mode;
  } catch (err) {
    throw fsError(err, path);
  }
  // Group/other access to a private key is worth a warning, not a refusal:
  // some deployments share the file with a group on purpose.
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    warn(`identity file ${path} is accessible by group or others (mode ${octal}); run: chmod 600 ${path}`);
  }
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw fsError(err, path);
  }
}

/** `-i` at a directory, most often the bot's --destination: the file in it is `identity`. */
function isADirectory(path: string): AccessError {
  const file = `${path.replace(/[\\/]+$/, '')}/identity`;
  return new AccessError('IDENTITY_UNREADABLE', `identity file ${path} is a directory`, {
    hint: `-i takes the identity file itself; for a bot's --destination directory use ${file}`,
  });
}

function fsError(err: unknown, path: string): AccessError {
  if (err instanceof AccessError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return new AccessError('IDENTITY_MISSING', `identity file ${path} does not exist`);
  if (code === 'ENOTDIR')
    return new AccessError('IDENTITY_MISSING', `identity file ${path} does not exist (a parent is not a directory)`);
  if (code === 'EISDIR') return isADirectory(path);
  if (code === 'EACCES' || code === 'EPERM')
    return new AccessError('IDENTITY_UNREADABLE', `identity file ${path} cannot be read (permission denied)`);
  return new AccessError(
    'IDENTITY_UNREADABLE',
    `identity file ${path} cannot be read (${code ?? (err as Error)?.message ?? 'unknown error'})`,
    { cause: err },
  );
}

function parseKey(keyPem: string, path: string): { key: KeyObject; keyType: Identity['keyType'] } {
  if (keyPem.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----')) {
    throw new AccessError(
      'IDENTITY_BAD_KEY',
      `identity file ${path}: the private key is encrypted, which is not supported`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new AccessError('IDENTITY_BAD_KEY', `identity file ${path}: the private key cannot be parsed`);
  }
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ec' && type !== 'ed25519') {
    throw new AccessError(
      'IDENTITY_BAD_KEY',
      `identity file ${path}: ${type ?? 'unknown'} keys are not supported (use RSA, EC or Ed25519)`,
    );
  }
  return { key, keyType: type };
}

function parseCert(pem: string, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new AccessError('IDENTITY_BAD_CERT', `identity file ${path}: the ${what} cannot be parsed`);
  }
}

/** node prints validity as e.g. "Nov 21 10:00:00 2026 GMT". */
function certDate(text: string): Date {
  return new Date(text);
}

/** Parse and check structure, key/cert match and claims; report time and trust without failing on them. */
export function examineIdentityText(text: string, path: string, opts: { now?: number } = {}): ExaminedIdentity {
  const parts: IdentityFileParts = parseIdentityFile(text, path);
  const { key, keyType } = parseKey(parts.keyPem, path);
  const cert = parseCert(parts.certPem, path, 'certificate');
  const cas = parts.caPems.map((pem, i) => parseCert(pem, path, `CA certificate #${i + 1}`));
  if (!cert.checkPrivateKey(key)) {
    throw new AccessError(
      'IDENTITY_KEY_MISMATCH',
      `identity file ${path}: the private key does not match the certificate`,
    );
  }
  let claims;
  try {
    claims = claimsFromCertificate(cert);
  } catch (err) {
    if (err instanceof AccessError) throw new AccessError(err.code, `identity file ${path}: ${err.message}`);
    throw err;
  }
  const notBefore = certDate(cert.validFrom);
  const notAfter = certDate(cert.validTo);
  const now = opts.now ?? Date.now();
  const status: IdentityStatus =
    now < notBefore.getTime() ? 'not-yet-valid' : now > notAfter.getTime() ? 'expired' : 'valid';
  const trusted = cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  const identity: Identity = {
    path,
    keyPem: parts.keyPem,
    certPem: parts.certPem,
    caPems: parts.caPems,
    ...claims,
    serial: cert.serialNumber,
    notBefore,
    notAfter,
    fingerprint256: cert.fingerprint256,
    keyType,
    issuer: cert.issuer,
    caFingerprints256: cas.map((ca) => ca.fingerprint256),
    sshCertLine: parts.sshCertLine,
    authorityLines: parts.authorityLines,
  };
  if (identity.bot === undefined) delete identity.bot;
  if (identity.agent === undefined) delete identity.agent;
  if (identity.sshCertLine === undefined) delete identity.sshCertLine;
  return { identity, status, trusted, msLeft: notAfter.getTime() - now };
}

/** Throw the error for an identity that parsed but is out of date or untrusted. */
export function assertUsable(examined: ExaminedIdentity, now = Date.now()): Identity {
  const { identity, status, trusted } = examined;
  if (status === 'not-yet-valid') {
    throw new AccessError(
      'IDENTITY_NOT_YET_VALID',
      `identity file ${identity.path} is not valid until ${identity.notBefore.toISOString()} (in ${formatDuration(identity.notBefore.getTime() - now)})`,
    );
  }
  if (status === 'expired') {
    throw new AccessError(
      'IDENTITY_EXPIRED',
      `identity file ${identity.path} expired ${formatDuration(now - identity.notAfter.getTime())} ago at ${identity.notAfter.toISOString()}`,
      {
        detail: { notAfter: identity.notAfter.toISOString() },
      },
    );
  }
  if (!trusted) {
    throw new AccessError(
      'IDENTITY_UNTRUSTED',
      `identity file ${identity.path}: its certificate (issued by ${identity.issuer.replace(/\n/g, ', ')}) is not signed by any of the ${identity.caPems.length} CA certificate(s) in the file`,
    );
  }
  return identity;
}

/** Read, retrying the states a mid-rewrite file is in, and examine. */
export async function examineIdentity(path: string, opts: LoadIdentityOptions = {}): Promise<ExaminedIdentity> {
  const warn = opts.warn ?? defaultWarn;
  const retries = opts.retries ?? 2;
  let warned = false;
  for (let attempt = 0; ; attempt++) {
    try {
      const text = await readIdentityText(path, warned ? () => {} : warn);
      warned = true;
      return examineIdentityText(text, path, { now: opts.now });
    } catch (err) {
      if (!(err instanceof AccessError) || !TRANSIENT.has(err.code) || attempt >= retries) throw err;
      await opts.onRetry?.(err, attempt + 1);
      await sleep(opts.retryDelayMs ?? 100);
    }
  }
}

export async function loadIdentity(path: string, opts: LoadIdentityOptions = {}): Promise<Identity> {
  const now = opts.now ?? Date.now();
  return assertUsable(await examineIdentity(path, { ...opts, now }), now);
}
