import { defineCommand } from './define.js';

interface AgentStartArgs {
  config: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  debug?: boolean;
}

/** `mcp-access agent start`: run an agent next to its MCP servers, dialling out to the proxy. */
export const agentStartCommand = defineCommand<AgentStartArgs>({
  command: 'start',
  describe: 'Run an agent next to its MCP servers: it dials out to the proxy and holds their sessions',
  builder: (y) =>
    y
      .option('config', { alias: 'c', type: 'string', demandOption: true, describe: 'Agent configuration (YAML)' })
      .option('log-level', {
        choices: ['debug', 'info', 'warn', 'error'] as const,
        describe: 'Overrides log_level in the config',
      })
      .example('$0 agent start --config agent.yaml', 'Enroll the servers in agent.yaml with the proxy it names'),
  handler: async (argv) => {
    const { runAgent } = await import('../../agent/run.js');
    await runAgent(argv.config, { logLevel: argv.logLevel ?? (argv.debug ? 'debug' : undefined) });
  },
});
