/**
 * `mcp-access proxy start`: load the configuration and the CA, build the
 * policy and the audit trail, serve, reload on SIGHUP, stop on SIGTERM/SIGINT.
 */
import { describeError } from '../errors.js';
import { serveUntilSignal } from '../util/serve.js';
import { Logger } from '../util/log.js';
import { CA_FILES, loadCa } from '../identity/ca.js';
import { loadProxyConfig, type ProxyConfig } from './config.js';
import { ProxyServer } from './server.js';
import type { Peer } from '../identity/peer.js';
import { buildAccess } from './access.js';
import { join } from 'node:path';
import { checkUpstreamIsolation, type IsolationScope } from '../agent/isolation.js';
import { createAgentEnrolment, createBotService, type AgentEnrolment } from './enrolment/service.js';
import { AddressRateLimiter, JOIN_RATE_LIMIT } from './enrolment/rate-limit.js';
import { commandProblem } from '../agent/upstream/command-check.js';
import { secretProblem } from '../agent/databases.js';
import { openBackend } from '../backend/open.js';
import type { Backend } from '../backend/types.js';
import { healthRoutes } from './health.js';
import { ProxyMetrics } from './metrics.js';
import { watchRoles } from './role-watch.js';
import { openEnrolmentStore } from './enrolment/pg-store.js';

/** One warning line per stdio server whose command is missing: found at start, not at the first session. */
function warnMissingCommands(config: ProxyConfig, log: Logger): void {
  for (const s of config.servers) {
    const problem = commandProblem(s);
    if (problem)
      log.warn(
        `MCP server "${s.name}": ${problem}; sessions to it will fail (fix its command in the proxy configuration)`,
      );
    const secret = s.transport === 'postgres' ? secretProblem(s.admin.password) : undefined;
    if (secret)
      log.warn(`database "${s.name}": ${secret}; sessions to it will fail (fix admin in the proxy configuration)`);
  }
}

/** The proxy's stdio servers must not read the CA key or the proxy's key. */
export function proxyIsolation(config: ProxyConfig): IsolationScope {
  return {
    path: config.path,
    servers: config.servers,
    secrets: [join(config.caDir, CA_FILES.caKey), join(config.caDir, CA_FILES.proxyKey)],
    secretDir: config.caDir,
    host: 'proxy',
    risk: 'forge any identity',
    secretName: 'the CA key',
  };
}

