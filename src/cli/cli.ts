/**
 * The yargs command line. Thin: every command module parses its options and
 * lazily imports the code that does the work.
 */
import yargs from 'yargs';
import { AccessError } from '../errors.js';
import { VERSION } from '../version.js';
import { commands } from './commands/index.js';

const NO_COMMAND = 'name a command';

/** The command words of argv (`bot add`), for messages. */
function commandWords(argv: string[]): string {
  const words: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-') || words.length === 2) break;
    words.push(a);
  }
  return words.join(' ');
}

/** yargs' "Not enough non-option arguments: got 0, need at least 1", said for the command at hand. */
function missingArgument(argv: string[]): AccessError {
  const words = commandWords(argv);
  if (words === 'connect') {
    return new AccessError('USAGE', 'connect needs the name of the MCP server to reach', {
      hint: 'e.g. mcp-access connect -i ID --proxy HOST:PORT files; `mcp-access ls` lists the servers you can reach',
    });
  }
  return new AccessError('USAGE', `${words || 'the command'} is missing an argument`, {
    hint: `see mcp-access ${words ? `${words} ` : ''}--help`,
  });
}

export async function runCli(argv: string[]): Promise<void> {
  const cli = yargs(argv);
  await cli
    .scriptName('mcp-access')
    .usage('$0 <command> [options]\n\nShort-lived, role-checked, audited access to MCP servers.')
    .version(VERSION)
    .option('debug', { type: 'boolean', describe: 'Verbose logs and stack traces on stderr', global: true })
    .command(commands)
    .demandCommand(1, NO_COMMAND)
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stderr.columns || 100))
    .epilogue(
      'Exit codes: 0 ok, 1 internal, 2 usage, 3 identity, 4 proxy unreachable, 5 access denied,\n6 not found, 7 configuration, 8 upstream server, 9 audit, 10 session lost.\nDocs: docs/ in the package, or README.md.',
    )
    .fail((msg, err) => {
      if (err) throw err;
      if (msg === NO_COMMAND) {
        cli.showHelp((s: string) => process.stderr.write(`${s}\n\n`));
        throw new AccessError('USAGE', NO_COMMAND, {
          hint: 'the commands are listed above; mcp-access COMMAND --help shows one',
        });
      }
      if (msg?.startsWith('Not enough non-option arguments')) throw missingArgument(argv);
      throw new AccessError('USAGE', msg || 'invalid usage', { hint: 'see --help' });
    })
    .parseAsync();
}
