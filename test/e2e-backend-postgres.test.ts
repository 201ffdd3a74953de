/**
 * A real proxy process on the PostgreSQL backend (a real PostgreSQL, the real
 * bridge, the SDK client): the audit trail in the database under traffic and
 * across a database restart (fail closed while it is down, recover by
 * itself, every event counted: none lost, none duplicated), roles created
 * with the CLI reaching running sessions, health endpoints, metrics, and the
 * bad configurations that must end `proxy start` with one line and an exit
 * code instead of a hang.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { CLI, TestCluster, freePort, resultText, testServer, type ConnectedClient } from './helpers/cluster.js';
import { runCli } from './helpers/run-cli.js';
import { addBot } from './helpers/bot.js';
import { existsSync } from 'node:fs';
import { until } from './helpers/until.js';

let pg: TestPostgres;
let cluster: TestCluster;
let secrets: string;
let passwordFile: string;
let metricsPort: number;
let alice: string;

/** Defined in proxy.yaml: reaches the server, allows only `stats`. */
const BASE = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'base' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['stats'] } } },
};

/** Created with `role create`: adds `echo`. */
const READER = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'reader' },
  spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['echo', 'stats'] } } },
};

function pgBackend(database: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'postgres',
    url: `postgres://postgres@127.0.0.1:${pg.port}/${database}`,
    password_file: passwordFile,
    connect_timeout: '2s',
    ...extra,
  };
}

/** GET a path of the proxy without a client certificate (trusting the cluster CA). */
function getOpen(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: cluster.port, path, ca: cluster.pki.ca.caCertPem, servername: 'localhost' },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function getMetrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const auditRows = (sql: string) => pg.psql(sql, 'proxy').trim();

beforeAll(async () => {
  pg = await startPostgres();
  pg.psql('CREATE DATABASE proxy');
  pg.psql('CREATE DATABASE newer');
  secrets = await mkdtemp(join(tmpdir(), 'mcp-access-pgpw-'));
  passwordFile = join(secrets, 'pg.pass');
  await writeFile(passwordFile, `${pg.password}\n`, { mode: 0o600 });
  metricsPort = await freePort();
  cluster = await TestCluster.start({
    servers: [testServer('test')],
    config: {
      backend: pgBackend('proxy'),
      audit: {},
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      roles: [BASE],
    },
  });
  alice = await cluster.issue('alice', ['base', 'reader']);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
  await pg?.destroy();
  if (secrets) await rm(secrets, { recursive: true, force: true });
});

describe('roles as resources in PostgreSQL', () => {
  it('role create reaches a running session from its next message; role rm takes it away again', async () => {
    const c = await cluster.client('test', alice);
    // No role named "reader" exists yet: the call is refused.
    await expect(c.client.callTool({ name: 'echo', arguments: { text: 'before' } })).rejects.toThrow(/denied|not/i);
    const file = join(cluster.dir, 'reader.yaml');
    await writeFile(file, stringify(READER));
    const created = await runCli(['role', 'create', '-f', file, '--config', cluster.configPath]);
    expect(created.stderr).toBe('');
    expect(created.stdout).toContain('role "reader" has been created');
    expect(created.code).toBe(0);
    const t0 = Date.now();
    await until(async () => {
      try {
        return resultText(await c.client.callTool({ name: 'echo', arguments: { text: 'after' } })) === 'after';
      } catch {
        return false;
      }
    }, 'the new role to apply');
    // Within about a second (the proxy polls every 500 ms); bounded generously for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(5_000);

    const ls = await runCli(['role', 'ls', '--config', cluster.configPath, '--format', 'json']);
    expect(JSON.parse(ls.stdout)).toEqual([
      expect.objectContaining({ name: 'base', source: 'config' }),
      expect.objectContaining({ name: 'reader', source: 'backend' }),
    ]);
    const got = await runCli(['role', 'get', 'reader', '--config', cluster.configPath]);
    expect(got.stdout).toContain('name: reader');

    const removed = await runCli(['role', 'rm', 'reader', '--config', cluster.configPath]);
    expect(removed.code).toBe(0);
    await until(async () => {
      try {
        await c.client.callTool({ name: 'echo', arguments: { text: 'gone' } });
        return false;
      } catch {
        return true;
      }
    }, 'the removed role to stop granting');
    const again = await runCli(['role', 'rm', 'reader', '--config', cluster.configPath]);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/^mcp-access: no role named "reader" in the backend \(.*\)\n$/);
    // Put it back for the next tests.
    expect((await runCli(['role', 'create', '-f', file, '--config', cluster.configPath])).code).toBe(0);
    await until(async () => {
      try {
        await c.client.callTool({ name: 'echo', arguments: { text: 'back' } });
        return true;
      } catch {
        return false;
      }
    }, 'the role to be back');
    await c.close();
  }, 60_000);

  it('a role proxy.yaml defines cannot be created in the backend (it would be ignored)', async () => {
    const file = join(cluster.dir, 'base.yaml');
    await writeFile(file, stringify({ ...BASE, spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } } } }));
    const r = await runCli(['role', 'create', '-f', file, '--config', cluster.configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mcp-access: role "base" is defined in .*proxy\.yaml \(roles\[0\]\)/);
    expect(auditRows("SELECT count(*) FROM records WHERE kind = 'role' AND name = 'base'")).toBe('0');
  });

  it('a role document with an unknown key is refused and nothing is written', async () => {
    const file = join(cluster.dir, 'typo.yaml');
    await writeFile(
      file,
      stringify({ ...READER, metadata: { name: 'typo' }, spec: { allow: { app_lables: { env: 'dev' } } } }),
    );
    const r = await runCli(['role', 'create', '-f', file, '--config', cluster.configPath]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/app_lables: unknown key/);
    expect(auditRows("SELECT count(*) FROM records WHERE kind = 'role' AND name = 'typo'")).toBe('0');
  });
});

