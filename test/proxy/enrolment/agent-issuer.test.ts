/**
 * The issuer with an agents' store: the same machinery as for bots, but the
 * certificates are agent host certificates, and a bot's or a user's
 * certificate never renews as an agent (nor an agent's as a bot).
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessError } from '../../../src/errors.js';
import { claimsFromCertificate } from '../../../src/identity/claims.js';
import { createCsr, generateMachineKey } from '../../../src/identity/csr.js';
import { addBot, listBots, lockBot, removeBot } from '../../../src/proxy/enrolment/admin.js';
import { BotRefusal, joinWithToken, renewBot } from '../../../src/proxy/enrolment/issuer.js';
import { BotStore } from '../../../src/proxy/enrolment/store.js';
import { makeTestPki, type TestPki } from '../../helpers/pki.js';

let pki: TestPki;
let root: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mcp-access-agent-issuer-'));
  pki = await makeTestPki(root, { cluster: 'units' });
});

async function stores(): Promise<{ agents: BotStore; bots: BotStore }> {
  const dir = join(root, `state-${++n}`);
  const agents = new BotStore(dir, 'agent');
  const bots = new BotStore(dir, 'bot');
  await agents.ensure();
  await bots.ensure();
  return { agents, bots };
}

function peerOf(certPem: string) {
  const cert = new X509Certificate(certPem);
  const c = claimsFromCertificate(cert);
  return { bot: c.bot, agent: c.agent, serial: cert.serialNumber };
}

async function refusal(p: Promise<unknown>): Promise<AccessError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof BotRefusal) return err.error;
  expect(err).toBeInstanceOf(AccessError);
  return err as AccessError;
}

const csr = async () => createCsr(await generateMachineKey(), 'x');

describe('the issuer for agents', () => {
  it('registers an agent with its fixed role and an agent token, whatever roles are passed', async () => {
    const { agents } = await stores();
    const added = await addBot(agents, { name: 'files', roles: ['admin'], tokenTtlMs: 60_000 });
    expect(added.token).toMatch(/^mcpag_[A-Za-z0-9_-]{43}$/);
    expect(added.record.roles).toEqual(['system:agent']);
    expect((await listBots(agents)).map((a) => a.name)).toEqual(['files']);
    await expect(addBot(agents, { name: 'files', roles: [], tokenTtlMs: 60_000 })).rejects.toMatchObject({
      code: 'AGENT_EXISTS',
    });
    await expect(addBot(agents, { name: 'a/b', roles: [], tokenTtlMs: 60_000 })).rejects.toThrow(
      /agent name "a\/b" is not allowed/,
    );
  });

  it('joins and renews with agent host certificates; generations count up', async () => {
    const { agents } = await stores();
    const { token } = await addBot(agents, { name: 'files', roles: [], tokenTtlMs: 60_000 });
    const joined = await joinWithToken({ store: agents, ca: pki.ca }, { token, csr: await csr(), ttl_ms: 60_000 });
    expect(joined.response).toMatchObject({ agent: 'files', user: 'agent:files', roles: ['system:agent'] });
    expect(joined.response.bot).toBeUndefined();
    expect(claimsFromCertificate(new X509Certificate(joined.response.certificate)).agent).toEqual({
      name: 'files',
      generation: 1,
    });
    const renewed = await renewBot({ store: agents, ca: pki.ca }, peerOf(joined.response.certificate), {
      csr: await csr(),
      ttl_ms: 60_000,
    });
    expect(peerOf(renewed.response.certificate).agent).toEqual({ name: 'files', generation: 2 });
  });

  it('bot and agent tokens, records and certificates do not cross over', async () => {
    const { agents, bots } = await stores();
    const agentToken = (await addBot(agents, { name: 'same', roles: [], tokenTtlMs: 60_000 })).token;
    const botToken = (await addBot(bots, { name: 'same', roles: ['reader'], tokenTtlMs: 60_000 })).token;
    // Each token joins only its own kind.
    expect(
      (
        await refusal(
          joinWithToken({ store: agents, ca: pki.ca }, { token: botToken, csr: await csr(), ttl_ms: 60_000 }),
        )
      ).code,
    ).toBe('AGENT_TOKEN_INVALID');
    expect(
      (
        await refusal(
          joinWithToken({ store: bots, ca: pki.ca }, { token: agentToken, csr: await csr(), ttl_ms: 60_000 }),
        )
      ).code,
    ).toBe('BOT_TOKEN_INVALID');
    const agent = await joinWithToken(
      { store: agents, ca: pki.ca },
      { token: agentToken, csr: await csr(), ttl_ms: 60_000 },
    );
    const bot = await joinWithToken({ store: bots, ca: pki.ca }, { token: botToken, csr: await csr(), ttl_ms: 60_000 });
    // A bot certificate of the same name renews nothing as an agent, and the reverse.
    const asAgent = await refusal(
      renewBot({ store: agents, ca: pki.ca }, peerOf(bot.response.certificate), { csr: await csr(), ttl_ms: 60_000 }),
    );
    expect(asAgent.code).toBe('ACCESS_DENIED');
    expect(asAgent.message).toMatch(/only an agent certificate can be renewed here/);
    const asBot = await refusal(
      renewBot({ store: bots, ca: pki.ca }, peerOf(agent.response.certificate), { csr: await csr(), ttl_ms: 60_000 }),
    );
    expect(asBot.code).toBe('ACCESS_DENIED');
    // A user certificate carries neither.
    const user = await refusal(
      renewBot({ store: agents, ca: pki.ca }, { serial: '01' }, { csr: await csr(), ttl_ms: 60_000 }),
    );
    expect(user.code).toBe('ACCESS_DENIED');
  });

  it('lock and removal refuse renewals with the agent codes', async () => {
    const { agents } = await stores();
    const { token } = await addBot(agents, { name: 'files', roles: [], tokenTtlMs: 60_000 });
    const joined = await joinWithToken({ store: agents, ca: pki.ca }, { token, csr: await csr(), ttl_ms: 60_000 });
    await lockBot(agents, 'files', 'maintenance');
    const locked = await refusal(
      renewBot({ store: agents, ca: pki.ca }, peerOf(joined.response.certificate), {
        csr: await csr(),
        ttl_ms: 60_000,
      }),
    );
    expect(locked.code).toBe('AGENT_LOCKED');
    expect(locked.message).toMatch(/agent "files" is locked since .*: maintenance/);
    expect(locked.hint).toMatch(/mcp-access agent unlock files/);
    await removeBot(agents, 'files');
    const gone = await refusal(
      renewBot({ store: agents, ca: pki.ca }, peerOf(joined.response.certificate), {
        csr: await csr(),
        ttl_ms: 60_000,
      }),
    );
    expect(gone.code).toBe('AGENT_UNKNOWN');
    await expect(lockBot(agents, 'files', 'x')).rejects.toMatchObject({ code: 'AGENT_UNKNOWN' });
  });
});
