/** CA pins: node:crypto only, so light commands can compute them. */
import { createHash } from 'node:crypto';
import { spkiDer } from './keys.js';

/** `sha256:<hex>` of the CA's DER SubjectPublicKeyInfo (like Teleport's ca_pin). */
export function caPin(caCertPem: string): string {
  return `sha256:${createHash('sha256').update(spkiDer(caCertPem)).digest('hex')}`;
}
