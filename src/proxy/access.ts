/**
 * Builds what the server consults per connection and per message from the
 * configuration: the policy (roles), the audit log, the per-session gates and
 * extra routes. Rebuilt on reload (SIGHUP); an audit log whose path did not
 * change is kept open across reloads.
 */
import type { Logger } from '../util/log.js';
import type { ProxyConfig } from './config.js';
import type { GateFactory } from '../agent/gate.js';
import type { AccessDecider, ProxyRoutes } from './server.js';
import { loadRoles, type Role, type RoleDocument } from '../rbac/roles.js';
import type { AuditWriter, Backend } from '../backend/types.js';
import { LocalBackend } from '../backend/local.js';
import { Policy } from '../rbac/policy.js';
import { accessDenied, createEnforcingGates, type LiveAccess } from '../agent/enforcement.js';
import { NO_AUDIT_TRAIL, unknownRolesNotice } from './notices.js';
import { JsonFilePinStore } from '../agent/pins.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createJwtSigner, JWKS_PATH } from '../identity/jwt.js';
import { CA_FILES } from '../identity/ca.js';
import { AuditRateLimiter } from '../audit/rate-limit.js';
import { DEFAULT_IDENTITY_BUDGET_BYTES } from '../audit/prepare.js';
import type { AgentAuditSettings } from '../tunnel/agent-protocol.js';
import type { Refusal } from './server.js';

/**
 * Refused connections (before a session exists) are audited at most
 * REFUSAL_BURST at once and REFUSAL_PER_SECOND on average, per identity and
 * for all unauthenticated clients together; a summary event counts the rest.
 */
export const REFUSAL_BURST = 20;
export const REFUSAL_PER_SECOND = 2;
const REFUSAL_SUMMARY_MS = 10_000;

export interface Access {
  /** The role documents (proxy.yaml's, then the backend's), as agents receive them. */
  readonly roleDocuments: RoleDocument[];
  /** Shared with every running session's gate; a reload updates it in place. */
  live: LiveAccess;
  audit: AuditWriter | undefined;
  /** How remote agents record their events: `audit:`'s settings (null: no trail). */
  readonly agentAuditSettings: AgentAuditSettings | null;
  /** Roles from proxy.yaml (roles, roles_files); a backend role of the same name is ignored. */
  configRoles: Role[];
  /** Roles from the backend (`mcp-access role create`), as last applied. */
  readonly backendRoles: Role[];
  /** Their documents. */
  readonly backendDocuments: RoleDocument[];
  /**
   * Replace the backend's roles: new sessions and running ones (from their
   * next message) are judged by them. `documents` are the same roles'
   * documents, for remote agents (rolesFromDocuments).
   */
  setBackendRoles(roles: Role[], documents: RoleDocument[]): void;
  gates: GateFactory;
  decider: AccessDecider;
  routes: ProxyRoutes;
  /** Rate limit of refusal events; kept across reloads. */
  refusals: RefusalAudit;
  close(): Promise<void>;
}

/** Audits refused connections through `live.audit`, rate-limited, with summaries of what was suppressed. */
export class RefusalAudit {
  private readonly limiter = new AuditRateLimiter({ burst: REFUSAL_BURST, perSecond: REFUSAL_PER_SECOND });
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly live: LiveAccess,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => this.flush(), REFUSAL_SUMMARY_MS);
    this.timer.unref();
  }

  record(r: Refusal): void {
    const key = r.peer
      ? `identity ${r.peer.user}${r.peer.bot ? ` (bot ${r.peer.bot.name})` : ''}`
      : 'unauthenticated clients';
    const { allowed, suppressed, since } = this.limiter.take(key);
    if (suppressed > 0) this.summary(key, suppressed, since!);
    if (!allowed) return;
    this.write({
      type: 'mcp.session.start',
      outcome: 'denied',
      reason: r.reason,
      error: r.code,
      user: r.peer?.user,
      roles: r.peer?.roles,
      bot: r.peer?.bot?.name,
      ...(r.peer?.agent ? { agent: r.peer.agent.name } : {}),
      server: r.server,
      remoteAddr: r.remoteAddr,
    });
  }

  /** Summaries for everything suppressed so far. */
  flush(): void {
    for (const { key, suppressed, since } of this.limiter.drain()) this.summary(key, suppressed, since);
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }

  private summary(key: string, suppressed: number, since: number): void {
    this.write({
      type: 'mcp.session.start',
      outcome: 'denied',
      suppressed,
      suppressedSince: new Date(since).toISOString(),
      reason: `${suppressed} more refused connection(s) of ${key} were not recorded one by one (rate limit: ${REFUSAL_BURST} at once, ${REFUSAL_PER_SECOND}/s)`,
    });
  }

  private write(event: Parameters<NonNullable<LiveAccess['audit']>['append']>[0]): void {
    this.live.audit?.append(event).catch((err: Error) => this.log.error(`audit: ${err.message}`));
  }
}

/** metadata.name of a role document (already checked when it was loaded). */
function documentName(d: RoleDocument): string | undefined {
  const meta = (d.doc as { metadata?: { name?: unknown } } | null)?.metadata;
  return typeof meta?.name === 'string' ? meta.name : undefined;
}

