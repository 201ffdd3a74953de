/**
 * Certificate requests (PKCS#10). The bot makes its key pair locally and sends
 * only a request signed with it; the proxy checks that signature (proof that
 * the sender holds the private key) and certifies the public key in it.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { AccessError } from '../errors.js';
import { webcrypto, x509 } from './x509.js';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A fresh EC P-256 key (PKCS#8 PEM, the form identity files use), for a bot or an agent. */
export async function generateMachineKey(): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}

export const generateBotKey = generateMachineKey;

/** A certificate request for `privateKeyPem` (EC P-256), subject CN = `commonName`. */
export async function createCsr(privateKeyPem: string, commonName: string): Promise<string> {
  const priv = createPrivateKey(privateKeyPem);
  if (priv.asymmetricKeyType !== 'ec' || priv.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new AccessError('INTERNAL', 'machine keys are EC P-256');
  }
  const privateKey = await webcrypto.subtle.importKey(
    'pkcs8',
    priv.export({ type: 'pkcs8', format: 'der' }),
    EC_P256,
    false,
    ['sign'],
  );
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    createPublicKey(priv).export({ type: 'spki', format: 'der' }),
    EC_P256,
    true,
    ['verify'],
  );
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }],
    keys: { privateKey, publicKey },
    signingAlgorithm: SIGNING,
  });
  return `${csr.toString('pem')}\n`;
}

export interface CheckedCsr {
  /** SubjectPublicKeyInfo PEM of the key to certify. */
  publicKeyPem: string;
  /** SHA-256 (hex) of the DER SubjectPublicKeyInfo: identifies the key in bot records. */
  keySha256: string;
}

/** Parse a request and verify its self-signature. Throws USAGE with a reason. */
export async function checkCsr(pem: unknown): Promise<CheckedCsr> {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw new AccessError('USAGE', 'the request carries no PEM certificate request (csr)');
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    throw new AccessError('USAGE', 'the certificate request cannot be parsed');
  }
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new AccessError('USAGE', 'the certificate request is not signed by the key it names');
  const spki = Buffer.from(csr.publicKey.rawData);
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const weak = keyWeakness(key);
  if (weak)
    throw new AccessError('USAGE', `the certificate request's key cannot be certified: ${weak}`, {
      hint: 'use EC P-256 (what `mcp-access bot start` makes), RSA of 2048 bits or more, or Ed25519',
    });
  return {
    publicKeyPem: key.export({ type: 'spki', format: 'pem' }) as string,
    keySha256: createHash('sha256').update(spki).digest('hex'),
  };
}

/** Curves with at least 128-bit security that TLS peers accept. */
const STRONG_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
export const MIN_RSA_BITS = 2048;

/** Why a public key is too weak (or of a kind) to certify; undefined when it is fine. */
export function keyWeakness(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'ed25519') return undefined;
  if (type === 'ec') {
    return STRONG_CURVES.has(d.namedCurve ?? '')
      ? undefined
      : `EC curve ${d.namedCurve ?? 'unknown'} is not accepted (P-256, P-384 or P-521)`;
  }
  if (type === 'rsa') {
    if ((d.modulusLength ?? 0) < MIN_RSA_BITS)
      return `RSA keys need at least ${MIN_RSA_BITS} bits (this one has ${d.modulusLength ?? 0})`;
    const e = d.publicExponent ?? 0n;
    if (e < 65537n || e % 2n === 0n) return `RSA public exponent ${e} is not accepted (65537 or a larger odd number)`;
    return undefined;
  }
  return `${type ?? 'unknown'} keys cannot be certified (EC, RSA or Ed25519)`;
}
