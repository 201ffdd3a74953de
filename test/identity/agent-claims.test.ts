/**
 * An agent's host certificate is recognisably an agent's, and nothing else
 * is: its SAN URI, its CN `agent:NAME` and its one role `system:agent` must
 * all agree. Certificates are forged here with the real CA key (what a bug
 * in an issuer, or a CA used by another tool, could produce) to check that
 * the reading side refuses every mixture rather than taking a user or bot
 * for an agent, or an agent for a user.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { issueIdentity, randomSerial, signCertificate } from '../../src/identity/ca.js';
import { claimsFromCertificate } from '../../src/identity/claims.js';
import { parseIdentityFile } from '../../src/identity/identity-file.js';
import { generateKeyPairPem } from '../../src/identity/keys.js';
import { AGENT_ROLE, agentUserName, isSystemRole } from '../../src/identity/names.js';
import { webcrypto, x509 } from '../../src/identity/x509.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let publicKeyPem: string;

beforeAll(async () => {
  pki = await makeTestPki(await mkdtemp(join(tmpdir(), 'mcp-access-agent-claims-')), { cluster: 'prod' });
  publicKeyPem = (await generateKeyPairPem('ec')).publicKeyPem;
});

const agentCert = async (name: string, generation: number): Promise<X509Certificate> =>
  new X509Certificate(
    await signCertificate(pki.ca, {
      publicKeyPem,
      user: agentUserName(name),
      roles: [AGENT_ROLE],
      ttlMs: 60_000,
      agent: { name, generation },
    }),
  );

/** A certificate signed by the cluster's real CA key with whatever subject and URIs it is given. */
async function forge(cn: string, roles: string[], uris: string[]): Promise<X509Certificate> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(pki.ca.caKeyPem).export({ type: 'pkcs8', format: 'der' }),
    alg,
    false,
    ['sign'],
  );
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [cn] }, ...roles.map((r) => ({ O: [r] }))],
    issuer: new x509.X509Certificate(pki.ca.caCertPem).subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 60_000),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: uris.length
      ? [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))]
      : [],
  });
  const node = new X509Certificate(cert.toString('pem'));
  expect(node.verify(new X509Certificate(pki.ca.caCertPem).publicKey), 'forged with the real CA key').toBe(true);
  return node;
}

