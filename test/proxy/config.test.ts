/** The proxy configuration: errors name the file and the field. */
import { describe, expect, it } from 'vitest';
import { parseProxyConfig } from '../../src/proxy/config.js';

describe('proxy config errors name the field', () => {
  const base = { cluster: 'c', listen: '127.0.0.1:0', ca_dir: 'ca', servers: [] as unknown[] };
  const err = (doc: unknown) => {
    try {
      parseProxyConfig(doc, 'proxy.yaml');
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  it('reports what is wrong where', () => {
    expect(err({ ...base, listen: 'nope' })).toMatch(/proxy.yaml: listen: "nope" must be host:port/);
    expect(err({ ...base, servers: [{ name: 'a' }] })).toMatch(/servers\[0\]: server "a" needs exactly one of command/);
    expect(err({ ...base, servers: [{ name: 'a', command: 'x', url: 'http://h' }] })).toMatch(/not command and url/);
    expect(err({ ...base, servers: [{ name: 'a', url: 'ftp://h' }] })).toMatch(
      /servers\[0\].url: "ftp:\/\/h" is not an http\(s\) URL/,
    );
    expect(
      err({
        ...base,
        servers: [
          { name: 'a', command: 'x' },
          { name: 'a', command: 'y' },
        ],
      }),
    ).toMatch(/servers\[1\].name: "a" is used twice/);
    expect(err({ ...base, bogus: 1 })).toMatch(/bogus: unknown key/);
    expect(err({ ...base, audit: { path: 'a', args: 'some' } })).toMatch(/audit.args: must be full, digest or none/);
    expect(err({ ...base, sessions: { grace_period: 'soon' } })).toMatch(
      /sessions.grace_period: "soon" is not a duration/,
    );
  });
});

describe('backend and metrics', () => {
  const base = { cluster: 'c', listen: '127.0.0.1:0', ca_dir: 'ca', servers: [] as unknown[] };
  const parse = (doc: Record<string, unknown>) => parseProxyConfig({ ...base, ...doc }, '/etc/mcp/proxy.yaml');
  const err = (doc: Record<string, unknown>) => {
    try {
      parse(doc);
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  it('defaults to the local backend in ./state; nothing else changes', () => {
    const c = parse({ audit: { path: 'a.jsonl' } });
    expect(c.backend).toEqual({ type: 'local', dir: '/etc/mcp/state' });
    expect(c.audit?.path).toBe('/etc/mcp/a.jsonl');
    expect(c.metrics).toBeUndefined();
  });
  it('reads a postgres backend; the audit trail and bots need no path there', () => {
    const c = parse({
      backend: { type: 'postgres', url: 'postgres://mcp@db:5432/mcp', password_file: 'pg.pass', pool_size: 4 },
      audit: null,
      bot: {},
      metrics: { listen: '127.0.0.1:9090' },
    });
    expect(c.backend).toEqual({
      type: 'postgres',
      url: 'postgres://mcp@db:5432/mcp',
      passwordFile: '/etc/mcp/pg.pass',
      connectTimeoutMs: 5000,
      poolSize: 4,
    });
    expect(c.audit).toMatchObject({ args: 'full' });
    expect(c.audit?.path).toBeUndefined();
    expect(c.bot?.stateDir).toBe('/etc/mcp/bots');
    expect(c.metrics).toEqual({ listen: { host: '127.0.0.1', port: 9090 } });
  });
  it('names what is wrong', () => {
    expect(err({ backend: { type: 'etcd' } })).toMatch(/backend.type: must be local or postgres/);
    expect(err({ backend: { type: 'postgres' } })).toMatch(/backend.url: is required/);
    expect(err({ backend: { type: 'postgres', url: 'mysql://x/y' } })).toMatch(/backend.url: must be a postgres:/);
    expect(err({ backend: { type: 'postgres', url: 'postgres://h/d', password: 'x' } })).toMatch(
      /backend.password: unknown key for type postgres/,
    );
    expect(err({ backend: { type: 'postgres', url: 'postgres://h/d' }, audit: { path: 'a' } })).toMatch(
      /audit.path: with backend type postgres the audit trail is in the database/,
    );
    expect(err({ backend: { type: 'local', url: 'postgres://h/d' } })).toMatch(
      /backend.url: unknown key for type local/,
    );
    expect(err({ audit: {} })).toMatch(/audit.path: is required/);
    expect(err({ metrics: { listen: 'x' } })).toMatch(/metrics.listen: "x" must be host:port/);
    expect(err({ backend: { type: 'postgres', url: 'postgres://h/d', connect_timeout: '1ms' } })).toMatch(
      /backend.connect_timeout: must be between/,
    );
  });
});
