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
