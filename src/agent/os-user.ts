/**
 * Who a stdio server runs as (`run_as`), and whether that user could read a
 * file (the CA key): the proxy refuses a `run_as` user that can, and warns
 * when a server runs as the proxy's own user (docs/operations.md,
 * "Production layout").
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { AccessError } from '../errors.js';

export interface OsUser {
  uid: number;
  gid: number;
  name?: string;
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function passwd(): PasswdEntry[] {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return [];
  }
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

/** `run_as`: a user name, a uid (looked up for its group), or `uid:gid`. Throws CONFIG_INVALID. */
export function resolveRunAs(spec: string, field: string): OsUser {
  const m = /^(\d+)(?::(\d+))?$/.exec(spec);
  const users = passwd();
  if (m) {
    const uid = Number(m[1]);
    const entry = users.find((u) => u.uid === uid);
    if (m[2] !== undefined) return { uid, gid: Number(m[2]), name: entry?.name, home: entry?.home };
    if (!entry)
      throw new AccessError('CONFIG_INVALID', `${field}: no user has uid ${uid} on this machine; write uid:gid`);
    return { uid, gid: entry.gid, name: entry.name, home: entry.home };
  }
  const entry = users.find((u) => u.name === spec);
  if (!entry)
    throw new AccessError('CONFIG_INVALID', `${field}: no user named "${spec}" on this machine`, {
      hint: 'create the user (e.g. `useradd --system --no-create-home mcp-servers`) or fix run_as',
    });
  return { uid: entry.uid, gid: entry.gid, name: entry.name, home: entry.home };
}

/** The proxy's own user. */
export function currentUser(): OsUser {
  const u = userInfo();
  return { uid: u.uid, gid: u.gid, name: u.username, home: u.homedir };
}

/**
 * Could this user (uid, primary gid; a spawned child has no supplementary
 * groups) read `path`? By the mode bits of the file and every directory
 * above it; root reads everything. ACLs are not evaluated. When the path
 * cannot be inspected the answer is `true` (fail closed).
 */
export function canRead(path: string, user: Pick<OsUser, 'uid' | 'gid'>): boolean {
  if (user.uid === 0) return true;
  const allowed = (p: string, bit: 4 | 1): boolean => {
    const st = statSync(p);
    const shift = st.uid === user.uid ? 6 : st.gid === user.gid ? 3 : 0;
    return ((st.mode >> shift) & bit) !== 0;
  };
  try {
    const abs = resolve(path);
    if (!allowed(abs, 4)) return false;
    for (let dir = dirname(abs); ; dir = dirname(dir)) {
      if (!allowed(dir, 1)) return false;
      if (dirname(dir) === dir) break;
    }
    return true;
  } catch {
    return true;
  }
}
