import type { CommandModule } from 'yargs';
import { print, printJson, table } from '../output.js';
import { clientOptions, resolveClient } from './client-options.js';

export const lsCommand: CommandModule = {
  command: 'ls',
  describe: 'List the MCP servers this identity can reach, with their allowed tools',
  builder: (y) =>
    clientOptions(y)
      .option('format', {
        choices: ['text', 'json', 'yaml'] as const,
        default: 'text' as const,
        describe: 'Output format',
      })
      .example('$0 ls -i ~/machine-id/identity --proxy proxy.example.com:443', 'Servers, tools and labels you may use'),
  handler: async (argv) => {
    const { identity, proxy, extraCa } = await resolveClient(argv);
    const { listServers } = await import('../../client/proxy-api.js');
    const list = await listServers(proxy, identity, extraCa);
    const { cluster, servers } = list;
    for (const w of list.warnings ?? []) process.stderr.write(`mcp-access: warning: ${w}\n`);
    if (argv.format === 'json') return printJson(list);
    if (argv.format === 'yaml') {
      const { stringify } = await import('yaml');
      return print(stringify(list));
    }
    if (servers.length === 0) {
      const unknown = list.unknownRoles ?? [];
      const why =
        unknown.length === identity.roles.length && unknown.length > 0
          ? ': the proxy defines none of these roles'
          : unknown.length
            ? `: the proxy does not define ${unknown.join(', ')}, and the other roles reach no server`
            : '';
      return print(
        `No MCP servers on cluster ${cluster} are reachable by ${identity.user} (roles: ${identity.roles.join(', ')})${why}.`,
      );
    }
    const rows = servers.map((s) => [
      s.name,
      s.description || '-',
      s.transport,
      s.tools
        ? [s.tools.allow.join(',') || '(none)', s.tools.deny.length ? `except ${s.tools.deny.join(',')}` : '']
            .filter(Boolean)
            .join(' ')
        : '-',
      named(s.resources),
      named(s.prompts),
      Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || '-',
    ]);
    print(table(['NAME', 'DESCRIPTION', 'TYPE', 'ALLOWED TOOLS', 'RESOURCES', 'PROMPTS', 'LABELS'], rows));
    for (const s of servers)
      if (s.problem) print(`warning: ${s.name}: ${s.problem} (ask the proxy's operator to fix the server's command)`);
  },
};

/**
 * `ls`'s RESOURCES / PROMPTS cell: allowed patterns (`*` when a role does not write them and the default is
 * all), `except` the denied.
 */
function named(p: { allow: string[]; deny: string[] } | undefined): string {
  if (!p) return '-';
  return [p.allow.join(',') || '(none)', p.deny.length ? `except ${p.deny.join(',')}` : ''].filter(Boolean).join(' ');
}
