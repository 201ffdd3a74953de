/** CA pins: node:crypto only, so light commands can compute them. */
import { createHash } from 'node:crypto';
import { AccessError } from '../errors.js';
import { spkiDer } from './keys.js';

/** `sha256:<hex>` of the CA's DER SubjectPublicKeyInfo (like Teleport's ca_pin). */
export function caPin(caCertPem: string): string {
  return `sha256:${createHash('sha256').update(spkiDer(caCertPem)).digest('hex')}`;
}

/** A pin as typed (`sha256:` + 64 hex digits, any case), lower-cased; USAGE otherwise. */
export function normalisePin(pin: string, hint = 'copy it from the output of `mcp-access bot add`'): string {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(pin.trim());
  if (!m) throw new AccessError('USAGE', `--ca-pin "${pin}" must be sha256: followed by 64 hex digits`, { hint });
  return `sha256:${m[1]!.toLowerCase()}`;
}
