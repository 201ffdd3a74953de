/**
 * The yargs command line. Thin: every command module parses its options and
 * lazily imports the code that does the work.
 */
import yargs from 'yargs';
import { AccessError } from '../errors.js';
import { VERSION } from '../version.js';
import { commands } from './commands/index.js';

export async function runCli(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('mcp-access')
    .usage('$0 <command> [options]\n\nShort-lived, role-checked, audited access to MCP servers.')
    .version(VERSION)
    .option('debug', { type: 'boolean', describe: 'Verbose logs and stack traces on stderr', global: true })
    .command(commands)
    .demandCommand(1, 'name a command; see the list above')
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stderr.columns || 100))
    .epilogue('Exit codes: 0 ok, 1 internal, 2 usage, 3 identity, 4 proxy unreachable, 5 access denied,\n6 not found, 7 configuration, 8 upstream server, 9 audit, 10 session lost.\nDocs: docs/ in the package, or README.md.')
    .fail((msg, err) => {
      if (err) throw err;
      throw new AccessError('USAGE', msg || 'invalid usage', { hint: 'see --help' });
    })
    .parseAsync();
}
