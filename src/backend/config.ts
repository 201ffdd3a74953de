/**
 * `backend:` in proxy.yaml (docs/configuration.md):
 *
 *   backend: { type: local, dir: ./state }              # the default (dir: ./state)
 *   backend: { type: postgres, url: postgres://mcp@db:5432/mcp, password_file: ./pg.pass }
 */
import { duration, isObject, str, type Fail } from '../util/config-fields.js';
import type { BackendConfig } from './types.js';

const LOCAL_KEYS = ['type', 'dir'];
const PG_KEYS = ['type', 'url', 'password_file', 'connect_timeout', 'pool_size'];

export function parseBackend(v: unknown, fail: Fail, abs: (p: string) => string): BackendConfig {
  if (v === undefined || v === null) return { type: 'local', dir: abs('state') };
  if (!isObject(v)) fail('backend', 'must be a mapping with type (local or postgres)');
  const b = v;
  const type = b.type ?? 'local';
  if (type === 'local') {
    for (const k of Object.keys(b))
      if (!LOCAL_KEYS.includes(k)) fail(`backend.${k}`, `unknown key for type local (known: ${LOCAL_KEYS.join(', ')})`);
    return { type: 'local', dir: abs(b.dir === undefined ? 'state' : str(b.dir, 'backend.dir', fail)) };
  }
  if (type !== 'postgres') fail('backend.type', `must be local or postgres (got ${JSON.stringify(type)})`);
  for (const k of Object.keys(b))
    if (!PG_KEYS.includes(k)) fail(`backend.${k}`, `unknown key for type postgres (known: ${PG_KEYS.join(', ')})`);
  const url = str(b.url, 'backend.url', fail);
  if (!/^postgres(ql)?:\/\//.test(url))
    fail('backend.url', 'must be a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)');
  let poolSize = 10;
  if (b.pool_size !== undefined) {
    if (typeof b.pool_size !== 'number' || !Number.isInteger(b.pool_size) || b.pool_size < 2 || b.pool_size > 200)
      fail('backend.pool_size', 'must be a whole number from 2 to 200');
    poolSize = b.pool_size;
  }
  const connectTimeoutMs =
    b.connect_timeout === undefined ? 5_000 : duration(b.connect_timeout, 'backend.connect_timeout', fail);
  if (connectTimeoutMs < 100 || connectTimeoutMs > 120_000)
    fail('backend.connect_timeout', 'must be between 100ms and 2m');
  return {
    type: 'postgres',
    url,
    ...(b.password_file !== undefined
      ? { passwordFile: abs(str(b.password_file, 'backend.password_file', fail)) }
      : {}),
    connectTimeoutMs,
    poolSize,
  };
}
