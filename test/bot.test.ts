/**
 * The machine-identity bot end to end: the real proxy process (with a bot
 * state directory and an audit log), the real `mcp-access bot …` commands,
 * real TLS, and an SDK client calling tools through the real `connect` with
 * the identity the bot keeps renewing.
 */
import { cp, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { loadIdentity } from '../src/identity/load.js';
import { addBot as addBotRecord } from '../src/proxy/enrolment/admin.js';
import { BotStore } from '../src/proxy/enrolment/store.js';
import { ALLOW_ALL_ROLE, TestCluster, resultText, testServer } from './helpers/cluster.js';
import { RunningBot, addBot, auditEvents, runCli, waitForAudit } from './helpers/bot.js';

let cluster: TestCluster;
let auditPath: string;
const bots: RunningBot[] = [];

beforeAll(async () => {
  cluster = await TestCluster.start({
    servers: [testServer('test')],
    roles: [ALLOW_ALL_ROLE],
    config: { bot: { state_dir: './bots' }, audit: { path: './audit.log' } },
  });
  auditPath = join(cluster.dir, 'audit.log');
});
afterAll(async () => {
  await Promise.allSettled(bots.map((b) => b.stop()));
  await cluster?.close();
});

const dest = (name: string) => join(cluster.dir, 'machines', name);
const startBot = (args: string[]) => {
  const b = new RunningBot(['--proxy', cluster.address, ...args]);
  bots.push(b);
  return b;
};
const oneshot = (args: string[]) => runCli(['bot', 'start', '--proxy', cluster.address, '--oneshot', ...args]);
const mode = async (p: string) => (await stat(p)).mode & 0o777;
/** The command succeeded (its stderr in the failure message otherwise). */
const ok = (r: { code: number | null; stderr: string }) => expect(r.code, r.stderr).toBe(0);

describe('bot add / ls (operator)', () => {
  it('prints a one-time token, the CA pin and the exact start command; stores only the token hash', async () => {
    const text = await runCli([
      'bot',
      'add',
      'printer',
      '--roles',
      'all,extra',
      '--config',
      cluster.configPath,
      '--proxy',
      cluster.address,
    ]);
    expect(text.code).toBe(0);
    const token = /token:\s+(\S+)/.exec(text.stdout)?.[1];
    const pin = /CA pin:\s+(sha256:[0-9a-f]{64})/.exec(text.stdout)?.[1];
    expect(token).toMatch(/^mcpab_[A-Za-z0-9_-]{43}$/);
    expect(pin).toBeDefined();
    expect(text.stdout).toContain(
      `mcp-access bot start --proxy ${cluster.address} --destination /var/lib/mcp-access/bot --token ${token} --ca-pin ${pin}`,
    );

    const json = await addBot(cluster.configPath, 'printer-json', ['all']);
    expect(json.token).toMatch(/^mcpab_/);
    expect(json.ca_pin).toBe(pin);

    const stateDir = join(cluster.dir, 'bots');
    expect(await mode(stateDir)).toBe(0o700);
    for (const f of await readdir(join(stateDir, 'bots'))) {
      const body = await readFile(join(stateDir, 'bots', f), 'utf8');
      expect(body).not.toContain(token);
      expect(body).not.toContain(json.token);
      expect(await mode(join(stateDir, 'bots', f))).toBe(0o600);
    }

    const ls = await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json']);
    const listed = (JSON.parse(ls.stdout) as { bots: Array<{ name: string; status: string; roles: string[] }> }).bots;
    expect(listed.find((b) => b.name === 'printer')).toMatchObject({
      status: 'awaiting join',
      roles: ['all', 'extra'],
    });

    const again = await runCli(['bot', 'add', 'printer', '--roles', 'all', '--config', cluster.configPath]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/bot "printer" already exists/);
  });
});

describe('joining', () => {
  it('refuses a wrong CA pin before sending the token: the token still works afterwards with the right pin', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'pinned', ['all']);
    const wrongPin = `sha256:${'ab'.repeat(32)}`;
    const wrong = await oneshot(['--destination', dest('pinned'), '--token', token, '--ca-pin', wrongPin]);
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toContain(`presents cluster CA ${ca_pin}`);
    expect(wrong.stderr).toContain(`not the pinned ${wrongPin}; the token was not sent`);
    // The proxy never saw a join attempt.
    expect(
      (await auditEvents(auditPath)).filter((e) => String(e.type).startsWith('bot.join') && e.bot === 'pinned'),
    ).toEqual([]);
    await expect(stat(join(dest('pinned'), 'identity'))).rejects.toThrow();

    const right = await oneshot(['--destination', dest('pinned'), '--token', token, '--ca-pin', ca_pin]);
    expect(right.code).toBe(0);
    expect(right.stderr).toMatch(/joined as bot "pinned" \(user bot-pinned, roles all, generation 1\)/);
  });

  it('writes DIR/identity (0600 in a 0700 directory) that loads as the bot, and keeps the CA; the private key never left', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'writer', ['all']);
    const d = dest('writer');
    const r = await oneshot(['--destination', d, '--token', token, '--ca-pin', ca_pin, '--ttl', '10m']);
    expect(r.code).toBe(0);
    expect(await mode(d)).toBe(0o700);
    expect(await mode(join(d, 'identity'))).toBe(0o600);
    expect((await readdir(d)).sort()).toEqual(['bot.json', 'ca.crt', 'identity']);
    const id = await loadIdentity(join(d, 'identity'));
    expect(id).toMatchObject({
      user: 'bot-writer',
      roles: ['all'],
      cluster: 'test-cluster',
      bot: { name: 'writer', generation: 1 },
    });
    expect(id.notAfter.getTime() - Date.now()).toBeGreaterThan(9 * 60_000);
    // What the proxy recorded about the key: a hash, never the key.
    const record = await readFile(join(cluster.dir, 'bots', 'bots', 'writer.json'), 'utf8');
    expect(record).not.toContain('PRIVATE KEY');
    const events = await waitForAudit(auditPath, (e) => e.type === 'bot.join' && e.bot === 'writer');
    expect(events.find((e) => e.type === 'bot.join' && e.bot === 'writer')).toMatchObject({
      code: 'BOT001I',
      generation: 1,
      user: 'bot-writer',
      roles: ['all'],
    });
    expect(JSON.stringify(events)).not.toContain(token);
    // The registration itself is recorded (by the proxy, which noticed it), before the join.
    const added = events.findIndex((e) => e.type === 'bot.add' && e.bot === 'writer');
    expect(added).toBeGreaterThanOrEqual(0);
    expect(events[added]).toMatchObject({ code: 'BOT005I', roles: ['all'] });
    expect(added).toBeLessThan(events.findIndex((e) => e.type === 'bot.join' && e.bot === 'writer'));

    // A later run needs no token: it renews with the stored identity.
    const later = await oneshot(['--destination', d]);
    expect(later.code).toBe(0);
    expect(later.stderr).toMatch(/renewed bot "writer": generation 2/);
  });

  it('refuses a bad token, an expired token and a reused token', async () => {
    const { ca_pin } = await addBot(cluster.configPath, 'tokens', ['all']);
    const bad = await oneshot(['--destination', dest('bad'), '--token', 'mcpab_' + 'x'.repeat(43), '--ca-pin', ca_pin]);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/the join token is not valid \(unknown, already used or expired\)/);

    // Registered (what `bot add` does) by a clock an hour back with a 10-minute token: expired 50 minutes
    // ago, no waiting.
    const expiring = await addBotRecord(new BotStore(join(cluster.dir, 'bots')), {
      name: 'expiring',
      roles: ['all'],
      tokenTtlMs: 10 * 60_000,
      now: Date.now() - 3_600_000,
    });
    expect(expiring.tokenExpiresAt.getTime()).toBeLessThan(Date.now());
    const expired = await oneshot(['--destination', dest('expiring'), '--token', expiring.token, '--ca-pin', ca_pin]);
    expect(expired.code).toBe(5);
    // The answer names neither the bot nor its roles (issue 10); the audit trail does.
    expect(expired.stderr).toMatch(/the join token is not valid \(unknown, already used or expired\)/);
    expect(expired.stderr).not.toMatch(/"expiring"|roles/);

    const once = await addBot(cluster.configPath, 'once', ['all']);
    ok(await oneshot(['--destination', dest('once-a'), '--token', once.token, '--ca-pin', ca_pin]));
    const reused = await oneshot(['--destination', dest('once-b'), '--token', once.token, '--ca-pin', ca_pin]);
    expect(reused.code).toBe(5);
    expect(reused.stderr).toMatch(/the join token is not valid \(unknown, already used or expired\)/);
    expect(reused.stderr).not.toMatch(/"once"|--roles all/);

    const events = await waitForAudit(auditPath, (e) => e.type === 'bot.join.denied' && e.bot === 'once');
    const denied = events.filter((e) => e.type === 'bot.join.denied');
    expect(denied.map((e) => e.code)).toEqual(expect.arrayContaining(['BOT001E']));
    expect(denied.some((e) => e.bot === undefined && e.errorCode === 'BOT_TOKEN_INVALID')).toBe(true);
    expect(denied.some((e) => e.bot === 'expiring' && /expired at/.test(String(e.reason)))).toBe(true);
    expect(denied.some((e) => e.bot === 'once' && /already used at/.test(String(e.reason)))).toBe(true);
  });

  it('a first run without token, or without a CA pin, says what it needs', async () => {
    const none = await oneshot(['--destination', dest('empty')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/holds no bot identity yet, so this first run needs a join token/);
    const { token } = await addBot(cluster.configPath, 'nopin', ['all']);
    const noPin = await oneshot(['--destination', dest('nopin'), '--token', token]);
    expect(noPin.code).toBe(2);
    expect(noPin.stderr).toMatch(/the first join needs --ca-pin/);
  });
});

