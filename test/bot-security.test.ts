/**
 * The bot's join and renewal attacked (issues 10 and 19): token guessing,
 * an expired bot coming back through the join retry, superseded
 * generations, weak keys, racing renewals, planted files in the bot's
 * directories, and files the CLI writes (config --write, ca init).
 *
 * Decisions over time use the issuer's injected clock; the rest runs
 * against the real proxy process, real `bot start` processes and real files.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addBot as addBotRecord } from '../src/proxy/enrolment/admin.js';
import { createCsr, generateBotKey } from '../src/identity/csr.js';
import { BotRefusal, joinWithToken, renewBot } from '../src/proxy/enrolment/issuer.js';
import { AddressRateLimiter } from '../src/proxy/enrolment/rate-limit.js';
import { BotStore } from '../src/proxy/enrolment/store.js';
import { mergeIntoConfigFile } from '../src/client/client-config.js';
import { AccessError } from '../src/errors.js';
import { claimsFromCertificate } from '../src/identity/claims.js';
import { webcrypto, x509 } from '../src/identity/x509.js';
import { ALLOW_ALL_ROLE, TestCluster, resultText, testServer } from './helpers/cluster.js';
import { addBot, runCli, waitForAudit } from './helpers/bot.js';
import { makeTestPki, type TestPki } from './helpers/pki.js';

const codeOf = (e: unknown) => (e instanceof BotRefusal ? e.error.code : e instanceof AccessError ? e.code : String(e));
const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
const peerOf = (certPem: string) => {
  const cert = new X509Certificate(certPem);
  return { bot: claimsFromCertificate(cert).bot, serial: cert.serialNumber };
};

describe('issuer (injected clock)', () => {
  let pki: TestPki;
  let root: string;
  let n = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mcp-access-botsec-'));
    pki = await makeTestPki(root, { cluster: 'sec' });
  });
  const fresh = async () => {
    const s = new BotStore(join(root, `state-${++n}`));
    await s.ensure();
    return s;
  };

  it('an expired bot cannot come back: a join retry with the used token after the token and the identity expired is refused', async () => {
    const store = await fresh();
    const t0 = Date.parse('2026-12-01T10:00:00Z');
    const { token } = await addBotRecord(store, { name: 'sleeper', roles: ['reader'], tokenTtlMs: 3_600_000, now: t0 });
    const key = await generateBotKey();
    const csr = await createCsr(key, 'x');
    const first = await joinWithToken({ store, ca: pki.ca }, { token, csr, ttl_ms: 600_000 }, () => t0);
    expect(first.response.generation).toBe(1);

    // Within the window: the answer was lost, the retry gets the very same certificate back.
    const retry = await joinWithToken(
      { store, ca: pki.ca },
      { token, csr, ttl_ms: 30 * 86_400_000 },
      () => t0 + 60_000,
    );
    expect(retry.repeated).toBe(true);
    expect(retry.response.certificate).toBe(first.response.certificate);
    expect(retry.response.not_after).toBe(first.response.not_after);

    // The identity expired (10 min), the token is still valid: nothing is issued.
    const late = await failure(
      joinWithToken({ store, ca: pki.ca }, { token, csr, ttl_ms: 30 * 86_400_000 }, () => t0 + 11 * 60_000),
    );
    expect(codeOf(late)).toBe('BOT_TOKEN_INVALID');
    expect((late as BotRefusal).detail).toMatch(/repeated after the token .* or the certificate it got .* expired/);
    // Both expired: the issue's scenario.
    const later = await failure(
      joinWithToken({ store, ca: pki.ca }, { token, csr, ttl_ms: 30 * 86_400_000 }, () => t0 + 2 * 3_600_000),
    );
    expect(codeOf(later)).toBe('BOT_TOKEN_INVALID');
    expect((await store.read('sleeper'))!.generation).toBe(1);
  });

  it('a join retry is bounded by the token expiry even while the certificate is valid', async () => {
    const store = await fresh();
    const t0 = Date.parse('2026-12-01T10:00:00Z');
    const { token } = await addBotRecord(store, {
      name: 'short-token',
      roles: ['reader'],
      tokenTtlMs: 60_000,
      now: t0,
    });
    const csr = await createCsr(await generateBotKey(), 'x');
    await joinWithToken({ store, ca: pki.ca }, { token, csr, ttl_ms: 3_600_000 }, () => t0);
    expect(
      codeOf(await failure(joinWithToken({ store, ca: pki.ca }, { token, csr, ttl_ms: 3_600_000 }, () => t0 + 61_000))),
    ).toBe('BOT_TOKEN_INVALID');
  });

  it('concurrent renewals of one certificate with the same key yield one certificate of the next generation', async () => {
    const store = await fresh();
    const { token } = await addBotRecord(store, { name: 'racer', roles: ['reader'], tokenTtlMs: 60_000 });
    const joined = await joinWithToken(
      { store, ca: pki.ca },
      { token, csr: await createCsr(await generateBotKey(), 'x'), ttl_ms: 60_000 },
    );
    const csr = await createCsr(await generateBotKey(), 'x');
    const peer = peerOf(joined.response.certificate);
    const results = await Promise.all(
      [1, 2, 3, 4].map(() => renewBot({ store, ca: pki.ca }, peer, { csr, ttl_ms: 60_000 })),
    );
    const serials = new Set(results.map((r) => new X509Certificate(r.response.certificate).serialNumber));
    expect(serials.size).toBe(1);
    expect(results.map((r) => r.response.generation)).toEqual([2, 2, 2, 2]);
    expect(results.filter((r) => !r.repeated)).toHaveLength(1);
    expect((await store.read('racer'))!.generation).toBe(2);
  });

  it('a retried renewal after its certificate expired is refused, not re-issued', async () => {
    const store = await fresh();
    const t0 = Date.now();
    const { token } = await addBotRecord(store, { name: 'lost', roles: ['reader'], tokenTtlMs: 60_000 });
    const joined = await joinWithToken(
      { store, ca: pki.ca },
      { token, csr: await createCsr(await generateBotKey(), 'x'), ttl_ms: 60_000 },
      () => t0,
    );
    const csr = await createCsr(await generateBotKey(), 'x');
    await renewBot({ store, ca: pki.ca }, peerOf(joined.response.certificate), { csr, ttl_ms: 60_000 }, () => t0);
    const late = await failure(
      renewBot({ store, ca: pki.ca }, peerOf(joined.response.certificate), { csr, ttl_ms: 60_000 }, () => t0 + 120_000),
    );
    expect(codeOf(late)).toBe('IDENTITY_EXPIRED');
  });

  async function rsaCsr(bits: number, exponent = new Uint8Array([1, 0, 1])): Promise<string> {
    const alg = { name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: exponent, hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: ['x'] }],
      keys,
      signingAlgorithm: alg,
    });
    return csr.toString('pem');
  }

  it('refuses RSA keys under 2048 bits and weak exponents at join and renewal; accepts RSA 2048', async () => {
    const store = await fresh();
    const { token } = await addBotRecord(store, { name: 'weak', roles: ['reader'], tokenTtlMs: 60_000 });
    const small = await failure(
      joinWithToken({ store, ca: pki.ca }, { token, csr: await rsaCsr(1024), ttl_ms: 60_000 }),
    );
    expect(codeOf(small)).toBe('USAGE');
    expect((small as Error).message).toMatch(/RSA keys need at least 2048 bits \(this one has 1024\)/);
    const e3 = await failure(
      joinWithToken({ store, ca: pki.ca }, { token, csr: await rsaCsr(2048, new Uint8Array([3])), ttl_ms: 60_000 }),
    );
    expect((e3 as Error).message).toMatch(/public exponent 3 is not accepted/);
    expect((await store.read('weak'))!.token!.usedAt).toBeUndefined();
    const ok = await joinWithToken({ store, ca: pki.ca }, { token, csr: await rsaCsr(2048), ttl_ms: 60_000 });
    expect(ok.response.generation).toBe(1);
    const renewWeak = await failure(
      renewBot({ store, ca: pki.ca }, peerOf(ok.response.certificate), { csr: await rsaCsr(1024), ttl_ms: 60_000 }),
    );
    expect((renewWeak as Error).message).toMatch(/at least 2048 bits/);
    expect((await store.read('weak'))!.generation).toBe(1);
  });

  it('the join limiter: a burst per address, refilled over time, successes given back, IPv6 counted per /64', () => {
    let t = 0;
    const l = new AddressRateLimiter({ burst: 3, refillMs: 1000, now: () => t });
    expect([1, 2, 3].map(() => l.take('10.0.0.1').ok)).toEqual([true, true, true]);
    expect(l.take('10.0.0.1')).toEqual({ ok: false, retryAfterMs: 1000 });
    expect(l.take('::ffff:10.0.0.1').ok).toBe(false);
    expect(l.take('10.0.0.2').ok).toBe(true);
    t += 1000;
    expect(l.take('10.0.0.1').ok).toBe(true);
    expect(l.take('10.0.0.1').ok).toBe(false);
    l.giveBack('10.0.0.1');
    expect(l.take('10.0.0.1').ok).toBe(true);
    for (let i = 0; i < 3; i++) expect(l.take(`2001:db8:1:2::${i + 1}`).ok).toBe(true);
    expect(l.take('2001:db8:1:2:ffff::9').ok).toBe(false);
    expect(l.take('2001:db8:1:3::1').ok).toBe(true);
  });
});

describe('against the real proxy', () => {
  let cluster: TestCluster;
  let auditPath: string;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      servers: [testServer('test')],
      roles: [ALLOW_ALL_ROLE],
      config: { bot: { state_dir: './bots', superseded_grace: '0s' }, audit: { path: './audit.log' } },
    });
    auditPath = join(cluster.dir, 'audit.log');
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const dest = (name: string) => join(cluster.dir, 'machines', name);
  const oneshot = (args: string[]) => runCli(['bot', 'start', '--proxy', cluster.address, '--oneshot', ...args]);
  const ok = (r: { code: number | null; stderr: string }) => expect(r.code, r.stderr).toBe(0);

  it('a superseded generation opens no session once a newer one is issued (audited); the newest works', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'gens', ['all']);
    const d = dest('gens');
    ok(await oneshot(['--destination', d, '--token', token, '--ca-pin', ca_pin]));
    const gen1 = join(cluster.dir, 'gens-gen1.identity');
    await cp(join(d, 'identity'), gen1);
    // Generation 1 works while it is the newest: a session on the static copy,
    // and one on the file the bot renews.
    const onCopy = await cluster.client('test', gen1);
    const onLive = await cluster.client('test', join(d, 'identity'));
    expect(resultText(await onCopy.client.callTool({ name: 'echo', arguments: { text: 'copy' } }))).toMatch(/copy/);
    ok(await oneshot(['--destination', d]));
    await expect(cluster.client('test', gen1)).rejects.toThrow();
    // It lists nothing either (the newest generation lists the server).
    const ls1 = await runCli(['ls', '-i', gen1, '--proxy', cluster.address, '--format', 'json']);
    expect((JSON.parse(ls1.stdout) as { servers: unknown[] }).servers).toEqual([]);
    const ls2 = await runCli(['ls', '-i', join(d, 'identity'), '--proxy', cluster.address, '--format', 'json']);
    expect(
      (JSON.parse(ls2.stdout) as { servers: Array<{ name: string }> }).servers.map((x: { name: string }) => x.name),
    ).toEqual(['test']);
    const events = await waitForAudit(
      auditPath,
      (e) => e.type === 'mcp.session.start' && e.outcome === 'denied' && e.bot === 'gens',
    );
    expect(
      events.find((e) => e.type === 'mcp.session.start' && e.outcome === 'denied' && e.bot === 'gens')?.reason,
    ).toMatch(/superseded by generation 2/);
    const c2 = await cluster.client('test', join(d, 'identity'));
    expect(resultText(await c2.client.callTool({ name: 'echo', arguments: { text: 'hi' } }))).toMatch(/hi/);
    await c2.close();
    // Live sessions are not cut: connect moves onto a renewed certificate at 80 %
    // of the old one's lifetime (bridge), so sessions already open are not ended (docs/bot.md).
    expect(resultText(await onLive.client.callTool({ name: 'echo', arguments: { text: 'live' } }))).toMatch(/live/);
    await onLive.close();
    await onCopy.close();
  });

  it('join guesses are limited per address: after 10 refusals even a valid token is not looked at; answers never name the bot', async () => {
    const { token } = await addBot(cluster.configPath, 'guessed', ['all', 'secret-role']);
    // Use the token once so that later guesses with it are "used token" refusals.
    const csr = await createCsr(await generateBotKey(), 'x');
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    const join1 = (tok: string, body: string) =>
      request(`https://${cluster.address}/v1/bot/join`, {
        method: 'POST',
        dispatcher: agent,
        body: JSON.stringify({ token: tok, csr: body, ttl_ms: 60_000 }),
      }).then(async (r) => ({ status: r.statusCode, body: await r.body.text(), retryAfter: r.headers['retry-after'] }));
    const first = await join1(token, csr);
    expect(first.status).toBe(200);
    // The same token and key again is the retry of a lost answer: the same certificate, not a guess.
    const again = await join1(token, csr);
    expect(again.status).toBe(200);
    expect((JSON.parse(again.body) as { certificate: string }).certificate).toBe(
      (JSON.parse(first.body) as { certificate: string }).certificate,
    );
    const otherCsr = await createCsr(await generateBotKey(), 'x');
    const answers = [];
    for (let i = 0; i < 10; i++)
      answers.push(await join1(i % 2 === 0 ? token : `mcpab_${'y'.repeat(42)}${i}`, otherCsr));
    // The used token (another key) and unknown tokens get the same answer, naming nothing.
    for (const a of answers.filter((x) => x.status === 403)) {
      expect(a.body).not.toMatch(/guessed|secret-role|bot-guessed/);
      expect((JSON.parse(a.body) as { error: { message: string } }).error.message).toBe(
        'the join token is not valid (unknown, already used or expired)',
      );
    }
    expect(answers.map((a) => a.status)).toEqual(new Array(10).fill(403));
    const fresh = await addBot(cluster.configPath, 'after-limit', ['all']);
    const limited = await join1(fresh.token, otherCsr);
    expect(limited.status).toBe(429);
    expect(limited.retryAfter).toBeDefined();
    expect((JSON.parse(limited.body) as { error: { code: string } }).error.code).toBe('BOT_JOIN_LIMITED');
    await agent.close();
    // The valid token was not even checked: still unused.
    const ls = JSON.parse((await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json'])).stdout) as {
      bots: Array<{ name: string; status: string }>;
    };
    expect(ls.bots.find((b) => b.name === 'after-limit')?.status).toBe('awaiting join');
    const events = await waitForAudit(
      auditPath,
      (e) => e.type === 'bot.join.denied' && e.errorCode === 'BOT_JOIN_LIMITED',
    );
    expect(events.filter((e) => e.errorCode === 'BOT_JOIN_LIMITED')).toHaveLength(1);
    expect(
      events.filter((e) => e.type === 'bot.join.denied' && e.bot === 'guessed' && /already used/.test(String(e.reason)))
        .length,
    ).toBeGreaterThan(0);
    // The proxy still answers everyone else.
    const c = await cluster.client('test', await cluster.issue('alice', ['all']));
    await c.close();
  });
});

describe("the bot's directories are its own (real bot processes, planted files)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      servers: [testServer('test')],
      roles: [ALLOW_ALL_ROLE],
      config: { bot: { state_dir: './bots' } },
    });
  });
  afterAll(async () => {
    await cluster?.close();
  });
  const dest = (name: string) => join(cluster.dir, 'machines', name);
  const oneshot = (args: string[]) => runCli(['bot', 'start', '--proxy', cluster.address, '--oneshot', ...args]);
  const ok = (r: { code: number | null; stderr: string }) => expect(r.code, r.stderr).toBe(0);
  const status = async (name: string) =>
    (
      JSON.parse((await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json'])).stdout) as {
        bots: Array<{ name: string; status: string }>;
      }
    ).bots.find((b) => b.name === name)?.status;

  it('a destination owned by another user, or writable by others, is refused: not chmod-ed, nothing written, the token not sent', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'dirs', ['all']);
    const foreign = dest('foreign');
    await mkdir(foreign, { recursive: true, mode: 0o700 });
    await chown(foreign, 65534, 65534);
    const a = await oneshot(['--destination', foreign, '--token', token, '--ca-pin', ca_pin]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(
      /^mcp-access: the destination directory .*foreign belongs to another user \(uid 65534, not 0\), so it is not used \(/m,
    );
    expect(await readdir(foreign)).toEqual([]);

    const open = dest('open');
    await mkdir(open, { recursive: true });
    await chmod(open, 0o777);
    const b = await oneshot(['--destination', open, '--token', token, '--ca-pin', ca_pin]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/is writable by other users \(mode 0777\), so it is not used/);
    expect((await stat(open)).mode & 0o777).toBe(0o777);
    expect(await readdir(open)).toEqual([]);
    expect(await status('dirs')).toBe('awaiting join');
  });

  const spkiOf = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('hex');
  const identityKey = async (d: string) => {
    const text = await readFile(join(d, 'identity'), 'utf8');
    const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)![0];
    return spkiOf(new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'pem' }) as string);
  };

  it('a planted pending.key (another owner, loose mode or a symlink) is never certified', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'planted', ['all']);
    const d = dest('planted');
    ok(await oneshot(['--destination', d, '--token', token, '--ca-pin', ca_pin]));
    const attackerKey = await generateBotKey();
    const pending = join(d, 'pending.key');

    await writeFile(pending, attackerKey, { mode: 0o644 });
    await chmod(pending, 0o644);
    const a = await oneshot(['--destination', d]);
    ok(a);
    expect(a.stderr).toMatch(/pending\.key is readable by other users \(mode 0644\); not using it/);
    expect(await identityKey(d)).not.toBe(spkiOf(attackerKey));

    await writeFile(pending, attackerKey, { mode: 0o600 });
    await chown(pending, 65534, 65534);
    const b = await oneshot(['--destination', d]);
    ok(b);
    expect(b.stderr).toMatch(/pending\.key belongs to another user \(uid 65534\); not using it/);
    expect(await identityKey(d)).not.toBe(spkiOf(attackerKey));

    const elsewhere = join(cluster.dir, 'attacker.key');
    await writeFile(elsewhere, attackerKey, { mode: 0o600 });
    await symlink(elsewhere, pending);
    const c = await oneshot(['--destination', d]);
    ok(c);
    expect(c.stderr).toMatch(/pending\.key is a symlink; not using it/);
    expect(await identityKey(d)).not.toBe(spkiOf(attackerKey));
    expect(await readFile(elsewhere, 'utf8')).toBe(attackerKey);
    expect(c.stderr).toMatch(/renewed bot "planted": generation 4/);
  });

  it('a replaced ca.crt is never trusted: renewal and re-join refuse it before anything is sent', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'anchor', ['all']);
    const d = dest('anchor');
    ok(await oneshot(['--destination', d, '--token', token, '--ca-pin', ca_pin]));
    const other = await makeTestPki(await mkdtemp(join(tmpdir(), 'mcp-access-other-')), { cluster: 'evil' });
    await writeFile(join(d, 'ca.crt'), other.ca.caCertPem, { mode: 0o644 });
    const r = await oneshot(['--destination', d]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /ca\.crt is sha256:[0-9a-f]{64}, not the sha256:[0-9a-f]{64} the bot joined with, so the bot does not trust it/,
    );
    // A re-join without --ca-pin would send the token to whoever that CA names: refused as well.
    await writeFile(join(d, 'identity'), '');
    const j = await oneshot(['--destination', d, '--token', token]);
    expect(j.code).toBe(4);
    expect(j.stderr).toMatch(/the bot joined with, so the bot does not trust it/);
    // A ca.crt someone else owns is refused outright.
    await chown(join(d, 'ca.crt'), 65534, 65534);
    const k = await oneshot(['--destination', d, '--token', token]);
    expect(k.code).toBe(2);
    expect(k.stderr).toMatch(/ca\.crt belongs to another user \(uid 65534\), so the bot does not trust the CA in it/);
    expect(await status('anchor')).toBe('active');
  });
});

describe('files the CLI writes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcp-access-files-'));
  });

  it('config --write refuses a symlinked config file; its target is untouched', async () => {
    const target = join(dir, 'target.json');
    await writeFile(target, '{"keep":true}\n', { mode: 0o644 });
    const link = join(dir, 'claude_desktop_config.json');
    await symlink(target, link);
    const r = await runCli(['config', 'files', '-i', join(dir, 'id'), '--proxy', '127.0.0.1:1', '--write', link]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^mcp-access: the client configuration .*claude_desktop_config\.json is a symlink, so it is not written through \(/m,
    );
    expect(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('mcp-access: ') && !l.includes('warning')),
    ).toHaveLength(1);
    expect(await readFile(target, 'utf8')).toBe('{"keep":true}\n');
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
  });

  it('config --write never writes a backup through a symlink planted at the backup name; backups are new 0600 files', async () => {
    const path = join(dir, 'mcp.json');
    await writeFile(path, '{"mcpServers":{}}\n', { mode: 0o644 });
    const victim = join(dir, 'victim');
    await writeFile(victim, 'precious\n');
    // Plant a link at every backup name of the next few seconds.
    const start = Date.now();
    for (let t = start; t < start + 3000; t++) {
      await symlink(victim, `${path}.bak-${new Date(t).toISOString().replace(/[:.]/g, '-')}`);
    }
    const err = await mergeIntoConfigFile(path, { mcpServers: { x: { command: 'y' } } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(codeOf(err)).toBe('UNSAFE_PATH');
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect(await readFile(path, 'utf8')).toBe('{"mcpServers":{}}\n');

    const clean = join(dir, 'clean.json');
    await writeFile(clean, '{"mcpServers":{}}\n', { mode: 0o644 });
    const { backup } = await mergeIntoConfigFile(clean, { mcpServers: { x: { command: 'y' } } });
    expect((await stat(backup!)).mode & 0o777).toBe(0o600);
  });

  it('ca init refuses to overwrite a lone proxy.key without --force', async () => {
    const caDir = join(dir, 'ca');
    await mkdir(caDir, { mode: 0o700 });
    await writeFile(join(caDir, 'proxy.key'), 'KEEP\n', { mode: 0o600 });
    const r = await runCli(['ca', 'init', '--dir', caDir, '--cluster', 'x']);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(
      /^mcp-access: .*proxy\.key already exists in .*, so ca init does not overwrite it \(pass --force/m,
    );
    expect(await readFile(join(caDir, 'proxy.key'), 'utf8')).toBe('KEEP\n');
    expect(await readdir(caDir)).toEqual(['proxy.key']);
  });
});
