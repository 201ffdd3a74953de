import type { CommandModule } from 'yargs';
import { caCommand } from './ca.js';
import { identityCommand } from './identity.js';
import { proxyCommand } from './proxy.js';
import { connectCommand } from './connect.js';
import { lsCommand } from './ls.js';
import { configCommand } from './config.js';
import { policyCommand } from './policy.js';
import { auditCommand } from './audit.js';
import { botCommand } from './bot.js';
import { demoCommand } from './demo.js';
import { mcpCommand } from './mcp.js';
import { agentStartCommand } from './agent-start.js';
import type { Argv } from 'yargs';

export const commands: CommandModule[] = [
  connectCommand,
  lsCommand,
  configCommand,
  caCommand,
  identityCommand,
  proxyCommand,
  policyCommand,
  auditCommand,
  botCommand,
  demoCommand,
  mcpCommand,
  {
    command: 'agent <command>',
    describe: 'Agents: run one next to MCP servers (start)',
    builder: (y: Argv) => y.command(agentStartCommand).demandCommand(1),
    handler: () => {},
  },
];