export interface RunningProxy {
  server: ProxyServer;
  /** Agent enrolment (with bot.state_dir): checkAgent(peer) and onRevoked(listener) for the agents' connections. */
  agents?: AgentEnrolment;
  /** Where cluster state lives (local files or PostgreSQL). */
  backend: Backend;
  metrics: ProxyMetrics;
  /** The metrics listener's address, when `metrics.listen` is set. */
  metricsAddress?: { host: string; port: number };
  address: { host: string; port: number };
  reload(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(
  configPath: string,
  opts: { logLevel?: ProxyConfig['logLevel']; logger?: Logger; port?: number } = {},
): Promise<RunningProxy> {
  const config = await loadProxyConfig(configPath);
  if (opts.port !== undefined) config.listen = { ...config.listen, port: opts.port };
  const log = opts.logger ?? new Logger({ name: 'proxy', level: opts.logLevel ?? config.logLevel, timestamps: true });
  const ca = await loadCa(config.caDir);
  warnMissingCommands(config, log);
  if (ca.cluster !== config.cluster) {
    log.warn(
      `config says cluster "${config.cluster}" but the CA in ${config.caDir} is for "${ca.cluster}"; using the CA's`,
    );
    config.cluster = ca.cluster;
  }
  checkUpstreamIsolation(proxyIsolation(config), log);
  const backend = await openBackend(config.backend, log);
  let sessionCount = () => 0;
  let agentCount = () => 0;
  let onRolesChange = () => {};
  const metrics = new ProxyMetrics(
    () => sessionCount(),
    () => agentCount(),
  );
  backend.onError = () => metrics.backendErrors.inc();
  const observeAudit = metrics.observeAudit.bind(metrics);
  let access: Awaited<ReturnType<typeof buildAccess>>;
  try {
    access = await buildAccess(config, log, undefined, backend, observeAudit);
  } catch (err) {
    await backend.close();
    throw err;
  }
  if (backend.type !== 'local') log.info(`backend: ${backend.description}`);
  const roles = watchRoles(backend, () => access, log, { onChange: () => onRolesChange() });
  await roles.refresh(true);
  // Bots (docs/bot.md): join/renew routes, and locked or removed bots refused before roles are consulted.
  // Agents (docs/agent.md) enrol the same way, in the same store; one join budget per address for both.
  const joinLimiter = new AddressRateLimiter({ ...JOIN_RATE_LIMIT });
  const bot = config.bot
    ? await createBotService({
        config,
        ca,
        log,
        audit: access.audit,
        joinLimiter,
        store: openEnrolmentStore(config.bot.stateDir, backend, 'bot'),
      })
    : undefined;
  const agents = config.bot
    ? await createAgentEnrolment({
        config,
        ca,
        log,
        audit: access.audit,
        joinLimiter,
        store: openEnrolmentStore(config.bot.stateDir, backend, 'agent'),
      })
    : undefined;
  const guardGates = (g: typeof access.gates) => agents?.guardGates(bot?.guardGates(g) ?? g) ?? g;
  const guardDecider = (d: typeof access.decider) => metrics.observeDecider(agents?.guard(bot?.guard(d) ?? d) ?? d);
  let listening = false;
  const routes = healthRoutes(
    { listening: () => listening, backend, audit: () => access.audit },
    agents?.withRoutes(bot?.withRoutes(access.routes)) ?? access.routes,
  );
  const server = new ProxyServer(
    config,
    { key: ca.proxyKeyPem, cert: ca.proxyCertPem, ca: [ca.caCertPem] },
    guardGates(access.gates),
    guardDecider(access.decider),
    log,
    routes,
    {
      audit: () => access.audit,
      auditSettings: () => access.agentAuditSettings,
      roles: () => access.roleDocuments,
      ...(agents ? { checkAgent: (peer: Peer) => agents.checkAgent(peer) } : {}),
    },
  );
  bot?.onServer(server);
  // A locked, removed or superseded agent is disconnected within the enrolment service's poll (about 1 s).
  agents?.onRevoked((r) => {
    if (r.kind === 'agent') server.agents.disconnectWhere((p) => r.applies(p), r.error);
  });
  sessionCount = () => server.sessionCount;
  agentCount = () => server.agents.connected;
  // Roles changed through the backend reach the remote agents too.
  onRolesChange = () => server.agents.pushRoles();
  let address: { host: string; port: number };
  let metricsAddress: { host: string; port: number } | undefined;
  try {
    address = await server.listen();
    listening = true;
    if (config.metrics) metricsAddress = await metrics.listen(config.metrics.listen, log);
  } catch (err) {
    roles.close();
    await server.close();
    await agents?.close();
    await bot?.close();
    await access.close();
    await backend.close();
    throw err;
  }
  const srv = server;

  let reloading: Promise<void> | undefined;
  const reload = async () => {
    if (reloading) return reloading;
    reloading = (async () => {
      try {
        const next = await loadProxyConfig(configPath);
        next.listen = config.listen;
        next.cluster = config.cluster;
        if (JSON.stringify(next.backend) !== JSON.stringify(config.backend))
          log.warn('backend: a change of the backend takes effect at the next start, not on reload');
        next.backend = config.backend;
        checkUpstreamIsolation(proxyIsolation(next), log);
        warnMissingCommands(next, log);
        const nextAccess = await buildAccess(next, log, access, backend, observeAudit);
        srv.reconfigure(next, guardGates(nextAccess.gates), guardDecider(nextAccess.decider));
        bot?.setAudit(nextAccess.audit);
        agents?.setAudit(nextAccess.audit);
        access = nextAccess;
        await roles.refresh(true);
        server.agents.pushRoles();
        log.info(`reloaded ${configPath}: ${next.servers.length} server${next.servers.length === 1 ? '' : 's'}`);
      } catch (err) {
        log.error(`reload failed, keeping the running configuration: ${describeError(err)}`);
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      roles.close();
      await srv.close();
      await metrics.close();
      await agents?.close();
      await bot?.close();
      await access.close();
      await backend.close();
    })());
  return {
    server: srv,
    backend,
    metrics,
    ...(metricsAddress ? { metricsAddress } : {}),
    address,
    reload,
    close,
    ...(agents ? { agents } : {}),
  };
}

/** Run until a signal: the body of `mcp-access proxy start`. */
export async function runProxy(
  configPath: string,
  opts: { logLevel?: ProxyConfig['logLevel']; onListening?: (addr: { host: string; port: number }) => void },
): Promise<void> {
  await serveUntilSignal('proxy', async () => {
    const proxy = await startProxy(configPath, opts);
    opts.onListening?.(proxy.address);
    return proxy;
  });
}
