/**
 * AgentCredentials' renewal loop, driven by an injected clock against a real
 * proxy (in process, real TLS): it renews before expiry without being asked,
 * retries with backoff while the proxy is away or the agent is locked, gives
 * up (`fatal`) when the agent was removed, and refuses unsafe directories
 * and tampered trust anchors before anything is sent.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentCredentials,
  type AgentCredentialSet,
  type AgentCredentialsOptions,
  type CredentialsClock,
} from '../../src/agent/credentials.js';
import { AccessError } from '../../src/errors.js';
import { addBot, lockBot, openBotState, removeBot, unlockBot } from '../../src/proxy/enrolment/admin.js';
import { startProxy, type RunningProxy } from '../../src/proxy/run.js';
import { caPin } from '../../src/identity/pin.js';
import { parseProxyAddress } from '../../src/tunnel/proxy-address.js';
import { Logger } from '../../src/util/log.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

/** Timers that run when the test says so; `now` is real time plus what was skipped. */
class FakeClock implements CredentialsClock {
  private skipped = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private ids = 0;
  now(): number {
    return Date.now() + this.skipped;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.timers.push({ at: this.now() + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== h);
  }
  /** When the earliest timer is due, relative to now. */
  pending(): number | undefined {
    const next = Math.min(...this.timers.map((t) => t.at));
    return Number.isFinite(next) ? next - this.now() : undefined;
  }
  /** Jump to the earliest timer and run it. */
  fireNext(): void {
    const t = [...this.timers].sort((a, b) => a.at - b.at)[0];
    if (!t) throw new Error('no timer pending');
    this.timers = this.timers.filter((x) => x !== t);
    this.skipped += Math.max(0, t.at - this.now());
    t.fn();
  }
}

let dir: string;
let pki: TestPki;
let proxy: RunningProxy;
let configPath: string;
const lines: string[] = [];
const log = new Logger({ level: 'info', name: 'agent', sink: (l) => lines.push(l) });
const opened: AgentCredentials[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-access-agent-creds-'));
  pki = await makeTestPki(dir, { cluster: 'unit' });
  configPath = join(dir, 'proxy.yaml');
  await writeFile(
    configPath,
    stringify({
      cluster: 'unit',
      listen: '127.0.0.1:0',
      ca_dir: './ca',
      servers: [],
      roles: [],
      bot: { state_dir: './state' },
    }),
  );
  proxy = await startProxy(configPath, { logger: new Logger({ level: 'error', sink: () => {} }) });
});
afterAll(async () => {
  await Promise.allSettled(opened.map((c) => c.close()));
  await proxy?.close();
  await rm(dir, { recursive: true, force: true });
});

const address = () => parseProxyAddress(`127.0.0.1:${proxy.address.port}`, '');

async function register(name: string): Promise<string> {
  const { store } = await openBotState(configPath, 'agent');
  return (await addBot(store, { name, roles: [], tokenTtlMs: 60_000 })).token;
}

async function open(name: string, extra: Partial<AgentCredentialsOptions> = {}): Promise<AgentCredentials> {
  const c = await AgentCredentials.open({
    proxy: address(),
    dataDir: join(dir, 'data', name),
    caPin: caPin(pki.ca.caCertPem),
    ttlMs: 600_000,
    renewalIntervalMs: 60_000,
    log,
    random: () => 0,
    ...extra,
  });
  opened.push(c);
  return c;
}

const next = <T extends unknown[]>(c: AgentCredentials, event: 'renewed' | 'renewalFailed' | 'fatal') =>
  new Promise<T>((resolve) => c.once(event, (...args: unknown[]) => resolve(args as T)));

