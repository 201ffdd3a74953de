/**
 * `mcp-access bot …`: register machine identities on the proxy (operator side:
 * add, ls, rm, lock, unlock) and run the renewing bot on a machine (start).
 * Reference: docs/bot.md.
 */
import type { Argv, CommandModule } from 'yargs';

interface ConfigArgs {
  config: string;
}
interface AddArgs extends ConfigArgs {
  name: string;
  roles: string[];
  trait?: string[];
  'token-ttl': string;
  format: 'text' | 'json';
  proxy?: string;
  destination: string;
}
interface LsArgs extends ConfigArgs {
  format: 'text' | 'json';
}
interface NameArgs extends ConfigArgs {
  name: string;
  format: 'text' | 'json';
}
interface LockArgs extends NameArgs {
  reason?: string;
}
interface StartArgs {
  config?: string;
  proxy?: string;
  destination?: string;
  token?: string;
  'token-file'?: string;
  'ca-pin'?: string;
  ttl?: string;
  'renewal-interval'?: string;
  oneshot?: boolean;
  debug?: boolean;
}

const DEFAULT_DESTINATION = '/var/lib/mcp-access/bot';

function configOption<T>(y: Argv<T>): Argv<T & ConfigArgs> {
  return y.option('config', {
    alias: 'c',
    type: 'string',
    demandOption: true,
    describe: 'The proxy configuration (its bot.state_dir holds the bots)',
  });
}

