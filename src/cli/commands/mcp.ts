/**
 * `mcp-access mcp connect|ls|config`: tsh's argument shape, so the seed's
 * Claude Desktop and LangGraph snippets work with `"command": "mcp-access"`.
 * main.ts maps `mcp X …` to `X …` before anything else runs (connect keeps
 * its fast path); this module only gives `mcp-access mcp --help` its text.
 */
import type { CommandModule } from 'yargs';
import { configCommand } from './config.js';
import { connectCommand } from './connect.js';
import { lsCommand } from './ls.js';

export const mcpCommand: CommandModule = {
  command: 'mcp',
  describe: "tsh's shape: `mcp connect`, `mcp ls`, `mcp config` are connect, ls and config",
  builder: (y) =>
    y
      .command(connectCommand)
      .command(lsCommand)
      .command(configCommand)
      .demandCommand(1, 'name an mcp command: connect, ls or config')
      .example(
        '$0 mcp connect -i /opt/machine-id/identity --proxy mcp.example.com:3080 my-mcp-server',
        'The same as `mcp-access connect …`',
      ),
  handler: () => {},
};
