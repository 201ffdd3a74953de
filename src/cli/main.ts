/**
 * The `mcp-access` entry point. `connect` (started once per tool call by some
 * MCP clients) takes a fast path that loads neither yargs nor any other
 * command; everything else goes through the yargs CLI (cli.ts).
 */
import { describeError, EXIT, isAccessError } from '../errors.js';

// tsh's shape (`tsh mcp connect …`): `mcp-access mcp connect|ls|config …` is
// `mcp-access connect|ls|config …`, so connect keeps its fast path.
const given = process.argv.slice(2);
const argv = given[0] === 'mcp' && ['connect', 'ls', 'config'].includes(given[1] ?? '') ? given.slice(1) : given;
const debug = argv.includes('--debug');

async function main(): Promise<void> {
  if (argv[0] === 'connect') {
    const { parseConnectArgs, connectMain } = await import('./fast-connect.js');
    const parsed = parseConnectArgs(argv.slice(1));
    if (parsed) return connectMain(parsed);
  }
  const { runCli } = await import('./cli.js');
  await runCli(argv);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`mcp-access: ${describeError(err)}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exitCode = isAccessError(err) ? err.exitCode : EXIT.INTERNAL;
}