describe('renewal', () => {
  it('renews a 5 s identity for several cycles while a connect session calls tools without a single error; bot lock then ends that session', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'agent', ['all']);
    const d = dest('agent');
    const bot = startBot([
      '--destination',
      d,
      '--token',
      token,
      '--ca-pin',
      ca_pin,
      '--ttl',
      '5s',
      '--renewal-interval',
      '20m',
    ]);
    await bot.waitFor(/joined as bot "agent"/);
    const first = await loadIdentity(join(d, 'identity'));

    const { client, stderr } = await cluster.client('test', join(d, 'identity'));
    onTestFailed(() =>
      console.error(`bot:\n${bot.log}\nconnect:\n${stderr()}\nproxy:\n${cluster.proxyLog.slice(-6000)}`),
    );
    let calls = 0;
    const errors: string[] = [];
    let stopCalling = false;
    const caller = (async () => {
      while (!stopCalling) {
        try {
          const r = await client.callTool({ name: 'add', arguments: { a: calls, b: 1 } });
          if (resultText(r) !== String(calls + 1)) errors.push(`wrong answer ${resultText(r)}`);
        } catch (err) {
          errors.push((err as Error).message);
        }
        calls++;
      }
    })();

    // Four renewals of a 5 s certificate: the session outlives the first
    // certificate (and the proxy closes a tunnel whose certificate expires).
    const renewedBefore = bot.count(/renewed bot "agent"/);
    await bot.waitFor(/renewed bot "agent"/, renewedBefore + 4, 60_000);
    const after = await loadIdentity(join(d, 'identity'));
    expect(after.bot!.generation).toBeGreaterThanOrEqual(5);
    expect(Date.now()).toBeGreaterThan(first.notAfter.getTime());
    // Every renewal happened while the previous certificate was still valid.
    const issued = [...bot.log.matchAll(/^(\S+) mcp-access bot: (?:joined|renewed) .*?valid until (\S+?)[\s,]/gm)].map(
      (m) => ({ at: Date.parse(m[1]!), notAfter: Date.parse(m[2]!) }),
    );
    expect(issued.length).toBeGreaterThanOrEqual(5);
    for (let i = 1; i < issued.length; i++) expect(issued[i]!.at).toBeLessThan(issued[i - 1]!.notAfter);
    stopCalling = true;
    await caller;
    expect(errors).toEqual([]);
    expect(calls).toBeGreaterThan(10);

    // Lock: the live session ends (the client sees an error naming the lock).
    const lockErrors: string[] = [];
    const watcher = (async () => {
      for (;;) {
        try {
          await client.callTool({ name: 'add', arguments: { a: 1, b: 1 } });
        } catch (err) {
          lockErrors.push((err as Error).message);
          return;
        }
      }
    })();
    const lockedAt = Date.now();
    const lock = await runCli(['bot', 'lock', 'agent', '--config', cluster.configPath, '--reason', 'test lock']);
    expect(lock.code).toBe(0);
    await watcher;
    const tookMs = Date.now() - lockedAt;
    expect(lockErrors[0]).toMatch(/bot "agent" is locked since .*: test lock/);
    await cluster.waitForLog(/ended 1 session\(s\) of bot "agent"/);
    expect(stderr()).toMatch(/locked/);
    // Reconnecting does not help: a locked bot's new sessions are refused too.
    await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })).rejects.toThrow(/locked/);
    // Renewals are refused while locked (the bot keeps trying until expiry).
    await bot.waitFor(/renewal failed \(the proxy refused: bot "agent" is locked/);
    const events = await waitForAudit(auditPath, (e) => e.type === 'bot.lock' && e.bot === 'agent');
    expect(events.find((e) => e.type === 'bot.lock' && e.bot === 'agent')).toMatchObject({
      code: 'BOT003I',
      reason: 'test lock',
      by: 'operator',
    });
    expect(events.some((e) => e.type === 'bot.renew' && e.bot === 'agent' && e.code === 'BOT002I')).toBe(true);
    expect(events.some((e) => e.type === 'bot.renew.denied' && e.bot === 'agent' && e.errorCode === 'BOT_LOCKED')).toBe(
      true,
    );
    console.info(`bot lock ended the session ${tookMs} ms after the lock command started`);
    await bot.stop();
  });

  it('retries with backoff while the proxy is away and renews once it is back', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'patient', ['all']);
    const bot = startBot([
      '--destination',
      dest('patient'),
      '--token',
      token,
      '--ca-pin',
      ca_pin,
      '--ttl',
      '60s',
      '--renewal-interval',
      '1s',
    ]);
    await bot.waitFor(/joined as bot "patient"/);
    await bot.waitFor(/renewed bot "patient"/);
    await cluster.stopProxy();
    await bot.waitFor(/renewal failed \(no proxy is listening .*; retrying/, 2);
    const renewed = bot.count(/renewed bot "patient"/);
    await cluster.startProxy();
    await bot.waitFor(/renewed bot "patient"/, renewed + 1);
    expect(bot.proc.exitCode).toBe(null);
    // SIGTERM stops it cleanly.
    expect(await bot.stop()).toBe(0);
  });

  it('unlock lets a locked bot renew again', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'paused', ['all']);
    const d = dest('paused');
    ok(await oneshot(['--destination', d, '--token', token, '--ca-pin', ca_pin]));
    ok(await runCli(['bot', 'lock', 'paused', '--config', cluster.configPath]));
    const refused = await oneshot(['--destination', d]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/bot "paused" is locked since .*: locked by an operator.*bot unlock paused/);
    ok(await runCli(['bot', 'unlock', 'paused', '--config', cluster.configPath]));
    const renewed = await oneshot(['--destination', d]);
    expect(renewed.code).toBe(0);
    expect(renewed.stderr).toMatch(/renewed bot "paused": generation 2/);
  });
});

