/**
 * A real throw-away PKI for tests: a cluster CA in `dir/ca` and identity files
 * issued from it into `dir`. Everything is real keys and certificates.
 *
 *   const pki = await makeTestPki(tmpDir);
 *   const idPath = await pki.issue('alice', ['reader'], 60_000);
 *   // pki.ca.proxyCertPem / proxyKeyPem / caCertPem for the proxy side
 */
import { join } from 'node:path';
import { initCa, issueIdentity, writeIdentityFile, type CertificateAuthority } from '../../src/identity/ca.js';
import type { KeyType } from '../../src/identity/keys.js';

export interface IssueOptions {
  keyType?: KeyType;
  bot?: { name: string; generation: number };
  /** An agent's host certificate (then user must be `agent:NAME` and roles `[system:agent]`). */
  agent?: { name: string; generation: number };
  traits?: Record<string, string[]>;
  /** Where to write it; default `<dir>/<user>-<n>.identity`. */
  path?: string;
  /** The issuer's clock (ms since the epoch): a past `now` issues an already expired identity without waiting. */
  now?: number;
}

export interface TestPki {
  ca: CertificateAuthority;
  /** Issue an identity file and return its path. */
  issue(user: string, roles: string[], ttlMs: number, opts?: IssueOptions): Promise<string>;
}

export async function makeTestPki(
  dir: string,
  opts: { cluster?: string; proxyHosts?: string[] } = {},
): Promise<TestPki> {
  const ca = await initCa({
    dir: join(dir, 'ca'),
    cluster: opts.cluster ?? 'test-cluster',
    proxyHosts: opts.proxyHosts,
  });
  let n = 0;
  return {
    ca,
    async issue(user, roles, ttlMs, issueOpts = {}) {
      const path = issueOpts.path ?? join(dir, `${user}-${++n}.identity`);
      const text = await issueIdentity(ca, {
        user,
        roles,
        ttlMs,
        keyType: issueOpts.keyType,
        bot: issueOpts.bot,
        agent: issueOpts.agent,
        traits: issueOpts.traits,
        now: issueOpts.now,
      });
      await writeIdentityFile(path, text);
      return path;
    },
  };
}
