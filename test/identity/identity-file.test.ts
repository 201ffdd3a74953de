/** The identity file's structure: block order, ignored lines, torn blocks. */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { formatIdentityFile, parseIdentityFile } from '../../src/identity/identity-file.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let text: string;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-access-idfile-'));
  pki = await makeTestPki(dir);
  text = await readFile(await pki.issue('alice', ['reader'], 3_600_000), 'utf8');
});

type Parts = ReturnType<typeof parseIdentityFile>;

function parseError(input: string): AccessError {
  try {
    parseIdentityFile(input, '/some/where/alice.identity');
  } catch (err) {
    expect(err).toBeInstanceOf(AccessError);
    return err as AccessError;
  }
  throw new Error('expected parseIdentityFile to throw');
}

// A real-looking OpenSSH user certificate line. mcp-access ignores its
// content, so a syntactically plausible line is enough to test preservation.
const SSH_LINE =
  'ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIGZha2Vub25jZWZha2Vub25jZWZha2Vub25jZQ== alice';
const AUTHORITY_LINES = [
  '@cert-authority *.demo.example.com,demo ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl type=host',
  '@cert-authority * ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 type=user',
];

describe('parseIdentityFile', () => {
  it('reads key, certificate and CA blocks in order', () => {
    const parts = parseIdentityFile(text, 'a.identity');
    expect(parts.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(parts.certPem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(parts.caPems).toEqual([pki.ca.caCertPem]);
    expect(parts.sshCertLine).toBeUndefined();
    expect(parts.authorityLines).toEqual([]);
  });

  it('round-trips a file with an OpenSSH certificate line and @cert-authority lines', () => {
    const parts = parseIdentityFile(text, 'a.identity');
    const withSsh = formatIdentityFile({ ...parts, sshCertLine: SSH_LINE, authorityLines: AUTHORITY_LINES });
    // The layout Teleport writes: key, SSH line, cert, authority lines, CAs.
    const lines = withSsh.split('\n');
    const keyEnd = lines.indexOf('-----END PRIVATE KEY-----');
    expect(lines[keyEnd + 1]).toBe(SSH_LINE);
    expect(lines[keyEnd + 2]).toBe('-----BEGIN CERTIFICATE-----');
    const certEnd = lines.indexOf('-----END CERTIFICATE-----');
    expect(lines.slice(certEnd + 1, certEnd + 3)).toEqual(AUTHORITY_LINES);
    const again = parseIdentityFile(withSsh, 'a.identity');
    expect(again).toEqual({ ...parts, sshCertLine: SSH_LINE, authorityLines: AUTHORITY_LINES });
  });

  it('ignores other non-PEM lines, CRLF line ends and several CAs', () => {
    const parts = parseIdentityFile(text, 'a.identity');
    const other = pki.ca.proxyCertPem; // any certificate will do as a second "CA" block
    const messy = `# written by hand\r\n${formatIdentityFile({ ...parts, caPems: [...parts.caPems, other] }).replace(/\n/g, '\r\n')}\r\ntrailing words\r\n`;
    const again = parseIdentityFile(messy, 'a.identity');
    expect(again.keyPem).toBe(parts.keyPem);
    expect(again.certPem).toBe(parts.certPem);
    expect(again.caPems).toEqual([parts.caPems[0], other]);
  });

  it('an empty or blank file is IDENTITY_EMPTY', () => {
    for (const input of ['', '\n\n  \n']) {
      const err = parseError(input);
      expect(err.code).toBe('IDENTITY_EMPTY');
      expect(err.message).toBe('identity file /some/where/alice.identity is empty');
    }
  });

  const endOfCert = () => text.lastIndexOf('-----END CERTIFICATE-----');
  it.each<[string, () => string, RegExp]>([
    [
      'a PEM block cut off at the end of the file',
      () => text.slice(0, text.indexOf('-----END CERTIFICATE-----') - 10),
      /^identity file \/some\/where\/alice\.identity is torn: the CERTIFICATE block at line \d+ has no END line/,
    ],
    [
      'a block cut in the middle of its END line',
      () => text.slice(0, endOfCert() + 12),
      /the CERTIFICATE block at line \d+ is cut off at line \d+/,
    ],
    ['a block cut off inside the key', () => text.slice(0, 60), /the PRIVATE KEY block at line 1 has no END line/],
  ])('%s is IDENTITY_TORN', (_what, input, message) => {
    const err = parseError(input());
    expect(err.code).toBe('IDENTITY_TORN');
    expect(err.message).toMatch(message);
  });

  it('a file without PEM blocks, or starting with a certificate, is IDENTITY_NO_KEY', () => {
    expect(parseError('just some words\n').code).toBe('IDENTITY_NO_KEY');
    const parts = parseIdentityFile(text, 'a.identity');
    const err = parseError(parts.certPem + parts.caPems[0]);
    expect(err.code).toBe('IDENTITY_NO_KEY');
    expect(err.message).toMatch(/does not start with a private key \(its first PEM block, line 1, is a CERTIFICATE\)/);
  });

  it.each([
    [
      'a key alone',
      'IDENTITY_NO_CERT',
      (p: Parts) => p.keyPem,
      'identity file /some/where/alice.identity has a private key but no certificate',
    ],
    [
      'a key and certificate without a CA',
      'IDENTITY_NO_CA',
      (p: Parts) => p.keyPem + p.certPem,
      'identity file /some/where/alice.identity has no CA certificate after its certificate',
    ],
  ])('%s is %s', (_what, code, input, message) => {
    const err = parseError(input(parseIdentityFile(text, 'a.identity')));
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
  });
});
