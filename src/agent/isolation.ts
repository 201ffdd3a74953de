/**
 * Upstream processes must not reach the proxy's secrets. A stdio server that
 * could read the CA key could issue any identity; one that could read the
 * proxy's key could impersonate the proxy. Checked at start and on reload:
 *
 *  - a server with `run_as` whose user can read either key: configuration
 *    error (the operator asked for isolation and does not get it);
 *  - a server without `run_as`, when the proxy's own user can read them (it
 *    always can: it loads them): a loud warning naming the fix. Refusing would
 *    break every single-user set-up (the demo, development); production
 *    layouts set `run_as` (docs/operations.md, "Production layout").
 */
import { AccessError } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { ServerConfig } from './servers.js';
import { canRead, currentUser, resolveRunAs } from './os-user.js';

/** What must stay out of the servers' reach, and where it comes from. */
export interface IsolationScope {
  /** The configuration file (for error messages). */
  path: string;
  servers: ServerConfig[];
  /** Files no server may read (the CA key and proxy key; an agent's own key). */
  secrets: string[];
  /** The directory that holds them, named in the fix. */
  secretDir: string;
  /** Who runs the servers: "proxy" or "agent". */
  host: 'proxy' | 'agent';
  /** What a reader of the secrets could do, e.g. "forge any identity". */
  risk: string;
  /** The secret, as the warning names it, e.g. "the CA key". */
  secretName: string;
}

export function checkUpstreamIsolation(config: IsolationScope, log: Logger): void {
  const secrets = config.secrets;
  const shared: string[] = [];
  config.servers.forEach((s, i) => {
    if (s.transport !== 'stdio') return;
    const field = `${config.path}: servers[${i}].run_as`;
    if (s.runAs === undefined) {
      if (secrets.some((p) => canRead(p, currentUser()))) shared.push(s.name);
      return;
    }
    const user = resolveRunAs(s.runAs, field);
    const readable = secrets.filter((p) => canRead(p, user));
    if (readable.length) {
      throw new AccessError(
        'CONFIG_INVALID',
        `${field}: MCP server "${s.name}" would run as ${s.runAs} (uid ${user.uid}), which can read ${readable.join(' and ')}`,
        {
          hint: `make ${config.secretDir} owned by the ${config.host}'s user with mode 0700, or choose a run_as user without access to it (docs/operations.md, "Production layout")`,
        },
      );
    }
  });
  if (shared.length) {
    const me = currentUser();
    log.warn(
      `SECURITY: stdio server${shared.length > 1 ? 's' : ''} ${shared.map((n) => `"${n}"`).join(', ')} run${shared.length > 1 ? '' : 's'} as the ${config.host}'s own user (${me.name ?? me.uid}), ` +
        `which can read ${config.secretName} in ${config.secretDir}: a compromised or misused server could ${config.risk}. ` +
        `Set run_as: to an unprivileged user that cannot read ${config.secretDir} (docs/operations.md, "Production layout")`,
    );
  }
}
