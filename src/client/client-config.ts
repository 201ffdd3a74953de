/**
 * Configuration snippets for MCP clients that run `mcp-access connect`, and
 * merging them into a client's config file (with a backup, other entries
 * untouched). The command is absolute (this node, this script) so it works
 * under the minimal PATH that MCP clients start servers with.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { AccessError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { createExclusive, refuseSymlink } from '../util/safe-path.js';

export type ClientKind = 'claude' | 'cursor' | 'vscode' | 'claude-code' | 'langgraph';
export const CLIENT_KINDS: ClientKind[] = ['claude', 'cursor', 'vscode', 'claude-code', 'langgraph'];

export interface Launch {
  command: string;
  args: string[];
}

/** The absolute command line of `mcp-access connect` for one server. */
export function connectLaunch(server: string, identityPath: string, proxy: string): Launch {
  const script = resolve(fileURLToPath(new URL('../../bin/mcp-access.js', import.meta.url)));
  return {
    command: process.execPath,
    args: [script, 'connect', '-i', resolve(identityPath), '--proxy', proxy, server],
  };
}

export function entryName(server: string): string {
  return `mcp-access-${server}`;
}

/** The JSON object a client's config file holds for these servers. */
export function configObject(
  kind: Exclude<ClientKind, 'langgraph'>,
  launches: Map<string, Launch>,
): Record<string, unknown> {
  const entries: Record<string, unknown> = {};
  for (const [server, l] of launches) {
    entries[entryName(server)] =
      kind === 'vscode' ? { type: 'stdio', command: l.command, args: l.args } : { command: l.command, args: l.args };
  }
  return kind === 'vscode' ? { servers: entries } : { mcpServers: entries };
}

export function langgraphSnippet(launches: Map<string, Launch>): string {
  const py = [...launches]
    .map(
      ([s, l]) =>
        `    ${JSON.stringify(entryName(s))}: {\n        "command": ${JSON.stringify(l.command)},\n        "args": ${JSON.stringify(l.args)},\n        "transport": "stdio",\n    },`,
    )
    .join('\n');
  const js = [...launches]
    .map(
      ([s, l]) =>
        `  ${JSON.stringify(entryName(s))}: {\n    transport: "stdio",\n    command: ${JSON.stringify(l.command)},\n    args: ${JSON.stringify(l.args)},\n  },`,
    )
    .join('\n');
  return [
    '# Python (langchain-mcp-adapters)',
    'from langchain_mcp_adapters.client import MultiServerMCPClient',
    '',
    'client = MultiServerMCPClient({',
    py,
    '})',
    'tools = await client.get_tools()',
    '',
    '// JavaScript (@langchain/mcp-adapters)',
    'import { MultiServerMCPClient } from "@langchain/mcp-adapters";',
    '',
    'const client = new MultiServerMCPClient({ mcpServers: {',
    js,
    '} });',
    'const tools = await client.getTools();',
  ].join('\n');
}

/** Where each client keeps its config (Linux/macOS conventions). */
export function defaultConfigPath(kind: ClientKind): string {
  const home = homedir();
  switch (kind) {
    case 'claude':
      return process.platform === 'darwin'
        ? join(home, 'Library', 'Application Support', 'Claude', 'claude_desktop_config.json')
        : join(process.env.XDG_CONFIG_HOME ?? join(home, '.config'), 'Claude', 'claude_desktop_config.json');
    case 'cursor':
      return join(home, '.cursor', 'mcp.json');
    case 'vscode':
      return resolve('.vscode', 'mcp.json');
    case 'claude-code':
      return resolve('.mcp.json');
    case 'langgraph':
      throw new AccessError('USAGE', 'a LangGraph configuration lives in code, not in a file', {
        hint: 'print it without --write and paste it',
      });
  }
}

/**
 * Merge `addition` (`{mcpServers: {...}}` or `{servers: {...}}`) into the JSON
 * file at `path`: other keys and entries stay; a backup of the old file is kept.
 */
export async function mergeIntoConfigFile(
  path: string,
  addition: Record<string, unknown>,
): Promise<{ backup?: string }> {
  let current: Record<string, unknown> = {};
  let backup: string | undefined;
  let text: string | undefined;
  // A symlinked config would be replaced by a copy of its target (or, for a
  // planted link, written where the link points): neither is what was asked.
  await refuseSymlink(path, 'the client configuration');
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      throw new AccessError(
        'UNSAFE_PATH',
        `the client configuration ${path} is a symlink, so it is not written through`,
        { hint: 'remove the symlink, or pass the real path' },
      );
    if (code !== 'ENOENT') throw new AccessError('USAGE', `cannot read ${path} (${code})`);
  }
  if (text !== undefined && text.trim() !== '') {
    try {
      current = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new AccessError('USAGE', `${path} is not valid JSON, so it was left alone`, {
        hint: 'fix it by hand, or pass another path to --write',
      });
    }
    if (typeof current !== 'object' || current === null || Array.isArray(current))
      throw new AccessError('USAGE', `${path} does not hold a JSON object, so it was left alone`);
    backup = `${path}.bak-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    // A new file (exclusive, never through a symlink planted at that name), private.
    await createExclusive(backup, text, 0o600);
  }
  for (const [key, entries] of Object.entries(addition)) {
    const existing = current[key];
    current[key] = { ...(typeof existing === 'object' && existing !== null ? existing : {}), ...(entries as object) };
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify(current, null, 2)}\n`, 0o600);
  return { backup };
}