describe('agent host certificates (claims)', () => {
  it('carry the agent URI, CN agent:NAME and the one role system:agent; read back as agent, never as bot', async () => {
    const cert = await agentCert('files-eu', 3);
    expect(cert.subject).toBe('CN=agent:files-eu\nO=system:agent');
    expect(cert.subjectAltName).toBe('URI:mcp-access://prod/agent/files-eu?generation=3');
    expect(claimsFromCertificate(cert)).toEqual({
      user: 'agent:files-eu',
      roles: ['system:agent'],
      cluster: 'prod',
      agent: { name: 'files-eu', generation: 3 },
    });
  });

  it('a user, or a bot, named like an agent is still a user or a bot', async () => {
    const user = new X509Certificate(
      parseIdentityFile(await issueIdentity(pki.ca, { user: 'agent-files', roles: ['reader'], ttlMs: 60_000 }), 'x')
        .certPem,
    );
    expect(claimsFromCertificate(user)).toEqual({ user: 'agent-files', roles: ['reader'], cluster: 'prod' });
    const bot = new X509Certificate(
      parseIdentityFile(
        await issueIdentity(pki.ca, {
          user: 'bot-files-eu',
          roles: ['reader'],
          ttlMs: 60_000,
          bot: { name: 'files-eu', generation: 1 },
        }),
        'x',
      ).certPem,
    );
    const claims = claimsFromCertificate(bot);
    expect(claims.bot).toEqual({ name: 'files-eu', generation: 1 });
    expect(claims.agent).toBeUndefined();
  });

  it('the issuer refuses what would blur the line: system roles for users and bots, agent claims that do not match', async () => {
    await expect(issueIdentity(pki.ca, { user: 'mallory', roles: ['system:agent'], ttlMs: 60_000 })).rejects.toThrow(
      /role "system:agent" is reserved/,
    );
    await expect(issueIdentity(pki.ca, { user: 'mallory', roles: ['SYSTEM:Agent'], ttlMs: 60_000 })).rejects.toThrow(
      /reserved/,
    );
    await expect(
      issueIdentity(pki.ca, {
        user: 'bot-x',
        roles: ['reader', 'system:admin'],
        ttlMs: 60_000,
        bot: { name: 'x', generation: 1 },
      }),
    ).rejects.toThrow(/reserved/);
    // A user name cannot take an agent's form.
    await expect(issueIdentity(pki.ca, { user: 'agent:files', roles: ['reader'], ttlMs: 60_000 })).rejects.toThrow(
      /user name "agent:files" is not allowed/,
    );
    // An agent certificate cannot carry a user's roles, another CN, or a bot claim as well.
    for (const bad of [
      { user: 'agent:files', roles: ['reader'] },
      { user: 'agent:files', roles: [AGENT_ROLE, 'reader'] },
      { user: 'alice', roles: [AGENT_ROLE] },
      { user: 'agent:other', roles: [AGENT_ROLE] },
    ]) {
      await expect(
        signCertificate(pki.ca, { publicKeyPem, ...bad, ttlMs: 60_000, agent: { name: 'files', generation: 1 } }),
      ).rejects.toThrow(/agent certificate names user agent:files and role system:agent only/);
    }
    await expect(
      signCertificate(pki.ca, {
        publicKeyPem,
        user: 'agent:files',
        roles: [AGENT_ROLE],
        ttlMs: 60_000,
        agent: { name: 'files', generation: 1 },
        bot: { name: 'files', generation: 1 },
      }),
    ).rejects.toThrow(/bot or for an agent, not both/);
    expect(isSystemRole('System:anything')).toBe(true);
    expect(isSystemRole('systems')).toBe(false);
  });

  describe('the reader refuses every mixture (forged with the real CA key)', () => {
    const cases: Array<[string, string, string[], string[], RegExp]> = [
      ['a user holding the agent role', 'mallory', [AGENT_ROLE], [], /system role/],
      ['a user holding another system role', 'mallory', ['reader', 'system:proxy'], [], /system role/],
      ['a bot holding the agent role', 'bot-x', [AGENT_ROLE], ['mcp-access://prod/bot/x?generation=1'], /system role/],
      ['an agent CN without the agent URI', 'agent:files', [AGENT_ROLE], [], /carries no agent URI/],
      [
        'an agent CN with a bot URI',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://prod/bot/files?generation=1'],
        /no agent URI|system role/,
      ],
      [
        'an agent URI on a user subject',
        'alice',
        ['reader'],
        ['mcp-access://prod/agent/files?generation=1'],
        /subject is "alice"/,
      ],
      [
        'an agent URI with user roles',
        'agent:files',
        ['reader'],
        ['mcp-access://prod/agent/files?generation=1'],
        /exactly the role system:agent/,
      ],
      [
        'an agent URI with the agent role and a user role',
        'agent:files',
        [AGENT_ROLE, 'admin'],
        ['mcp-access://prod/agent/files?generation=1'],
        /exactly the role system:agent/,
      ],
      [
        'an agent URI naming another agent than the CN',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://prod/agent/db?generation=1'],
        /names agent "db"/,
      ],
      [
        'both a bot and an agent URI',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://prod/agent/files?generation=1', 'mcp-access://prod/bot/files?generation=1'],
        /more than one/,
      ],
      [
        'two agent URIs',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://prod/agent/files?generation=1', 'mcp-access://prod/agent/files?generation=9'],
        /more than one/,
      ],
      [
        'an agent URI of another cluster',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://staging/agent/files?generation=1'],
        /names cluster "staging"/,
      ],
      [
        'an agent URI in another case',
        'agent:files',
        [AGENT_ROLE],
        ['MCP-ACCESS://prod/agent/files?generation=1'],
        /malformed/,
      ],
      [
        'an agent URI with extra parts',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://prod/agent/files?generation=1&generation=2'],
        /malformed/,
      ],
      [
        'a negative-looking generation',
        'agent:files',
        [AGENT_ROLE],
        ['mcp-access://prod/agent/files?generation=-1'],
        /malformed/,
      ],
      [
        'an agent name outside the rules',
        'agent:fi%6Ces',
        [AGENT_ROLE],
        ['mcp-access://prod/agent/fi%6Ces?generation=1'],
        /contains characters|malformed/,
      ],
    ];
    for (const [what, cn, roles, uris, error] of cases) {
      it(what, async () => {
        const cert = await forge(cn, roles, uris);
        expect(() => claimsFromCertificate(cert)).toThrow(error);
      });
    }
  });

  it('a certificate with an unrelated URI is read as before (only mcp-access URIs count)', async () => {
    const cert = await forge('alice', ['reader'], ['spiffe://prod/agent/files']);
    expect(claimsFromCertificate(cert)).toEqual({ user: 'alice', roles: ['reader'], cluster: 'prod' });
  });
});
