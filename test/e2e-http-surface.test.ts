/**
 * The proxy's HTTP surface as anyone on the network sees it: raw TLS sockets
 * (node:tls) sending odd HTTP, upgrades without a verified client
 * certificate, and refused connections by valid identities. Each test asserts
 * what must not happen (no 101, no crash: the proxy still answers /v1/ping)
 * and that the refusal is in the audit trail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { TestCluster } from './helpers/cluster.js';
import { makeTestPki } from './helpers/pki.js';
import { SUBPROTOCOL } from '../src/tunnel/control.js';
import { verifyAuditFile } from '../src/audit/log.js';

let cluster: TestCluster;
let auditPath: string;
let alice: { key: string; cert: string };
let bob: { key: string; cert: string };
let stranger: { key: string; cert: string }; // issued by another cluster's CA
let strangerDir: string;

/** The key and certificate PEM blocks of an identity file. */
async function credentials(path: string): Promise<{ key: string; cert: string }> {
  const blocks = (await readFile(path, 'utf8')).match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----/g) ?? [];
  return { key: blocks[0]!, cert: blocks[1]! };
}

/** Send raw bytes over TLS; resolve with everything the proxy answered once it closes (or after `untilMs`). */
function raw(text: string | Buffer, opts: { key?: string; cert?: string; untilMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = tlsConnect(
      { host: '127.0.0.1', port: cluster.port, rejectUnauthorized: false, key: opts.key, cert: opts.cert },
      () => s.write(text),
    );
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (t: string) => {
      got += t;
    });
    s.on('error', (err: Error) => (got ? resolve(got) : reject(err)));
    s.on('close', () => resolve(got));
    setTimeout(() => {
      s.destroy();
      resolve(got);
    }, opts.untilMs ?? 15_000).unref();
  });
}

function upgradeRequest(target: string): string {
  return (
    `GET ${target} HTTP/1.1\r\nHost: proxy\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`
  );
}

