import type { Logger } from '../../util/log.js';
import type { ServerConfig } from '../servers.js';
import { HttpUpstream } from './http.js';
import { StdioUpstream } from './stdio.js';
import { PostgresUpstream } from './postgres.js';
import type { Upstream, UpstreamEvents, UpstreamSession } from './upstream.js';

export type { Upstream, UpstreamEvents, UpstreamSession } from './upstream.js';

export function createUpstream(
  server: ServerConfig,
  events: UpstreamEvents,
  log: Logger,
  opts: { maxMessageSize: number; stopGraceMs: number },
  session?: UpstreamSession,
): Upstream {
  if (server.transport === 'postgres') return new PostgresUpstream(server, events, log, session);
  if (server.transport === 'stdio') return new StdioUpstream(server.name, server, events, log, opts);
  return new HttpUpstream(server.name, server, events, log, opts);
}
