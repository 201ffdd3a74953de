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
      .option('client', { choices: ['claude', 'cursor', 'vscode', 'claude-code', 'langgraph'] as const, default: 'claude' as const, describe: 'Which MCP client' })
      .option('write', { type: 'string', describe: "Merge into the client's config file (default location, or PATH); keeps a backup" })
      .example('$0 config files -i ~/machine-id/identity --proxy proxy.example.com:443', 'claude_desktop_config.json entry for "files"')
      .example('$0 config --all --client cursor --write -i ID --proxy HOST:443', 'Add every reachable server to ~/.cursor/mcp.json'),
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
      if (servers.length === 0) throw new AccessError('ACCESS_DENIED', `no MCP server is reachable with ${identityPath}`);
    } else {
      servers = [String(argv.server)];
      // Offline by design (no proxy needed), but say so when the file cannot work.
      try {
        const { loadIdentity } = await import('../../identity/load.js');
        await loadIdentity(identityPath, { retries: 0, warn: () => {} });
      } catch (err) {
        const { describeError } = await import('../../errors.js');
        process.stderr.write(`mcp-access: warning: ${describeError(err)}; the configuration below will not work until it does\n`);
      }
    }
    const launches = new Map(servers.map((s) => [s, cfg.connectLaunch(s, identityPath, proxyText)]));
    const client = argv.client as import('../../client/client-config.js').ClientKind;
    if (client === 'langgraph') {
      if (argv.write !== undefined) throw new AccessError('USAGE', 'a LangGraph configuration lives in code, not in a file', { hint: 'print it without --write and paste it' });
      return print(cfg.langgraphSnippet(launches));
    }
    const obj = cfg.configObject(client, launches);
    if (argv.write === undefined) return print(JSON.stringify(obj, null, 2));
    const path = argv.write === '' ? cfg.defaultConfigPath(client) : (argv.write as string);
    const { backup } = await cfg.mergeIntoConfigFile(path, obj);
    print(`Wrote ${servers.map(cfg.entryName).join(', ')} to ${path}${backup ? ` (previous file kept as ${backup})` : ''}`);
  },
};
