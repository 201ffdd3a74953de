import { defineCommand } from './define.js';

interface AgentStartArgs {
  config: string;
  proxy?: string;
  dataDir?: string;
  token?: string;
  caPin?: string;
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
      .option('proxy', { type: 'string', describe: 'The proxy (host:port); overrides proxy in the config' })
      .option('data-dir', {
        type: 'string',
        describe: 'Where the agent keeps the certificate it joined with; overrides data_dir (and identity)',
      })
      .option('token', { type: 'string', describe: 'One-time join token from `mcp-access agent add` (first start)' })
      .option('ca-pin', { type: 'string', describe: "The cluster CA's pin printed by `agent add` (first start)" })
      .option('log-level', {
        choices: ['debug', 'info', 'warn', 'error'] as const,
        describe: 'Overrides log_level in the config',
      })
      .example('$0 agent start --config agent.yaml', 'Enroll the servers in agent.yaml with the proxy it names')
      .example(
        '$0 agent start --config agent.yaml --data-dir /var/lib/mcp-access-agent --token mcpag_… --ca-pin sha256:…',
        'First start: join with the token `agent add` printed',
      ),
  handler: async (argv) => {
    const { runAgent } = await import('../../agent/run.js');
    await runAgent(argv.config, {
      logLevel: argv.logLevel ?? (argv.debug ? 'debug' : undefined),
      ...(argv.proxy ? { proxy: argv.proxy } : {}),
      ...(argv.dataDir ? { dataDir: argv.dataDir } : {}),
      ...(argv.token ? { token: argv.token } : {}),
      ...(argv.caPin ? { caPin: argv.caPin } : {}),
    });
  },
});
