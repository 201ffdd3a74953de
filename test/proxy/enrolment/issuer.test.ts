/**
 * The bot's decisions in process, with a real CA, real keys, certificate
 * requests and a real state directory: generations, retries of a lost
 * answer, copied credentials, request checks, the state lock and the
 * renewal schedule.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessError } from '../../../src/errors.js';
import { claimsFromCertificate } from '../../../src/identity/claims.js';
import { webcrypto, x509 } from '../../../src/identity/x509.js';
import { addBot, lockBot, removeBot } from '../../../src/proxy/enrolment/admin.js';
import { checkCsr, createCsr, generateBotKey } from '../../../src/identity/csr.js';
import { BotRefusal, joinWithToken, renewBot } from '../../../src/proxy/enrolment/issuer.js';
import { renewalDelay, retryDelay } from '../../../src/util/renewal-schedule.js';
import { BotStore } from '../../../src/proxy/enrolment/store.js';
import { hashToken } from '../../../src/proxy/enrolment/token.js';
import { makeTestPki, type TestPki } from '../../helpers/pki.js';

let pki: TestPki;
let root: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mcp-access-bot-'));
  pki = await makeTestPki(root, { cluster: 'units' });
});

async function freshStore(): Promise<BotStore> {
  const store = new BotStore(join(root, `state-${++n}`));
  await store.ensure();
  return store;
}

/** What the proxy reads from a presented certificate. */
function peerOf(certPem: string) {
  const cert = new X509Certificate(certPem);
  return { bot: claimsFromCertificate(cert).bot, serial: cert.serialNumber };
}

async function refusal(p: Promise<unknown>): Promise<BotRefusal | AccessError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err instanceof BotRefusal || err instanceof AccessError).toBe(true);
  return err as BotRefusal | AccessError;
}
const codeOf = (e: BotRefusal | AccessError) => (e instanceof BotRefusal ? e.error.code : e.code);

async function joined(store: BotStore, name: string) {
  const { token } = await addBot(store, { name, roles: ['reader'], tokenTtlMs: 60_000 });
  const key = await generateBotKey();
  const issued = await joinWithToken({ store, ca: pki.ca }, { token, csr: await createCsr(key, 'x'), ttl_ms: 60_000 });
  return { token, key, issued };
}

describe('join', () => {
  it("issues generation 1 for the bot's roles, marks the token used and stores only its hash", async () => {
    const store = await freshStore();
    const { token, key, issued } = await joined(store, 'alpha');
    expect(issued.response).toMatchObject({
      bot: 'alpha',
      user: 'bot-alpha',
      roles: ['reader'],
      generation: 1,
      cluster: 'units',
    });
    const cert = new X509Certificate(issued.response.certificate);
    expect(claimsFromCertificate(cert)).toEqual({
      user: 'bot-alpha',
      roles: ['reader'],
      cluster: 'units',
      bot: { name: 'alpha', generation: 1 },
    });
    expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(
      createPublicKey(key).export({ type: 'spki', format: 'der' }),
    );
    const record = (await store.read('alpha'))!;
    expect(record.token).toMatchObject({ hash: hashToken(token) });
    expect(record.token!.usedAt).toBeDefined();
    expect(JSON.stringify(record)).not.toContain(token);
  });

  it('repeats a join whose answer was lost (same key), but a reused token with another key is refused', async () => {
    const store = await freshStore();
    const { token, key, issued } = await joined(store, 'beta');
    const again = await joinWithToken({ store, ca: pki.ca }, { token, csr: await createCsr(key, 'x'), ttl_ms: 60_000 });
    expect(again.repeated).toBe(true);
    expect(again.response.generation).toBe(issued.response.generation);
    const other = await refusal(
      joinWithToken(
        { store, ca: pki.ca },
        { token, csr: await createCsr(await generateBotKey(), 'x'), ttl_ms: 60_000 },
      ),
    );
    expect(codeOf(other)).toBe('BOT_TOKEN_INVALID');
    // The client learns nothing about the bot; the audit trail gets the detail.
    expect(other.message).toBe('the join token is not valid (unknown, already used or expired)');
    expect(other.message).not.toContain('beta');
    expect((other as BotRefusal).detail).toMatch(/already used/);
  });

  it('refuses tokens of locked and removed bots, and TTLs out of range', async () => {
    const store = await freshStore();
    const a = await addBot(store, { name: 'locked', roles: ['r'], tokenTtlMs: 60_000 });
    await lockBot(store, 'locked', 'because');
    const csr = await createCsr(await generateBotKey(), 'x');
    expect(codeOf(await refusal(joinWithToken({ store, ca: pki.ca }, { token: a.token, csr, ttl_ms: 60_000 })))).toBe(
      'BOT_LOCKED',
    );
    const b = await addBot(store, { name: 'gone', roles: ['r'], tokenTtlMs: 60_000 });
    await removeBot(store, 'gone');
    expect(codeOf(await refusal(joinWithToken({ store, ca: pki.ca }, { token: b.token, csr, ttl_ms: 60_000 })))).toBe(
      'BOT_TOKEN_INVALID',
    );
    const c = await addBot(store, { name: 'ttl', roles: ['r'], tokenTtlMs: 60_000 });
    expect(codeOf(await refusal(joinWithToken({ store, ca: pki.ca }, { token: c.token, csr, ttl_ms: 1000 })))).toBe(
      'USAGE',
    );
  });
});

