/**
 * Checks for files and directories a program writes secrets or trust
 * anchors into: they must belong to the user running it and be writable by
 * nobody else, and a symlink planted where a file is expected is never
 * followed. Failures are `UNSAFE_PATH` errors that say what is wrong.
 */
import { constants } from 'node:fs';
import { lstat, open, stat } from 'node:fs/promises';
import { AccessError } from '../errors.js';

const myUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined);

export function modeText(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/** Throws unless DIR is a directory owned by this user that group and others cannot write. */
export async function checkOwnDirectory(dir: string, what: string): Promise<void> {
  const st = await stat(dir);
  if (!st.isDirectory()) throw new AccessError('USAGE', `${what} ${dir} is not a directory`);
  const uid = myUid();
  if (uid !== undefined && st.uid !== uid) {
    throw new AccessError(
      'UNSAFE_PATH',
      `${what} ${dir} belongs to another user (uid ${st.uid}, not ${uid}), so it is not used`,
      {
        hint: `use a directory of this user, or chown it to uid ${uid} after checking what is in it`,
      },
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new AccessError(
      'UNSAFE_PATH',
      `${what} ${dir} is writable by other users (mode ${modeText(st.mode)}), so it is not used`,
      {
        hint: `check what is in it, then chmod 0700 ${dir}`,
      },
    );
  }
}

export type OwnFile = { text: string } | { unsafe: string } | undefined;

/**
 * Read a file without following a symlink; `{unsafe}` says why it must not
 * be used (a symlink, not a regular file, another owner, writable by others,
 * or, with `secret`, readable by others; or hard-linked elsewhere).
 * Undefined when it does not exist.
 */
export async function readOwnFile(path: string, opts: { secret?: boolean } = {}): Promise<OwnFile> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') return { unsafe: `${path} is a symlink` };
    throw new AccessError('USAGE', `cannot read ${path} (${code ?? 'error'})`);
  }
  try {
    const st = await fh.stat();
    const uid = myUid();
    if (!st.isFile()) return { unsafe: `${path} is not a regular file` };
    if (uid !== undefined && st.uid !== uid) return { unsafe: `${path} belongs to another user (uid ${st.uid})` };
    if ((st.mode & 0o022) !== 0) return { unsafe: `${path} is writable by other users (mode ${modeText(st.mode)})` };
    if (opts.secret && (st.mode & 0o077) !== 0)
      return { unsafe: `${path} is readable by other users (mode ${modeText(st.mode)})` };
    if (st.nlink > 1) return { unsafe: `${path} has other hard links` };
    return { text: await fh.readFile('utf8') };
  } finally {
    await fh.close();
  }
}

/** Throws UNSAFE_PATH when PATH is a symlink (a dangling one included). */
export async function refuseSymlink(path: string, what: string): Promise<void> {
  try {
    if ((await lstat(path)).isSymbolicLink()) {
      throw new AccessError('UNSAFE_PATH', `${what} ${path} is a symlink, so it is not written through`, {
        hint: 'remove the symlink, or pass the real path',
      });
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
}

/** Create a new file (never an existing one, never through a symlink) with MODE. */
export async function createExclusive(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new AccessError('UNSAFE_PATH', `${path} already exists (or is a symlink), so it was not written`, {
        hint: 'remove it or choose another name',
      });
    throw new AccessError('USAGE', `cannot create ${path} (${code ?? 'error'})`);
  }
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
