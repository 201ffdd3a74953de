/**
 * What a stdio server process is started with: a minimal environment (never
 * the proxy's own: it may hold credentials), and the `run_as` user.
 *
 * The minimal environment is what a command needs to run (npx included):
 * PATH, HOME, USER, LOGNAME, SHELL, TERM, LANG, LANGUAGE, LC_*, TZ, TMPDIR,
 * TMP, TEMP (and Windows' SYSTEMROOT, WINDIR, COMSPEC, PATHEXT); then the
 * variables the server's `inherit_env` names, then its `env`. With `run_as`,
 * HOME, USER and LOGNAME are those of that user (unset for a uid without an
 * account).
 */
import type { StdioServerConfig } from '../servers.js';
import { resolveRunAs, type OsUser } from '../os-user.js';

export const MINIMAL_ENV = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'TERM',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TMP',
  'TEMP',
  'SYSTEMROOT',
  'WINDIR',
  'COMSPEC',
  'PATHEXT',
];

export function childEnvironment(
  config: StdioServerConfig,
  user: OsUser | undefined,
  from: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) {
    if (v !== undefined && (MINIMAL_ENV.includes(k) || k.startsWith('LC_') || config.inheritEnv.includes(k)))
      env[k] = v;
  }
  if (user) {
    // Never the proxy user's: that user's values, or none (run_as uid:gid without an account).
    delete env.HOME;
    delete env.USER;
    delete env.LOGNAME;
    if (user.home) env.HOME = user.home;
    if (user.name) {
      env.USER = user.name;
      env.LOGNAME = user.name;
    }
  }
  return { ...env, ...config.env };
}

/** spawn() options for the server's user and environment. Throws CONFIG_INVALID for an unknown run_as user. */
export function childProcessOptions(
  serverName: string,
  config: StdioServerConfig,
): { env: Record<string, string>; uid?: number; gid?: number } {
  const user = config.runAs === undefined ? undefined : resolveRunAs(config.runAs, `server "${serverName}": run_as`);
  return { env: childEnvironment(config, user), ...(user ? { uid: user.uid, gid: user.gid } : {}) };
}