function formatOption<T>(y: Argv<T>): Argv<T & { format: 'text' | 'json' }> {
  return y.option('format', {
    choices: ['text', 'json'] as const,
    default: 'text' as const,
    describe: 'Output format',
  });
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Roles the proxy does not define grant nothing. None defined: the bot would
 * reach nothing, so it is not registered. Some: registered, with a warning.
 */
async function checkBotRoles(
  config: import('../../proxy/config.js').ProxyConfig,
  roles: string[],
  backend: import('../../backend/types.js').Backend,
): Promise<void> {
  const [{ loadRoles }, { Policy }, { AccessError }, { loadBackendRoles, roleStore }] = await Promise.all([
    import('../../rbac/roles.js'),
    import('../../rbac/policy.js'),
    import('../../errors.js'),
    import('../../backend/roles.js'),
  ]);
  const fromConfig = loadRoles({ inline: config.rolesInline, files: config.rolesFiles, baseDir: config.baseDir }).roles;
  // Roles created with `mcp-access role create` count too.
  const fromBackend = (await loadBackendRoles(roleStore(backend), new Set(fromConfig.map((r) => r.name)))).roles;
  const defined = [...fromConfig, ...fromBackend];
  const unknown = new Policy(defined).unknownRoles(roles);
  if (unknown.length === 0 || roles.length === 0) return;
  const names = unknown.map((r) => `"${r}"`).join(', ');
  const known = `the roles it defines: ${defined.map((r) => r.name).join(', ') || 'none'}`;
  if (unknown.length === new Set(roles).size) {
    throw new AccessError('USAGE', `${config.path} defines no role named ${names}; the bot was not registered`, {
      hint: `${known}; define the role first, under roles or roles_files`,
    });
  }
  process.stderr.write(
    `mcp-access: warning: ${config.path} defines no role named ${names}: it grants the bot nothing until it is defined (${known})\n`,
  );
}

const addCommand: CommandModule<object, AddArgs> = {
  command: 'add <name>',
  describe: 'Register a bot and print its one-time join token and the CA pin',
  builder: (y) =>
    formatOption(configOption(y))
      .positional('name', { type: 'string', demandOption: true, describe: 'Bot name (letters, digits, . _ -)' })
      .option('roles', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'Roles of its certificates, comma-separated or repeated',
      })
      .option('trait', {
        type: 'string',
        array: true,
        describe: 'A trait of its certificates, for role templates ({{internal.NAME}}): NAME=v1,v2; repeatable',
      })
      .option('token-ttl', {
        type: 'string',
        default: '1h',
        describe: 'How long the join token stays usable (it works once)',
      })
      .option('proxy', {
        type: 'string',
        describe: 'host:port the bot dials, for the printed command (default: from the config and proxy certificate)',
      })
      .option('destination', {
        type: 'string',
        default: DEFAULT_DESTINATION,
        describe: 'Destination directory, for the printed command',
      })
      .example(
        '$0 bot add ci-agent --roles mcp-reader --config proxy.yaml',
        'Prints the token, the CA pin and the `bot start` command',
      )
      .example(
        '$0 bot add ci-agent --roles mcp-reader --config proxy.yaml --format json',
        'The same as JSON (token, ca_pin, …)',
      ),
  handler: async (argv) => {
    const { openBotState, addBot, readCaPublic, suggestProxyAddress } = await import('../../proxy/enrolment/admin.js');
    const { parseDuration, formatDuration } = await import('../../util/duration.js');
    const { print, printJson } = await import('../output.js');
    const roles = argv.roles
      .flatMap((r) => String(r).split(','))
      .map((r) => r.trim())
      .filter((r) => r !== '');
    const tokenTtlMs = parseDuration(argv['token-ttl'], '--token-ttl');
    const { config, store, backend } = await openBotState(argv.config);
    await checkBotRoles(config, roles, backend);
    const { caPin, proxyCertPem } = await readCaPublic(config);
    const { parseTraitOptions } = await import('../../identity/claims.js');
    const traits = parseTraitOptions(argv.trait ?? []);
    const added = await addBot(store, { name: String(argv.name), roles, traits, tokenTtlMs });
    const proxy = argv.proxy ?? suggestProxyAddress(config, proxyCertPem);
    const startArgs = [
      'mcp-access',
      'bot',
      'start',
      '--proxy',
      proxy,
      '--destination',
      argv.destination,
      '--token',
      added.token,
      '--ca-pin',
      caPin,
    ];
    const command = startArgs.map(shellQuote).join(' ');
    const botYaml = botYamlFor({ proxy, destination: argv.destination, token: added.token, caPin });
    if (argv.format === 'json') {
      printJson({
        bot: added.record.name,
        user: `bot-${added.record.name}`,
        roles: added.record.roles,
        token: added.token,
        token_expires: added.tokenExpiresAt.toISOString(),
        ca_pin: caPin,
        proxy,
        start_command: command,
        bot_yaml: botYaml,
      });
      return;
    }
    print(
      [
        `Registered bot "${added.record.name}" (user bot-${added.record.name}, roles ${added.record.roles.join(', ')}).`,
        `Its join token works once, until ${added.tokenExpiresAt.toISOString()} (${formatDuration(tokenTtlMs)}); it is not shown again.`,
        '',
        `  token:   ${added.token}`,
        `  CA pin:  ${caPin}`,
        '',
        'On the machine, run:',
        '',
        `  ${command}`,
        '',
        "or, the same as a bot.yaml for `mcp-access bot start --config bot.yaml` (tbot's v2 shape, docs/bot.md):",
        '',
        ...botYaml
          .trimEnd()
          .split('\n')
          .map((l) => `  ${l}`),
        '',
        `It writes ${argv.destination}/identity and keeps it renewed; point \`mcp-access connect -i\` at that file.`,
      ].join('\n'),
    );
  },
};

/** The bot.yaml equivalent of the printed `bot start` command (the token inline: keep the file 0600). */
function botYamlFor(o: { proxy: string; destination: string; token: string; caPin: string }): string {
  return [
    'version: v2',
    `proxy_server: ${o.proxy}`,
    'onboarding:',
    '  join_method: token',
    `  token: ${o.token}`,
    `  ca_pins: [${o.caPin}]`,
    'services:',
    '- type: identity',
    '  destination:',
    '    type: directory',
    `    path: ${o.destination}`,
    '',
  ].join('\n');
}