describe('two replicas on one database', () => {
  it('a role change made with the CLI applies on both replicas within about a second', async () => {
    // A second proxy process: the same configuration and database, its own port, no metrics listener.
    const config = parse(await readFile(cluster.configPath, 'utf8')) as Record<string, unknown>;
    const path2 = join(cluster.dir, 'proxy-2.yaml');
    delete config.metrics;
    await writeFile(path2, stringify({ ...config, listen: '127.0.0.1:0' }));
    const second = spawn(process.execPath, [CLI, 'proxy', 'start', '--config', path2], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log2 = '';
    second.stderr.setEncoding('utf8');
    const port2 = await new Promise<number>((resolve, reject) => {
      second.stderr.on('data', (t: string) => {
        log2 += t;
        const m = /listening on [^\s]+:(\d+)/.exec(log2);
        if (m) resolve(Number(m[1]));
      });
      second.once('exit', (code) => reject(new Error(`second proxy exited (${code}):\n${log2}`)));
    });
    try {
      const first = await cluster.client('test', alice);
      // The same cluster, dialled at the second replica's address.
      const address = `127.0.0.1:${port2}`;
      Object.defineProperty(cluster, 'address', { get: () => address, configurable: true });
      const other = await cluster.client('test', alice).finally(() => {
        delete (cluster as { address?: string }).address;
      });
      const echoes = async (c: typeof first) => {
        try {
          return resultText(await c.client.callTool({ name: 'echo', arguments: { text: 'x' } })) === 'x';
        } catch {
          return false;
        }
      };
      expect(await echoes(first)).toBe(true);
      expect(await echoes(other)).toBe(true);
      expect((await runCli(['role', 'rm', 'reader', '--config', cluster.configPath])).code).toBe(0);
      const t0 = Date.now();
      await until(async () => !(await echoes(first)) && !(await echoes(other)), 'both replicas to drop the role');
      expect(Date.now() - t0).toBeLessThan(5_000);
      const file = join(cluster.dir, 'reader.yaml');
      expect((await runCli(['role', 'create', '-f', file, '--config', cluster.configPath])).code).toBe(0);
      await until(async () => (await echoes(first)) && (await echoes(other)), 'both replicas to have it again');
      await first.close();
      await other.close();
    } finally {
      second.kill('SIGTERM');
    }
  }, 60_000);
});

describe('the audit trail across a PostgreSQL restart, under traffic', () => {
  it('fails closed while the database is down, recovers by itself, and loses or duplicates no event', async () => {
    const clients: ConnectedClient[] = [];
    for (let i = 0; i < 4; i++) clients.push(await cluster.client('test', alice));
    const ok: string[][] = clients.map(() => []);
    const failed: string[][] = clients.map(() => []);
    const errors: string[] = [];
    let stop = false;
    const loops = clients.map(async (c, i) => {
      for (let n = 0; !stop; n++) {
        const text = `c${i}-${n}`;
        try {
          const r = await c.client.callTool({ name: 'echo', arguments: { text } });
          expect(resultText(r)).toBe(text);
          ok[i]!.push(text);
        } catch (err) {
          failed[i]!.push(text);
          errors.push((err as Error).message);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    const okCount = () => ok.reduce((n, a) => n + a.length, 0);
    await until(() => ok.every((a) => a.length >= 10), 'traffic before the restart');

    await pg.stop();
    await until(() => failed.every((a) => a.length >= 2), 'every client to be refused while the database is down');
    const ready = await getOpen('/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({ status: 'not ready' });
    expect((await getOpen('/healthz')).status).toBe(200);
    const okWhileDown = okCount();

    await pg.start();
    await until(() => ok.every((a) => a.length >= 10 + 10), 'traffic after the restart', 60_000);
    stop = true;
    await Promise.all(loops);
    expect(okCount()).toBeGreaterThan(okWhileDown);
    expect((await getOpen('/readyz')).status).toBe(200);

    // Refusals said why, as a JSON-RPC error (never a hang, never a crash).
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toMatch(/cannot write its audit log/);

    // Every call that ran has exactly one request event and one outcome; no event is stored twice.
    const rows = auditRows(
      "SELECT line FROM audit_events WHERE type = 'mcp.session.request' AND tool = 'echo' AND user_name = 'alice'",
    )
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = new Map<string, number>();
    const outcomes = new Map<string, number>();
    for (const e of rows) {
      const text = (e.args as { text?: string } | undefined)?.text;
      if (typeof text !== 'string' || !/^c\d-\d+$/.test(text)) continue;
      if (e.phase === 'response') outcomes.set(text, (outcomes.get(text) ?? 0) + 1);
      else requests.set(text, (requests.get(text) ?? 0) + 1);
    }
    for (const text of ok.flat()) {
      expect(requests.get(text), `request event of ${text}`).toBe(1);
    }
    for (const [text, n] of requests) expect(n, `events of ${text}`).toBe(1);
    expect(auditRows('SELECT count(*) - count(DISTINCT id) FROM audit_events')).toBe('0');
    // The server saw each call that ran exactly once, and none that was refused.
    for (const [i, c] of clients.entries()) {
      const stats = JSON.parse(resultText(await c.client.callTool({ name: 'stats', arguments: {} }))) as {
        calls: number;
      };
      expect(stats.calls).toBe(ok[i]!.length + 1);
    }
    // Outcomes are written without holding the answer back; each call that ran has at most one.
    for (const [, n] of outcomes) expect(n).toBe(1);
    // The chains verify.
    const v = await runCli(['audit', 'verify', '--config', cluster.configPath]);
    expect(v.stderr).toBe('');
    expect(v.stdout).toMatch(/^PostgreSQL: every chain intact, \d+ writer\(s\), \d+ event\(s\)\n$/);
    expect(v.code).toBe(0);
    const s = await runCli([
      'audit',
      'search',
      '--config',
      cluster.configPath,
      '--user',
      'alice',
      '--tool',
      'echo',
      '--limit',
      '5',
      '--format',
      'json',
    ]);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toHaveLength(5);

    const m = await getMetrics();
    expect(metric(m, 'mcp_access_requests_total{outcome="success"}')).toBeGreaterThanOrEqual(okCount());
    expect(metric(m, 'mcp_access_audit_write_failures_total')).toBeGreaterThanOrEqual(failed.flat().length);
    expect(metric(m, 'mcp_access_backend_errors_total')).toBeGreaterThan(0);
    expect(metric(m, 'mcp_access_sessions')).toBeGreaterThanOrEqual(4);
    expect(m).toMatch(/^mcp_access_audit_write_seconds_count \d+/m);
    expect(m).toMatch(/^mcp_access_agents_connected 0$/m);
    for (const c of clients) await c.close();
  }, 180_000);
});

describe('bots in PostgreSQL', () => {
  it('add, join, session, update --add-roles, lock ending the session: all through the database', async () => {
    await cluster.writeConfig({ bot: {} });
    await cluster.stopProxy();
    await cluster.startProxy();
    const { token, ca_pin } = await addBot(cluster.configPath, 'ci', ['base']);
    // No state directory: the record is a row.
    expect(existsSync(join(cluster.dir, 'bots'))).toBe(false);
    expect(auditRows("SELECT value->>'name' FROM records WHERE kind = 'bot'")).toBe('ci');
    const dest = join(cluster.dir, 'ci-dest');
    const joined = await runCli([
      'bot',
      'start',
      '--proxy',
      cluster.address,
      '--oneshot',
      '--destination',
      dest,
      '--token',
      token,
      '--ca-pin',
      ca_pin,
    ]);
    expect(joined.code).toBe(0);
    expect(auditRows("SELECT value->>'generation' FROM records WHERE kind = 'bot' AND name = 'ci'")).toBe('1');
    const c = await cluster.client('test', join(dest, 'identity'));
    expect(resultText(await c.client.callTool({ name: 'stats', arguments: {} }))).toContain('calls');

    const readerFile = join(cluster.dir, 'reader-for-bot.yaml');
    await writeFile(readerFile, stringify(READER));
    expect((await runCli(['role', 'create', '-f', readerFile, '--config', cluster.configPath])).code).toBe(0);
    const upd = await runCli(['bot', 'update', 'ci', '--add-roles', 'reader', '--config', cluster.configPath]);
    expect(upd.code).toBe(0);
    expect(upd.stdout).toContain('now has roles base, reader');
    expect(auditRows("SELECT value->'roles' FROM records WHERE kind = 'bot' AND name = 'ci'")).toBe(
      '["base", "reader"]',
    );
    const unknown = await runCli(['bot', 'update', 'ci', '--add-roles', 'nosuch', '--config', cluster.configPath]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/defines no role named "nosuch"/);

    const lock = await runCli(['bot', 'lock', 'ci', '--config', cluster.configPath, '--reason', 'pg lock']);
    expect(lock.code).toBe(0);
    await cluster.waitForLog(/ended 1 session\(s\) of bot "ci"/);
    await expect(c.client.callTool({ name: 'stats', arguments: {} })).rejects.toThrow(/locked/);
    expect(auditRows("SELECT count(*) FROM audit_events WHERE type = 'bot.lock'")).toBe('1');
    await c.close();
  }, 90_000);
});

describe('a join while PostgreSQL is down', () => {
  it('is refused with a clear error (the token not used up) and works once the database is back', async () => {
    const { token, ca_pin } = await addBot(cluster.configPath, 'late', ['base']);
    const join_ = () =>
      runCli([
        'bot',
        'start',
        '--proxy',
        cluster.address,
        '--oneshot',
        '--destination',
        join(cluster.dir, 'late-dest'),
        '--token',
        token,
        '--ca-pin',
        ca_pin,
      ]);
    await pg.stop();
    let refused;
    try {
      refused = await join_();
    } finally {
      await pg.start();
    }
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/PostgreSQL|backend|audit/i);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    const joined = await join_();
    expect(joined.stderr).toMatch(/joined/);
    expect(joined.code).toBe(0);
    expect(auditRows("SELECT count(*) FROM audit_events WHERE type = 'bot.join' AND line LIKE '%\"late\"%'")).toBe('1');
  }, 90_000);
});

describe('health endpoints', () => {
  it('answer without a client certificate, briefly, and nothing else opens up', async () => {
    const h = await getOpen('/healthz');
    expect(h).toEqual({ status: 200, body: '{"status":"ok"}' });
    const r = await getOpen('/readyz');
    expect(r).toEqual({ status: 200, body: '{"status":"ready"}' });
    expect((await getOpen('/v1/servers')).status).toBe(401);
  });
});

describe('bad configuration: one line and an exit code, never a hang', () => {
  const start = async (backend: Record<string, unknown>) => {
    const path = join(cluster.dir, `bad-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(
      path,
      stringify({
        cluster: 'test-cluster',
        listen: '127.0.0.1:0',
        ca_dir: join(cluster.dir, 'ca'),
        servers: [],
        backend,
        audit: {},
      }),
    );
    return runCli(['proxy', 'start', '--config', path], { timeoutMs: 30_000 });
  };
  const oneLine = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('mcp-access: '));

  it('nothing listening at the URL', async () => {
    const port = await freePort();
    const r = await start({ type: 'postgres', url: `postgres://postgres@127.0.0.1:${port}/proxy` });
    expect(r.code).toBe(7);
    expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/cannot be reached: connection refused/)]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a server that accepts and never answers: the connect timeout, not a hang', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const t = Date.now();
      const r = await start({ type: 'postgres', url: `postgres://u@127.0.0.1:${port}/x`, connect_timeout: '1s' });
      expect(r.code).toBe(7);
      expect(oneLine(r.stderr)).toEqual([
        expect.stringMatching(/BACKEND_UNAVAILABLE|cannot be reached|did not answer/),
      ]);
      expect(Date.now() - t).toBeLessThan(25_000);
    } finally {
      silent.close();
    }
  });

  it('a wrong password: named as such, and never printed', async () => {
    const wrong = join(secrets, 'wrong.pass');
    await writeFile(wrong, 'wrong-password-1234\n', { mode: 0o600 });
    const r = await start(pgBackend('proxy', { password_file: wrong }));
    expect(r.code).toBe(7);
    expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/refused the login: password authentication failed/)]);
    expect(r.stderr + r.stdout).not.toContain('wrong-password-1234');
  });

  it('a schema from a newer version: refused, and the database left as it is', async () => {
    pg.psql(
      `CREATE TABLE mcp_access_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now());
       INSERT INTO mcp_access_schema (version) VALUES (99)`,
      'newer',
    );
    const r = await start(pgBackend('newer'));
    expect(r.code).toBe(7);
    expect(oneLine(r.stderr)).toEqual([
      expect.stringMatching(
        /the backend database has schema version 99, newer than this mcp-access understands \(\d+\) \(.*upgrade/,
      ),
    ]);
    expect(pg.psql('SELECT version FROM mcp_access_schema', 'newer').trim()).toBe('99');
    expect(pg.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'audit_events'", 'newer').trim()).toBe('0');
  });
});
