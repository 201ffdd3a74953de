import type { CommandModule } from 'yargs';
import { print, printJson, table } from '../output.js';
import { clientOptions, resolveClient } from './client-options.js';

export const lsCommand: CommandModule = {
  command: 'ls',
  describe: 'List the MCP servers this identity can reach, with their allowed tools',
  builder: (y) =>
    clientOptions(y)
      .option('format', { choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, describe: 'Output format' })
      .example('$0 ls -i ~/machine-id/identity --proxy proxy.example.com:443', 'Servers, tools and labels you may use'),
  handler: async (argv) => {
    const { identity, proxy, extraCa } = await resolveClient(argv);
    const { listServers } = await import('../../client/proxy-api.js');
    const { cluster, servers } = await listServers(proxy, identity, extraCa);
    if (argv.format === 'json') return printJson({ cluster, servers });
    if (argv.format === 'yaml') {
      const { stringify } = await import('yaml');
      return print(stringify({ cluster, servers }));
    }
    if (servers.length === 0) return print(`No MCP servers on cluster ${cluster} are reachable by ${identity.user} (roles: ${identity.roles.join(', ')}).`);
    const rows = servers.map((s) => [
      s.name,
      s.description || '-',
      s.transport,
      s.tools ? [s.tools.allow.join(',') || '(none)', s.tools.deny.length ? `except ${s.tools.deny.join(',')}` : ''].filter(Boolean).join(' ') : '-',
      Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
    ]);
    print(table(['NAME', 'DESCRIPTION', 'TYPE', 'ALLOWED TOOLS', 'LABELS'], rows));
    for (const s of servers) if (s.problem) print(`warning: ${s.name}: ${s.problem} (ask the proxy's operator to fix the server's command)`);
  },
};
