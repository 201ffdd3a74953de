import type { CommandModule } from 'yargs';
import { caCommand } from './ca.js';
import { identityCommand } from './identity.js';
import { proxyCommand } from './proxy.js';
import { connectCommand } from './connect.js';
import { lsCommand } from './ls.js';
import { configCommand } from './config.js';
import { policyCommand } from './policy.js';
import { toolsCommand } from './tools.js';
import { auditCommand } from './audit.js';
import { botCommand } from './bot.js';
import { buildAgentCommand } from './agent.js';
import { roleCommand } from './role.js';
import { demoCommand } from './demo.js';
import { mcpCommand } from './mcp.js';
import { agentStartCommand } from './agent-start.js';

export const commands: CommandModule[] = [
  connectCommand,
  lsCommand,
  configCommand,
  caCommand,
  identityCommand,
  proxyCommand,
  policyCommand,
  toolsCommand,
  auditCommand,
  botCommand,
  roleCommand,
  buildAgentCommand([agentStartCommand]),
  demoCommand,
  mcpCommand,
];
