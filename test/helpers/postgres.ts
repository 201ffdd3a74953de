/**
 * A throw-away PostgreSQL cluster for tests: Debian's server package
 * (initdb/pg_ctl), a temporary data directory, a free loopback port, a
 * superuser with a password (scram-sha-256, so a wrong password is refused
 * as it would be in production). PostgreSQL refuses to run as root: when the
 * tests run as root the cluster runs as the `postgres` system user.
 *
 *   const pg = await startPostgres();
 *   pg.url            // postgres://postgres:<pw>@127.0.0.1:<port>/postgres
 *   await pg.stop();  await pg.start();   // a restart under traffic
 *   await pg.destroy();
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from './cluster.js';

export interface TestPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  /** A URL for the superuser and the `postgres` database. */
  url: string;
  /** A URL for another database or user. */
  urlFor(opts: { database?: string; user?: string; password?: string }): string;
  /** Run SQL as the superuser with psql (one string, ON_ERROR_STOP); returns stdout. */
  psql(sql: string, database?: string): string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** Where Debian's PostgreSQL server binaries are, or undefined when the package is not installed. */
export function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin)
    throw new Error(
      "PostgreSQL's server package is not installed (Debian: apt-get install postgresql); .ci/run installs it",
    );
  const asRoot = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-access-pg-'));
  const data = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    owner = { uid, gid };
    chmodSync(dir, 0o700);
    chownSync(dir, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const run = async (cmd: string, args: string[]): Promise<void> => {
    const [file, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]]
      : [join(bin, cmd), args];
    try {
      await promisify(execFile)(file, argv, { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    } catch (err) {
      const e = err as { code?: number; stderr?: string; stdout?: string };
      throw new Error(`${cmd} failed (${String(e.code)}): ${e.stderr || e.stdout}`, { cause: err });
    }
  };
  await run('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=scram-sha-256',
    `--pwfile=${pwfile}`,
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  rmSync(pwfile, { force: true });
  const port = await freePort();
  const host = '127.0.0.1';
  const opts = `-p ${port} -k ${dir} -c listen_addresses=${host} -c fsync=off -c max_connections=200`;
  const start = () => run('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  const stop = () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  await start();
  const urlFor = (o: { database?: string; user?: string; password?: string }) =>
    `postgres://${encodeURIComponent(o.user ?? 'postgres')}:${encodeURIComponent(o.password ?? password)}@${host}:${port}/${encodeURIComponent(o.database ?? 'postgres')}`;
  const psql = (sql: string, database = 'postgres') => {
    const r = spawnSync(
      join(bin, 'psql'),
      ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', host, '-p', String(port), '-U', 'postgres', '-d', database],
      { input: sql, encoding: 'utf8', env: { ...process.env, PGPASSWORD: password }, timeout: 60_000 },
    );
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
    return r.stdout;
  };
  let destroyed = false;
  return {
    host,
    port,
    user: 'postgres',
    password,
    url: urlFor({}),
    urlFor,
    psql,
    start,
    stop,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      try {
        await stop();
      } catch {
        /* already stopped */
      }
      if (owner) chownSync(dir, userInfo().uid, userInfo().gid);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