const lsCommand: CommandModule<object, LsArgs> = {
  command: 'ls',
  describe: 'List registered bots',
  builder: (y) =>
    formatOption(configOption(y)).example('$0 bot ls --config proxy.yaml', 'Name, roles, status, generation, expiry'),
  handler: async (argv) => {
    const { openBotState, listBots } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson, table } = await import('../output.js');
    const { store } = await openBotState(argv.config);
    const bots = await listBots(store);
    if (argv.format === 'json') {
      printJson({ bots });
      return;
    }
    if (bots.length === 0) {
      print('No bots registered. Add one with: mcp-access bot add NAME --roles ROLE --config CONFIG');
      return;
    }
    print(
      table(
        ['NAME', 'ROLES', 'STATUS', 'GENERATION', 'CERT EXPIRES', 'NOTE'],
        bots.map((b) => [
          b.name,
          b.roles.join(','),
          b.status,
          String(b.generation),
          b.certNotAfter ?? '-',
          b.lock
            ? `locked ${b.lock.at}: ${b.lock.reason}`
            : b.tokenExpiresAt
              ? `token expires ${b.tokenExpiresAt}`
              : '',
        ]),
      ),
    );
  },
};

const rmCommand: CommandModule<object, NameArgs> = {
  command: 'rm <name>',
  describe: 'Remove a bot: its renewals are refused and its live sessions end',
  builder: (y) =>
    formatOption(configOption(y))
      .positional('name', { type: 'string', demandOption: true })
      .example('$0 bot rm ci-agent --config proxy.yaml', 'Forget ci-agent (re-adding the name later gets a new token)'),
  handler: async (argv) => {
    const { openBotState, removeBot } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const { store } = await openBotState(argv.config);
    const r = await removeBot(store, String(argv.name));
    if (argv.format === 'json') printJson({ bot: r.name, removed: r.removedAt });
    else
      print(
        `Removed bot "${r.name}". A running proxy ends its sessions within a few seconds; its certificates are refused from now on.`,
      );
  },
};

interface UpdateArgs extends NameArgs {
  'add-roles': string[];
  'remove-roles': string[];
}

const splitRoles = (v: string[]) =>
  v
    .flatMap((r) => String(r).split(','))
    .map((r) => r.trim())
    .filter((r) => r !== '');

const updateCommand: CommandModule<object, UpdateArgs> = {
  command: 'update <name>',
  describe: "Change a bot's roles (its next renewal carries them)",
  builder: (y) =>
    formatOption(configOption(y))
      .positional('name', { type: 'string', demandOption: true })
      .option('add-roles', { type: 'string', array: true, default: [], describe: 'Roles to add, comma-separated' })
      .option('remove-roles', {
        type: 'string',
        array: true,
        default: [],
        describe: 'Roles to remove, comma-separated',
      })
      .example(
        '$0 bot update ci-agent --add-roles example-role --config proxy.yaml',
        'As tctl bots update --add-roles',
      ),
  handler: async (argv) => {
    const { openBotState, updateBotRoles } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const add = splitRoles(argv['add-roles']);
    const remove = splitRoles(argv['remove-roles']);
    const { config, store, backend } = await openBotState(argv.config);
    await checkBotRoles(config, add, backend);
    const { record, before } = await updateBotRoles(store, String(argv.name), { add, remove });
    if (argv.format === 'json') printJson({ bot: record.name, roles: record.roles, previous_roles: before });
    else
      print(
        `Bot "${record.name}" now has roles ${record.roles.join(', ')} (before: ${before.join(', ')}); its next renewal carries them.`,
      );
  },
};

const lockCommand: CommandModule<object, LockArgs> = {
  command: 'lock <name>',
  describe: 'Lock a bot: renewals and new sessions are refused, live sessions end within seconds',
  builder: (y) =>
    formatOption(configOption(y))
      .positional('name', { type: 'string', demandOption: true })
      .option('reason', { type: 'string', describe: 'Why (recorded in the state and the audit log)' })
      .example('$0 bot lock ci-agent --config proxy.yaml --reason "host compromised"', 'Cut ci-agent off now'),
  handler: async (argv) => {
    const { openBotState, lockBot } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const { store } = await openBotState(argv.config);
    const { record, already } = await lockBot(store, String(argv.name), argv.reason ?? 'locked by an operator');
    if (argv.format === 'json') printJson({ bot: record.name, lock: record.lock, already_locked: already });
    else if (already)
      print(`Bot "${record.name}" was already locked (since ${record.lock!.at}: ${record.lock!.reason}).`);
    else
      print(
        `Locked bot "${record.name}". A running proxy ends its sessions within a few seconds and refuses its renewals.`,
      );
  },
};

