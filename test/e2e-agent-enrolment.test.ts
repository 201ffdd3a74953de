/**
 * Agent enrolment end to end: the real proxy process with a state directory
 * and an audit log, the real `mcp-access agent …` operator commands, real
 * TLS, and the agent side's AgentCredentials joining with the token and the
 * CA pin `agent add` printed, renewing, and being locked and removed. The
 * proxy side's checkAgent / onRevoked are exercised on an in-process proxy
 * (`startProxy`, the same code `proxy start` runs) sharing that state.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentCredentials, type AgentCredentialSet } from '../src/agent/credentials.js';
import { AccessError } from '../src/errors.js';
import { claimsFromCertificate } from '../src/identity/claims.js';
import { parseIdentityFile } from '../src/identity/identity-file.js';
import { caPin } from '../src/identity/pin.js';
import type { Peer } from '../src/identity/peer.js';
import { startProxy, type RunningProxy } from '../src/proxy/run.js';
import type { Revocation } from '../src/proxy/enrolment/service.js';
import { parseProxyAddress } from '../src/tunnel/proxy-address.js';
import { Logger } from '../src/util/log.js';
import { ALLOW_ALL_ROLE, TestCluster, freePort, testServer } from './helpers/cluster.js';
import { addBot, auditEvents, runCli, waitForAudit } from './helpers/bot.js';
import { RawTunnel } from './helpers/raw-tunnel.js';

let cluster: TestCluster;
let auditPath: string;
const opened: AgentCredentials[] = [];
const logLines: string[] = [];
const log = new Logger({ name: 'agent', level: 'info', sink: (l) => logLines.push(l) });

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [testServer('test')],
    roles: [ALLOW_ALL_ROLE],
    config: { bot: { state_dir: './state' }, audit: { path: './audit.log' } },
  });
  auditPath = join(cluster.dir, 'audit.log');
});
afterAll(async () => {
  await Promise.allSettled(opened.map((c) => c.close()));
  await cluster?.close();
});

const dataDir = (name: string) => join(cluster.dir, 'agents-data', name);

async function addAgent(name: string): Promise<{ token: string; ca_pin: string; start_command: string }> {
  const r = await runCli(['agent', 'add', name, '--config', cluster.configPath, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { token: string; ca_pin: string; start_command: string };
}

async function open(
  name: string,
  o: { token?: string; caPin?: string; address?: string; dir?: string } = {},
): Promise<AgentCredentials> {
  const creds = await AgentCredentials.open({
    proxy: parseProxyAddress(o.address ?? cluster.address, ''),
    dataDir: o.dir ?? dataDir(name),
    ...(o.token !== undefined ? { token: o.token } : {}),
    ...(o.caPin !== undefined ? { caPin: o.caPin } : {}),
    ttlMs: 600_000,
    log,
  });
  opened.push(creds);
  return creds;
}

async function refusal(p: Promise<unknown>): Promise<AccessError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AccessError);
    return err as AccessError;
  }
  throw new Error('expected a refusal');
}

/** GET/POST with a client certificate, as anything holding these credentials could. */
async function call(
  set: { keyPem: string; certPem: string },
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const dispatcher = new Agent({
    connect: { ca: [cluster.pki.ca.caCertPem], key: set.keyPem, cert: set.certPem, rejectUnauthorized: true },
  });
  try {
    const res = await request(`https://${cluster.address}${path}`, {
      method,
      dispatcher,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: (await res.body.json()) as { error?: { code: string; message: string } } };
  } finally {
    await dispatcher.close();
  }
}

const agentsLs = async () => {
  const r = await runCli(['agent', 'ls', '--config', cluster.configPath, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { agents: Array<Record<string, unknown>> }).agents;
};

describe('agent add / ls (operator)', () => {
  it('prints a one-time agent token, the CA pin and the agent start line; ls shows it awaiting its join', async () => {
    const text = await runCli(['agent', 'add', 'printer', '--config', cluster.configPath, '--proxy', cluster.address]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/token:\s+mcpag_[A-Za-z0-9_-]{43}\n/);
    expect(text.stdout).toContain(`CA pin:  ${caPin(cluster.pki.ca.caCertPem)}\n`);
    expect(text.stdout).toMatch(
      new RegExp(
        `mcp-access agent start --config agent.yaml --proxy ${cluster.address} --data-dir /var/lib/mcp-access/agent --token mcpag_\\S+ --ca-pin sha256:[0-9a-f]{64}`,
      ),
    );
    const record = JSON.parse(await readFile(join(cluster.dir, 'state', 'agents', 'printer.json'), 'utf8')) as {
      token: { hash: string };
      roles: string[];
    };
    expect(record.roles).toEqual(['system:agent']);
    expect(JSON.stringify(record)).not.toContain('mcpag_');
    const ls = await agentsLs();
    expect(ls).toEqual([expect.objectContaining({ name: 'printer', status: 'awaiting join', locked: false })]);
    // A second add of the name is refused with its own code.
    const again = await runCli(['agent', 'add', 'printer', '--config', cluster.configPath]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^mcp-access: agent "printer" already exists/);
    // Bots and agents are listed apart.
    const bots = await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json']);
    expect(JSON.parse(bots.stdout)).toEqual({ bots: [] });
  });

  it('refuses a bad name, an unknown agent, and a config without bot.state_dir, with one line each', async () => {
    const bad = await runCli(['agent', 'add', '../x', '--config', cluster.configPath]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/agent name "..\/x" is not allowed/);
    const unknown = await runCli(['agent', 'lock', 'nobody', '--config', cluster.configPath]);
    expect(unknown.code).toBe(6);
    expect(unknown.stderr).toMatch(/no agent named "nobody"/);
    const config = parse(await readFile(cluster.configPath, 'utf8')) as Record<string, unknown>;
    delete config.bot;
    const noState = join(cluster.dir, 'no-state.yaml');
    await writeFile(noState, stringify(config));
    const refused = await runCli(['agent', 'add', 'x', '--config', noState]);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(
      /^mcp-access: .*no-state.yaml: bot: the config has no bot.state_dir, so agents cannot be registered/,
    );
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('join, renew, lock, remove (the agent side against the real proxy process)', () => {
  let first: AgentCredentialSet;
  let creds: AgentCredentials;
  let added: { token: string; ca_pin: string };

  it('joins with the token and the pin: an agent host certificate, stored privately', async () => {
    added = await addAgent('files-eu');
    creds = await open('files-eu', { token: added.token, caPin: added.ca_pin });
    first = creds.current();
    expect(first).toMatchObject({ name: 'files-eu', generation: 1, cluster: 'test-cluster' });
    expect(first.caPems).toEqual([cluster.pki.ca.caCertPem]);
    const claims = claimsFromCertificate(new X509Certificate(first.certPem));
    expect(claims).toEqual({
      user: 'agent:files-eu',
      roles: ['system:agent'],
      cluster: 'test-cluster',
      agent: { name: 'files-eu', generation: 1 },
    });
    const dir = dataDir('files-eu');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'identity'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'agent.json'))).mode & 0o777).toBe(0o600);
    const stored = parseIdentityFile(await readFile(join(dir, 'identity'), 'utf8'), 'identity');
    expect(stored.certPem.trim()).toBe(first.certPem.trim());
    const events = await waitForAudit(auditPath, (e) => e.type === 'agent.join');
    expect(events.find((e) => e.type === 'agent.join')).toMatchObject({
      code: 'AGT001I',
      outcome: 'success',
      agent: 'files-eu',
      generation: 1,
    });
    expect((await agentsLs()).find((a) => a.name === 'files-eu')).toMatchObject({ status: 'active', generation: 1 });
  });

  it('the token works once: a second join with it is refused, saying nothing about the agent', async () => {
    const err = await refusal(open('files-eu-copy', { token: added.token, caPin: added.ca_pin }));
    expect(err.code).toBe('AGENT_TOKEN_INVALID');
    expect(err.message).toBe('the proxy refused: the join token is not valid (unknown, already used or expired)');
    expect(err.line.split('\n')).toHaveLength(1);
    await waitForAudit(
      auditPath,
      (e) => e.type === 'agent.join.denied' && e.agent === 'files-eu' && /already used/.test(String(e.reason)),
    );
  });

  it('a bot token does not join an agent, nor an agent token a bot', async () => {
    const bot = await addBot(cluster.configPath, 'ci', ['all']);
    const err = await refusal(open('as-bot', { token: bot.token, caPin: bot.ca_pin }));
    expect(err.code).toBe('AGENT_TOKEN_INVALID');
    const agent = await addAgent('not-a-bot');
    const r = await runCli([
      'bot',
      'start',
      '--proxy',
      cluster.address,
      '--destination',
      join(cluster.dir, 'bot-dest'),
      '--token',
      agent.token,
      '--ca-pin',
      agent.ca_pin,
      '--oneshot',
    ]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/BOT_TOKEN_INVALID|join token is not valid/);
    // The refused agent token still works for its agent.
    const ok = await open('not-a-bot', { token: agent.token, caPin: agent.ca_pin });
    expect(ok.current().name).toBe('not-a-bot');
  });

  it('a wrong pin stops the join before the token leaves (the token still works afterwards)', async () => {
    const a = await addAgent('pinned');
    const wrong = `sha256:${'0'.repeat(64)}`;
    const err = await refusal(open('pinned', { token: a.token, caPin: wrong }));
    expect(err.code).toBe('AGENT_CA_PIN_MISMATCH');
    expect(err.message).toMatch(/presents cluster CA sha256:[0-9a-f]{64} \(cluster "test-cluster"\), not the pinned/);
    expect(err.message).toMatch(/the token was not sent/);
    const joined = await open('pinned', { token: a.token, caPin: a.ca_pin });
    expect(joined.current().generation).toBe(1);
  });

  it('an unreachable proxy and a malformed pin are one clear line each', async () => {
    const port = await freePort();
    const a = await addAgent('lonely');
    const down = await refusal(open('lonely', { token: a.token, caPin: a.ca_pin, address: `127.0.0.1:${port}` }));
    expect(down.code).toBe('PROXY_UNREACHABLE');
    expect(down.line).not.toContain('\n');
    const pin = await refusal(open('lonely', { token: a.token, caPin: 'sha1:abc' }));
    expect(pin.code).toBe('USAGE');
    expect(pin.message).toMatch(/--ca-pin "sha1:abc" must be sha256:/);
    const none = await refusal(open('never-joined'));
    expect(none.code).toBe('USAGE');
    expect(none.message).toMatch(/holds no agent certificate yet, so the first run needs a token/);
  });

  it('renewal bumps the generation with a new key; a restart loads it without a token', async () => {
    const seen: AgentCredentialSet[] = [];
    creds.on('renewed', (s) => seen.push(s));
    const second = await creds.renewNow();
    expect(second.generation).toBe(2);
    expect(second.keyPem).not.toBe(first.keyPem);
    expect(seen.map((s) => s.generation)).toEqual([2]);
    expect(creds.current().generation).toBe(2);
    await waitForAudit(auditPath, (e) => e.type === 'agent.renew' && e.agent === 'files-eu' && e.generation === 2);
    await creds.close();
    const again = await open('files-eu');
    expect(again.current()).toMatchObject({ name: 'files-eu', generation: 2, certPem: second.certPem });
    await again.close();
  });

  it('a copied older generation renewing locks the agent (as for bots)', async () => {
    // `first` is generation 1: a copy of the credential taken before the renewal.
    const r = await call(first, 'POST', '/v1/agent/renew', { csr: 'x', ttl_ms: 60_000 });
    // A malformed request is refused before generations are looked at…
    expect(r.status).toBe(400);
    const { createCsr, generateMachineKey } = await import('../src/identity/csr.js');
    const csr = await createCsr(await generateMachineKey(), 'copy');
    const copied = await call(first, 'POST', '/v1/agent/renew', { csr, ttl_ms: 60_000 });
    expect(copied.status).toBe(403);
    expect(copied.body.error?.code).toBe('AGENT_LOCKED');
    expect(copied.body.error?.message).toMatch(/credential copied: generation 1 was presented after generation 2/);
    expect((await agentsLs()).find((a) => a.name === 'files-eu')).toMatchObject({ status: 'locked', locked: true });
    const unlock = await runCli(['agent', 'unlock', 'files-eu', '--config', cluster.configPath]);
    expect(unlock.code, unlock.stderr).toBe(0);
  });

  it('an agent certificate is no user: it lists no servers and renews nothing as a bot; a bot renews nothing as an agent', async () => {
    const current = (await open('files-eu')).current();
    // It sees no server (where a user with a role sees one) …
    const servers = (await call(current, 'GET', '/v1/servers')) as unknown as {
      status: number;
      body: { servers: unknown[] };
    };
    expect(servers.status).toBe(200);
    expect(servers.body.servers).toEqual([]);
    const alice = parseIdentityFile(await readFile(await cluster.issue('alice', ['all']), 'utf8'), 'a');
    const aliceServers = (await call(alice, 'GET', '/v1/servers')) as unknown as { body: { servers: unknown[] } };
    expect(aliceServers.body.servers).toHaveLength(1);
    // … and opens no tunnel to it.
    // Refused before any upgrade (401): no WebSocket, no session.
    const tunnel = await RawTunnel.open(cluster.address, join(dataDir('files-eu'), 'identity'), {
      server: 'test',
    }).catch((e: Error) => e);
    expect(tunnel instanceof Error || tunnel.hello === undefined).toBe(true);
    await cluster.waitForLog(/host certificate cannot open MCP sessions/);
    await waitForAudit(
      auditPath,
      (e) => e.type === 'mcp.session.start' && e.outcome === 'denied' && e.agent === 'files-eu' && e.server === 'test',
    );
    const { createCsr, generateMachineKey } = await import('../src/identity/csr.js');
    const csr = await createCsr(await generateMachineKey(), 'x');
    const asBot = await call(current, 'POST', '/v1/bot/renew', { csr, ttl_ms: 60_000 });
    expect(asBot.status).toBe(403);
    expect(asBot.body.error?.message).toMatch(/only a bot certificate can be renewed here/);
    // A user and a bot certificate at the agents' renewal endpoint.
    const userPath = await cluster.issue('alice', ['all']);
    const user = parseIdentityFile(await readFile(userPath, 'utf8'), 'u');
    const asUser = await call(user, 'POST', '/v1/agent/renew', { csr, ttl_ms: 60_000 });
    expect(asUser.status).toBe(403);
    expect(asUser.body.error?.message).toMatch(/only an agent certificate can be renewed here/);
    const botPath = await cluster.issue('bot-files-eu', ['all'], 600_000, { bot: { name: 'files-eu', generation: 2 } });
    const bot = parseIdentityFile(await readFile(botPath, 'utf8'), 'b');
    const botAsAgent = await call(bot, 'POST', '/v1/agent/renew', { csr, ttl_ms: 60_000 });
    expect(botAsAgent.status).toBe(403);
    expect(botAsAgent.body.error?.message).toMatch(/only an agent certificate can be renewed here/);
  });

  it('a lock refuses renewals (retried while the certificate lasts); unlock lets it renew again', async () => {
    const c = await open('files-eu');
    const lock = await runCli([
      'agent',
      'lock',
      'files-eu',
      '--reason',
      'host compromised',
      '--config',
      cluster.configPath,
    ]);
    expect(lock.code, lock.stderr).toBe(0);
    const err = await refusal(c.renewNow());
    expect(err.code).toBe('AGENT_LOCKED');
    expect(err.message).toMatch(/agent "files-eu" is locked since .*: host compromised/);
    await waitForAudit(
      auditPath,
      (e) => e.type === 'agent.lock' && e.agent === 'files-eu' && e.reason === 'host compromised',
    );
    await waitForAudit(auditPath, (e) => e.type === 'agent.renew.denied' && e.errorCode === 'AGENT_LOCKED');
    const ls = (await agentsLs()).find((a) => a.name === 'files-eu');
    expect(ls).toMatchObject({ locked: true, status: 'locked' });
    const unlock = await runCli(['agent', 'unlock', 'files-eu', '--config', cluster.configPath]);
    expect(unlock.code, unlock.stderr).toBe(0);
    expect((await c.renewNow()).generation).toBeGreaterThan(2);
  });

  it('rm: renewals refused for good, the token of a removed agent never works, re-adding starts above the old generations', async () => {
    const c = await open('files-eu');
    const before = c.current().generation;
    const rm = await runCli(['agent', 'rm', 'files-eu', '--config', cluster.configPath]);
    expect(rm.code, rm.stderr).toBe(0);
    const err = await refusal(c.renewNow());
    expect(err.code).toBe('AGENT_UNKNOWN');
    expect((await agentsLs()).find((a) => a.name === 'files-eu')).toBeUndefined();
    await waitForAudit(auditPath, (e) => e.type === 'agent.remove' && e.agent === 'files-eu');
    const again = await addAgent('files-eu');
    await mkdir(join(cluster.dir, 'fresh'), { recursive: true, mode: 0o700 });
    const fresh = await open('files-eu', {
      token: again.token,
      caPin: again.ca_pin,
      dir: join(cluster.dir, 'fresh', 'x'),
    });
    expect(fresh.current().generation).toBe(before + 1);
  });

  it('every agent event is in the audit trail, none of them carries a token', async () => {
    const events = (await auditEvents(auditPath)).filter((e) => String(e.type).startsWith('agent.'));
    const types = new Set(events.map((e) => e.type));
    for (const t of [
      'agent.add',
      'agent.join',
      'agent.join.denied',
      'agent.renew',
      'agent.lock',
      'agent.unlock',
      'agent.remove',
    ])
      expect(types, t).toContain(t);
    expect(JSON.stringify(events)).not.toMatch(/mcpag_/);
    expect(events.every((e) => /^AGT00\d[IEW]$/.test(String(e.code)))).toBe(true);
  });
});

describe('checkAgent and revocations (the proxy side, in process)', () => {
  let proxy: RunningProxy;
  let address: string;
  const revocations: Revocation[] = [];

  const peerOf = (set: { certPem: string }): Peer => {
    const cert = new X509Certificate(set.certPem);
    const c = claimsFromCertificate(cert);
    return {
      user: c.user,
      roles: c.roles,
      ...(c.bot ? { bot: c.bot } : {}),
      ...(c.agent ? { agent: c.agent } : {}),
      notAfter: new Date(cert.validTo),
      serial: cert.serialNumber,
      fingerprint256: cert.fingerprint256,
      remoteAddr: '127.0.0.1:1',
    };
  };
  const checked = (peer: Peer): string | undefined => {
    try {
      proxy.agents!.checkAgent(peer);
      return undefined;
    } catch (err) {
      return (err as AccessError).code;
    }
  };

  /** Another proxy on the same CA and state directory, with its own audit log (one writer per trail). */
  let n = 0;
  const inProcess = async (bot: Record<string, unknown> = {}): Promise<RunningProxy> => {
    const config = parse(await readFile(cluster.configPath, 'utf8')) as Record<string, unknown>;
    const path = join(cluster.dir, `proxy-in-process-${++n}.yaml`);
    await writeFile(
      path,
      stringify({ ...config, audit: { path: `./audit-in-process-${n}.log` }, bot: { state_dir: './state', ...bot } }),
    );
    return startProxy(path, { port: 0, logger: new Logger({ level: 'error', sink: () => {} }) });
  };

  beforeAll(async () => {
    proxy = await inProcess();
    address = `127.0.0.1:${proxy.address.port}`;
    proxy.agents!.onRevoked((r) => revocations.push(r));
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('accepts the current generation and the one before it during the grace; refuses older ones', async () => {
    const a = await addAgent('db-1');
    const c = await open('db-1', { token: a.token, caPin: a.ca_pin, address });
    const g1 = c.current();
    expect(checked(peerOf(g1))).toBeUndefined();
    const g2 = await c.renewNow();
    const g3 = await c.renewNow();
    expect(checked(peerOf(g3))).toBeUndefined();
    expect(checked(peerOf(g2))).toBeUndefined(); // the previous generation, inside bot.superseded_grace (60 s)
    expect(checked(peerOf(g1))).toBe('IDENTITY_REJECTED');
  });

  it('after the grace the previous generation is refused too (a proxy with superseded_grace: 0s reading the same state)', async () => {
    const a = await addAgent('db-2');
    const c = await open('db-2', { token: a.token, caPin: a.ca_pin, address });
    const g1 = c.current();
    const g2 = await c.renewNow();
    const strict = await inProcess({ superseded_grace: '0s' });
    try {
      const check = (p: Peer) => {
        try {
          strict.agents!.checkAgent(p);
          return undefined;
        } catch (err) {
          return err as AccessError;
        }
      };
      expect(check(peerOf(g2))).toBeUndefined();
      const old = check(peerOf(g1));
      expect(old?.code).toBe('IDENTITY_REJECTED');
      expect(old?.message).toMatch(/agent "db-2" \(generation 1\) was superseded by generation 2/);
    } finally {
      await strict.close();
    }
  });

  it('listeners hear when the grace after a renewal ends: the older generations are revoked as superseded', async () => {
    const strict = await inProcess({ superseded_grace: '0s' });
    const seen: Revocation[] = [];
    strict.agents!.onRevoked((r) => seen.push(r));
    try {
      const a = await addAgent('db-6');
      const c = await open('db-6', { token: a.token, caPin: a.ca_pin, address: `127.0.0.1:${strict.address.port}` });
      const g1 = c.current();
      const g2 = await c.renewNow();
      const deadline = Date.now() + 10_000;
      while (!seen.some((r) => r.name === 'db-6' && r.why === 'superseded')) {
        if (Date.now() > deadline)
          throw new Error(`no superseded revocation: ${JSON.stringify(seen.map((r) => r.why))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const r = seen.find((x) => x.name === 'db-6' && x.why === 'superseded')!;
      expect(r.applies(peerOf(g1))).toBe(true);
      expect(r.applies(peerOf(g2))).toBe(false);
      expect(r.error.message).toMatch(/superseded by generation 2/);
    } finally {
      await strict.close();
    }
  });

  it('a user or a bot certificate is never taken for an agent', async () => {
    const user = parseIdentityFile(await readFile(await cluster.issue('agent-db-1', ['all']), 'utf8'), 'u');
    expect(checked(peerOf(user))).toBe('IDENTITY_REJECTED');
    const bot = parseIdentityFile(
      await readFile(
        await cluster.issue('bot-db-1', ['all'], 600_000, { bot: { name: 'db-1', generation: 1 } }),
        'utf8',
      ),
      'b',
    );
    expect(checked(peerOf(bot))).toBe('IDENTITY_REJECTED');
    // A peer claiming an agent it is not registered as (e.g. another cluster's name).
    const ghost = { ...peerOf(bot), bot: undefined, agent: { name: 'ghost', generation: 1 } } as Peer;
    expect(checked(ghost)).toBe('AGENT_UNKNOWN');
  });

  it('agent lock: checkAgent refuses at once after the state is read, and listeners hear of it within about a second', async () => {
    const a = await addAgent('db-3');
    const c = await open('db-3', { token: a.token, caPin: a.ca_pin, address });
    const other = await open('db-4', { token: (await addAgent('db-4')).token, caPin: a.ca_pin, address });
    const peer = peerOf(c.current());
    const lock = await runCli(['agent', 'lock', 'db-3', '--config', cluster.configPath]);
    expect(lock.code, lock.stderr).toBe(0);
    const locked = Date.now();
    // The poll (every second) delivers it by itself; bounded wait, no fixed sleep.
    while (!revocations.some((r) => r.name === 'db-3' && r.why === 'locked')) {
      if (Date.now() - locked > 10_000) throw new Error('no revocation for the lock');
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = revocations.find((x) => x.name === 'db-3' && x.why === 'locked')!;
    expect(r.kind).toBe('agent');
    expect(r.error.code).toBe('AGENT_LOCKED');
    expect(r.applies(peer)).toBe(true);
    expect(r.applies(peerOf(other.current()))).toBe(false);
    expect(checked(peer)).toBe('AGENT_LOCKED');
    expect(checked(peerOf(other.current()))).toBeUndefined();
    await runCli(['agent', 'unlock', 'db-3', '--config', cluster.configPath]);
    await proxy.agents!.refresh();
    expect(checked(peer)).toBeUndefined();
  });

  it('agent rm: revoked as removed, checkAgent answers AGENT_UNKNOWN', async () => {
    const a = await addAgent('db-5');
    const c = await open('db-5', { token: a.token, caPin: a.ca_pin, address });
    const peer = peerOf(c.current());
    const rm = await runCli(['agent', 'rm', 'db-5', '--config', cluster.configPath]);
    expect(rm.code, rm.stderr).toBe(0);
    await proxy.agents!.refresh();
    const r = revocations.find((x) => x.name === 'db-5' && x.why === 'removed');
    expect(r?.applies(peer)).toBe(true);
    expect(checked(peer)).toBe('AGENT_UNKNOWN');
  });
});
