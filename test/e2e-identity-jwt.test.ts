/**
 * Identity to HTTP upstreams (issue 15): with `identity_jwt: true`, every
 * HTTP request the proxy makes to a Streamable HTTP server carries a fresh
 * ES256 JWT (MCP-Access-Jwt-Assertion) naming the user, roles, traits,
 * session and server, signed with the proxy's key, which verifies against
 * the JWKS the proxy publishes; the client's own credentials never reach the
 * server, and a server without the setting gets no assertion.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createPublicKey, verify } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { TestCluster } from './helpers/cluster.js';
import { RawTunnel } from './helpers/raw-tunnel.js';
import { INIT } from './helpers/raw-bridge.js';

let cluster: TestCluster;
let upstream: Server;
const seen: IncomingHttpHeaders[] = [];
let identity: string;

/** A minimal Streamable HTTP MCP server (JSON answers) that records every request's headers. */
function startUpstream(): Promise<number> {
  upstream = createServer((req, res) => {
    seen.push(req.headers);
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const msg = JSON.parse(body) as { id?: number | string; method: string };
      if (msg.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const result =
        msg.method === 'initialize'
          ? {
              protocolVersion: '2025-06-18',
              capabilities: { tools: {} },
              serverInfo: { name: 'jwt-echo', version: '1' },
            }
          : msg.method === 'tools/list'
            ? { tools: [{ name: 'whoami', inputSchema: { type: 'object' } }] }
            : { content: [{ type: 'text', text: String(req.headers['mcp-access-jwt-assertion'] ?? 'none') }] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    });
  });
  return new Promise((resolve) =>
    upstream.listen(0, '127.0.0.1', () => resolve((upstream.address() as { port: number }).port)),
  );
}

function getJwks(): Promise<{ keys: Array<Record<string, string>> }> {
  return new Promise((resolve, reject) => {
    httpsRequest(`https://${cluster.address}/.well-known/jwks.json`, { rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(JSON.parse(text) as { keys: Array<Record<string, string>> }));
    })
      .on('error', reject)
      .end();
  });
}

function decode(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>,
  };
}

beforeAll(async () => {
  const port = await startUpstream();
  cluster = await TestCluster.start({
    servers: [
      { name: 'signed', labels: { env: 'dev' }, url: `http://127.0.0.1:${port}/mcp`, identity_jwt: true },
      { name: 'plain', labels: { env: 'dev' }, url: `http://127.0.0.1:${port}/plain` },
    ],
  });
  identity = await cluster.issue('alice', ['all'], 600_000, { traits: { teams: ['ml'] } });
});
afterAll(async () => {
  await cluster?.close();
  upstream?.close();
});

async function whoami(server: string): Promise<string> {
  const t = await RawTunnel.open(cluster.address, identity, { server });
  t.send(INIT(0));
  await t.response(0);
  t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  t.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
  const res = await t.response(1);
  await t.close();
  return (res.result as { content: Array<{ text: string }> }).content[0]!.text;
}

describe('identity_jwt', () => {
  it('every request carries a JWT that verifies against the proxy JWKS and names who is calling', async () => {
    seen.length = 0;
    const jwt = await whoami('signed');
    const { header, payload } = decode(jwt);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(payload).toMatchObject({
      iss: 'test-cluster',
      sub: 'alice',
      aud: 'signed',
      roles: ['all'],
      traits: { teams: ['ml'] },
    });
    expect(typeof payload.sid).toBe('string');
    expect(Number(payload.exp) - Number(payload.iat)).toBeLessThanOrEqual(60);

    const jwks = await getJwks();
    const jwk = jwks.keys.find((k) => k.kid === header.kid)!;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    const [h, p, s] = jwt.split('.');
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    expect(
      verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s!, 'base64url')),
    ).toBe(true);
    // A tampered payload does not verify.
    const forged = Buffer.from(JSON.stringify({ ...payload, sub: 'root' })).toString('base64url');
    expect(
      verify('sha256', Buffer.from(`${h}.${forged}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s!, 'base64url')),
    ).toBe(false);

    // Every request of the session had one (initialize, initialized, the call), each its own.
    const assertions = seen.map((hd) => hd['mcp-access-jwt-assertion']);
    expect(assertions.length).toBeGreaterThanOrEqual(3);
    expect(assertions.every((a) => typeof a === 'string')).toBe(true);
    expect(new Set(assertions.map((a) => decode(String(a)).payload.jti)).size).toBe(assertions.length);
    // Nothing of the client's TLS identity or credentials is passed on.
    for (const hd of seen) expect(hd.authorization).toBeUndefined();
  });

  it('a server without identity_jwt gets no assertion', async () => {
    seen.length = 0;
    expect(await whoami('plain')).toBe('none');
    expect(seen.every((hd) => hd['mcp-access-jwt-assertion'] === undefined)).toBe(true);
  });

  it('identity_jwt on a stdio server is a configuration error', async () => {
    const { runCli } = await import('./helpers/run-cli.js');
    await cluster.writeConfig({
      servers: [{ name: 'x', labels: {}, command: process.execPath, identity_jwt: true }],
    });
    const r = await runCli(['policy', 'check', '-c', cluster.configPath, '--roles', 'all', '--server', 'x']);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('servers[0].identity_jwt: does not apply to a stdio server');
  });
});
