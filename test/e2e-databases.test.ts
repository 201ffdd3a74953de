/**
 * Databases behind role-checked MCP tools (issue 14, seed 003's first
 * example), end to end: a real PostgreSQL, the real proxy, the real
 * `mcp-access connect` and the SDK client.
 *
 *  - the engineer's agent reads `products` (allowed; db.session.query audited);
 *  - alice's agent is refused `products` before anything reaches the database
 *    (denied; audited), and PostgreSQL refuses it too when the parser check is
 *    off (`statement_check: false`): the per-session database role holds only
 *    what db_permissions grant;
 *  - every bypass in the issue fails at the parser check AND, separately, at
 *    the database's GRANTs;
 *  - the per-session database roles are gone after the sessions;
 *  - a db_users session runs as a member of that account;
 *  - a wrong admin password, a database that goes down mid-session: clear errors, no hang.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MultiServerMCPClient } from '@langchain/mcp-adapters';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';
import { TestCluster, ROOT, resultText } from './helpers/cluster.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { runCli } from './helpers/run-cli.js';
import { INIT, RawBridge } from './helpers/raw-bridge.js';

let pg: TestPostgres;
let cluster: TestCluster;
let auditPath: string;
let engineer: string;
let alice: string;
let analyst: string;
let browser: string;

const labels = { env: 'dev' };
const role = (name: string, allow: Record<string, unknown>, deny?: Record<string, unknown>) => ({
  kind: 'role',
  version: 'v7',
  metadata: { name },
  spec: { allow, ...(deny ? { deny } : {}) },
});

beforeAll(async () => {
  pg = await startPostgres();
  pg.psql('CREATE DATABASE shop');
  pg.psql(
    `CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2));
     INSERT INTO products (name, price) VALUES ('apple', 1.20), ('pear', 0.90), ('plum', 2.50), ('fig', 3.10), ('kiwi', 0.70);
     CREATE TABLE orders (id serial PRIMARY KEY, product int, qty int);
     INSERT INTO orders (product, qty) VALUES (1, 3);
     CREATE TABLE secrets (id int, value text);
     INSERT INTO secrets VALUES (1, 'the-secret-value');
     CREATE EXTENSION dblink;
     CREATE ROLE reader NOLOGIN;
     GRANT SELECT ON products TO reader;`,
    'shop',
  );
  const secrets = await mkdtemp(join(tmpdir(), 'mcp-access-db-secrets-'));
  await writeFile(join(secrets, 'admin'), `${pg.password}\n`, { mode: 0o600 });
  await writeFile(join(secrets, 'wrong'), 'not-the-password\n', { mode: 0o600 });
  const uri = `postgres://${pg.host}:${pg.port}/shop`;
  const admin = { user: 'postgres', password_file: join(secrets, 'admin') };
  auditPath = join(secrets, 'audit', 'audit.jsonl');
  cluster = await TestCluster.start({
    servers: [],
    config: {
      databases: [
        { name: 'shop', description: 'Product catalogue', labels, uri, admin, max_rows: 3, statement_timeout: '2s' },
        // The database's GRANTs alone (the parser check off), for the second layer.
        { name: 'shop-grants-only', labels, uri, admin, statement_check: false },
        { name: 'shop-badpw', labels, uri, admin: { user: 'postgres', password_file: join(secrets, 'wrong') } },
      ],
      audit: { path: auditPath },
    },
    roles: [
      // The engineer: database read permissions on products.
      role('products-reader', {
        db_labels: labels,
        db_names: ['shop'],
        db_permissions: [
          { match: { object_kind: 'table', schema: 'public', name: 'products' }, permissions: ['SELECT'] },
        ],
      }),
      // alice: the database, but only orders.
      role('orders-reader', {
        db_labels: labels,
        db_names: ['shop'],
        db_permissions: [
          { match: { object_kind: 'table', schema: 'public', name: 'orders' }, permissions: ['SELECT'] },
        ],
      }),
      // No db_permissions: the session runs as a member of the account `reader`.
      role('reader-account', { db_labels: labels, db_names: ['shop'], db_users: ['reader'] }),
      // Deny wins on databases too: no query tool.
      role('no-query', {}, { mcp: { tools: ['query'] } }),
    ],
  });
  engineer = await cluster.issue('engineer', ['products-reader']);
  alice = await cluster.issue('alice', ['orders-reader']);
  analyst = await cluster.issue('analyst', ['reader-account']);
  browser = await cluster.issue('browser', ['products-reader', 'no-query']);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
  await pg?.destroy();
});

async function audit(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(auditPath, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

type Answer = { isError: boolean; json: Record<string, unknown> & { error?: Record<string, unknown> } };
async function call(
  c: { client: { callTool(p: unknown): Promise<unknown> } },
  name: string,
  args: Record<string, unknown>,
): Promise<Answer> {
  const r = (await c.client.callTool({ name, arguments: args })) as { isError?: boolean };
  return { isError: r.isError === true, json: JSON.parse(resultText(r)) as Answer['json'] };
}

const sessionRoles = () => pg.psql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'mcpa\\_%' ORDER BY 1").trim();
async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const productCount = () => pg.psql('SELECT count(*) FROM products', 'shop').trim();

describe('enrolled databases', () => {
  it('ls lists the databases the identity reaches, with type postgres', async () => {
    const r = await runCli(['ls', '-i', engineer, '--proxy', cluster.address]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/shop\s+Product catalogue\s+postgres/);
    const json = await runCli(['ls', '-i', engineer, '--proxy', cluster.address, '--format', 'json']);
    const list = JSON.parse(json.stdout) as { servers: Array<{ name: string; transport: string }> };
    expect(list.servers.find((s) => s.name === 'shop')?.transport).toBe('postgres');
    // alice reaches it too (db_labels), the role-less identity does not see it.
    const nobody = await cluster.issue('nobody', ['no-query']);
    const none = await runCli(['ls', '-i', nobody, '--proxy', cluster.address]);
    expect(none.stdout).not.toContain('shop');
  });

  it('config prints a client entry for a database, as for a server', async () => {
    const r = await runCli(['config', 'shop', '-i', engineer, '--proxy', cluster.address, '--client', 'claude']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"shop"');
    expect(r.stdout).toMatch(/"connect"[\s\S]*"shop"/);
  });

  it('the engineer’s agent reads products: rows, row count, truncation, and a db.session.query event', async () => {
    const c = await cluster.client('shop', engineer);
    const tools = await c.client.listTools();
    expect(tools.tools.map((t) => t.name).sort()).toEqual(['describe_table', 'list_databases', 'list_tables', 'query']);
    const listed = await call(c, 'list_tables', {});
    expect(listed.json.tables).toEqual([{ schema: 'public', name: 'products', kind: 'table', privileges: ['SELECT'] }]);
    const described = await call(c, 'describe_table', { table: 'products' });
    expect((described.json.columns as Array<{ name: string }>).map((x) => x.name)).toEqual(['id', 'name', 'price']);

    const all = await call(c, 'query', { sql: 'SELECT name, price FROM products ORDER BY id' });
    expect(all.isError).toBe(false);
    expect(all.json.rows).toEqual([
      { name: 'apple', price: '1.20' },
      { name: 'pear', price: '0.90' },
      { name: 'plum', price: '2.50' },
    ]);
    expect(all.json).toMatchObject({ rowCount: 3, truncated: true, fields: ['name', 'price'] });
    const one = await call(c, 'query', {
      sql: 'SELECT name FROM products WHERE price > $1 ORDER BY price',
      params: [3],
    });
    expect(one.json).toMatchObject({ rows: [{ name: 'fig' }], rowCount: 1, truncated: false });
    await c.close();

    const events = await audit();
    const start = events.find((e) => e.type === 'db.session.start' && e.user === 'engineer');
    expect(start).toMatchObject({ outcome: 'success', server: 'shop', provisioning: true, code: 'TDB00I' });
    const q = events.find(
      (e) =>
        e.type === 'db.session.query' &&
        e.user === 'engineer' &&
        (e.args as { statement: string }).statement.includes('ORDER BY id'),
    )!;
    expect(q).toMatchObject({
      outcome: 'success',
      kind: 'SELECT',
      tables: [{ table: 'public.products', privileges: ['SELECT'] }],
      rows: 3,
      truncated: true,
      viaMcp: true,
      database: 'shop',
      code: 'TDB02I',
    });
    expect(String(q.applicationName)).toBe('mcp-access llm engineer');
    // Linked to the MCP request that carried it.
    const request = events.find((e) => e.id === q.requestEventId);
    expect(request).toMatchObject({ type: 'mcp.session.request', method: 'tools/call', tool: 'query' });
  });

  it('alice’s agent is refused products before the database sees it, and the denial is audited', async () => {
    const c = await cluster.client('shop', alice);
    const listed = await call(c, 'list_tables', {});
    expect(listed.json.tables).toEqual([{ schema: 'public', name: 'orders', kind: 'table', privileges: ['SELECT'] }]);
    const r = await call(c, 'query', { sql: 'SELECT * FROM products' });
    expect(r.isError).toBe(true);
    expect(r.json.error).toMatchObject({ code: 'QUERY_DENIED', sqlstate: '42501' });
    expect(String(r.json.error!.message)).toContain('SELECT on public.products');
    const orders = await call(c, 'query', { sql: 'SELECT qty FROM orders' });
    expect(orders.json.rows).toEqual([{ qty: 1 * 3 }]);
    await c.close();
    const denied = (await audit()).find(
      (e) => e.type === 'db.session.query' && e.user === 'alice' && e.outcome === 'denied',
    );
    expect(denied).toMatchObject({ kind: 'SELECT', code: 'TDB02W', viaMcp: true });
    expect(String(denied!.reason)).toMatch(/refused before sending: .*SELECT on public\.products/);
  });

  it('with the parser check off, PostgreSQL itself refuses alice: table-level GRANTs of her session role', async () => {
    const c = await cluster.client('shop-grants-only', alice);
    const r = await call(c, 'query', { sql: 'SELECT * FROM products' });
    expect(r.isError).toBe(true);
    expect(r.json.error).toMatchObject({ sqlstate: '42501' });
    expect(String(r.json.error!.message)).toContain('permission denied for table products');
    await c.close();
    const failed = (await audit()).find(
      (e) => e.type === 'db.session.query' && e.server === 'shop-grants-only' && e.sqlstate === '42501',
    );
    expect(failed).toMatchObject({ outcome: 'error', user: 'alice' });
  });

  /** Each must be stopped by the parser check, and (separately) by the database, with this SQLSTATE. */
  const PWNED = join(tmpdir(), `mcp-access-pwned-${process.pid}`);
  const ATTACKS: Array<[string, string, string]> = [
    ['several statements', 'SELECT 1; DELETE FROM products', '42601'],
    ['comment-hidden second statement', 'SELECT 1 /* x */; DELETE FROM products -- y', '42601'],
    ['data-modifying CTE', 'WITH x AS (DELETE FROM products RETURNING *) SELECT count(*) FROM x', '42501'],
    ['another table', 'SELECT * FROM secrets', '42501'],
    ['quoted table name', 'SELECT * FROM "public"."secrets"', '42501'],
    ['CTE name shadowing a table', 'WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets', '42501'],
    ['set_config role', "SELECT set_config('role', 'postgres', false)", '42501'],
    ['SET ROLE', 'SET ROLE postgres', '42501'],
    ['SET SESSION AUTHORIZATION', 'SET SESSION AUTHORIZATION postgres', '42501'],
    ['pg_read_file', "SELECT pg_read_file('/etc/passwd')", '42501'],
    ['lo_import', "SELECT lo_import('/etc/passwd')", '42501'],
    [
      'dblink',
      "SELECT * FROM dblink('dbname=shop user=postgres', 'DELETE FROM products RETURNING 1') AS t(a int)",
      '2F003',
    ],
    ['COPY TO PROGRAM', `COPY products TO PROGRAM 'touch ${PWNED}'`, '42501'],
    ['query_to_xml', "SELECT query_to_xml('SELECT * FROM secrets', true, true, '')", '42501'],
    ['DDL', 'DROP TABLE products', '42501'],
    ['GRANT', 'GRANT SELECT ON secrets TO PUBLIC', '42501'],
  ];

  it('every bypass is refused by the parser check before it is sent', async () => {
    const c = await cluster.client('shop', engineer);
    for (const [what, sql] of ATTACKS) {
      const r = await call(c, 'query', { sql });
      expect(r.isError, what).toBe(true);
      expect(r.json.error?.code, `${what}: ${JSON.stringify(r.json)}`).toBe('QUERY_DENIED');
    }
    await c.close();
    expect(productCount()).toBe('5');
    const denied = (await audit()).filter(
      (e) => e.type === 'db.session.query' && e.server === 'shop' && e.user === 'engineer' && e.outcome === 'denied',
    );
    expect(denied.length).toBeGreaterThanOrEqual(ATTACKS.length);
  });

  it('every bypass is refused by PostgreSQL too, with the parser check off', async () => {
    const c = await cluster.client('shop-grants-only', engineer);
    for (const [what, sql, sqlstate] of ATTACKS) {
      const r = await call(c, 'query', { sql });
      expect(r.isError, `${what}: ${JSON.stringify(r.json)}`).toBe(true);
      expect(r.json.error?.code, what).toBeUndefined();
      expect(r.json.error?.sqlstate, `${what}: ${JSON.stringify(r.json)}`).toBe(sqlstate);
    }
    expect(existsSync(PWNED)).toBe(false);
    // Nothing changed, nothing leaked.
    await c.close();
    expect(productCount()).toBe('5');
    expect(pg.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'postgres' AND rolsuper", 'shop').trim()).toBe('1');
  });

  it('the per-session database roles are dropped when the sessions end', async () => {
    const c = await cluster.client('shop', engineer);
    await call(c, 'query', { sql: 'SELECT 1 FROM products LIMIT 1' });
    expect(sessionRoles()).toMatch(/^mcpa_engineer_/m);
    await c.close();
    await waitFor(() => sessionRoles() === '', 'every mcpa_ role to be dropped');
    const end = (await audit()).filter((e) => e.type === 'db.session.end');
    expect(end.length).toBeGreaterThan(0);
    expect(end.every((e) => e.dbRoleFate === 'dropped')).toBe(true);
  });

  it('without db_permissions, the session runs as a member of the db_users account; the database decides', async () => {
    const c = await cluster.client('shop', analyst);
    const dbs = await call(c, 'list_databases', {});
    expect(dbs.json).toMatchObject({ databases: ['shop'], dbUser: 'reader', access: 'db_users' });
    const ok = await call(c, 'query', { sql: 'SELECT count(*)::int AS n FROM products' });
    expect(ok.json.rows).toEqual([{ n: 5 }]);
    const no = await call(c, 'query', { sql: 'SELECT * FROM secrets' });
    expect(no.json.error).toMatchObject({ sqlstate: '42501' });
    const db = await call(c, 'query', { database: 'postgres', sql: 'SELECT 1' });
    expect(db.json.error).toMatchObject({ code: 'QUERY_DENIED' });
    await c.close();
    await waitFor(() => sessionRoles() === '', 'the session role to be dropped');
  });

  it('a raw client: malformed arguments, a reused pending id and a case variant of the tool never run a query', async () => {
    const before = (await audit()).filter((e) => e.type === 'db.session.query').length;
    const bridge = RawBridge.spawn(cluster.connectArgs('shop', alice));
    bridge.send(INIT(1));
    await bridge.response(1);
    bridge.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const callQuery = (id: number, args: unknown, name = 'query') =>
      bridge.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
    // sql as a list, as an object, params holding an object: refused by the tool's schema, nothing sent.
    callQuery(2, { sql: ['SELECT * FROM products'] });
    callQuery(3, { sql: { toString: 'SELECT * FROM products' } });
    callQuery(4, { sql: 'SELECT qty FROM orders WHERE id = $1', params: [{ id: 1 }] });
    for (const id of [2, 3, 4]) {
      const r = await bridge.response(id);
      const refused = 'error' in r || (r.result as { isError?: boolean }).isError === true;
      expect(refused, JSON.stringify(r)).toBe(true);
      expect(JSON.stringify(r)).not.toContain('apple');
    }
    // A case variant of the tool name is not the tool.
    callQuery(5, { sql: 'SELECT * FROM products' }, 'Query');
    expect(JSON.stringify(await bridge.response(5))).not.toContain('apple');
    // The denied read, sent twice under one id: the second is refused by the gate, the first by the statement check.
    callQuery(6, { sql: 'SELECT name FROM products' });
    callQuery(6, { sql: 'SELECT name FROM products' });
    const answers = await Promise.all([
      bridge.next((m) => m.id === 6 && 'error' in m),
      bridge.next((m) => m.id === 6 && 'result' in m),
    ]);
    expect(JSON.stringify(answers[0])).toContain('already used');
    expect(JSON.stringify(answers[1])).toContain('QUERY_DENIED');
    await bridge.end();
    const after = (await audit()).filter((e) => e.type === 'db.session.query').slice(before);
    expect(after.map((e) => e.outcome)).toEqual(['denied']);
  });

  it('a statement running past statement_timeout is cancelled: a tool error with 57014', async () => {
    const c = await cluster.client('shop', engineer);
    const r = await call(c, 'query', { sql: 'SELECT pg_sleep(5) FROM products LIMIT 1' });
    expect(r.json.error).toMatchObject({ sqlstate: '57014' });
    expect((await call(c, 'query', { sql: 'SELECT count(*)::int AS n FROM products' })).json.rows).toEqual([{ n: 5 }]);
    await c.close();
  });

  it('a deny of mcp.tools applies to the database tools: hidden from the list, refused by the gate', async () => {
    const c = await cluster.client('shop', browser);
    const tools = await c.client.listTools();
    expect(tools.tools.map((t) => t.name).sort()).toEqual(['describe_table', 'list_databases', 'list_tables']);
    await expect(c.client.callTool({ name: 'query', arguments: { sql: 'SELECT 1' } })).rejects.toThrow(/denied/);
    await c.close();
    const events = await audit();
    expect(events.some((e) => e.type === 'db.session.query' && e.user === 'browser')).toBe(false);
    expect(
      events.some(
        (e) => e.type === 'mcp.session.request' && e.user === 'browser' && e.tool === 'query' && e.outcome === 'denied',
      ),
    ).toBe(true);
  });

  it('policy check shows the database fields and the privileges on a table', async () => {
    const r = await runCli([
      'policy',
      'check',
      '-c',
      cluster.configPath,
      '--roles',
      'orders-reader',
      '--server',
      'shop',
      '--table',
      'products',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('access: db_permissions (a database role per session)');
    expect(r.stdout).toContain('db_names: shop');
    expect(r.stdout).toContain('db_permissions: object_kind=table,schema=public,name=orders: SELECT');
    expect(r.stdout).toMatch(/table\s+public\.products SELECT: DENIED/);
    const json = await runCli([
      'policy',
      'check',
      '-c',
      cluster.configPath,
      '--roles',
      'products-reader',
      '--server',
      'shop',
      '--table',
      'public.products',
      '--format',
      'json',
    ]);
    const out = JSON.parse(json.stdout) as {
      database: { table: { privileges: Array<{ privilege: string; allowed: boolean }> } };
    };
    expect(out.database.table.privileges.filter((p) => p.allowed).map((p) => p.privilege)).toEqual(['SELECT']);
  });

  it("LangChain's MultiServerMCPClient: the engineer's agent reads products, alice's is refused", async () => {
    const entry = (identity: string) => ({
      command: process.execPath,
      args: cluster.connectArgs('shop', identity),
      transport: 'stdio' as const,
    });
    const client = new MultiServerMCPClient({ shop: entry(engineer) });
    try {
      const query = (await client.getTools()).find((t) => t.name === 'query')!;
      const out: unknown = await query.invoke({ sql: 'SELECT name FROM products ORDER BY id LIMIT 1' });
      expect(JSON.stringify(out)).toContain('apple');
    } finally {
      await client.close();
    }
    const denied = new MultiServerMCPClient({ shop: entry(alice) });
    try {
      const query = (await denied.getTools()).find((t) => t.name === 'query')!;
      const out: unknown = await query.invoke({ sql: 'SELECT name FROM products' }).catch((e: unknown) => e);
      expect(String(out instanceof Error ? out.message : JSON.stringify(out))).toContain('QUERY_DENIED');
      expect(JSON.stringify(out)).not.toContain('apple');
    } finally {
      await denied.close();
    }
  });

  it('a 2026-07-28 client (no initialize, server/discover) uses the database tools', async () => {
    const client = new ClientV2(
      { name: 'v2-test', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const transport = new StdioV2({
      command: process.execPath,
      args: cluster.connectArgs('shop', engineer),
      stderr: 'pipe',
      cwd: ROOT,
    });
    await client.connect(transport);
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('query');
    const r = (await client.callTool({
      name: 'query',
      arguments: { sql: "SELECT name FROM products WHERE name = 'kiwi'" },
    })) as unknown;
    expect(JSON.parse(resultText(r))).toMatchObject({ rows: [{ name: 'kiwi' }] });
    await client.close();
  });

  it('a wrong admin password is a clear error, not a hang: one line on stderr, exit 8, audited', async () => {
    const bridge = RawBridge.spawn(cluster.connectArgs('shop-badpw', engineer));
    bridge.send(INIT(1));
    const answer = await bridge.response(1);
    expect(JSON.stringify(answer.error)).toContain('password authentication failed');
    expect(await bridge.end()).toBe(8);
    expect(bridge.stderr).toMatch(
      /error: database "shop-badpw": cannot connect to "shop" as the admin account postgres: password authentication failed for user "postgres" \(/,
    );
    expect(bridge.stderr).not.toMatch(/\n\s+at /);
    const start = (await audit()).find((e) => e.type === 'db.session.start' && e.server === 'shop-badpw');
    expect(start).toMatchObject({ outcome: 'error', error: 'DATABASE_UNAVAILABLE' });
    expect(JSON.stringify(start)).not.toContain(pg.password);
    expect(cluster.proxyLog).not.toContain(pg.password);
  });

  it('the database going down mid-session: a tool error, the session goes on, and works again after', async () => {
    const c = await cluster.client('shop', engineer);
    expect((await call(c, 'query', { sql: 'SELECT 1 AS one FROM products LIMIT 1' })).json.rows).toEqual([{ one: 1 }]);
    await pg.stop();
    const down = await call(c, 'query', { sql: 'SELECT 1 AS one FROM products LIMIT 1' });
    expect(down.isError).toBe(true);
    expect(down.json.error?.code).toBe('DATABASE_UNAVAILABLE');
    await pg.start();
    const back = await call(c, 'query', { sql: 'SELECT 1 AS one FROM products LIMIT 1' });
    expect(back.json.rows, JSON.stringify(back.json)).toEqual([{ one: 1 }]);
    await c.close();
  });

  it('stopping the proxy ends the sessions and drops their database roles', async () => {
    const c = await cluster.client('shop', engineer);
    await call(c, 'query', { sql: 'SELECT 1 FROM products LIMIT 1' });
    expect(sessionRoles()).toMatch(/^mcpa_engineer_/m);
    await cluster.stopProxy('SIGTERM');
    expect(sessionRoles()).toBe('');
    const events = await audit();
    expect(events.filter((e) => e.type === 'db.session.end').at(-1)).toMatchObject({ dbRoleFate: 'dropped' });
  });
});
