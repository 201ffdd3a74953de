/**
 * What the demo hands over once the tour is done: ready-to-paste client
 * configurations pointing at the running demo (the same generators as
 * `mcp-access config`), and commands worth trying while it runs.
 */
import { relative, sep } from 'node:path';
import { configObject, connectLaunch, langgraphSnippet } from '../client/client-config.js';
import { cliScript } from './bot.js';
import { DEMO_BOT, DEMO_BOT_ROLES, type DemoEnvironment } from './environment.js';
import { PROD_SERVER, TOUR_SERVER } from './tour.js';

export interface DemoHandover {
  /** claude_desktop_config.json content (`mcpServers`). */
  claude: Record<string, unknown>;
  /** Python and JavaScript MultiServerMCPClient snippets. */
  langgraph: string;
  tryCommands: Array<{ what: string; command: string }>;
}

/** `node bin/mcp-access.js` from the package directory, else with the script's absolute path. */
export function cliInvocation(cwd = process.cwd()): string {
  const script = cliScript();
  const rel = relative(cwd, script);
  const inside = rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
  return `node ${quote(inside ? rel : script)}`;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function demoHandover(env: DemoEnvironment): DemoHandover {
  const launches = new Map([[TOUR_SERVER, connectLaunch(TOUR_SERVER, env.bot.identityPath, env.proxyAddress)]]);
  const cli = cliInvocation();
  const id = quote(env.bot.identityPath);
  return {
    claude: configObject('claude', launches),
    langgraph: langgraphSnippet(launches),
    tryCommands: [
      { what: 'what the bot may reach', command: `${cli} ls -i ${id} --proxy ${env.proxyAddress}` },
      { what: 'the bot identity (watch it renew)', command: `${cli} identity show -i ${id}` },
      { what: 'the denials in the audit log', command: `${cli} audit search ${quote(env.auditPath)} --denied` },
      { what: 'check the audit hash chain', command: `${cli} audit verify ${quote(env.auditPath)}` },
      {
        what: 'why write_file is denied',
        command: `${cli} policy check --config ${quote(env.configPath)} --roles ${DEMO_BOT_ROLES.join(',')} --server ${TOUR_SERVER} --tool write_file`,
      },
      {
        what: 'why get-env is denied',
        command: `${cli} policy check --config ${quote(env.configPath)} --roles ${DEMO_BOT_ROLES.join(',')} --server ${PROD_SERVER} --tool get-env`,
      },
      {
        what: 'lock the bot (its sessions end)',
        command: `${cli} bot lock ${DEMO_BOT} --config ${quote(env.configPath)}`,
      },
    ],
  };
}
