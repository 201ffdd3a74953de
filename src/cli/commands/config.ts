import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';
import { print } from '../output.js';
import { clientOptions, identityAndProxy } from './client-options.js';

export const configCommand: CommandModule = {
  command: 'config [server]',
  describe: 'Print (or --write) the MCP client configuration that runs `connect` for a server',
  builder: (y) =>
    clientOptions(y)
      .positional('server', { type: 'string', describe: 'Server name (or --all)' })
      .option('all', { type: 'boolean', describe: 'Every server this identity can reach (asks the proxy)' })
      .option('client', {
        choices: ['claude', 'cursor', 'vscode', 'claude-code', 'langgraph'] as const,
        default: 'claude' as const,
        describe: 'Which MCP client',
      })
      .option('check', {
        type: 'boolean',
        default: true,
        describe: 'Ask the proxy that the server exists and is reachable (--no-check: offline)',
      })
      .option('write', {
        type: 'string',
        describe: "Merge into the client's config file (default location, or PATH); keeps a backup",
      })
      .example(
        '$0 config files -i ~/machine-id/identity --proxy proxy.example.com:443',
        'claude_desktop_config.json entry for "files"',
      )
      .example(
        '$0 config --all --client cursor --write -i ID --proxy HOST:443',
        'Add every reachable server to ~/.cursor/mcp.json',
      ),
  handler: async (argv) => {
    const { identityPath, proxyText } = identityAndProxy(argv);
    if (!argv.server && !argv.all) throw new AccessError('USAGE', 'name a server or pass --all');
    const cfg = await import('../../client/client-config.js');
    let servers: string[];
    if (argv.all) {
      const { resolveClient } = await import('./client-options.js');
      const { identity, proxy, extraCa } = await resolveClient(argv);
      const { listServers } = await import('../../client/proxy-api.js');
      servers = (await listServers(proxy, identity, extraCa)).servers.map((s) => s.name);
      if (servers.length === 0)
        throw new AccessError('ACCESS_DENIED', `no MCP server is reachable with ${identityPath}`);
    } else {
      servers = [String(argv.server)];
      if (argv.check !== false) await checkServer(argv, servers[0]!);
    }
    const launches = new Map(servers.map((s) => [s, cfg.connectLaunch(s, identityPath, proxyText)]));
    const client = argv.client as import('../../client/client-config.js').ClientKind;
    if (client === 'langgraph') {
      if (argv.write !== undefined)
        throw new AccessError('USAGE', 'a LangGraph configuration lives in code, not in a file', {
          hint: 'print it without --write and paste it',
        });
      return print(cfg.langgraphSnippet(launches));
    }
    const obj = cfg.configObject(client, launches);
    if (argv.write === undefined) return print(JSON.stringify(obj, null, 2));
    const path = argv.write === '' ? cfg.defaultConfigPath(client) : (argv.write as string);
    const { backup } = await cfg.mergeIntoConfigFile(path, obj);
    print(
      `Wrote ${servers.map(cfg.entryName).join(', ')} to ${path}${backup ? ` (previous file kept as ${backup})` : ''}`,
    );
  },
};

/**
 * A named server is checked against the proxy before an entry is printed or
 * written: a typo is refused. When the proxy cannot be asked, the entry is
 * printed with a warning saying it was not checked.
 */
async function checkServer(argv: Record<string, unknown>, server: string): Promise<void> {
  const { describeError } = await import('../../errors.js');
  let reachable: string[];
  let where: string;
  try {
    const { resolveClient } = await import('./client-options.js');
    const { identity, proxy, proxyText, extraCa } = await resolveClient(argv);
    const { listServers } = await import('../../client/proxy-api.js');
    where = proxyText;
    reachable = (await listServers(proxy, identity, extraCa)).servers.map((s) => s.name);
  } catch (err) {
    const identityProblem = (err as { code?: string }).code?.startsWith('IDENTITY');
    process.stderr.write(
      identityProblem
        ? `mcp-access: warning: ${describeError(err)}; the configuration below will not work until it does\n`
        : `mcp-access: warning: could not ask the proxy whether "${server}" exists, so the configuration below is unchecked: ${describeError(err)}\n`,
    );
    return;
  }
  if (reachable.includes(server)) return;
  throw new AccessError(
    'UNKNOWN_SERVER',
    `no MCP server named "${server}" is reachable with this identity on the proxy at ${where} (it reaches: ${reachable.join(', ') || 'none'})`,
    {
      hint: 'check the name with `mcp-access ls`; --no-check prints the entry without asking the proxy',
    },
  );
}
