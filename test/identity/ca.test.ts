/** The cluster CA directory, the proxy certificate, and real mTLS with what it issues. */
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtemp, readFile, stat, writeFile, readdir } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessError } from '../../src/errors.js';
import { caPin, initCa, issueIdentity, loadCa } from '../../src/identity/ca.js';
import { claimsFromCertificate } from '../../src/identity/claims.js';
import { loadIdentity } from '../../src/identity/load.js';
import { parseIdentityFile } from '../../src/identity/identity-file.js';
import { x509 } from '../../src/identity/x509.js';
import { makeTestPki } from '../helpers/pki.js';

let root: string;
let n = 0;
const fresh = () => join(root, `ca-${++n}`);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mcp-access-ca-'));
});

async function caError(p: Promise<unknown>): Promise<AccessError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AccessError);
  return err as AccessError;
}

describe('initCa', () => {
  it('creates the CA directory 0700 with keys 0600, and loadCa reads it back', async () => {
    const dir = fresh();
    const ca = await initCa({ dir, cluster: 'demo' });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await readdir(dir)).sort()).toEqual(['ca.crt', 'ca.key', 'proxy.crt', 'proxy.key']);
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'proxy.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(ca.caCertPem);
    const loaded = await loadCa(dir);
    expect(loaded).toEqual({ ...ca });
    const cert = new X509Certificate(ca.caCertPem);
    expect(cert.subject).toBe('CN=demo\nO=mcp-access');
    expect(cert.ca).toBe(true);
    expect(new X509Certificate(ca.caCertPem).publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('gives the proxy certificate a SAN per host (IPs as IP SANs) and serverAuth only', async () => {
    const ca = await initCa({
      dir: fresh(),
      cluster: 'demo',
      proxyHosts: ['mcp.example.com', '10.0.0.5', '::1', 'localhost'],
    });
    const cert = new X509Certificate(ca.proxyCertPem);
    expect(cert.subjectAltName).toBe(
      'DNS:mcp.example.com, IP Address:10.0.0.5, IP Address:0:0:0:0:0:0:0:1, DNS:localhost',
    );
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.checkHost('mcp.example.com')).toBe('mcp.example.com');
    expect(cert.checkIP('10.0.0.5')).toBe('10.0.0.5');
    expect(cert.verify(new X509Certificate(ca.caCertPem).publicKey)).toBe(true);
  });

  it('defaults the proxy hosts to localhost and 127.0.0.1', async () => {
    const ca = await initCa({ dir: fresh(), cluster: 'demo' });
    expect(new X509Certificate(ca.proxyCertPem).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
  });

  it('refuses to overwrite an existing CA unless forced', async () => {
    const dir = fresh();
    const first = await initCa({ dir, cluster: 'demo' });
    const err = await caError(initCa({ dir, cluster: 'demo' }));
    expect(err.code).toBe('CA_EXISTS');
    expect(err.message).toBe(`a certificate authority already exists in ${dir}`);
    expect(err.hint).toMatch(/--force/);
    expect((await loadCa(dir)).caKeyPem).toBe(first.caKeyPem);
    const second = await initCa({ dir, cluster: 'demo', force: true });
    expect(second.caKeyPem).not.toBe(first.caKeyPem);
    expect((await loadCa(dir)).caCertPem).toBe(second.caCertPem);
  });

  it('refuses an unsafe cluster name or proxy host', async () => {
    expect((await caError(initCa({ dir: fresh(), cluster: 'my cluster' }))).message).toMatch(
      /cluster name "my cluster" is not allowed/,
    );
    expect((await caError(initCa({ dir: fresh(), cluster: 'demo', proxyHosts: ['bad host'] }))).message).toMatch(
      /proxy host "bad host" is neither a DNS name nor an IP address/,
    );
  });
});

describe('loadCa', () => {
  it('a directory without a CA is CA_MISSING', async () => {
    const dir = fresh();
    const err = await caError(loadCa(dir));
    expect(err.code).toBe('CA_MISSING');
    expect(err.message).toBe(`no certificate authority in ${dir}: ${join(dir, 'ca.crt')} is missing`);
  });

  it('a key that does not match the CA certificate is CA_INVALID', async () => {
    const dir = fresh();
    await initCa({ dir, cluster: 'demo' });
    const other = await initCa({ dir: fresh(), cluster: 'demo' });
    await writeFile(join(dir, 'ca.key'), other.caKeyPem);
    const err = await caError(loadCa(dir));
    expect(err.code).toBe('CA_INVALID');
    expect(err.message).toBe(`certificate authority in ${dir} is damaged: ca.key does not match ca.crt`);
  });

  it('a damaged certificate or a missing proxy key is CA_INVALID', async () => {
    const dir = fresh();
    await initCa({ dir, cluster: 'demo' });
    await writeFile(join(dir, 'proxy.crt'), 'not a certificate\n');
    expect((await caError(loadCa(dir))).message).toMatch(/proxy\.crt is not a certificate/);
    const dir2 = fresh();
    await initCa({ dir: dir2, cluster: 'demo' });
    await writeFile(join(dir2, 'proxy.key'), '');
    const err = await caError(loadCa(dir2));
    expect(err.code).toBe('CA_INVALID');
    expect(err.message).toMatch(/proxy\.key is not a private key/);
  });
});

describe('caPin', () => {
  it('is sha256 of the CA SubjectPublicKeyInfo, computed independently here with @peculiar/x509', async () => {
    const ca = await initCa({ dir: fresh(), cluster: 'demo' });
    const spki = new x509.X509Certificate(ca.caCertPem).publicKey.rawData;
    expect(caPin(ca.caCertPem)).toBe(`sha256:${createHash('sha256').update(Buffer.from(spki)).digest('hex')}`);
  });
});

describe('issued identities in a real mTLS handshake', () => {
  it.each(['ec', 'rsa', 'ed25519'] as const)(
    'a %s identity authenticates to a server using the proxy certificate',
    async (keyType) => {
      const pki = await makeTestPki(fresh(), { cluster: 'tls-demo' });
      const id = await loadIdentity(await pki.issue('alice', ['reader', 'writer'], 60_000, { keyType }));
      const server = createServer({
        key: pki.ca.proxyKeyPem,
        cert: pki.ca.proxyCertPem,
        ca: [pki.ca.caCertPem],
        requestCert: true,
        rejectUnauthorized: true,
      });
      const peers: string[] = [];
      server.on('secureConnection', (socket: TLSSocket) => {
        const peer = socket.getPeerX509Certificate();
        peers.push(peer ? JSON.stringify(claimsFromCertificate(peer)) : 'none');
        socket.end('ok');
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const { port } = server.address() as AddressInfo;
        const socket = connect({
          host: '127.0.0.1',
          port,
          key: id.keyPem,
          cert: id.certPem,
          ca: id.caPems,
          servername: 'localhost',
        });
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        await once(socket, 'end');
        socket.destroy();
        expect(Buffer.concat(chunks).toString()).toBe('ok');
        expect(peers).toEqual([JSON.stringify({ user: 'alice', roles: ['reader', 'writer'], cluster: 'tls-demo' })]);
      } finally {
        server.close();
      }
    },
  );

  it('a server certificate cannot be used as a client identity (EKU serverAuth only)', async () => {
    const pki = await makeTestPki(fresh());
    // rejectUnauthorized: false so the server can report why OpenSSL refused the peer.
    const server = createServer({
      key: pki.ca.proxyKeyPem,
      cert: pki.ca.proxyCertPem,
      ca: [pki.ca.caCertPem],
      requestCert: true,
      rejectUnauthorized: false,
    });
    const verdicts: string[] = [];
    server.on('secureConnection', (s: TLSSocket) => {
      verdicts.push(s.authorized ? 'authorized' : String(s.authorizationError));
      s.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect({
        host: '127.0.0.1',
        port,
        key: pki.ca.proxyKeyPem,
        cert: pki.ca.proxyCertPem,
        ca: [pki.ca.caCertPem],
        servername: 'localhost',
      });
      socket.on('error', () => {});
      socket.resume();
      await once(socket, 'close');
      expect(verdicts).toEqual(['INVALID_PURPOSE']); // OpenSSL: unsuitable certificate purpose
    } finally {
      server.close();
    }
  });

  it('the identity file holds exactly the CA that issued it', async () => {
    const pki = await makeTestPki(fresh());
    const text = await issueIdentity(pki.ca, { user: 'u', roles: ['r'], ttlMs: 60_000 });
    expect(parseIdentityFile(text, 'x').caPems).toEqual([pki.ca.caCertPem]);
  });
});
