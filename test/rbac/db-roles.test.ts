/** Roles' database fields (db_labels, db_names, db_users, db_permissions) and Policy.databaseGrants. */
import { describe, expect, it } from 'vitest';
import { parseRole, type Role } from '../../src/rbac/roles.js';
import { Policy } from '../../src/rbac/policy.js';

const role = (name: string, allow: Record<string, unknown>, deny?: Record<string, unknown>): Role =>
  parseRole(
    { kind: 'role', version: 'v7', metadata: { name }, spec: { allow, ...(deny ? { deny } : {}) } },
    name,
    () => {},
  );
const shop = { name: 'shop', labels: { env: 'dev' }, transport: 'postgres' };
const err = (allow: Record<string, unknown>) => {
  try {
    role('r', allow);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
};

describe('database role fields', () => {
  it('are kept as plain JSON, exactly as written', () => {
    const r = role('db', {
      db_labels: { env: ['dev', 'staging'] },
      db_names: ['shop', 'shop_*'],
      db_users: 'reader',
      db_permissions: [
        {
          match: { object_kind: 'table', schema: 'public', name: ['products', 'orders'] },
          permissions: ['select', 'Insert'],
        },
      ],
    });
    expect(r.allow.db).toEqual({
      labels: { env: ['dev', 'staging'] },
      names: ['shop', 'shop_*'],
      users: ['reader'],
      permissions: [
        {
          match: { object_kind: ['table'], schema: ['public'], name: ['products', 'orders'] },
          permissions: ['SELECT', 'INSERT'],
          field: 'spec.allow.db_permissions[0]',
        },
      ],
    });
    expect(JSON.parse(JSON.stringify(r.allow.db))).toEqual(r.allow.db);
  });

  it('refuses entries that could widen a grant or drop a deny', () => {
    expect(err({ db_permissions: [{ match: { object_kind: 'function' }, permissions: ['EXECUTE'] }] })).toMatch(
      /object_kind: only table is supported/,
    );
    expect(err({ db_permissions: [{ match: { table: 'x' }, permissions: ['SELECT'] }] })).toMatch(
      /match.table: unknown key/,
    );
    expect(err({ db_permissions: [{ match: { name: 'x' }, permissions: ['SELEKT'] }] })).toMatch(
      /"SELEKT" is not a table privilege/,
    );
    expect(err({ db_permissions: [{ match: { name: 'x' } }] })).toMatch(/permissions: must be a list of privileges/);
    expect(err({ db_names: [1] })).toMatch(/db_names: must be a list/);
    expect(err({ db_names: ['^(a$'] })).toMatch(/invalid regular expression/);
    expect(err({ db_lables: {} })).toMatch(/unknown key — did you mean "db_labels"/);
  });
});

describe('Policy.databaseGrants', () => {
  const reader = role('reader', {
    db_labels: { env: 'dev' },
    db_names: ['shop*'],
    db_permissions: [
      { match: { schema: 'public', name: 'products' }, permissions: ['SELECT'] },
      { match: { schema: 'sales', name: '*' }, permissions: ['ALL'] },
    ],
  });
  const noDelete = role(
    'no-delete',
    {},
    { db_permissions: [{ match: { name: '*' }, permissions: ['DELETE'] }], db_names: ['shop_prod'] },
  );
  const apps = role('apps', { app_labels: { '*': '*' }, mcp: { tools: ['*'] } });
  const toolsOnly = role('llm', { mcp_tools: ['*'] });
  const users = role(
    'users',
    { db_labels: { '*': '*' }, db_users: ['reader', 'writer', 'svc_*'] },
    { db_users: ['writer'] },
  );
  const denyDb = role('deny-db', {}, { db_labels: { env: 'dev' } });
  const policy = new Policy([reader, noDelete, apps, toolsOnly, users, denyDb]);

  it('a database is reached by db_labels only: app_labels and tools-only roles do not reach it', () => {
    expect(policy.canReachServer(['reader'], shop).allowed).toBe(true);
    expect(policy.canReachServer(['apps'], shop).allowed).toBe(false);
    expect(policy.canReachServer(['llm'], shop).allowed).toBe(false);
    expect(policy.canReachServer(['reader', 'deny-db'], shop)).toMatchObject({
      allowed: false,
      rule: 'spec.deny.db_labels {env: dev}',
    });
    // And db_labels do not reach MCP servers.
    expect(policy.canReachServer(['reader'], { name: 'files', labels: { env: 'dev' } }).allowed).toBe(false);
  });

  it('the built-in tools are allowed on a reached database unless a deny names them', () => {
    expect(policy.toolDecision(['reader'], shop, 'query').allowed).toBe(true);
  });

  it('table privileges: allow entries, deny entries subtract, nothing else', () => {
    const g = policy.databaseGrants(['reader', 'no-delete'], shop);
    expect(g.provisioning).toBe(true);
    expect(g.tablePrivileges('public', 'products')).toEqual(['SELECT']);
    expect(g.tablePrivileges('sales', 'orders')).toEqual([
      'SELECT',
      'INSERT',
      'UPDATE',
      'TRUNCATE',
      'REFERENCES',
      'TRIGGER',
    ]);
    expect(g.tableDecision('public', 'secrets', 'SELECT')).toMatchObject({
      allowed: false,
      reason: 'the statement needs SELECT on public.secrets, which no db_permissions of the roles grants',
    });
    expect(g.tableDecision('sales', 'orders', 'DELETE')).toMatchObject({ allowed: false, role: 'no-delete' });
    expect(g.nameDecision('shop').allowed).toBe(true);
    expect(g.nameDecision('shop_prod')).toMatchObject({ allowed: false, role: 'no-delete' });
    expect(g.nameDecision('postgres').allowed).toBe(false);
  });

  it('db_users: literal names, not denied, in order; no db_permissions means no provisioning', () => {
    const g = policy.databaseGrants(['users'], shop);
    expect(g.provisioning).toBe(false);
    expect(g.users).toEqual(['reader']);
    expect(g.userDecision('svc_batch').allowed).toBe(true);
    expect(g.userDecision('writer').allowed).toBe(false);
  });
});
