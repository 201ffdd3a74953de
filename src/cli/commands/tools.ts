/** `mcp-access tools diff|approve`: review and approve changed tool definitions (tool_pinning, docs/rbac.md). */
import type { CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface ToolsArgs {
  config: string;
  server: string;
  tool?: string;
  format: 'text' | 'json';
}

async function open(argv: { config: string; server: string }) {
  const { AccessError } = await import('../../errors.js');
  const { loadProxyConfig } = await import('../../proxy/config.js');
  const { JsonFilePinStore } = await import('../../agent/pins.js');
  const config = await loadProxyConfig(argv.config);
  const server = config.servers.find((s) => s.name === argv.server);
  if (!server)
    throw new AccessError(
      'UNKNOWN_SERVER',
      `server "${argv.server}" is not in ${argv.config} (servers: ${config.servers.map((s) => s.name).join(', ') || 'none'})`,
      { hint: 'pass one of the configured server names' },
    );
  if (server.toolPinning === 'off')
    process.stderr.write(
      `mcp-access: warning: server "${server.name}" has tool_pinning off, so its pins are not enforced (set tool_pinning: auto or approve)\n`,
    );
  return { store: new JsonFilePinStore(config.toolPins), server };
}

const configOption = {
  alias: 'c',
  type: 'string',
  demandOption: true,
  describe: 'The proxy configuration file (its tool_pins file)',
} as const;

const diffCommand = defineCommand<ToolsArgs>({
  command: 'diff <server>',
  describe: 'Show the tool definitions of a server that wait for approval, and what changed',
  builder: (y) =>
    y
      .positional('server', { type: 'string', demandOption: true, describe: 'A server name from the configuration' })
      .option('config', configOption)
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Output format' })
      .example('$0 tools diff everything -c proxy.yaml', 'What changed since the tools were approved?'),
  handler: async (argv) => {
    const { pendingChanges } = await import('../../agent/pin-review.js');
    const { print, printJson } = await import('../output.js');
    const { store, server } = await open(argv);
    const changes = pendingChanges(await store.get(server.name));
    if (argv.format === 'json') return printJson({ server: server.name, pending: changes });
    if (changes.length === 0) return print(`No tool of ${server.name} is waiting for approval.`);
    const lines: string[] = [];
    for (const c of changes) {
      lines.push(
        c.status === 'new'
          ? `tool ${c.tool}: NEW (never approved; first seen ${c.firstSeen}; ${c.digest})`
          : `tool ${c.tool}: CHANGED (first seen ${c.firstSeen}; approved ${c.pinnedDigest} → now ${c.digest})`,
        ...c.diff.map((l) => `  ${l}`),
        '',
      );
    }
    lines.push(`Approve with: mcp-access tools approve ${server.name} [TOOL] -c ${argv.config}`);
    print(lines.join('\n'));
  },
});

const approveCommand = defineCommand<ToolsArgs>({
  command: 'approve <server> [tool]',
  describe: 'Approve the pending definition of one tool of a server (or of all its pending tools)',
  builder: (y) =>
    y
      .positional('server', { type: 'string', demandOption: true, describe: 'A server name from the configuration' })
      .positional('tool', { type: 'string', describe: 'The tool to approve; all pending tools when left out' })
      .option('config', configOption)
      .example('$0 tools approve everything echo -c proxy.yaml', "Approve echo's new definition"),
  handler: async (argv) => {
    const { userInfo } = await import('node:os');
    const { approvePending } = await import('../../agent/pin-review.js');
    const { print } = await import('../output.js');
    const { store, server } = await open(argv);
    const approved = await approvePending(store, server.name, userInfo().username, argv.tool);
    print(
      approved.length
        ? `Approved on ${server.name}: ${approved.join(', ')}. Clients see them when they list tools again.`
        : `No tool of ${server.name} is waiting for approval.`,
    );
  },
});

export const toolsCommand: CommandModule = {
  command: 'tools',
  describe: 'Review and approve pinned tool definitions (see docs/rbac.md)',
  builder: (y) =>
    y.command(diffCommand).command(approveCommand).demandCommand(1, 'name a tools command: diff, approve'),
  handler: () => {},
};
