/**
 * Applies roles created with `mcp-access role create` to the running proxy:
 * polls the backend's role version (PostgreSQL: one indexed read; local: one
 * readdir and a stat per role) every `pollMs` (default 500 ms), and when it
 * changed reads the roles and swaps the policy. New sessions and running
 * ones (from their next message) are judged by the new roles, within about
 * a second of the change on every proxy sharing the backend.
 *
 * While the backend cannot be read, the roles last read stay in force
 * (logged once): a role change cannot be made then either.
 */
import { describeError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { loadBackendRoles, roleStore } from '../backend/roles.js';
import type { Backend } from '../backend/types.js';
import type { Access } from './access.js';

export interface RoleWatcher {
  /** Read the roles now (after a reload changed the configuration's roles, and at start). */
  refresh(force?: boolean): Promise<void>;
  close(): void;
}

export function watchRoles(
  backend: Backend,
  access: () => Access,
  log: Logger,
  opts: { pollMs?: number; onChange?: () => void } = {},
): RoleWatcher {
  const store = roleStore(backend);
  let seen: string | undefined;
  let failing = false;
  let running: Promise<void> | undefined;
  let warned = new Set<string>();

  const refresh = (force = false): Promise<void> => {
    running ??= (async () => {
      try {
        const version = await store.version();
        if (!force && version === seen) return;
        const current = access();
        const { roles, documents, warnings } = await loadBackendRoles(
          store,
          new Set(current.configRoles.map((r) => r.name)),
        );
        const before = current.backendRoles.map((r) => r.name).join(',');
        current.setBackendRoles(roles, documents);
        opts.onChange?.();
        const fresh = new Set(warnings);
        for (const w of warnings) if (!warned.has(w)) log.warn(w);
        warned = fresh;
        const after = roles.map((r) => r.name).join(',');
        if (seen !== undefined || roles.length > 0)
          log.info(
            before === after
              ? `roles from the backend changed: ${after || 'none'} (running sessions judge their next message by them)`
              : `roles from the backend now: ${after || 'none'} (before: ${before || 'none'})`,
          );
        seen = version;
        if (failing) log.info('backend roles can be read again');
        failing = false;
      } catch (err) {
        if (!failing)
          log.error(`cannot read roles from the backend; keeping the roles last read: ${describeError(err)}`);
        failing = true;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const timer = setInterval(() => void refresh(), opts.pollMs ?? 500);
  timer.unref();
  return {
    refresh,
    close: () => clearInterval(timer),
  };
}
