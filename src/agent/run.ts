/**
 * `mcp-access agent start`: run next to the MCP servers an agent enrolls,
 * dial out to the proxy, and hold the sessions the proxy routes here: the
 * role gate (with the roles the proxy sends), audit events (stored by the
 * proxy before a request goes on), the upstream processes and HTTP clients,
 * and the reliable channel with the bridge. Reload on SIGHUP; stop on
 * SIGTERM/SIGINT.
 */
import { join as join_ } from 'node:path';
import { AccessError, describeError } from '../errors.js';
import { serveUntilSignal } from '../util/serve.js';
import { loadIdentity, type Identity } from '../identity/load.js';
import type { Peer } from '../identity/peer.js';
import { Policy, type PolicyOptions } from '../rbac/policy.js';
import { rolesFromDocuments, type RoleDocument } from '../rbac/roles.js';
import type { AnnouncedServer } from '../tunnel/agent-protocol.js';
import { TOKEN_SEPARATOR } from '../tunnel/agent-protocol.js';
import { Logger } from '../util/log.js';
import { auditSpoolDir, loadAgentConfig, type AgentConfig } from './config.js';
import { accessDenied, createEnforcingGates, type LiveAccess } from './enforcement.js';
import { SessionHost } from './host.js';
import { checkUpstreamIsolation } from './isolation.js';
import { ProxyLinks } from './proxy-links.js';
import { AuditSpool } from './audit-spool.js';
import type { ServerConfig } from './servers.js';
import { commandProblem } from './upstream/command-check.js';

export interface RunningAgent {
  name: string;
  link: ProxyLinks;
  host: SessionHost;
  reload(): Promise<void>;
  close(): Promise<void>;
}

export interface AgentCredentialSource {
  /** The agent's name and generation (from its certificate). */
  name: string;
  /** Key, certificate and CA for the next connection (renewals apply from the next one). */
  tls(): Promise<{ key: string; cert: string; ca: string[] }>;
  /** Files no server of the agent may read. */
  secrets: string[];
  close?(): Promise<void>;
}

/** Credentials from an identity file holding an agent's host certificate (re-read on every connection). */
export async function identityFileCredentials(path: string): Promise<AgentCredentialSource> {
  const check = (id: Identity): Identity => {
    if (!id.agent)
      throw new AccessError(
        'IDENTITY_REJECTED',
        `${path} holds ${id.user}'s identity, not an agent's host certificate`,
        {
          hint: 'issue the agent its certificate with `mcp-access agent add`, or give it a data_dir and a join token',
        },
      );
    return id;
  };
  const first = check(await loadIdentity(path));
  return {
    name: first.agent!.name,
    secrets: [path],
    async tls() {
      const id = check(await loadIdentity(path));
      return { key: id.keyPem, cert: id.certPem, ca: id.caPems };
    },
  };
}

/** Credentials an agent joined with (token + CA pin, once) and renews in its data directory. */
export async function dataDirCredentials(
  config: AgentConfig,
  join: { token?: string; caPin?: string },
  log: Logger,
  onRenewed: () => void,
): Promise<AgentCredentialSource> {
  const { AgentCredentials } = await import('./credentials.js');
  const creds = await AgentCredentials.open({
    proxy: config.proxy,
    dataDir: config.dataDir!,
    ...(join.token ? { token: join.token } : {}),
    ...(join.caPin ? { caPin: join.caPin } : {}),
    log,
  });
  creds.on('renewed', () => onRenewed());
  creds.on('fatal', (err: AccessError) =>
    log.error(`${err.line}; the agent keeps running until its certificate expires`),
  );
  const name = creds.current().name;
  return {
    name,
    secrets: [join_(config.dataDir!, 'identity'), join_(config.dataDir!, 'pending.key')],
    tls: () => {
      const c = creds.current();
      return Promise.resolve({ key: c.keyPem, cert: c.certPem, ca: c.caPems });
    },
    close: () => creds.close(),
  };
}

