/**
 * End to end through the real executable: `ca init` → `identity issue` →
 * `identity show`, exit codes, and one-line errors without stack traces.
 * Runs the built CLI (`npm test` builds first; alone: `npx tsc -p .`).
 */
import { chmod, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliRun } from '../helpers/run-cli.js';
import { caPin, issueIdentity, loadCa, writeIdentityFile } from '../../src/identity/ca.js';
import { loadIdentity } from '../../src/identity/load.js';

type Run = CliRun;
const run = runCli;

/** A user-facing failure: exactly one `mcp-access: … (…)` line, no stack. */
function expectOneLineError(r: Run, code: number, message: RegExp): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code });
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^mcp-access: .+ \(.+\)$/);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

let dir: string;
let caDir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-access-cli-'));
  caDir = join(dir, 'ca');
});

describe('ca init → identity issue → identity show', () => {
  it('ca init creates the CA and prints the paths and the CA pin', async () => {
    const r = await run([
      'ca',
      'init',
      '--dir',
      caDir,
      '--cluster',
      'demo',
      '--proxy-host',
      'localhost,127.0.0.1',
      '--proxy-host',
      'mcp.example.com',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ca = await loadCa(caDir);
    expect(r.stdout).toContain(`Created the certificate authority for cluster "demo" in ${caDir}`);
    expect(r.stdout).toContain(join(caDir, 'ca.crt'));
    expect(r.stdout).toContain(`${join(caDir, 'ca.key')}  (mode 0600`);
    expect(r.stdout).toContain('(hosts: localhost, 127.0.0.1, mcp.example.com)');
    expect(r.stdout).toContain(`CA pin:             ${caPin(ca.caCertPem)}`);
  });

  it('ca init refuses to overwrite the CA (exit 7) and --force replaces it', async () => {
    const before = await loadCa(caDir);
    const refused = await run(['ca', 'init', '--dir', caDir, '--cluster', 'demo']);
    expectOneLineError(refused, 7, new RegExp(`a certificate authority already exists in ${caDir} \\(pass --force`));
    expect((await loadCa(caDir)).caKeyPem).toBe(before.caKeyPem);
    const forced = await run(['ca', 'init', '--dir', caDir, '--cluster', 'demo', '--force', '--format', 'json']);
    expect(forced.code).toBe(0);
    const out = JSON.parse(forced.stdout) as Record<string, unknown>;
    const after = await loadCa(caDir);
    expect(after.caKeyPem).not.toBe(before.caKeyPem);
    expect(out).toEqual({
      cluster: 'demo',
      dir: caDir,
      caCert: join(caDir, 'ca.crt'),
      caKey: join(caDir, 'ca.key'),
      proxyCert: join(caDir, 'proxy.crt'),
      proxyKey: join(caDir, 'proxy.key'),
      proxyHosts: ['localhost', '127.0.0.1'],
      caPin: caPin(after.caCertPem),
    });
  });

  it('identity issue writes a 0600 identity file with the user and roles', async () => {
    const out = join(dir, 'alice.identity');
    const r = await run([
      'identity',
      'issue',
      '--ca-dir',
      caDir,
      '--user',
      'alice',
      '--roles',
      'reader,writer',
      '--roles',
      'ops',
      '--ttl',
      '10m',
      '--key-type',
      'ed25519',
      '--out',
      out,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^Wrote ${out}: user alice, roles reader, writer, ops, cluster demo, valid for 10m `),
    );
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const id = await loadIdentity(out);
    expect(id).toMatchObject({
      user: 'alice',
      roles: ['reader', 'writer', 'ops'],
      cluster: 'demo',
      keyType: 'ed25519',
    });
  });

  it('identity show prints user, roles, validity, key type and fingerprints', async () => {
    const path = join(dir, 'alice.identity');
    const id = await loadIdentity(path);
    const r = await run(['identity', 'show', '-i', path]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ca = await loadCa(caDir);
    for (const line of [
      `Identity file:  ${path}`,
      'User:           alice',
      'Roles:          reader, writer, ops',
      'Cluster:        demo',
      'Issuer:         CN=demo, O=mcp-access',
      `Serial:         ${id.serial}`,
      `Valid from:     ${id.notBefore.toISOString()}`,
      'Key type:       ed25519',
      `SHA-256:        ${id.fingerprint256}`,
      'CA #1:          CN=demo, O=mcp-access',
      `  pin:          ${caPin(ca.caCertPem)}`,
    ]) {
      expect(r.stdout.split('\n')).toContain(line);
    }
    expect(r.stdout).toMatch(
      new RegExp(
        `Valid until:    ${id.notAfter.toISOString()} \\(\\d+m\\d*s? left\\)|Valid until:    ${id.notAfter.toISOString()} \\(\\d+m left\\)`,
      ),
    );
  });

  it('identity show --format json has the documented, stable fields', async () => {
    const path = join(dir, 'alice.identity');
    const id = await loadIdentity(path);
    const ca = await loadCa(caDir);
    const r = await run(['identity', 'show', '--identity', path, '--format', 'json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(j)).toEqual([
      'path',
      'user',
      'roles',
      'cluster',
      'issuer',
      'bot',
      'agent',
      'traits',
      'serial',
      'validFrom',
      'validUntil',
      'status',
      'secondsLeft',
      'timeLeft',
      'expiredAgo',
      'keyType',
      'fingerprint256',
      'trusted',
      'sshCertificate',
      'cas',
    ]);
    expect(j).toMatchObject({
      path,
      user: 'alice',
      roles: ['reader', 'writer', 'ops'],
      cluster: 'demo',
      issuer: 'CN=demo, O=mcp-access',
      bot: null,
      agent: null,
      serial: id.serial,
      validFrom: id.notBefore.toISOString(),
      validUntil: id.notAfter.toISOString(),
      status: 'valid',
      expiredAgo: null,
      keyType: 'ed25519',
      fingerprint256: id.fingerprint256,
      trusted: true,
      sshCertificate: false,
      cas: [
        {
          subject: 'CN=demo, O=mcp-access',
          fingerprint256: id.caFingerprints256[0],
          pin: caPin(ca.caCertPem),
          validUntil: expect.any(String) as unknown,
        },
      ],
    });
    expect(j.secondsLeft).toBeGreaterThan(0);
    expect(j.secondsLeft).toBeLessThanOrEqual(600);
    expect(j.timeLeft).toMatch(/^\d+m(\d+s)?$|^\d+s$/);
  });

  it('identity show still describes an expired file (exit 0); --check then fails with exit 3', async () => {
    const ca = await loadCa(caDir);
    const path = join(dir, 'old.identity');
    // Issued "ten minutes ago" for 5 s: expired about 9m55s ago.
    await writeIdentityFile(
      path,
      await issueIdentity(ca, { user: 'old', roles: ['reader'], ttlMs: 5_000, now: Date.now() - 10 * 60_000 }),
    );
    const text = await run(['identity', 'show', '-i', path]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Valid until: +\S+ \(EXPIRED 9m\d+s ago\)$/m);
    const json = await run(['identity', 'show', '-i', path, '--format', 'json']);
    const j = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ status: 'expired', timeLeft: null });
    expect(j.expiredAgo).toMatch(/^9m\d+s$/);
    expect(j.secondsLeft).toBeLessThan(-590);
    const checked = await run(['identity', 'show', '-i', path, '--check']);
    expect(checked.code).toBe(3);
    expect(checked.stdout).toContain('User:           old');
    expect(checked.stderr).toMatch(
      new RegExp(`^mcp-access: identity file ${path} expired 9m\\d+s ago at \\S+Z \\(renew it: .*\\)\\n$`),
    );
  });
});

describe('CLI failures: one line, documented exit codes', () => {
  it('a TTL under 5s, over 30d, or without a unit is a usage error (exit 2)', async () => {
    const base = [
      'identity',
      'issue',
      '--ca-dir',
      caDir,
      '--user',
      'alice',
      '--roles',
      'reader',
      '--out',
      join(dir, 'x.identity'),
    ];
    expectOneLineError(await run([...base, '--ttl', '4s']), 2, /TTL 4s is too short: the minimum is 5s/);
    expectOneLineError(await run([...base, '--ttl', '31d']), 2, /TTL 31d is too long: the maximum is 30d/);
    expectOneLineError(await run([...base, '--ttl', '10']), 2, /TTL "10" has no unit/);
    const ok = await run([...base, '--ttl', '5s']);
    expect(ok.code).toBe(0);
  });

  it('issuing from a directory without a CA is exit 7', async () => {
    const missing = join(dir, 'no-ca');
    expectOneLineError(
      await run([
        'identity',
        'issue',
        '--ca-dir',
        missing,
        '--user',
        'a',
        '--roles',
        'r',
        '--out',
        join(dir, 'y.identity'),
      ]),
      7,
      /no certificate authority in .*no-ca: .*ca\.crt is missing \(create one with/,
    );
  });

  it('an unsafe user name is a usage error', async () => {
    expectOneLineError(
      await run([
        'identity',
        'issue',
        '--ca-dir',
        caDir,
        '--user',
        'a,b',
        '--roles',
        'r',
        '--out',
        join(dir, 'z.identity'),
      ]),
      2,
      /user name "a,b" is not allowed/,
    );
  });

  it('show of a missing or torn file is exit 3 naming the file', async () => {
    const missing = join(dir, 'missing.identity');
    expectOneLineError(
      await run(['identity', 'show', '-i', missing]),
      3,
      new RegExp(`identity file ${missing} does not exist`),
    );
    const torn = join(dir, 'torn.identity');
    const good = await readFile(join(dir, 'alice.identity'), 'utf8');
    await writeFile(torn, good.slice(0, good.length - 40), { mode: 0o600 });
    expectOneLineError(
      await run(['identity', 'show', '-i', torn]),
      3,
      new RegExp(`identity file ${torn} is torn: the CERTIFICATE block at line \\d+ has no END line`),
    );
  });

  it('show takes the file from MCP_ACCESS_IDENTITY and warns about a group-readable file', async () => {
    const path = join(dir, 'shared.identity');
    await writeFile(path, await readFile(join(dir, 'alice.identity'), 'utf8'));
    await chmod(path, 0o640);
    const r = await run(['identity', 'show'], { env: { MCP_ACCESS_IDENTITY: path } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('User:           alice');
    expect(r.stderr).toBe(
      `mcp-access: warning: identity file ${path} is accessible by group or others (mode 0640); run: chmod 600 ${path}\n`,
    );
  });

  it('show without a file is a usage error', async () => {
    expectOneLineError(
      await run(['identity', 'show']),
      2,
      /no identity file given \(pass -i FILE or set MCP_ACCESS_IDENTITY\)/,
    );
  });

  it('a file another user cannot read is exit 3, unreadable', async () => {
    const sub = join(dir, 'private');
    await mkdir(sub, { recursive: true });
    await chmod(dir, 0o755);
    await chmod(sub, 0o755);
    const path = join(sub, 'root-only.identity');
    await writeFile(path, await readFile(join(dir, 'alice.identity'), 'utf8'), { mode: 0o600 });
    await chmod(path, process.getuid?.() === 0 ? 0o600 : 0o000);
    // As root, read it as "nobody"; as anyone else, mode 000 stops its owner too.
    const r = await run(['identity', 'show', '-i', path], process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {});
    expectOneLineError(r, 3, new RegExp(`identity file ${path} cannot be read \\(permission denied\\)`));
  });

  it('a command group without a subcommand is a usage error; --help shows examples', async () => {
    expectOneLineError(await run(['identity']), 2, /name an identity command: issue or show/);
    expectOneLineError(await run(['ca']), 2, /name a ca command: init/);
    for (const args of [
      ['ca', 'init', '--help'],
      ['identity', 'issue', '--help'],
      ['identity', 'show', '--help'],
    ]) {
      const r = await run(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain(`mcp-access ${args.slice(0, 2).join(' ')} `);
    }
  });
});