describe('copied credentials', () => {
  it('a renewal from a copy of the bot state is refused, the bot locked and the event audited', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'cloned', ['all']);
    const original = dest('cloned');
    const copy = dest('cloned-copy');
    ok(await oneshot(['--destination', original, '--token', token, '--ca-pin', ca_pin]));
    await cp(original, copy, { recursive: true });

    const a = await oneshot(['--destination', original]);
    expect(a.code).toBe(0);
    expect(a.stderr).toMatch(/renewed bot "cloned": generation 2/);
    const b = await oneshot(['--destination', copy]);
    expect(b.code).toBe(5);
    expect(b.stderr).toMatch(
      /bot "cloned" is now locked: credential copied: generation 1 was presented after generation 2 had been issued/,
    );

    // Locked for everyone, the original included.
    const again = await oneshot(['--destination', original]);
    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(/bot "cloned" is locked/);
    const ls = JSON.parse((await runCli(['bot', 'ls', '--config', cluster.configPath, '--format', 'json'])).stdout) as {
      bots: Array<{ name: string; status: string; lock?: { by: string; reason: string } }>;
    };
    expect(ls.bots.find((x) => x.name === 'cloned')).toMatchObject({ status: 'locked', lock: { by: 'proxy' } });

    const events = await waitForAudit(auditPath, (e) => e.type === 'bot.lock' && e.bot === 'cloned');
    expect(events.find((e) => e.type === 'bot.lock' && e.bot === 'cloned')).toMatchObject({
      code: 'BOT003W',
      by: 'proxy',
      generation: 1,
    });
    expect(
      events.some((e) => e.type === 'bot.renew.denied' && e.bot === 'cloned' && e.errorCode === 'BOT_LOCKED'),
    ).toBe(true);
    // One lock event, not a second one from the state watcher. Only the
    // watcher could add one, so absence is proven once it has scanned the state
    // after the lock: it records `bot add` of a marker bot registered now, and
    // then the marker's lock (a later scan: scans run one at a time, and events
    // are appended in order, so everything the first scan recorded is in).
    ok(await runCli(['bot', 'add', 'after-cloned', '--roles', 'all', '--config', cluster.configPath]));
    await waitForAudit(auditPath, (e) => e.type === 'bot.add' && e.bot === 'after-cloned');
    ok(await runCli(['bot', 'lock', 'after-cloned', '--config', cluster.configPath]));
    await waitForAudit(auditPath, (e) => e.type === 'bot.lock' && e.bot === 'after-cloned');
    expect((await auditEvents(auditPath)).filter((e) => e.type === 'bot.lock' && e.bot === 'cloned')).toHaveLength(1);
  });
});

