/**
 * `mcp-access connect` without yargs. MCP clients such as LangGraph's adapter
 * start the bridge once per tool call, so its start-up is on every call's
 * path: this parses connect's options (the same table yargs uses) with
 * node:util and loads only the bridge. `connect --help` still goes to yargs.
 */
import { parseArgs } from 'node:util';
import { AccessError } from '../errors.js';
import { CONNECT_OPTIONS } from './commands/connect-options.js';
import { identityAndProxy } from './commands/client-options.js';

/** argv after `connect`; undefined when the fast path does not apply (help, unusual syntax). */
export function parseConnectArgs(args: string[]): Record<string, unknown> | undefined {
  if (args.some((a) => a === '--help' || a === '-h' || a === '--version')) return undefined;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    debug: { type: 'boolean' },
  };
  for (const [name, o] of Object.entries(CONNECT_OPTIONS)) {
    options[name] = {
      type: o.type === 'boolean' ? 'boolean' : 'string',
      ...(o.alias?.length === 1 ? { short: o.alias } : {}),
      ...(o.array ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch {
    return undefined; // let yargs produce its usual message
  }
  if (parsed.positionals.length !== 1) return undefined;
  const out: Record<string, unknown> = { server: parsed.positionals[0] };
  for (const [name, o] of Object.entries(CONNECT_OPTIONS)) {
    const v = (parsed.values as Record<string, unknown>)[name];
    out[name] = v === undefined ? o.default : o.type === 'number' ? Number(v) : v;
  }
  out.debug = parsed.values.debug === true;
  return out;
}

/** Runs connect with parsed options; sets process.exitCode. */
export async function connectMain(argv: Record<string, unknown>): Promise<void> {
  const { identityPath, proxyText } = identityAndProxy(argv);
  const retries = Number(argv['connect-retries']);
  if (!Number.isInteger(retries) || retries < 0)
    throw new AccessError(
      'USAGE',
      `--connect-retries must be a whole number, not "${String(argv['connect-retries'])}"`,
    );
  const { runConnect } = await import('../bridge/run.js');
  process.exitCode = await runConnect({
    server: String(argv.server),
    identityPath,
    proxy: proxyText,
    caFiles: (argv['ca-file'] as string[] | undefined) ?? [],
    maxMessageSize: String(argv['max-message-size']),
    logFile: argv['log-file'] as string | undefined,
    keepalive: String(argv.keepalive),
    connectRetries: retries,
    debug: Boolean(argv.debug),
    input: process.stdin,
    output: process.stdout,
  });
}
