/** Who is on the other end of a TLS connection, from its verified client certificate. */
import type { TLSSocket } from 'node:tls';
import { AccessError } from '../errors.js';
import { claimsFromCertificate } from './claims.js';

export interface Peer {
  user: string;
  roles: string[];
  bot?: { name: string; generation: number };
  /**
   * Set only for an agent's host certificate (claims.ts): then `user` is
   * `agent:<name>`, `roles` is `[system:agent]`, and `bot` is never set.
   */
  agent?: { name: string; generation: number };
  /** Traits from the certificate (role templates `{{internal.k}}`); absent when none. */
  traits?: Record<string, string[]>;
  notAfter: Date;
  serial: string;
  fingerprint256: string;
  remoteAddr: string;
}

/**
 * The verified identity of a connection. Throws IDENTITY_EXPIRED or
 * IDENTITY_REJECTED (no certificate, not issued by this cluster's CA).
 */
export function peerFromSocket(socket: TLSSocket): Peer {
  const remoteAddr = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  const cert = socket.getPeerX509Certificate();
  if (!cert) throw new AccessError('IDENTITY_REJECTED', 'no client certificate was presented');
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    if (reason === 'CERT_HAS_EXPIRED')
      throw new AccessError(
        'IDENTITY_EXPIRED',
        `the client certificate expired at ${new Date(cert.validTo).toISOString()}`,
      );
    if (reason === 'CERT_NOT_YET_VALID')
      throw new AccessError(
        'IDENTITY_NOT_YET_VALID',
        `the client certificate is not valid before ${new Date(cert.validFrom).toISOString()}`,
      );
    throw new AccessError('IDENTITY_REJECTED', `the client certificate is not trusted by this proxy (${reason})`);
  }
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= Date.now())
    throw new AccessError('IDENTITY_EXPIRED', `the client certificate expired at ${notAfter.toISOString()}`);
  let claims;
  try {
    claims = claimsFromCertificate(cert);
  } catch (err) {
    throw new AccessError(
      'IDENTITY_REJECTED',
      `the client certificate carries no usable identity: ${(err as Error).message}`,
    );
  }
  return {
    user: claims.user,
    roles: claims.roles,
    bot: claims.bot,
    ...(claims.agent ? { agent: claims.agent } : {}),
    ...(claims.traits ? { traits: claims.traits } : {}),
    notAfter,
    serial: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    remoteAddr,
  };
}
