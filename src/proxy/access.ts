/**
 * Builds what the server consults per connection and per message from the
 * configuration: the policy (roles), the audit log, the per-session gates and
 * extra routes. Rebuilt on reload (SIGHUP); an audit log whose path did not
 * change is kept open across reloads.
 */
import type { Logger } from '../util/log.js';
import type { ProxyConfig } from './config.js';
import type { GateFactory } from './gate.js';
import type { AccessDecider, ProxyRoutes } from './server.js';
import { AuditLog } from './audit/log.js';
import { loadRoles } from './rbac/roles.js';
import { Policy } from './rbac/policy.js';
import { accessDenied, createEnforcingGates, type LiveAccess } from './enforcement.js';
import { NO_AUDIT_TRAIL, unknownRolesNotice } from './notices.js';

export interface Access {
  /** Shared with every running session's gate; a reload updates it in place. */
  live: LiveAccess;
  audit: AuditLog | undefined;
  gates: GateFactory;
  decider: AccessDecider;
  routes: ProxyRoutes;
  close(): Promise<void>;
}

export async function buildAccess(config: ProxyConfig, log: Logger, previous?: Access): Promise<Access> {
  const { roles, warnings } = loadRoles({ inline: config.rolesInline, files: config.rolesFiles, baseDir: config.baseDir });
  for (const w of warnings) log.warn(w);
  if (roles.length === 0) log.warn('no roles are configured (roles, roles_files): no identity can reach any server');
  const policy = new Policy(roles);
  if (!config.audit) log.warn(NO_AUDIT_TRAIL);

  let audit: AuditLog | undefined;
  if (config.audit) {
    if (previous?.audit && previous.audit.path === config.audit.path) {
      audit = previous.audit;
    } else {
      audit = await AuditLog.open(config.audit.path, { args: config.audit.args, redactKeys: config.audit.redact, fsync: config.audit.fsync, logger: log });
    }
  }

  const live = previous?.live ?? { policy, audit };
  live.policy = policy;
  live.audit = audit;
  if (previous?.audit && previous.audit !== audit) await previous.audit.close();
  const decider: AccessDecider = {
    checkServer(peer, server) {
      const d = live.policy.canReachServer(peer.roles, server);
      if (!d.allowed) throw accessDenied(peer, server, d.reason);
    },
    describeServer(peer, server) {
      return { tools: live.policy.toolPatterns(peer.roles, server) };
    },
    describePeer(peer) {
      const unknownRoles = live.policy.unknownRoles(peer.roles);
      const warnings = [...(unknownRoles.length ? [unknownRolesNotice(unknownRoles)] : []), ...(live.audit ? [] : [NO_AUDIT_TRAIL])];
      return { ...(unknownRoles.length ? { unknownRoles } : {}), ...(warnings.length ? { warnings } : {}) };
    },
    recordRefusal(peer, server, reason) {
      live.audit?.append({
        type: 'mcp.session.start', outcome: 'denied', reason, user: peer.user, roles: peer.roles, server: server.name, remoteAddr: peer.remoteAddr,
      }).catch((err: Error) => log.error(`audit: ${err.message}`));
    },
  };
  return {
    live,
    audit,
    gates: previous?.gates ?? createEnforcingGates(live, log),
    decider,
    routes: {},
    close: async () => { await audit?.close(); },
  };
}