describe('renewal generations', () => {
  it('moves one generation per renewal; a retry of the last renewal (same old certificate, same new key) gets the same generation again', async () => {
    const store = await freshStore();
    const { issued } = await joined(store, 'gamma');
    const key2 = await generateBotKey();
    const r2 = await renewBot({ store, ca: pki.ca }, peerOf(issued.response.certificate), {
      csr: await createCsr(key2, 'x'),
      ttl_ms: 60_000,
    });
    expect(r2.response.generation).toBe(2);
    const retry = await renewBot({ store, ca: pki.ca }, peerOf(issued.response.certificate), {
      csr: await createCsr(key2, 'x'),
      ttl_ms: 60_000,
    });
    expect(retry.repeated).toBe(true);
    expect(retry.response.generation).toBe(2);
    const r3 = await renewBot({ store, ca: pki.ca }, peerOf(retry.response.certificate), {
      csr: await createCsr(await generateBotKey(), 'x'),
      ttl_ms: 60_000,
    });
    expect(r3.response.generation).toBe(3);
    expect((await store.read('gamma'))!.lock).toBeUndefined();
  });

  it('an older generation with another key is a copied credential: refused and the bot locked', async () => {
    const store = await freshStore();
    const { issued } = await joined(store, 'delta');
    const original = await renewBot({ store, ca: pki.ca }, peerOf(issued.response.certificate), {
      csr: await createCsr(await generateBotKey(), 'x'),
      ttl_ms: 60_000,
    });
    const copy = await refusal(
      renewBot({ store, ca: pki.ca }, peerOf(issued.response.certificate), {
        csr: await createCsr(await generateBotKey(), 'x'),
        ttl_ms: 60_000,
      }),
    );
    expect(copy).toBeInstanceOf(BotRefusal);
    expect(codeOf(copy)).toBe('BOT_LOCKED');
    expect((copy as BotRefusal).lockedNow?.lock).toMatchObject({ by: 'proxy' });
    expect(copy.message).toMatch(/credential copied: generation 1 was presented after generation 2 had been issued/);
    expect((await store.read('delta'))!.lock!.by).toBe('proxy');
    // The original is locked out too.
    const after = await refusal(
      renewBot({ store, ca: pki.ca }, peerOf(original.response.certificate), {
        csr: await createCsr(await generateBotKey(), 'x'),
        ttl_ms: 60_000,
      }),
    );
    expect(codeOf(after)).toBe('BOT_LOCKED');
  });

  it('refuses a generation the proxy never issued, a certificate without a bot, and one of an earlier registration', async () => {
    const store = await freshStore();
    const { issued } = await joined(store, 'epsilon');
    const csr = await createCsr(await generateBotKey(), 'x');
    const peer = peerOf(issued.response.certificate);
    expect(
      codeOf(
        await refusal(
          renewBot(
            { store, ca: pki.ca },
            { ...peer, bot: { name: 'epsilon', generation: 9 } },
            { csr, ttl_ms: 60_000 },
          ),
        ),
      ),
    ).toBe('BOT_STATE');
    expect(
      codeOf(await refusal(renewBot({ store, ca: pki.ca }, { serial: peer.serial }, { csr, ttl_ms: 60_000 }))),
    ).toBe('ACCESS_DENIED');
    await removeBot(store, 'epsilon');
    expect(codeOf(await refusal(renewBot({ store, ca: pki.ca }, peer, { csr, ttl_ms: 60_000 })))).toBe('BOT_UNKNOWN');
    await addBot(store, { name: 'epsilon', roles: ['reader'], tokenTtlMs: 60_000 });
    expect((await store.read('epsilon'))!.minGeneration).toBe(2);
    const stale = await refusal(renewBot({ store, ca: pki.ca }, peer, { csr, ttl_ms: 60_000 }));
    expect(codeOf(stale)).toBe('IDENTITY_REJECTED');
    expect(stale.message).toMatch(/earlier registration/);
  });
});

