/**
 * Where the two published MCP servers the demo enrols live on disk. They are
 * development dependencies of mcp-access, so `npm install` in a checkout
 * brings them; an installed copy of mcp-access may not have them, and then
 * the demo names the package to install rather than failing later inside a
 * proxy session.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { AccessError } from '../errors.js';

export const FILESYSTEM_PACKAGE = '@modelcontextprotocol/server-filesystem';
export const EVERYTHING_PACKAGE = '@modelcontextprotocol/server-everything';

export interface PublishedServer {
  package: string;
  version: string;
  /** The JavaScript file its `bin` runs (started with this node). */
  entry: string;
}

/** Look next to mcp-access first, then in the directory the demo was started from. */
function resolvers(): NodeRequire[] {
  return [createRequire(import.meta.url), createRequire(join(resolve(process.cwd()), 'package.json'))];
}

export function findPublishedServer(pkg: string): PublishedServer {
  for (const req of resolvers()) {
    let manifestPath: string;
    try {
      manifestPath = req.resolve(`${pkg}/package.json`);
    } catch {
      continue;
    }
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      version?: string;
      bin?: string | Record<string, string>;
      main?: string;
    };
    const bin =
      typeof manifest.bin === 'string' ? manifest.bin : manifest.bin ? Object.values(manifest.bin)[0] : manifest.main;
    if (!bin) continue;
    return { package: pkg, version: manifest.version ?? 'unknown', entry: join(dirname(manifestPath), bin) };
  }
  throw new AccessError('DEMO_SETUP', `the demo needs the MCP server package ${pkg}, which is not installed`, {
    hint: `run \`npm install\` in the mcp-access checkout, or \`npm install ${pkg}\` in this directory`,
  });
}
