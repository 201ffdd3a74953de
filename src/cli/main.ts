/**
 * The `mcp-access` command line. Thin: every command module parses its
 * options and lazily imports the code that does the work, so `connect`
 * (started once per tool call by some MCP clients) loads only what it needs.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { AccessError, EXIT, describeError, isAccessError } from '../errors.js';
import { VERSION } from '../version.js';
import { commands } from './commands/index.js';

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  const cli = yargs(argv)
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
    });
  try {
    await cli.parseAsync();
  } catch (err) {
    report(err, debug);
  }
}

function report(err: unknown, debug: boolean): void {
  process.stderr.write(`mcp-access: ${describeError(err)}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exitCode = isAccessError(err) ? err.exitCode : EXIT.INTERNAL;
}

await main(hideBin(process.argv));