export async function buildAccess(
  config: ProxyConfig,
  log: Logger,
  previous?: Access,
  backend: Backend = new LocalBackend(config.backend.type === 'local' ? config.backend.dir : ''),
  /** Wraps a newly opened audit writer (metrics). */
  observeAudit: (w: AuditWriter) => AuditWriter = (w) => w,
): Promise<Access> {
  const {
    roles: configRoles,
    warnings,
    documents: configDocuments,
  } = loadRoles({
    inline: config.rolesInline,
    files: config.rolesFiles,
    baseDir: config.baseDir,
    configPath: config.path,
  });
  for (const w of warnings) log.warn(w);
  const configNames = new Set(configRoles.map((r) => r.name));
  let backendRoles = (previous?.backendRoles ?? []).filter((r) => !configNames.has(r.name));
  let backendDocuments = (previous?.backendDocuments ?? []).filter((d) => !configNames.has(documentName(d) ?? ''));
  const policyOf = () => new Policy([...configRoles, ...backendRoles], config.rbac);
  const policy = policyOf();
  if (configRoles.length === 0 && backendRoles.length === 0)
    log.warn('no roles are configured (roles, roles_files): no identity can reach any server');
  if (!config.audit) log.warn(NO_AUDIT_TRAIL);

  let audit: AuditWriter | undefined;
  if (config.audit) {
    const sameTrail =
      previous?.audit &&
      (backend.type === 'postgres'
        ? previous.audit.key.startsWith('postgresql:')
        : previous.audit.key === config.audit.path);
    if (sameTrail) {
      audit = previous.audit;
    } else {
      audit = observeAudit(
        await backend.openAudit({
          path: config.audit.path,
          args: config.audit.args,
          redactKeys: config.audit.redact,
          fsync: config.audit.fsync,
          identityBudgetBytes: config.audit.identityBudget,
          logger: log,
        }),
      );
    }
  }

  const live: LiveAccess = previous?.live ?? { policy, audit };
  live.policy = policy;
  live.audit = audit;
  // identity_jwt: assertions signed with the proxy's key (its public half at /.well-known/jwks.json).
  live.jwt = config.servers.some((s) => (s.transport === 'http' || s.transport === 'sse') && s.identityJwt)
    ? (live.jwt ?? createJwtSigner(await readFile(join(config.caDir, CA_FILES.proxyKey), 'utf8'), config.cluster))
    : undefined;
  live.pins = config.servers.some((s) => s.toolPinning !== 'off')
    ? live.pins instanceof JsonFilePinStore && live.pins.path === config.toolPins
      ? live.pins
      : new JsonFilePinStore(config.toolPins)
    : undefined;
  const refusals = previous?.refusals ?? new RefusalAudit(live, log);
  if (previous?.audit && previous.audit !== audit) await previous.audit.close();
  const decider: AccessDecider = {
    checkServer(peer, server) {
      const d = live.policy.canReachServer(peer, server);
      if (!d.allowed) throw accessDenied(peer, server, d.reason);
    },
    describeServer(peer, server) {
      const base = {
        tools: live.policy.toolPatterns(peer, server),
        resources: live.policy.namedPatterns('resources', peer, server),
        prompts: live.policy.namedPatterns('prompts', peer, server),
      };
      if (server.transport !== 'postgres') return base;
      const db = live.policy.databaseGrants(peer.roles, server);
      return {
        ...base,
        database: {
          access: db.provisioning ? 'db_permissions' : 'db_users',
          names: db.patterns.names,
          users: db.users,
          permissions: db.patterns.permissions,
        },
      };
    },
    describePeer(peer) {
      const unknownRoles = live.policy.unknownRoles(peer.roles);
      const warnings = [
        ...(unknownRoles.length ? [unknownRolesNotice(unknownRoles)] : []),
        ...(live.audit ? [] : [NO_AUDIT_TRAIL]),
      ];
      return { ...(unknownRoles.length ? { unknownRoles } : {}), ...(warnings.length ? { warnings } : {}) };
    },
    recordRefusal(refusal) {
      refusals.record(refusal);
    },
  };
  return {
    get roleDocuments() {
      return [...configDocuments, ...backendDocuments];
    },
    get backendDocuments() {
      return backendDocuments;
    },
    live,
    audit,
    agentAuditSettings: config.audit
      ? {
          args: config.audit.args,
          redact: config.audit.redact,
          identityBudgetBytes: config.audit.identityBudget ?? DEFAULT_IDENTITY_BUDGET_BYTES,
          fsync: config.audit.fsync,
          maxFrameBytes: config.maxMessageSize,
        }
      : null,
    gates: previous?.gates ?? createEnforcingGates(live, log),
    decider,
    routes: {
      openPaths: [JWKS_PATH],
      handle(req, res) {
        if (req.method !== 'GET' || new URL(req.url ?? '/', 'https://x').pathname !== JWKS_PATH)
          return Promise.resolve(false);
        const body = JSON.stringify(live.jwt ? live.jwt.jwks() : { keys: [] });
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
        res.end(body);
        return Promise.resolve(true);
      },
    },
    refusals,
    configRoles,
    get backendRoles() {
      return backendRoles;
    },
    setBackendRoles(roles: Role[], documents: RoleDocument[]) {
      backendRoles = roles.filter((r) => !configNames.has(r.name));
      backendDocuments = documents.filter((d) => !configNames.has(documentName(d) ?? ''));
      live.policy = policyOf();
    },
    close: async () => {
      refusals.close();
      await audit?.close();
    },
  };
}
