/** loadIdentity: real keys of every supported type and encoding, and every failure with its message. */
import { createPrivateKey } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessError, type ErrorCode } from '../../src/errors.js';
import { formatIdentityFile, parseIdentityFile } from '../../src/identity/identity-file.js';
import { loadIdentity, type LoadIdentityOptions } from '../../src/identity/load.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

let dir: string;
let pki: TestPki;
let otherPki: TestPki;
let good: string; // a valid EC identity file's text
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-access-load-'));
  pki = await makeTestPki(join(dir, 'one'), { cluster: 'one' });
  otherPki = await makeTestPki(join(dir, 'two'), { cluster: 'two' });
  good = await readFile(await pki.issue('alice', ['reader', 'writer'], 3_600_000), 'utf8');
});

/** Write text as an identity file (mode 0600) and return its path. */
async function fileWith(text: string, mode = 0o600): Promise<string> {
  const path = join(dir, `case-${++n}.identity`);
  await writeFile(path, text, { mode });
  await chmod(path, mode);
  return path;
}

const quiet: LoadIdentityOptions = { warn: () => {}, retries: 0 };

async function loadError(path: string, opts: LoadIdentityOptions = quiet): Promise<AccessError> {
  const err = await loadIdentity(path, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AccessError);
  return err as AccessError;
}

function expectNoKeyMaterial(err: AccessError, text: string): void {
  const keyBody = parseIdentityFile(text, 'x').keyPem.split('\n').slice(1, -2);
  for (const line of keyBody) expect(`${err.message} ${err.hint}`).not.toContain(line);
}

