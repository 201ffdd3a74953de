/** The certificate encoding of user, roles, cluster and bot, read back with node:crypto. */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { issueIdentity, signCertificate } from '../../src/identity/ca.js';
import { claimsFromCertificate } from '../../src/identity/claims.js';
import { parseIdentityFile } from '../../src/identity/identity-file.js';
import { generateKeyPairPem } from '../../src/identity/keys.js';
import { webcrypto, x509 } from '../../src/identity/x509.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;

beforeAll(async () => {
  pki = await makeTestPki(await mkdtemp(join(tmpdir(), 'mcp-access-claims-')), { cluster: 'prod.example' });
});

function certOf(text: string): Promise<X509Certificate> {
  return Promise.resolve(new X509Certificate(parseIdentityFile(text, 'x').certPem));
}

describe('certificate claims', () => {
  it('CN is the user, one O per role, the issuer CN is the cluster', async () => {
    const cert = await certOf(
      await issueIdentity(pki.ca, {
        user: 'alice@example.com',
        roles: ['reader', 'mcp:writer', 'ops-1.x'],
        ttlMs: 60_000,
      }),
    );
    // How node prints a subject with several O values: one line each, in order.
    expect(cert.subject).toBe('CN=alice@example.com\nO=reader\nO=mcp:writer\nO=ops-1.x');
    expect(cert.issuer).toBe('CN=prod.example\nO=mcp-access');
    expect(claimsFromCertificate(cert)).toEqual({
      user: 'alice@example.com',
      roles: ['reader', 'mcp:writer', 'ops-1.x'],
      cluster: 'prod.example',
    });
  });

  it('a repeated role is written once', async () => {
    const cert = await certOf(await issueIdentity(pki.ca, { user: 'bob', roles: ['reader', 'reader'], ttlMs: 60_000 }));
    expect(claimsFromCertificate(cert).roles).toEqual(['reader']);
  });

  it('a bot identity carries its name and generation in a SAN URI', async () => {
    const cert = await certOf(
      await issueIdentity(pki.ca, {
        user: 'bot-agent',
        roles: ['reader'],
        ttlMs: 60_000,
        bot: { name: 'agent', generation: 7 },
      }),
    );
    expect(cert.subjectAltName).toBe('URI:mcp-access://prod.example/bot/agent?generation=7');
    expect(claimsFromCertificate(cert)).toEqual({
      user: 'bot-agent',
      roles: ['reader'],
      cluster: 'prod.example',
      bot: { name: 'agent', generation: 7 },
    });
  });

  it('signCertificate certifies a public key it is given (the private key stays with the caller)', async () => {
    const { publicKeyPem } = await generateKeyPairPem('ed25519');
    const now = Date.now();
    const cert = new X509Certificate(
      await signCertificate(pki.ca, {
        publicKeyPem,
        user: 'bot-b',
        roles: ['r'],
        ttlMs: 10 * 60_000,
        bot: { name: 'b', generation: 0 },
        now,
      }),
    );
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(publicKeyPem);
    expect(claimsFromCertificate(cert)).toEqual({
      user: 'bot-b',
      roles: ['r'],
      cluster: 'prod.example',
      bot: { name: 'b', generation: 0 },
    });
    // Backdated one minute for clock skew; expires after the TTL (certificates hold whole seconds).
    expect(Math.abs(new Date(cert.validFrom).getTime() - (now - 60_000))).toBeLessThan(1000);
    expect(Math.abs(new Date(cert.validTo).getTime() - (now + 10 * 60_000))).toBeLessThan(1000);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // extended key usage: clientAuth only
    expect(cert.ca).toBe(false);
  });

  it('serial numbers are random and positive', async () => {
    const { publicKeyPem } = await generateKeyPairPem('ec');
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const cert = new X509Certificate(
        await signCertificate(pki.ca, { publicKeyPem, user: 'u', roles: ['r'], ttlMs: 60_000 }),
      );
      expect(cert.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
      serials.add(cert.serialNumber);
    }
    expect(serials.size).toBe(5);
  });

  it.each([
    ['user', { user: 'alice smith', roles: ['r'] }, /user name "alice smith" is not allowed/],
    ['user with a newline', { user: 'a\nO=admin', roles: ['r'] }, /user name "a\\nO=admin" is not allowed/],
    ['role with a comma', { user: 'a', roles: ['r,w'] }, /role name "r,w" is not allowed/],
    ['role with +', { user: 'a', roles: ['a+b'] }, /role name "a\+b" is not allowed/],
    ['no roles', { user: 'a', roles: [] }, /at least one role/],
  ])('refuses to issue an unsafe %s', async (_what, claims, message) => {
    const err = await issueIdentity(pki.ca, { ...claims, ttlMs: 60_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessError);
    expect((err as AccessError).code).toBe('USAGE');
    expect((err as AccessError).message).toMatch(message);
  });

  it('refuses a bot name or generation it could not read back', async () => {
    const { publicKeyPem } = await generateKeyPairPem('ec');
    await expect(
      signCertificate(pki.ca, {
        publicKeyPem,
        user: 'u',
        roles: ['r'],
        ttlMs: 60_000,
        bot: { name: 'a/b', generation: 1 },
      }),
    ).rejects.toThrow(/bot name "a\/b" is not allowed/);
    await expect(
      signCertificate(pki.ca, {
        publicKeyPem,
        user: 'u',
        roles: ['r'],
        ttlMs: 60_000,
        bot: { name: 'ab', generation: -1 },
      }),
    ).rejects.toThrow(/generation -1/);
  });

  it('a certificate from elsewhere with escaped characters is refused, not misread', async () => {
    // Made directly (not through our issuer) to see how node escapes: a CN
    // holding "\nO=admin" must not turn into an extra role.
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: [{ CN: ['a\nO=admin'] }, { O: ['reader'] }],
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const nodeCert = new X509Certificate(cert.toString('pem'));
    expect(nodeCert.subject).toBe('CN=a\\0AO=admin\nO=reader');
    expect(() => claimsFromCertificate(nodeCert)).toThrow(
      /certificate user name "a\\\\0AO=admin" contains characters mcp-access never issues/,
    );
  });

  it('an identity file made here reads back the same claims the CA wrote', async () => {
    const path = await pki.issue('carol', ['reader', 'writer'], 60_000, { keyType: 'rsa' });
    const cert = await certOf(await readFile(path, 'utf8'));
    expect(claimsFromCertificate(cert)).toEqual({
      user: 'carol',
      roles: ['reader', 'writer'],
      cluster: 'prod.example',
    });
  });
});
