/** `databases:` entries (src/agent/databases.ts), as the proxy's configuration reads them. */
import { describe, expect, it } from 'vitest';
import { parseProxyConfig } from '../../src/proxy/config.js';
import { readSecret, secretProblem } from '../../src/agent/databases.js';

const base = { cluster: 'c', listen: '127.0.0.1:0', ca_dir: 'ca', servers: [] as unknown[] };
const db = (extra: Record<string, unknown> = {}) => ({
  name: 'shop',
  labels: { env: 'dev' },
  uri: 'postgres://db.internal:5432/shop?sslmode=require',
  admin: { user: 'mcp_admin', password_env: 'SHOP_ADMIN_PASSWORD' },
  ...extra,
});
const err = (doc: unknown) => {
  try {
    parseProxyConfig(doc, '/etc/mcp/proxy.yaml');
    return '';
  } catch (e) {
    return (e as Error).message;
  }
};

describe('databases: entries', () => {
  it('become session targets with transport postgres, defaults filled in, no secret held', () => {
    const c = parseProxyConfig(
      {
        ...base,
        servers: [{ name: 'files', command: 'x' }],
        databases: [db({ admin: { user: 'a', password_file: 'pw' } })],
      },
      '/etc/mcp/proxy.yaml',
    );
    expect(c.servers.map((s) => [s.name, s.transport])).toEqual([
      ['files', 'stdio'],
      ['shop', 'postgres'],
    ]);
    const shop = c.servers[1]!;
    expect(shop).toMatchObject({
      uri: 'postgres://db.internal:5432/shop?sslmode=require',
      admin: { user: 'a', password: { file: '/etc/mcp/pw' } },
      maxRows: 1000,
      statementTimeoutMs: 30_000,
      statementCheck: true,
    });
    // Plain JSON: what an agent sends or logs carries no secret.
    expect(JSON.parse(JSON.stringify(shop))).toEqual(shop);
  });

  it('refuses what would be a mistake, naming the field', () => {
    expect(err({ ...base, databases: [db({ uri: 'postgres://u:hunter2@db/shop' })] })).toMatch(
      /databases\[0\].uri: must not hold a password/,
    );
    expect(err({ ...base, databases: [db({ uri: 'postgres://u:hunter2@db/shop' })] })).not.toContain('hunter2');
    expect(err({ ...base, databases: [db({ uri: 'mysql://db/shop' })] })).toMatch(/is not a postgres:\/\/ URI/);
    expect(err({ ...base, databases: [db({ uri: 'postgres://db/' })] })).toMatch(/must name a database/);
    expect(err({ ...base, databases: [db({ admin: undefined })] })).toMatch(/databases\[0\].admin: is required/);
    expect(err({ ...base, databases: [db({ admin: { user: 'a', password_env: 'X', password_file: 'y' } })] })).toMatch(
      /exactly one of password_env/,
    );
    expect(err({ ...base, databases: [db({ admin: { user: 'a', password: 'x' } })] })).toMatch(
      /admin.password: unknown key/,
    );
    expect(err({ ...base, databases: [db({ max_rows: 0 })] })).toMatch(/max_rows: must be a whole number/);
    expect(err({ ...base, databases: [db({ statement_timeout: 'soon' })] })).toMatch(/statement_timeout/);
    expect(err({ ...base, databases: [db({ protocol: 'mysql' })] })).toMatch(/protocol: "mysql" is not supported/);
    expect(err({ ...base, databases: [db({ tables: [] })] })).toMatch(/databases\[0\].tables: unknown key/);
    expect(err({ ...base, servers: [{ name: 'shop', command: 'x' }], databases: [db()] })).toMatch(
      /databases\[0\].name: "shop" is already the name of a server/,
    );
    expect(err({ ...base, databases: [db(), db()] })).toMatch(/databases\[1\].name: "shop" is used twice/);
  });

  it('the admin user may come from the URI; the password is read when a session needs it', async () => {
    const c = parseProxyConfig(
      { ...base, databases: [db({ uri: 'postgres://owner@db/shop', admin: { password_env: 'NOPE_NOT_SET_X' } })] },
      'p.yaml',
    );
    const shop = c.servers[0]!;
    if (shop.transport !== 'postgres') throw new Error('not a database');
    expect(shop.admin.user).toBe('owner');
    expect(shop.uri).toBe('postgres://db/shop');
    await expect(readSecret(shop.admin.password, 'database "shop"')).rejects.toMatchObject({
      code: 'DATABASE_UNAVAILABLE',
      message: 'database "shop": the environment variable NOPE_NOT_SET_X is not set',
    });
    await expect(readSecret({ file: '/nonexistent/pw' }, 'database "shop"')).rejects.toMatchObject({
      code: 'DATABASE_UNAVAILABLE',
    });
    // The proxy warns about both at start and reload.
    expect(secretProblem({ env: 'NOPE_NOT_SET_X' })).toBe('the environment variable NOPE_NOT_SET_X is not set');
    expect(secretProblem({ file: '/nonexistent/pw' })).toMatch(/cannot be read \(ENOENT\)/);
    expect(secretProblem({ env: 'PATH' })).toBeUndefined();
  });
});
