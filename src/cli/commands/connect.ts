import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const connectCommand: CommandModule = {
  command: 'connect <server>',
  describe: 'Stdio bridge: speak MCP on stdin/stdout, reach <server> through the proxy',
  builder: (y) =>
    y
      .positional('server', { type: 'string', describe: 'MCP server name as enrolled on the proxy' })
      .option('identity', { alias: 'i', type: 'string', describe: 'Identity file (default: $MCP_ACCESS_IDENTITY)' })
      .option('proxy', { type: 'string', describe: 'Proxy host:port (default: $MCP_ACCESS_PROXY)' })
      .option('ca-file', { type: 'string', array: true, describe: "Extra CA certificate(s) for the proxy's certificate" })
      .option('max-message-size', { type: 'string', default: '64MiB', describe: 'Largest JSON-RPC message accepted either way' })
      .option('log-file', { type: 'string', describe: 'Also append logs to this file' })
      .option('keepalive', { type: 'string', default: '15s', describe: 'Tunnel keepalive interval (dead peer after two missed)' })
      .option('connect-retries', { type: 'number', default: 5, describe: 'Retries with backoff before "proxy unreachable"' })
      .example('$0 connect -i ~/machine-id/identity --proxy proxy.example.com:443 my-mcp-server', 'What an MCP client runs (flags may also follow the name)'),
  handler: async (argv) => {
    const identityPath = (argv.identity as string | undefined) ?? process.env.MCP_ACCESS_IDENTITY;
    const proxyText = (argv.proxy as string | undefined) ?? process.env.MCP_ACCESS_PROXY;
    if (!identityPath) throw new AccessError('USAGE', 'no identity file given', { hint: 'pass -i FILE or set MCP_ACCESS_IDENTITY' });
    if (!proxyText) throw new AccessError('USAGE', 'no proxy address given', { hint: 'pass --proxy HOST:PORT or set MCP_ACCESS_PROXY' });
    const { runConnect } = await import('../../bridge/run.js');
    process.exitCode = await runConnect({
      server: String(argv.server),
      identityPath,
      proxy: proxyText,
      caFiles: (argv['ca-file'] as string[] | undefined) ?? [],
      maxMessageSize: String(argv['max-message-size']),
      logFile: argv['log-file'] as string | undefined,
      keepalive: String(argv.keepalive),
      connectRetries: Number(argv['connect-retries']),
      debug: Boolean(argv.debug),
      input: process.stdin,
      output: process.stdout,
    });
  },
};
