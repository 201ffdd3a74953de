/**
 * `mcp-access agent …`: enrol the agents that run MCP servers next to them
 * (operator side: add, ls, lock, unlock, rm). The machine side (`agent
 * start`) is added to the same command with `buildAgentCommand([start])`.
 * Reference: docs/agent.md.
 */
import type { Argv, CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface ConfigArgs {
  config: string;
  format: 'text' | 'json';
}
interface AddArgs extends ConfigArgs {
  name: string;
  'token-ttl': string;
  proxy?: string;
  'data-dir': string;
}
interface NameArgs extends ConfigArgs {
  name: string;
}
interface LockArgs extends NameArgs {
  reason?: string;
}

/** Where `agent start` keeps its key, certificate and pinned CA unless told otherwise. */
export const DEFAULT_AGENT_DATA_DIR = '/var/lib/mcp-access/agent';

function common(y: Argv): Argv<ConfigArgs> {
  return y
    .option('config', {
      alias: 'c',
      type: 'string',
      demandOption: true,
      describe: 'The proxy configuration (its bot.state_dir holds the agents as well)',
    })
    .option('format', {
      choices: ['text', 'json'] as const,
      default: 'text' as const,
      describe: 'Output format',
    });
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `agent start` command line `agent add` prints. */
export function agentStartCommand(o: { proxy: string; dataDir: string; token: string; caPin: string }): string {
  return ['mcp-access', 'agent', 'start', '--config', 'agent.yaml', '--proxy', o.proxy, '--data-dir', o.dataDir]
    .concat(['--token', o.token])
    .concat(['--ca-pin', o.caPin])
    .map(shellQuote)
    .join(' ');
}

const addCommand = defineCommand<AddArgs>({
  command: 'add <name>',
  describe: 'Register an agent and print its one-time join token, the CA pin and the `agent start` line',
  builder: (y) =>
    common(y)
      .positional('name', { type: 'string', demandOption: true, describe: 'Agent name (letters, digits, . _ -)' })
      .option('token-ttl', {
        alias: 'ttl',
        type: 'string',
        default: '1h',
        describe: 'How long the join token stays usable (it works once; 1s to 30d)',
      })
      .option('proxy', {
        type: 'string',
        describe: 'host:port the agent dials, for the printed command (default: from the config and proxy certificate)',
      })
      .option('data-dir', {
        type: 'string',
        default: DEFAULT_AGENT_DATA_DIR,
        describe: "The agent's data directory, for the printed command",
      })
      .example('$0 agent add files-eu --config proxy.yaml', 'Prints the token, the CA pin and the `agent start` line')
      .example('$0 agent add files-eu --config proxy.yaml --format json', 'The same as JSON'),
  handler: async (argv) => {
    const { openBotState, addBot, readCaPublic, suggestProxyAddress } = await import('../../proxy/enrolment/admin.js');
    const { agentUserName, AGENT_ROLE } = await import('../../identity/names.js');
    const { parseDuration, formatDuration } = await import('../../util/duration.js');
    const { print, printJson } = await import('../output.js');
    const tokenTtlMs = parseDuration(argv['token-ttl'], '--token-ttl');
    const { config, store } = await openBotState(argv.config, 'agent');
    const { caPin, proxyCertPem } = await readCaPublic(config);
    const added = await addBot(store, { name: String(argv.name), roles: [], tokenTtlMs });
    const proxy = argv.proxy ?? suggestProxyAddress(config, proxyCertPem);
    const command = agentStartCommand({ proxy, dataDir: argv['data-dir'], token: added.token, caPin });
    if (argv.format === 'json') {
      printJson({
        agent: added.record.name,
        user: agentUserName(added.record.name),
        roles: [AGENT_ROLE],
        token: added.token,
        token_expires: added.tokenExpiresAt.toISOString(),
        ca_pin: caPin,
        proxy,
        start_command: command,
      });
      return;
    }
    print(
      [
        `Registered agent "${added.record.name}" (its host certificates name ${agentUserName(added.record.name)}, role ${AGENT_ROLE}).`,
        `Its join token works once, until ${added.tokenExpiresAt.toISOString()} (${formatDuration(tokenTtlMs)}); it is not shown again.`,
        '',
        `  token:   ${added.token}`,
        `  CA pin:  ${caPin}`,
        '',
        'On the machine next to the MCP servers, run:',
        '',
        `  ${command}`,
        '',
        `It keeps its key, certificate and the pinned CA in ${argv['data-dir']} and renews the certificate by itself; later runs need no token.`,
      ].join('\n'),
    );
  },
});

const lsCommand = defineCommand<ConfigArgs>({
  command: 'ls',
  describe: 'List registered agents',
  builder: (y) => common(y).example('$0 agent ls --config proxy.yaml', 'Name, status, generation, expiry, lock'),
  handler: async (argv) => {
    const { openBotState, listBots } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson, table } = await import('../output.js');
    const { store } = await openBotState(argv.config, 'agent');
    const agents = (await listBots(store)).map(({ roles: _roles, ...a }) => ({ ...a, locked: a.lock !== undefined }));
    if (argv.format === 'json') {
      printJson({ agents });
      return;
    }
    if (agents.length === 0) {
      print('No agents registered. Add one with: mcp-access agent add NAME --config CONFIG');
      return;
    }
    print(
      table(
        ['NAME', 'STATUS', 'GENERATION', 'CERT EXPIRES', 'LOCKED', 'NOTE'],
        agents.map((a) => [
          a.name,
          a.status,
          String(a.generation),
          a.certNotAfter ?? '-',
          a.lock ? 'yes' : 'no',
          a.lock ? `since ${a.lock.at}: ${a.lock.reason}` : a.tokenExpiresAt ? `token expires ${a.tokenExpiresAt}` : '',
        ]),
      ),
    );
  },
});

const lockCommand = defineCommand<LockArgs>({
  command: 'lock <name>',
  describe: 'Lock an agent: renewals and connections refused, its connections dropped within about a second',
  builder: (y) =>
    common(y)
      .positional('name', { type: 'string', demandOption: true })
      .option('reason', { type: 'string', describe: 'Why (recorded in the state and the audit log)' })
      .example('$0 agent lock files-eu --config proxy.yaml --reason "host compromised"', 'Cut it off now'),
  handler: async (argv) => {
    const { openBotState, lockBot } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const { store } = await openBotState(argv.config, 'agent');
    const { record, already } = await lockBot(store, String(argv.name), argv.reason ?? 'locked by an operator');
    if (argv.format === 'json') printJson({ agent: record.name, lock: record.lock, already_locked: already });
    else if (already)
      print(`Agent "${record.name}" was already locked (since ${record.lock!.at}: ${record.lock!.reason}).`);
    else
      print(
        `Locked agent "${record.name}". A running proxy drops its connections within about a second and refuses its renewals.`,
      );
  },
});

const unlockCommand = defineCommand<NameArgs>({
  command: 'unlock <name>',
  describe: 'Lift a lock: the agent may renew and connect again (if its certificate has not expired)',
  builder: (y) =>
    common(y)
      .positional('name', { type: 'string', demandOption: true })
      .example('$0 agent unlock files-eu --config proxy.yaml', 'Let it renew and connect again'),
  handler: async (argv) => {
    const { openBotState, unlockBot } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const { store } = await openBotState(argv.config, 'agent');
    const { record, was } = await unlockBot(store, String(argv.name));
    if (argv.format === 'json') printJson({ agent: record.name, unlocked: was !== undefined, was_locked: was ?? null });
    else if (!was) print(`Agent "${record.name}" was not locked.`);
    else print(`Unlocked agent "${record.name}" (it was locked since ${was.at}: ${was.reason}).`);
  },
});

const rmCommand = defineCommand<NameArgs>({
  command: 'rm <name>',
  describe: 'Remove an agent: its token stops working, renewals and connections are refused',
  builder: (y) =>
    common(y)
      .positional('name', { type: 'string', demandOption: true })
      .example('$0 agent rm files-eu --config proxy.yaml', 'Forget it (adding the name again gives a new token)'),
  handler: async (argv) => {
    const { openBotState, removeBot } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const { store } = await openBotState(argv.config, 'agent');
    const r = await removeBot(store, String(argv.name));
    if (argv.format === 'json') printJson({ agent: r.name, removed: r.removedAt });
    else
      print(
        `Removed agent "${r.name}". A running proxy drops its connections within about a second; its certificates are refused from now on.`,
      );
  },
});

/** The operator's subcommands, in the order `--help` lists them. */
export const agentOperatorCommands: CommandModule[] = [addCommand, lsCommand, lockCommand, unlockCommand, rmCommand];

/** `mcp-access agent`, with more subcommands (the machine side: `start`) after the operator's. */
export function buildAgentCommand(extra: CommandModule[] = []): CommandModule {
  const all = [...agentOperatorCommands, ...extra];
  const names = all.map((c) => String(c.command).split(' ')[0]).join(', ');
  return {
    command: 'agent',
    describe: 'Agents in front of MCP servers: register them (operator) and run them (machine)',
    builder: (y) => {
      for (const c of all) y.command(c);
      return y
        .demandCommand(1, `name an agent command: ${names}`)
        .example('$0 agent add files-eu --config proxy.yaml', 'Operator: register an agent');
    },
    handler: () => {},
  };
}