async function pingOk(): Promise<void> {
  const answer = await raw('GET /v1/ping HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
  expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  expect(answer).toContain('"cluster":"test-cluster"');
}

async function auditEvents(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(auditPath, 'utf8');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Waits (bounded) until an audit event matches. */
async function auditEvent(match: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = (await auditEvents().catch(() => [])).find(match);
    if (found) return found;
    if (Date.now() > deadline)
      throw new Error(`no matching audit event in:\n${await readFile(auditPath, 'utf8').catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A WebSocket tunnel with a client certificate; resolves with its first control frame and the socket. */
function tunnel(
  query: string,
  creds: { key: string; cert: string },
): Promise<{ ws: WebSocket; first: Record<string, unknown>; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${cluster.port}/v1/tunnel?${query}`, SUBPROTOCOL, {
      ...creds,
      rejectUnauthorized: false,
    });
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.once('message', (d: Buffer) =>
      resolve({ ws, first: JSON.parse(d.toString()) as Record<string, unknown>, closed }),
    );
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

beforeAll(async () => {
  cluster = await TestCluster.start({ config: { audit: { path: './audit.jsonl' }, bot: { state_dir: './bots' } } });
  auditPath = join(cluster.dir, 'audit.jsonl');
  alice = await credentials(await cluster.issue('alice', ['all']));
  bob = await credentials(await cluster.issue('bob', ['all']));
  strangerDir = await mkdtemp(join(tmpdir(), 'mcp-access-stranger-'));
  const other = await makeTestPki(strangerDir, { cluster: 'test-cluster' });
  stranger = await credentials(await other.issue('mallory', ['all'], 600_000));
});
afterAll(async () => {
  await cluster?.close();
  if (strangerDir) await rm(strangerDir, { recursive: true, force: true });
});

describe('malformed HTTP gets 400 and the proxy stays up', () => {
  it('GET //a:99999 (a target `new URL` throws on) as a request and as an upgrade', async () => {
    expect(await raw('GET //a:99999 HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect(await raw(upgradeRequest('//a:99999'))).toMatch(/^HTTP\/1\.1 400 /);
    await pingOk();
  });

  it.each([
    [
      'absolute-form target',
      'GET http://evil:99999/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    ['asterisk-form target', 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', /^HTTP\/1\.1 400 /],
    [
      'bad percent-encoding in the query',
      'GET /v1/ping?%zz=%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'percent-encoding that is not UTF-8',
      'GET /v1/servers?a=%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    ['a garbage request line', 'HELLO\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['a NUL in a header', 'GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['a header without a colon', 'GET /v1/ping HTTP/1.1\r\nHost x\r\n\r\n', /^HTTP\/1\.1 400 /],
    [
      'headers over the pre-auth limit',
      `GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      /^HTTP\/1\.1 431 /,
    ],
    ['an upgrade with bad percent-encoding', upgradeRequest('/v1/tunnel?server=%ff%zz'), /^HTTP\/1\.1 400 /],
  ])('%s', async (_name, request, status) => {
    expect(await raw(request)).toMatch(status);
    await pingOk();
  });
});

describe('no upgrade before authentication', () => {
  it('no client certificate: 401, never 101, and the refusal is audited', async () => {
    const answer = await raw(upgradeRequest('/v1/tunnel?server=test'));
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).not.toContain('101');
    expect(answer).toContain('"code":"IDENTITY_REJECTED"');
    await auditEvent(
      (e) =>
        e.type === 'mcp.session.start' &&
        e.outcome === 'denied' &&
        e.error === 'IDENTITY_REJECTED' &&
        e.user === undefined &&
        e.server === 'test',
    );
    await pingOk();
  });

  it('the JSON API without a certificate: 401 and audited', async () => {
    const answer = await raw('GET /v1/servers HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    await auditEvent((e) => e.error === 'IDENTITY_REJECTED' && String(e.reason).startsWith('GET /v1/servers: '));
  });

  it('a certificate from another CA: 401 and audited', async () => {
    const answer = await raw(upgradeRequest('/v1/tunnel?server=test'), stranger);
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    await auditEvent((e) => e.error === 'IDENTITY_REJECTED' && String(e.reason).includes('not trusted'));
  });

  it('an expired certificate: 401 IDENTITY_EXPIRED and audited', { timeout: 20_000 }, async () => {
    const path = await cluster.issue('late', ['all'], 5000);
    const creds = await credentials(path);
    const { X509Certificate } = await import('node:crypto');
    const notAfter = Date.parse(new X509Certificate(creds.cert).validTo);
    while (Date.now() <= notAfter + 1000) await new Promise((r) => setTimeout(r, 100));
    const answer = await raw(upgradeRequest('/v1/tunnel?server=test'), creds);
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toContain('"code":"IDENTITY_EXPIRED"');
    await auditEvent((e) => e.error === 'IDENTITY_EXPIRED');
  });

  it('a WebSocket client without a certificate never gets a socket', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${cluster.port}/v1/tunnel?server=test`, SUBPROTOCOL, {
      rejectUnauthorized: false,
    });
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => resolve(101));
      ws.once('error', () => resolve(-1));
    });
    ws.terminate();
    expect(status).toBe(401);
  });

  it('unauthenticated noise is audited at a bounded rate', async () => {
    const before = (await auditEvents()).length;
    await Promise.all(Array.from({ length: 60 }, () => raw(upgradeRequest('/v1/tunnel?server=noise'))));
    await pingOk();
    const noise = (await auditEvents()).slice(before).filter((e) => e.server === 'noise');
    expect(noise.length).toBeGreaterThan(0);
    expect(noise.length).toBeLessThan(60);
    // The rest is counted in a summary event (written with the next recorded one, or within 10 s).
    const summary = await auditEvent(
      (e) => typeof e.suppressed === 'number' && String(e.reason).includes('unauthenticated'),
    );
    expect(summary.suppressed as number).toBeGreaterThan(0);
  });

  it('a connection that sends nothing is closed by the pre-auth deadline', async () => {
    const s = tlsConnect({ host: '127.0.0.1', port: cluster.port, rejectUnauthorized: false });
    // Waits for the close itself (the deadline is 10 s, PRE_AUTH.firstRequestMs);
    // only the test's own timeout bounds it, so a loaded machine cannot fail it.
    const closed = await new Promise<boolean>((resolve) => {
      s.on('error', () => {});
      s.on('close', () => resolve(true));
    });
    expect(closed).toBe(true);
  }, 120_000);
});

describe('refusals of valid identities are audited (bots enabled)', () => {
  it('an unknown server', async () => {
    const { first, closed } = await tunnel('server=nope', alice);
    expect(first).toMatchObject({ type: 'fatal', code: 'UNKNOWN_SERVER' });
    await closed;
    await auditEvent((e) => e.user === 'alice' && e.error === 'UNKNOWN_SERVER' && e.server === 'nope');
  });

  it('a bad resume token', async () => {
    const { first, closed } = await tunnel('server=test&resume=forged&received=0', alice);
    expect(first).toMatchObject({ type: 'fatal', code: 'SESSION_LOST' });
    await closed;
    await auditEvent((e) => e.user === 'alice' && e.error === 'SESSION_LOST');
  });

  it("a resume of another identity's session", async () => {
    const own = await tunnel('server=test', alice);
    expect(own.first).toMatchObject({ type: 'hello' });
    const token = own.first.resumeToken as string;
    const theft = await tunnel(`server=other&resume=${encodeURIComponent(token)}&received=0`, bob);
    expect(theft.first).toMatchObject({ type: 'fatal', code: 'IDENTITY_REJECTED' });
    expect(JSON.stringify(theft.first)).not.toContain('alice'); // the owner is named in the audit trail only
    await theft.closed;
    await auditEvent(
      (e) =>
        e.user === 'bob' &&
        e.error === 'IDENTITY_REJECTED' &&
        e.server === 'test' &&
        String(e.reason).includes('alice'),
    );
    own.ws.close(1000);
    await own.closed;
    await pingOk();
    expect((await verifyAuditFile(auditPath)).ok).toBe(true);
  });
});
