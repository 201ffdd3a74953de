/**
 * The pieces of issue "seal the enforcement point" that are cheap to test
 * alone: one line per message on the bridge's stdout, root URIs and the
 * roles' mcp.roots, the new configuration keys, the upstream environment and
 * user, and the CA-key isolation check. End to end: e2e-enforcement-seal.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oneLine } from '../src/bridge/stdout-writer.js';
import { normaliseRootUri } from '../src/agent/enforcement.js';
import { Policy } from '../src/rbac/policy.js';
import { loadRoles } from '../src/rbac/roles.js';
import { DEFAULT_LIMITS, type StdioServerConfig } from '../src/agent/servers.js';
import { parseProxyConfig } from '../src/proxy/config.js';
import { childEnvironment } from '../src/agent/upstream/child-env.js';
import { canRead, resolveRunAs } from '../src/agent/os-user.js';
import { checkUpstreamIsolation } from '../src/agent/isolation.js';
import { proxyIsolation } from '../src/proxy/run.js';
import { Logger } from '../src/util/log.js';

const base = { cluster: 'c', listen: '127.0.0.1:0', ca_dir: './ca' };
const config = (extra: Record<string, unknown>) =>
  parseProxyConfig({ ...base, servers: [], ...extra }, '/etc/mcp-access/proxy.yaml');

describe('the bridge writes every message as one line', () => {
  it('raw CR and LF (JSON whitespace) become spaces; the JSON value is unchanged', () => {
    const frame = Buffer.from('{"jsonrpc":"2.0",\n"id":1,\r\n"result":{"text":"a\\nb"}}');
    const out = oneLine(frame);
    expect(out.includes(0x0a) || out.includes(0x0d)).toBe(false);
    expect(JSON.parse(out.toString())).toEqual(JSON.parse(frame.toString()));
  });
  it('a message without line breaks is passed as is (no copy)', () => {
    const frame = Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}');
    expect(oneLine(frame)).toBe(frame);
  });
});

describe('root URIs and mcp.roots', () => {
  it('normalises .. and %2e%2e; refuses encoded slashes, backslashes, control characters and non-URIs', () => {
    expect(normaliseRootUri('file:///srv/files/../etc')).toBe('file:///srv/etc');
    expect(normaliseRootUri('file:///srv/files/%2e%2e/etc')).toBe('file:///srv/etc');
    expect(normaliseRootUri('file:///srv/files')).toBe('file:///srv/files');
    for (const bad of [
      'file:///srv/a%2F..%2Fetc',
      'file:///srv/a%5c..',
      'file:///srv\\..\\etc',
      'file:///srv/\u0000',
      'not a uri',
      '',
      42,
      undefined,
    ]) {
      expect(normaliseRootUri(bad), String(bad)).toBeUndefined();
    }
  });

  const policy = new Policy(
    loadRoles({
      inline: [
        {
          kind: 'role',
          version: 'v8',
          metadata: { name: 'roots' },
          spec: {
            allow: { app_labels: { env: 'dev' }, mcp: { roots: ['file:///srv/files', 'file:///srv/files/*'] } },
            deny: { mcp: { roots: ['*secret*'] } },
          },
        },
        {
          kind: 'role',
          version: 'v8',
          metadata: { name: 'no-roots' },
          spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['*'] } } },
        },
      ],
      files: [],
      baseDir: '/',
    }).roles,
  );
  const dev = { name: 'files', labels: { env: 'dev' } };

  it('allow globs, deny wins, no entry means no root, an unreachable server means none', () => {
    expect(policy.rootDecision(['roots'], dev, 'file:///srv/files').allowed).toBe(true);
    expect(policy.rootDecision(['roots'], dev, 'file:///srv/files/docs').allowed).toBe(true);
    expect(policy.rootDecision(['roots'], dev, 'file:///').allowed).toBe(false);
    expect(policy.rootDecision(['roots'], dev, 'file:///srv/files/SECRET').allowed).toBe(false);
    expect(policy.rootDecision(['roots', 'no-roots'], dev, 'file:///srv/files/secret').reason).toMatch(
      /denied by role roots/,
    );
    expect(policy.rootDecision(['no-roots'], dev, 'file:///srv/files').allowed).toBe(false);
    expect(policy.rootDecision(['roots'], { name: 'p', labels: { env: 'prod' } }, 'file:///srv/files').allowed).toBe(
      false,
    );
  });

  it('mcp.roots is a known key of a role (no "not used" warning)', () => {
    const { warnings } = loadRoles({
      inline: [
        {
          kind: 'role',
          version: 'v8',
          metadata: { name: 'r' },
          spec: { allow: { app_labels: { env: 'dev' }, mcp: { tools: ['*'], roots: ['file:///x'] } } },
        },
      ],
      files: [],
      baseDir: '/',
    });
    expect(warnings.join('\n')).not.toMatch(/roots/);
  });
});

describe('configuration: roots, client_roots, run_as, inherit_env, limits', () => {
  it('reads roots as paths (resolved against the file), URIs or {uri, name}; client_roots is off by default', () => {
    const c = config({
      servers: [{ name: 'f', command: 'x', roots: ['data', 'file:///srv/a', { uri: 'file:///srv/b', name: 'b' }] }],
    });
    expect(c.servers[0]!.roots).toEqual([
      { uri: 'file:///etc/mcp-access/data' },
      { uri: 'file:///srv/a' },
      { uri: 'file:///srv/b', name: 'b' },
    ]);
    expect(c.servers[0]!.clientRoots).toBe(false);
    expect(config({ servers: [{ name: 'f', command: 'x', client_roots: true }] }).servers[0]!.clientRoots).toBe(true);
  });
  it('refuses bad values, naming the field', () => {
    expect(() => config({ servers: [{ name: 'f', command: 'x', client_roots: 'yes' }] })).toThrow(
      /servers\[0\]\.client_roots: must be true or false/,
    );
    expect(() => config({ servers: [{ name: 'f', command: 'x', roots: 'data' }] })).toThrow(
      /servers\[0\]\.roots: must be a list/,
    );
    expect(() => config({ servers: [{ name: 'f', command: 'x', run_as: 'a b' }] })).toThrow(
      /servers\[0\]\.run_as: must be a user name, a uid, or uid:gid/,
    );
    expect(() => config({ servers: [{ name: 'f', command: 'x', inherit_env: ['A=B'] }] })).toThrow(
      /servers\[0\]\.inherit_env/,
    );
    expect(() => config({ servers: [{ name: 'f', url: 'http://x', run_as: 'nobody' }] })).toThrow(
      /run_as: applies only to a stdio server/,
    );
    expect(() => config({ sessions: { max_per_identity: 0 } })).toThrow(
      /sessions\.max_per_identity: must be a whole number of at least 1/,
    );
    expect(() => config({ sessions: { max_processes_per_server: 1 } })).toThrow(
      /max_processes_per_server: must be at least 2 while prestart is on/,
    );
    expect(config({ sessions: { max_processes_per_server: 1, prestart: false } }).limits.processesPerServer).toBe(1);
  });
  it('limits have defaults and can be set', () => {
    expect(config({}).limits).toEqual(DEFAULT_LIMITS);
    expect(config({ sessions: { max_per_identity: 4, max_total: 10, max_processes_per_server: 6 } }).limits).toEqual({
      perIdentity: 4,
      total: 10,
      processesPerServer: 6,
    });
  });
});

describe('the environment and user of a stdio server', () => {
  const server = (extra: Partial<StdioServerConfig> = {}): StdioServerConfig => ({
    transport: 'stdio',
    command: 'x',
    args: [],
    env: {},
    inheritEnv: [],
    ...extra,
  });
  const proxyEnv = {
    PATH: '/usr/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    LC_ALL: 'C',
    AWS_SECRET_ACCESS_KEY: 'k',
    GITHUB_TOKEN: 't',
    NODE_OPTIONS: '--require x',
  };

  it('only the minimal set, then inherit_env, then env', () => {
    expect(childEnvironment(server(), undefined, proxyEnv)).toEqual({
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
    });
    expect(
      childEnvironment(
        server({ inheritEnv: ['GITHUB_TOKEN'], env: { LOG: 'warn', PATH: '/opt/bin' } }),
        undefined,
        proxyEnv,
      ),
    ).toEqual({ PATH: '/opt/bin', HOME: '/root', LANG: 'C.UTF-8', LC_ALL: 'C', GITHUB_TOKEN: 't', LOG: 'warn' });
  });
  it("with run_as, HOME, USER and LOGNAME are that user's", () => {
    expect(
      childEnvironment(server(), { uid: 65534, gid: 65534, name: 'nobody', home: '/nonexistent' }, proxyEnv),
    ).toMatchObject({ HOME: '/nonexistent', USER: 'nobody', LOGNAME: 'nobody' });
    const anonymous = childEnvironment(
      server(),
      { uid: 12345, gid: 12345 },
      { ...proxyEnv, USER: 'root', LOGNAME: 'root' },
    );
    expect(anonymous.HOME).toBeUndefined();
    expect(anonymous.USER).toBeUndefined();
    expect(anonymous.LOGNAME).toBeUndefined();
  });
  it('run_as: a name, a uid, or uid:gid; an unknown user is a configuration error', () => {
    expect(resolveRunAs('root', 'run_as')).toMatchObject({ uid: 0, gid: 0, name: 'root' });
    expect(resolveRunAs('0', 'run_as')).toMatchObject({ uid: 0, gid: 0 });
    expect(resolveRunAs('12345:23456', 'run_as')).toMatchObject({ uid: 12345, gid: 23456 });
    expect(() => resolveRunAs('no-such-user-here', 'servers[0].run_as')).toThrow(
      /servers\[0\]\.run_as: no user named "no-such-user-here"/,
    );
  });
});

describe('upstreams cannot read the CA key', () => {
  async function caDir(mode: number): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-access-iso-'));
    await chmod(dir, 0o755);
    const ca = join(dir, 'ca');
    await mkdir(ca);
    for (const f of ['ca.key', 'proxy.key']) {
      await writeFile(join(ca, f), 'key');
      await chmod(join(ca, f), 0o600);
    }
    await chmod(ca, mode);
    return dir;
  }
  const other = { uid: 54321, gid: 54321 };

  it('canRead follows the mode bits of the file and every directory above it', async () => {
    const dir = await caDir(0o755);
    expect(canRead(join(dir, 'ca', 'ca.key'), other)).toBe(false);
    await chmod(join(dir, 'ca', 'ca.key'), 0o644);
    expect(canRead(join(dir, 'ca', 'ca.key'), other)).toBe(true);
    await chmod(join(dir, 'ca'), 0o700);
    expect(canRead(join(dir, 'ca', 'ca.key'), other)).toBe(false);
    expect(canRead(join(dir, 'ca', 'ca.key'), { uid: 0, gid: 0 })).toBe(true);
  });

  it('a run_as user that can read the CA key refuses the configuration; one that cannot is fine', async () => {
    const dir = await caDir(0o700);
    const log = new Logger({ sink: () => {} });
    const withRunAs = (runAs: string) =>
      parseProxyConfig(
        { ...base, ca_dir: join(dir, 'ca'), servers: [{ name: 'fs', command: 'x', run_as: runAs }] },
        join(dir, 'proxy.yaml'),
      );
    expect(() => checkUpstreamIsolation(proxyIsolation(withRunAs('root')), log)).toThrow(
      /servers\[0\]\.run_as: MCP server "fs" would run as root \(uid 0\), which can read .*ca\.key/,
    );
    expect(() => checkUpstreamIsolation(proxyIsolation(withRunAs(`${other.uid}:${other.gid}`)), log)).not.toThrow();
  });

  it('servers without run_as: a loud warning naming them and the fix', async () => {
    const dir = await caDir(0o700);
    const lines: string[] = [];
    const c = parseProxyConfig(
      {
        ...base,
        ca_dir: join(dir, 'ca'),
        servers: [
          { name: 'fs', command: 'x' },
          { name: 'web', url: 'http://x' },
        ],
      },
      join(dir, 'proxy.yaml'),
    );
    checkUpstreamIsolation(proxyIsolation(c), new Logger({ sink: (l) => lines.push(l) }));
    expect(lines.join('')).toMatch(
      /SECURITY: stdio server "fs" runs as the proxy's own user .* can read the CA key .*Set run_as: to an unprivileged user/,
    );
    expect(lines.join('')).not.toMatch(/"web"/);
  });
});