export async function startAgent(
  configPath: string,
  opts: {
    logLevel?: AgentConfig['logLevel'];
    logger?: Logger;
    credentials?: (config: AgentConfig) => Promise<AgentCredentialSource>;
    heartbeatMs?: number;
    /** Overrides of the configuration file (`agent start --proxy/--data-dir`). */
    proxy?: string;
    dataDir?: string;
    /** A one-time join token and the CA pin, for the first start with a data directory. */
    token?: string;
    caPin?: string;
  } = {},
): Promise<RunningAgent> {
  let config = await loadAgentConfig(configPath, { proxy: opts.proxy, dataDir: opts.dataDir });
  const log = opts.logger ?? new Logger({ name: 'agent', level: opts.logLevel ?? config.logLevel, timestamps: true });
  const ref: { link?: ProxyLinks } = {};
  const credentials = opts.credentials
    ? await opts.credentials(config)
    : config.identity && !opts.dataDir
      ? await identityFileCredentials(config.identity)
      : await dataDirCredentials(config, { token: opts.token, caPin: opts.caPin }, log, () => ref.link?.renew());
  const isolation = (c: AgentConfig) =>
    checkUpstreamIsolation(
      {
        path: c.path,
        servers: c.servers,
        secrets: credentials.secrets,
        secretDir: c.dataDir ?? c.baseDir,
        host: 'agent',
        risk: 'impersonate this agent, read every session it holds and alter its audit spool',
        secretName: "the agent's private key",
      },
      log,
    );
  isolation(config);
  warnMissingCommands(config, log);

  // Events a previous run left unstored go to the proxy first.
  const audit = await AuditSpool.open({
    dir: auditSpoolDir(config, credentials.name),
    agent: credentials.name,
    maxBytes: config.auditSpool.maxBytes,
    log,
  });
  // Until the proxy sends its roles, nothing is allowed.
  const live: LiveAccess = { policy: new Policy([]), audit };
  const gates = createEnforcingGates(live, log);
  const host = new SessionHost({
    settings: config,
    gates,
    log,
    tokenPrefix: `${credentials.name}${TOKEN_SEPARATOR}`,
  });
  host.reconfigure(config.servers, config, gates);
  const mayReach = (peer: Peer, server: ServerConfig) => {
    const d = live.policy.canReachServer(peer.roles, server);
    if (!d.allowed) throw accessDenied(peer, server, d.reason);
  };
  const link = new ProxyLinks({
    proxy: config.proxy,
    tls: () => credentials.tls(),
    host,
    servers: () => config.servers,
    describe,
    audit,
    mayReach,
    onRoles: (documents: RoleDocument[], rbac: Record<string, unknown> | undefined) => {
      try {
        live.policy = new Policy(rolesFromDocuments(Array.isArray(documents) ? documents : []), policyOptions(rbac));
        log.debug(`roles from the proxy: ${live.policy.roles.map((r) => r.name).join(', ') || '(none)'}`);
      } catch (err) {
        // The proxy checked them; a role this agent's version cannot read grants nothing here.
        live.policy = new Policy([]);
        log.error(`the roles the proxy sent cannot be read, so nothing is allowed: ${describeError(err)}`);
      }
    },
    log,
    maxMessageSize: config.maxMessageSize,
    keepaliveMs: config.keepaliveMs,
    heartbeatMs: opts.heartbeatMs,
  });
  ref.link = link;
  link.start();
  log.info(
    `agent ${credentials.name}: ${config.servers.length} server(s); dialling the proxy at ${link.where} (no listening port)`,
  );

  let reloading: Promise<void> | undefined;
  const reload = () => {
    reloading ??= (async () => {
      try {
        const next = await loadAgentConfig(configPath, { proxy: opts.proxy, dataDir: opts.dataDir });
        next.proxy = config.proxy;
        if (JSON.stringify(next.auditSpool) !== JSON.stringify(config.auditSpool))
          log.warn('audit_spool: a change takes effect at the next start, not on reload');
        next.auditSpool = config.auditSpool;
        isolation(next);
        warnMissingCommands(next, log);
        config = next;
        host.reconfigure(next.servers, next, gates);
        link.announce();
        log.info(`reloaded ${configPath}: ${next.servers.length} server(s)`);
      } catch (err) {
        log.error(`reload failed, keeping the running configuration: ${describeError(err)}`);
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await link.close();
      await host.close(new AccessError('PROXY_GOING_AWAY', 'the agent is shutting down'));
      // Events still unstored (the sessions' ends, say) stay in the spool for the next start.
      await audit.close();
      await credentials.close?.();
    })();
    return closing;
  };
  return { name: credentials.name, link, host, reload, close };
}

/** Run until a signal: the body of `mcp-access agent start`. */
export async function runAgent(
  configPath: string,
  opts: Parameters<typeof startAgent>[1] & { onStarted?: (agent: RunningAgent) => void },
): Promise<void> {
  await serveUntilSignal('agent', async () => {
    const agent = await startAgent(configPath, opts);
    opts.onStarted?.(agent);
    return agent;
  });
}

/** The proxy's `rbac:` settings as Policy options; anything unknown falls back to the strictest reading. */
function policyOptions(rbac: Record<string, unknown> | undefined): PolicyOptions {
  const pick = (v: unknown) => (v === 'all' || v === 'none' ? v : v === undefined ? 'all' : 'none');
  return { defaultResources: pick(rbac?.defaultResources), defaultPrompts: pick(rbac?.defaultPrompts) };
}

function describe(s: ServerConfig): AnnouncedServer {
  const problem = commandProblem(s);
  return {
    name: s.name,
    description: s.description,
    transport: s.transport,
    labels: s.labels,
    ...(problem ? { problem } : {}),
  };
}

function warnMissingCommands(config: AgentConfig, log: Logger): void {
  for (const s of config.servers) {
    const problem = commandProblem(s);
    if (problem)
      log.warn(`MCP server "${s.name}": ${problem}; sessions to it will fail (fix its command in ${config.path})`);
  }
}
