/** Key pairs for identities, in the PEM forms an identity file uses. */
import { generateKeyPair, createHash, createPublicKey } from 'node:crypto';
import { promisify } from 'node:util';

export type KeyType = 'ec' | 'rsa' | 'ed25519';
export const KEY_TYPES: readonly KeyType[] = ['ec', 'rsa', 'ed25519'];

const generate = promisify(generateKeyPair);

export interface KeyPairPem {
  /** RSA: PKCS#1 `RSA PRIVATE KEY` (as Teleport writes it); EC/Ed25519: PKCS#8 `PRIVATE KEY`. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo `PUBLIC KEY`. */
  publicKeyPem: string;
}

export async function generateKeyPairPem(type: KeyType): Promise<KeyPairPem> {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  switch (type) {
    case 'rsa': {
      const k = await generate('rsa', {
        modulusLength: 2048,
        publicKeyEncoding,
        privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      });
      return { privateKeyPem: k.privateKey, publicKeyPem: k.publicKey };
    }
    case 'ec': {
      const k = await generate('ec', {
        namedCurve: 'prime256v1',
        publicKeyEncoding,
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
      return { privateKeyPem: k.privateKey, publicKeyPem: k.publicKey };
    }
    case 'ed25519': {
      const k = await generate('ed25519', { publicKeyEncoding, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
      return { privateKeyPem: k.privateKey, publicKeyPem: k.publicKey };
    }
  }
}

/** DER SubjectPublicKeyInfo of a public key, private key or certificate's key PEM. */
export function spkiDer(pem: string): Buffer {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' });
}

/**
 * A key identifier: the leftmost 160 bits of SHA-256 over the DER SubjectPublicKeyInfo (unique per key is all
 * that matters).
 */
export function keyIdentifierHex(spki: Buffer): string {
  return createHash('sha256').update(spki).digest('hex').slice(0, 40);
}