const unlockCommand: CommandModule<object, NameArgs> = {
  command: 'unlock <name>',
  describe: 'Lift a lock: the bot may renew and connect again (if its certificate has not expired)',
  builder: (y) =>
    formatOption(configOption(y))
      .positional('name', { type: 'string', demandOption: true })
      .example('$0 bot unlock ci-agent --config proxy.yaml', 'Let it renew and connect again'),
  handler: async (argv) => {
    const { openBotState, unlockBot } = await import('../../proxy/enrolment/admin.js');
    const { print, printJson } = await import('../output.js');
    const { store } = await openBotState(argv.config);
    const { record, was } = await unlockBot(store, String(argv.name));
    if (argv.format === 'json') printJson({ bot: record.name, unlocked: was !== undefined, was_locked: was ?? null });
    else if (!was) print(`Bot "${record.name}" was not locked.`);
    else {
      const copied =
        was.by === 'proxy'
          ? '\nIt had been locked because its credential was used from two places: prefer `bot rm` and `bot add` (a new token) unless you know which copy is gone.'
          : '';
      print(`Unlocked bot "${record.name}" (it was locked since ${was.at}: ${was.reason}).${copied}`);
    }
  },
};

const startCommand: CommandModule<object, StartArgs> = {
  command: 'start',
  describe: 'Run the bot on a machine: join once with a token, then keep DIR/identity renewed',
  builder: (y) =>
    y
      .option('config', {
        alias: 'c',
        type: 'string',
        describe: "A bot configuration file (tbot's v2 format, docs/bot.md); flags override it",
      })
      .option('proxy', { type: 'string', describe: 'Proxy host:port (a name or address in its certificate)' })
      .option('destination', {
        alias: 'd',
        type: 'string',
        describe: 'Directory for the identity file and renewal state (created 0700)',
      })
      .option('token', { type: 'string', describe: 'One-time join token from `bot add` (first run only)' })
      .option('token-file', {
        type: 'string',
        describe: 'Read the join token from this file instead (keeps it out of the process list)',
      })
      .option('ca-pin', {
        type: 'string',
        describe: "sha256:HEX of the cluster CA's public key, from `bot add` (needed for the first join)",
      })
      .option('ttl', { type: 'string', describe: 'Lifetime of each certificate (5s to 30d; default 1h)' })
      .option('renewal-interval', {
        type: 'string',
        describe: 'Renew this often (default 20m; never later than half the remaining lifetime)',
      })
      .option('oneshot', { type: 'boolean', describe: 'Join or renew once and exit (cron, CI jobs, init containers)' })
      .conflicts('token', 'token-file')
      .example('$0 bot start --config /etc/mcp-access/bot.yaml', 'Everything from the configuration file')
      .example(
        '$0 bot start --proxy mcp.example.com:3080 --destination /var/lib/mcp-access/bot --token-file /run/secrets/join-token --ca-pin sha256:…',
        'First run: join, then renew',
      )
      .example(
        '$0 bot start --proxy mcp.example.com:3080 --destination /var/lib/mcp-access/bot',
        'Later runs: renew with the stored identity',
      )
      .example('$0 bot start --config bot.yaml --oneshot', 'Renew once and exit'),
  handler: async (argv) => {
    const { AccessError } = await import('../../errors.js');
    const { parseDuration } = await import('../../util/duration.js');
    const { parseIdentityTtl } = await import('../../identity/ttl.js');
    const { Logger } = await import('../../util/log.js');
    const { parseProxyAddress } = await import('../../tunnel/proxy-address.js');
    const { cleanToken } = await import('../../tunnel/enrolment.js');
    const { runBot, normalisePin } = await import('../../bot/agent.js');
    const { readFile } = await import('node:fs/promises');
    let file: import('../../bot/config-file.js').BotFileConfig = { services: [] };
    if (argv.config !== undefined) {
      const { parseBotConfig } = await import('../../bot/config-file.js');
      let text: string;
      try {
        text = await readFile(argv.config, 'utf8');
      } catch (err) {
        throw new AccessError(
          'BOT_CONFIG_INVALID',
          `--config ${argv.config} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
      file = parseBotConfig(text, argv.config);
    }
    // Flags override the file, key by key.
    const proxyText = argv.proxy ?? file.proxy;
    if (proxyText === undefined)
      throw new AccessError('USAGE', 'no proxy to join: pass --proxy HOST:PORT or set proxy_server in --config');
    const proxy = parseProxyAddress(
      proxyText,
      'use the address `mcp-access bot add` printed, e.g. --proxy mcp.example.com:3080',
    );
    let storage: string;
    let outputs: string[];
    if (argv.destination !== undefined) {
      storage = argv.destination;
      outputs = [];
    } else {
      const dirs = file.services.map((sv) => sv.path);
      if (dirs.length === 0 && !file.storage) {
        throw new AccessError(
          'USAGE',
          'no destination: pass --destination DIR, or list a service of type identity in --config',
        );
      }
      storage = file.storage ?? dirs[0]!;
      outputs = dirs.filter((d) => d !== storage);
    }
    const ttlMs = parseIdentityTtl(argv.ttl ?? file.ttl ?? '1h');
    const intervalText = argv['renewal-interval'] ?? file.renewalInterval ?? '20m';
    const renewalIntervalMs = parseDuration(intervalText, '--renewal-interval');
    if (renewalIntervalMs < 1000)
      throw new AccessError('USAGE', `--renewal-interval ${intervalText} is too short (at least 1s)`);
    let token: string | undefined;
    const tokenFile =
      argv['token-file'] ??
      (argv.token === undefined && file.token && 'file' in file.token ? file.token.file : undefined);
    const tokenText =
      argv.token ??
      (argv['token-file'] === undefined && file.token && 'value' in file.token ? file.token.value : undefined);
    if (tokenText !== undefined || tokenFile !== undefined) {
      let text = tokenText;
      if (tokenFile !== undefined) {
        try {
          text = await readFile(tokenFile, 'utf8');
        } catch (err) {
          throw new AccessError(
            'USAGE',
            `the token file ${tokenFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          );
        }
      }
      token = cleanToken(String(text ?? ''));
      if (!token)
        throw new AccessError(
          'BOT_TOKEN_INVALID',
          `the join token${tokenFile ? ` in ${tokenFile}` : ''} is malformed`,
          { hint: 'copy it exactly as `mcp-access bot add` printed it' },
        );
    }
    const caPins = argv['ca-pin'] !== undefined ? [normalisePin(argv['ca-pin'])] : file.caPins;
    const oneshot = argv.oneshot ?? file.oneshot ?? false;
    const log = new Logger({ name: 'mcp-access bot', level: argv.debug ? 'debug' : 'info', timestamps: true });
    const stop = new AbortController();
    const onSignal = (sig: string) => {
      log.info(`${sig}: stopping`);
      stop.abort();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    await runBot({
      proxy,
      destination: storage,
      outputs,
      token,
      caPins,
      ttlMs,
      renewalIntervalMs,
      oneshot,
      log,
      signal: stop.signal,
    });
  },
};

export const botCommand: CommandModule = {
  command: 'bot',
  describe: 'Machine identities: register bots (operator) and run the renewing bot (machine)',
  builder: (y) =>
    y
      .command(addCommand as unknown as CommandModule)
      .command(lsCommand as unknown as CommandModule)
      .command(rmCommand as unknown as CommandModule)
      .command(updateCommand as unknown as CommandModule)
      .command(lockCommand as unknown as CommandModule)
      .command(unlockCommand as unknown as CommandModule)
      .command(startCommand as unknown as CommandModule)
      .demandCommand(1, 'name a bot command: add, ls, rm, update, lock, unlock or start')
      .example('$0 bot add ci-agent --roles mcp-reader --config proxy.yaml', 'Operator: register a bot')
      .example(
        '$0 bot start --proxy mcp.example.com:3080 -d /var/lib/mcp-access/bot --token-file t --ca-pin sha256:…',
        'Machine: join and keep renewing',
      ),
  handler: () => {},
};
