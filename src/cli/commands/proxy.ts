import type { CommandModule } from 'yargs';

export const proxyCommand: CommandModule = {
  command: 'proxy <action>',
  describe: 'Run the mcp-access proxy',
  builder: (y) =>
    y
      .positional('action', {
        choices: ['start'] as const,
        describe: 'start: serve until SIGTERM/SIGINT; SIGHUP reloads',
      })
      .option('config', { alias: 'c', type: 'string', demandOption: true, describe: 'Proxy configuration (YAML)' })
      .option('log-level', {
        choices: ['debug', 'info', 'warn', 'error'] as const,
        describe: 'Overrides log_level in the config',
      })
      .example('$0 proxy start --config proxy.yaml', 'Serve the servers and roles in proxy.yaml'),
  handler: async (argv) => {
    const { runProxy } = await import('../../proxy/run.js');
    await runProxy(String(argv.config), {
      logLevel: (argv['log-level'] ?? (argv.debug ? 'debug' : undefined)) as 'debug' | undefined,
    });
  },
};