describe('certificate requests', () => {
  it('accepts a request signed by its key and refuses one that is not', async () => {
    const key = await generateBotKey();
    const checked = await checkCsr(await createCsr(key, 'x'));
    expect(checked.publicKeyPem).toBe(createPublicKey(key).export({ type: 'spki', format: 'pem' }));
    // Names key B but is signed with key A: proof of possession fails.
    const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    const a = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const b = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const forged = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x',
      keys: { privateKey: a.privateKey, publicKey: b.publicKey },
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    await expect(checkCsr(forged.toString('pem'))).rejects.toThrow(/not signed by the key it names/);
    await expect(checkCsr('not a csr')).rejects.toThrow(/no PEM certificate request/);
    await expect(checkCsr(pki.ca.caCertPem)).rejects.toThrow(/no PEM certificate request/);
  });
});

describe('state lock', () => {
  it('serialises read-modify-write across concurrent writers (no lost update)', async () => {
    const store = await freshStore();
    await addBot(store, { name: 'counter', roles: ['r'], tokenTtlMs: 60_000 });
    await Promise.all(
      Array.from({ length: 25 }, () =>
        store.locked(async () => {
          const r = (await store.read('counter'))!;
          await new Promise((res) => setImmediate(res));
          await store.write({ ...r, generation: r.generation + 1 });
        }),
      ),
    );
    expect((await store.read('counter'))!.generation).toBe(25);
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const store = await freshStore();
    await writeFile(
      store.lockPath,
      JSON.stringify({
        pid: 2 ** 22 + 12345,
        host: (await import('node:os')).hostname(),
        at: new Date().toISOString(),
        nonce: 'x',
      }),
    );
    await addBot(store, { name: 'after-crash', roles: ['r'], tokenTtlMs: 60_000 });
    expect(await store.read('after-crash')).toBeDefined();
  });
});

describe('renewal schedule', () => {
  it('renews after the interval or half the remaining lifetime, whichever is sooner, with up to 10 % jitter', () => {
    expect(renewalDelay(5_000, 20 * 60_000, () => 0)).toBe(2_500);
    expect(renewalDelay(5_000, 20 * 60_000, () => 1)).toBe(2_250);
    expect(renewalDelay(3_600_000, 20 * 60_000, () => 0)).toBe(20 * 60_000);
    expect(renewalDelay(3_600_000, 20 * 60_000, () => 1)).toBe(18 * 60_000);
    expect(renewalDelay(-1, 60_000, () => 0)).toBe(0);
  });

  it('backs off from 500 ms, doubling, but never past a fifth of what is left', () => {
    expect([0, 1, 2, 3].map((a) => retryDelay(a, 3_600_000, () => 0))).toEqual([500, 1000, 2000, 4000]);
    expect(retryDelay(20, 3_600_000, () => 0)).toBe(30_000);
    expect(retryDelay(5, 4_000, () => 0)).toBe(800);
    expect(retryDelay(5, 0, () => 0)).toBe(200);
  });
});
