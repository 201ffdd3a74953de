/**
 * Is a stdio server's `command` there at all? Checked when the proxy starts
 * (and reloads) so that a typo is reported at once, naming the server, not
 * only when the first user opens a session; `ls` shows it too.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { ServerConfig } from '../servers.js';

/** Why the server's command cannot run, or undefined when it can (or it is not a stdio server). */
export function commandProblem(server: ServerConfig): string | undefined {
  if (server.transport !== 'stdio') return undefined;
  const { command, cwd, env } = server;
  const runnable = (path: string): boolean => {
    try {
      if (!statSync(path).isFile()) return false;
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const path = isAbsolute(command) ? command : resolve(cwd ?? process.cwd(), command);
    return runnable(path) ? undefined : `command "${command}" was not found or is not executable`;
  }
  const searchPath = env?.PATH ?? process.env.PATH ?? '';
  for (const dir of searchPath.split(delimiter)) {
    if (dir && runnable(join(isAbsolute(dir) ? dir : resolve(cwd ?? process.cwd(), dir), command))) return undefined;
  }
  return `command "${command}" was not found on PATH`;
}
