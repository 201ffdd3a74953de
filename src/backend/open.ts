/** The backend a configuration names, connected and ready (PostgreSQL: schema migrated). */
import type { Logger } from '../util/log.js';
import { LocalBackend } from './local.js';
import type { Backend, BackendConfig } from './types.js';

export async function openBackend(cfg: BackendConfig, log?: Logger): Promise<Backend> {
  if (cfg.type === 'local') return new LocalBackend(cfg.dir);
  // Loaded only when used: the local default never loads the driver.
  const { PostgresBackend } = await import('./postgres.js');
  return PostgresBackend.open(cfg, log);
}
