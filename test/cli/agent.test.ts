/**
 * `mcp-access agent`: the operator subcommands are there, a machine-side
 * `start` can be added to the same command, and the printed start line is
 * safe to paste into a shell.
 */
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { agentOperatorCommands, agentStartCommand, buildAgentCommand } from '../../src/cli/commands/agent.js';
import { defineCommand } from '../../src/cli/commands/define.js';

describe('agent command', () => {
  it('has add, ls, lock, unlock and rm', () => {
    expect(agentOperatorCommands.map((c) => String(c.command))).toEqual([
      'add <name>',
      'ls',
      'lock <name>',
      'unlock <name>',
      'rm <name>',
    ]);
  });

  it('takes a start subcommand built elsewhere', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const start = defineCommand<{ token?: string }>({
      command: 'start',
      describe: 'run the agent',
      builder: (y) => y.option('token', { type: 'string' }),
      handler: (argv) => {
        seen.push({ token: argv.token });
      },
    });
    await yargs(['agent', 'start', '--token', 'mcpag_x'])
      .command(buildAgentCommand([start]))
      .strict()
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      .parseAsync();
    expect(seen).toEqual([{ token: 'mcpag_x' }]);
  });

  it('quotes what a shell would split', () => {
    expect(
      agentStartCommand({
        proxy: 'mcp.example.com:3080',
        dataDir: '/srv/my agent',
        token: 'mcpag_A-b_c',
        caPin: 'sha256:ab',
      }),
    ).toBe(
      "mcp-access agent start --config agent.yaml --proxy mcp.example.com:3080 --data-dir '/srv/my agent' --token mcpag_A-b_c --ca-pin sha256:ab",
    );
  });
});