describe('loadIdentity round trip', () => {
  it.each(['ec', 'rsa', 'ed25519'] as const)('issues and loads a %s identity', async (keyType) => {
    const before = Date.now();
    const path = await pki.issue('alice', ['reader', 'writer'], 3_600_000, { keyType });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    // Teleport's encodings: RSA as PKCS#1, EC and Ed25519 as PKCS#8.
    expect(text.split('\n')[0]).toBe(
      keyType === 'rsa' ? '-----BEGIN RSA PRIVATE KEY-----' : '-----BEGIN PRIVATE KEY-----',
    );
    const warnings: string[] = [];
    const id = await loadIdentity(path, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(id).toMatchObject({ path, user: 'alice', roles: ['reader', 'writer'], cluster: 'one', keyType });
    expect(id.bot).toBeUndefined();
    expect(id.caPems).toEqual([pki.ca.caCertPem]);
    expect(id.serial).toMatch(/^[0-9A-F]{32}$/);
    expect(id.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(id.notBefore.getTime()).toBeLessThanOrEqual(before - 59_000);
    expect(id.notAfter.getTime()).toBeGreaterThanOrEqual(before + 3_599_000);
  });

  it('loads a bot identity with its name and generation', async () => {
    const path = await pki.issue('bot-agent', ['reader'], 60_000, { bot: { name: 'agent', generation: 3 } });
    expect((await loadIdentity(path)).bot).toEqual({ name: 'agent', generation: 3 });
  });

  it.each([
    ['RSA PKCS#8', 'rsa', 'pkcs8', '-----BEGIN PRIVATE KEY-----'],
    ['RSA PKCS#1', 'rsa', 'pkcs1', '-----BEGIN RSA PRIVATE KEY-----'],
    ['EC SEC1', 'ec', 'sec1', '-----BEGIN EC PRIVATE KEY-----'],
    ['EC PKCS#8', 'ec', 'pkcs8', '-----BEGIN PRIVATE KEY-----'],
  ] as const)('reads a key written as %s', async (_name, keyType, encoding, header) => {
    const text = await readFile(await pki.issue('dave', ['reader'], 60_000, { keyType }), 'utf8');
    const parts = parseIdentityFile(text, 'x');
    const keyPem = createPrivateKey(parts.keyPem).export({ type: encoding, format: 'pem' }) as string;
    expect(keyPem.startsWith(header)).toBe(true);
    const id = await loadIdentity(await fileWith(formatIdentityFile({ ...parts, keyPem })));
    expect(id).toMatchObject({ user: 'dave', keyType, keyPem });
  });

  it('loads a file with an OpenSSH certificate line and @cert-authority lines', async () => {
    const parts = parseIdentityFile(good, 'x');
    const sshCertLine = 'ssh-rsa-cert-v01@openssh.com AAAAHHNzaC1yc2EtY2VydC12MDFAb3BlbnNzaC5jb20AAAAg alice';
    const authorityLines = [
      '@cert-authority *.one ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl type=host',
    ];
    const id = await loadIdentity(await fileWith(formatIdentityFile({ ...parts, sshCertLine, authorityLines })));
    expect(id).toMatchObject({ user: 'alice', sshCertLine, authorityLines });
  });
});

describe('loadIdentity failures', () => {
  const cases: Array<[string, ErrorCode, () => Promise<string>, RegExp | ((path: string) => string)]> = [
    [
      'missing',
      'IDENTITY_MISSING',
      () => Promise.resolve(join(dir, 'nope.identity')),
      (p) => `identity file ${p} does not exist`,
    ],
    [
      'a directory',
      'IDENTITY_UNREADABLE',
      async () => {
        const p = join(dir, `d-${++n}`);
        await mkdir(p);
        return p;
      },
      (p) => `identity file ${p} is a directory`,
    ],
    ['empty', 'IDENTITY_EMPTY', () => fileWith(''), (p) => `identity file ${p} is empty`],
    [
      'torn',
      'IDENTITY_TORN',
      () => fileWith(good.slice(0, good.lastIndexOf('-----END CERTIFICATE-----') - 5)),
      /is torn: the CERTIFICATE block at line \d+ has no END line/,
    ],
    [
      'without a key',
      'IDENTITY_NO_KEY',
      () => fileWith(good.slice(good.indexOf('-----BEGIN CERTIFICATE-----'))),
      /does not start with a private key/,
    ],
    [
      'without a certificate',
      'IDENTITY_NO_CERT',
      () => fileWith(parseIdentityFile(good, 'x').keyPem),
      /has a private key but no certificate/,
    ],
    [
      'without a CA',
      'IDENTITY_NO_CA',
      () => {
        const p = parseIdentityFile(good, 'x');
        return fileWith(p.keyPem + p.certPem);
      },
      /has no CA certificate after its certificate/,
    ],
    [
      'with a damaged key',
      'IDENTITY_BAD_KEY',
      () => {
        const p = parseIdentityFile(good, 'x');
        return fileWith(
          formatIdentityFile({ ...p, keyPem: p.keyPem.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA') }),
        );
      },
      /the private key cannot be parsed/,
    ],
    [
      'with a damaged certificate',
      'IDENTITY_BAD_CERT',
      () => {
        const p = parseIdentityFile(good, 'x');
        return fileWith(
          formatIdentityFile({ ...p, certPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }),
        );
      },
      /the certificate cannot be parsed/,
    ],
    [
      'with a damaged CA',
      'IDENTITY_BAD_CERT',
      () => {
        const p = parseIdentityFile(good, 'x');
        return fileWith(
          formatIdentityFile({
            ...p,
            caPems: [...p.caPems, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
          }),
        );
      },
      /the CA certificate #2 cannot be parsed/,
    ],
    [
      'whose key belongs to another certificate',
      'IDENTITY_KEY_MISMATCH',
      async () => {
        const other = parseIdentityFile(await readFile(await pki.issue('eve', ['reader'], 60_000), 'utf8'), 'x');
        return fileWith(formatIdentityFile({ ...parseIdentityFile(good, 'x'), keyPem: other.keyPem }));
      },
      /the private key does not match the certificate/,
    ],
    [
      'signed by a CA not in the file',
      'IDENTITY_UNTRUSTED',
      () => fileWith(formatIdentityFile({ ...parseIdentityFile(good, 'x'), caPems: [otherPki.ca.caCertPem] })),
      /its certificate \(issued by CN=one, O=mcp-access\) is not signed by any of the 1 CA certificate\(s\) in the file/,
    ],
  ];

  it.each(cases)('a file %s is %s', async (_what, code, make, message) => {
    const path = await make();
    const err = await loadError(path);
    expect(err.code).toBe(code);
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain(path);
    if (typeof message === 'function') expect(err.message).toBe(message(path));
    else expect(err.message).toMatch(message);
    expectNoKeyMaterial(err, good);
  });

  it('a certificate not yet valid is IDENTITY_NOT_YET_VALID, with the start time', async () => {
    const path = await fileWith(good);
    const { notBefore } = await loadIdentity(path);
    const err = await loadError(path, { ...quiet, now: notBefore.getTime() - 5 * 60_000 });
    expect(err.code).toBe('IDENTITY_NOT_YET_VALID');
    expect(err.message).toBe(`identity file ${path} is not valid until ${notBefore.toISOString()} (in 5m)`);
    expect(err.hint).toMatch(/clock/);
  });

  it('an expired certificate is IDENTITY_EXPIRED, saying how long ago', async () => {
    const path = await pki.issue('frank', ['reader'], 5_000);
    const { notAfter } = await loadIdentity(path);
    const err = await loadError(path, { ...quiet, now: notAfter.getTime() + 3 * 60_000 });
    expect(err.code).toBe('IDENTITY_EXPIRED');
    expect(err.message).toBe(`identity file ${path} expired 3m ago at ${notAfter.toISOString()}`);
    expect(err.line).toMatch(/\(renew it: /);
  });

  it.skipIf(process.getuid?.() === 0)('a file this user may not read is IDENTITY_UNREADABLE', async () => {
    const path = await fileWith(good, 0o000);
    const err = await loadError(path);
    expect(err.code).toBe('IDENTITY_UNREADABLE');
    expect(err.message).toBe(`identity file ${path} cannot be read (permission denied)`);
  });
});

describe('loadIdentity details', () => {
  it('warns when group or others can read the file, and still loads it', async () => {
    const path = await fileWith(good, 0o640);
    const warnings: string[] = [];
    const id = await loadIdentity(path, { warn: (m) => warnings.push(m) });
    expect(id.user).toBe('alice');
    expect(warnings).toEqual([
      `identity file ${path} is accessible by group or others (mode 0640); run: chmod 600 ${path}`,
    ]);
  });

  it('re-reads a file caught mid-rewrite and loads it once the writer is done', async () => {
    const path = await fileWith(good.slice(0, 200));
    const seen: string[] = [];
    const id = await loadIdentity(path, {
      warn: () => {},
      retryDelayMs: 1,
      // Plays the writer: the first read sees a torn file, then the rewrite completes.
      onRetry: async (err) => {
        seen.push(err.code);
        await writeFile(path, good);
      },
    });
    expect(seen).toEqual(['IDENTITY_TORN']);
    expect(id.user).toBe('alice');
  });

  it('gives up after the configured retries and reports what it saw', async () => {
    const path = await fileWith('');
    let retries = 0;
    const err = await loadError(path, {
      warn: () => {},
      retries: 2,
      retryDelayMs: 1,
      onRetry: () => {
        retries++;
      },
    });
    expect(err.code).toBe('IDENTITY_EMPTY');
    expect(retries).toBe(2);
  });

  it('does not retry a failure a rewrite cannot fix', async () => {
    const path = await fileWith(
      formatIdentityFile({ ...parseIdentityFile(good, 'x'), caPems: [otherPki.ca.caCertPem] }),
    );
    let retries = 0;
    const err = await loadError(path, {
      warn: () => {},
      retries: 2,
      retryDelayMs: 1,
      onRetry: () => {
        retries++;
      },
    });
    expect(err.code).toBe('IDENTITY_UNTRUSTED');
    expect(retries).toBe(0);
  });
});

describe('start-up weight', () => {
  it('load.ts, claims.ts and identity-file.ts import only node:* and other light local modules', async () => {
    // `connect` loads identities on every start and the proxy reads claims per
    // connection: neither may pull in @peculiar/x509 (or any package).
    const { readFile: read } = await import('node:fs/promises');
    const path = await import('node:path');
    const dirOf = (p: string) => path.dirname(p);
    const res = (...p: string[]) => path.resolve(...p);
    const seen = new Set<string>();
    const packages = new Set<string>();
    const walk = async (file: string): Promise<void> => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = await read(file, 'utf8');
      for (const m of src.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith('.')) await walk(res(dirOf(file), spec.replace(/\.js$/, '.ts')));
        else if (!spec.startsWith('node:')) packages.add(spec);
      }
    };
    const root = res(import.meta.dirname, '../../src/identity');
    for (const f of ['load.ts', 'claims.ts', 'identity-file.ts', 'describe.ts']) await walk(res(root, f));
    expect([...packages]).toEqual([]);
    expect([...seen].some((f) => f.endsWith('x509.ts') || f.endsWith('ca.ts'))).toBe(false);
  });
});