describe('removal', () => {
  it('bot rm refuses renewals; a re-added bot does not accept certificates of the earlier registration', async () => {
    const first = await addBot(cluster.configPath, 'reborn', ['all']);
    const oldDir = dest('reborn-old');
    ok(await oneshot(['--destination', oldDir, '--token', first.token, '--ca-pin', first.ca_pin, '--ttl', '10m']));
    ok(await runCli(['bot', 'rm', 'reborn', '--config', cluster.configPath]));
    const removed = await oneshot(['--destination', oldDir]);
    expect(removed.code).toBe(6);
    expect(removed.stderr).toMatch(/bot "reborn" is not registered on this proxy \(it was removed\)/);

    const second = await addBot(cluster.configPath, 'reborn', ['all']);
    ok(await oneshot(['--destination', dest('reborn-new'), '--token', second.token, '--ca-pin', second.ca_pin]));
    expect((await loadIdentity(join(dest('reborn-new'), 'identity'))).bot!.generation).toBe(2);
    const stale = await oneshot(['--destination', oldDir]);
    expect(stale.code).toBe(3);
    expect(stale.stderr).toMatch(/belongs to an earlier registration of bot "reborn"/);
    // Nor may it open sessions.
    await expect(cluster.client('test', join(oldDir, 'identity'))).rejects.toThrow(
      /earlier registration|not registered/,
    );
  });
});
