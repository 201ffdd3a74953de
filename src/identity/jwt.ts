/**
 * Signed identity assertions for HTTP upstreams (docs/configuration.md,
 * `identity_jwt`), as Teleport's `Teleport-Jwt-Assertion`: a short-lived
 * ES256 JWT per request, signed with the proxy's key, whose public half the
 * proxy publishes as a JWKS (`GET /.well-known/jwks.json`). node:crypto only.
 */
import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, type KeyObject } from 'node:crypto';

export const JWT_HEADER = 'MCP-Access-Jwt-Assertion';
export const JWKS_PATH = '/.well-known/jwks.json';
/** Lifetime of one assertion (never beyond the client certificate's). */
export const JWT_TTL_MS = 60_000;

export interface AssertionClaims {
  /** The identity's user. */
  sub: string;
  roles: string[];
  traits: Record<string, string[]>;
  /** The enrolled server's name. */
  aud: string;
  /** The proxy session. */
  sid: string;
  bot?: string;
  /** The certificate's expiry: the assertion never outlives it. */
  notAfter: Date;
}

export interface JwtSigner {
  readonly kid: string;
  sign(claims: AssertionClaims, now?: number): string;
  jwks(): { keys: Array<Record<string, string>> };
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export function createJwtSigner(privateKeyPem: string, issuer: string): JwtSigner {
  const key: KeyObject = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error('identity assertions need the proxy key to be EC P-256');
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>;
  // RFC 7638 thumbprint as the key id.
  const kid = b64url(
    createHash('sha256')
      .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
      .digest(),
  );
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }));
  return {
    kid,
    sign(c, now = Date.now()) {
      const iat = Math.floor(now / 1000);
      const exp = Math.min(iat + JWT_TTL_MS / 1000, Math.floor(c.notAfter.getTime() / 1000));
      const payload = b64url(
        JSON.stringify({
          iss: issuer,
          sub: c.sub,
          aud: c.aud,
          iat,
          nbf: iat - 5,
          exp,
          jti: randomUUID(),
          sid: c.sid,
          roles: c.roles,
          traits: c.traits,
          ...(c.bot ? { bot: c.bot } : {}),
        }),
      );
      const input = `${header}.${payload}`;
      const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      return `${input}.${b64url(sig)}`;
    },
    jwks() {
      return { keys: [{ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y!, kid, use: 'sig', alg: 'ES256' }] };
    },
  };
}