describe('AgentCredentials', () => {
  it('renews on schedule by itself (interval or half the lifetime, whichever is sooner)', async () => {
    const clock = new FakeClock();
    const c = await open('sched', { token: await register('sched'), clock });
    expect(c.current().generation).toBe(1);
    // 600 s lifetime, 60 s interval, no jitter: due in 60 s.
    expect(c.nextRenewalAt() - clock.now()).toBeGreaterThan(59_000);
    expect(clock.pending()).toBeLessThanOrEqual(60_000);
    const renewed = next<[AgentCredentialSet]>(c, 'renewed');
    clock.fireNext();
    const [set] = await renewed;
    expect(set.generation).toBe(2);
    expect(c.current().generation).toBe(2);
    const renewedAgain = next<[AgentCredentialSet]>(c, 'renewed');
    clock.fireNext();
    expect((await renewedAgain)[0].generation).toBe(3);
  });

  it('a lock makes renewals fail and retry with growing pauses; an unlock lets the next retry succeed', async () => {
    const clock = new FakeClock();
    const c = await open('locky', { token: await register('locky'), clock });
    const { store } = await openBotState(configPath, 'agent');
    await lockBot(store, 'locky', 'test');
    const pauses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const failed = next<[AccessError, { retryAt: number }]>(c, 'renewalFailed');
      clock.fireNext();
      const [err, { retryAt }] = await failed;
      expect(err.code).toBe('AGENT_LOCKED');
      pauses.push(retryAt - clock.now());
    }
    expect(pauses[0]).toBeGreaterThanOrEqual(500 - 50);
    expect(pauses[1]!).toBeGreaterThan(pauses[0]!);
    expect(pauses[2]!).toBeGreaterThan(pauses[1]!);
    await unlockBot(store, 'locky');
    const renewed = next<[AgentCredentialSet]>(c, 'renewed');
    clock.fireNext();
    expect((await renewed)[0].generation).toBe(2);
  });

  it('a removed agent: the scheduled renewal ends in fatal, and the loop stops', async () => {
    const clock = new FakeClock();
    const c = await open('gone', { token: await register('gone'), clock });
    const { store } = await openBotState(configPath, 'agent');
    await removeBot(store, 'gone');
    const fatal = next<[AccessError]>(c, 'fatal');
    clock.fireNext();
    const [err] = await fatal;
    expect(err.code).toBe('AGENT_UNKNOWN');
    expect(clock.pending()).toBeUndefined();
    await expect(c.renewNow()).rejects.toThrow(/closed/);
  });

  it('a restart loads the stored certificate (no token); the token given anyway is not used', async () => {
    const token = await register('restart');
    const a = await open('restart', { token });
    const first = a.current();
    await a.close();
    const b = await open('restart', { token });
    expect(b.current().certPem).toBe(first.certPem);
    expect(lines.some((l) => /already holds agent "restart"'s certificate; the token was not used/.test(l))).toBe(true);
  });

  it('an expired stored certificate without a token: IDENTITY_EXPIRED, one line', async () => {
    const token = await register('old');
    const clock = new FakeClock();
    await (await open('old', { token })).close();
    // Seen from a clock an hour ahead, the 10 minute certificate has expired.
    const late: CredentialsClock = {
      now: () => Date.now() + 3_600_000,
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (h) => clock.clearTimeout(h),
    };
    const err = await open('old', { clock: late }).catch((e: unknown) => e as AccessError);
    expect(err).toBeInstanceOf(AccessError);
    expect((err as AccessError).code).toBe('IDENTITY_EXPIRED');
  });

  it('refuses a data directory others may write to, and a replaced ca.crt, before sending anything', async () => {
    const shared = join(dir, 'data', 'shared');
    await mkdir(shared, { recursive: true });
    await chmod(shared, 0o777);
    const err = await open('shared', { token: await register('shared') }).catch((e: unknown) => e as AccessError);
    expect((err as AccessError).code).toBe('UNSAFE_PATH');
    expect((err as AccessError).message).toMatch(/writable by other users/);

    const token = await register('tamper');
    await (await open('tamper', { token })).close();
    const other = await makeTestPki(join(dir, 'other'), { cluster: 'evil' });
    await writeFile(join(dir, 'data', 'tamper', 'ca.crt'), other.ca.caCertPem);
    const e2 = await open('tamper', { caPin: undefined }).catch((e: unknown) => e as AccessError);
    expect((e2 as AccessError).code).toBe('AGENT_CA_PIN_MISMATCH');
    expect(await readFile(join(dir, 'data', 'tamper', 'agent.json'), 'utf8')).toContain('"agent": "tamper"');
  });
});
