import type { CommandModule } from 'yargs';
import { CONNECT_EXAMPLE, CONNECT_OPTIONS } from './connect-options.js';

export const connectCommand: CommandModule = {
  command: 'connect <server>',
  describe: 'Stdio bridge: speak MCP on stdin/stdout, reach <server> through the proxy',
  builder: (y) => {
    let b = y.positional('server', { type: 'string', describe: 'MCP server name as enrolled on the proxy' });
    for (const [name, o] of Object.entries(CONNECT_OPTIONS)) {
      b = b.option(name, { type: o.type, alias: o.alias, array: o.array, default: o.default, describe: o.describe });
    }
    return b.example(CONNECT_EXAMPLE, 'What an MCP client runs (flags may also follow the name)');
  },
  handler: async (argv) => {
    const { connectMain } = await import('../fast-connect.js');
    await connectMain({ ...argv, server: argv.server });
  },
};
