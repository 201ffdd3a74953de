/**
 * The parser check (src/agent/database/statement.ts) on its own: PostgreSQL's
 * grammar decides what a string holds, so comments, quoting and nesting
 * cannot hide a statement, a table or a function.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyseStatement, loadSqlParser, SqlSyntaxError } from '../../../src/agent/database/statement.js';

beforeAll(async () => {
  await loadSqlParser();
});

const tables = (sql: string) =>
  analyseStatement(sql).relations.map(
    (r) => `${r.schema ? `${r.schema}.` : ''}${r.name}:${r.privileges.sort().join('+')}`,
  );

describe('analyseStatement', () => {
  it('classifies a parameterised SELECT and lists its table', () => {
    const a = analyseStatement('SELECT * FROM public.products WHERE id = $1');
    expect(a.kind).toBe('SELECT');
    expect(a.refusal).toBeUndefined();
    expect(tables('SELECT * FROM public.products WHERE id = $1')).toEqual(['public.products:SELECT']);
  });

  it('sees tables in subqueries, joins and set operations', () => {
    expect(
      tables(
        'select (select count(*) from orders) from products p join customers c on true union select 1 from audit_log',
      ).sort(),
    ).toEqual(['audit_log:SELECT', 'customers:SELECT', 'orders:SELECT', 'products:SELECT']);
  });

  it('a data-modifying CTE needs its privilege: WITH x AS (DELETE …) SELECT', () => {
    const a = analyseStatement('WITH x AS (DELETE FROM products RETURNING *) SELECT * FROM x');
    expect(a.kind).toBe('SELECT');
    expect(tables('WITH x AS (DELETE FROM products RETURNING *) SELECT * FROM x')).toEqual(['products:DELETE+SELECT']);
  });

  it('a CTE named like a table does not hide the table outside its scope', () => {
    expect(tables('SELECT * FROM secrets, (WITH secrets AS (SELECT 1) SELECT * FROM secrets) s')).toEqual([
      'secrets:SELECT',
    ]);
    // A non-recursive CTE's own body reads the real table.
    expect(tables('WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets')).toEqual(['secrets:SELECT']);
  });

  it('refuses several statements in one string, whatever hides them', () => {
    for (const q of ['select 1; select 2', 'select 1;/* x */delete from products', "select ';'; delete from products"])
      expect(analyseStatement(q).refusal, q).toMatch(/2 statements/);
    // A semicolon inside a comment or a string is not a statement boundary.
    expect(analyseStatement("select /* ; delete from products */ ';' -- ; drop table x").refusal).toBeUndefined();
  });

  it('refuses statements the query tool does not run', () => {
    for (const [q, what] of [
      ["COPY products TO PROGRAM 'id'", 'COPY'],
      ['COPY (select 1) TO STDOUT', 'COPY'],
      ['SET ROLE postgres', 'SET'],
      ['RESET ROLE', 'SET'],
      ['SET SESSION AUTHORIZATION postgres', 'SET'],
      ['DO $$ begin perform 1; end $$', 'DO'],
      ['BEGIN', 'transaction'],
      ['GRANT SELECT ON secrets TO public', 'GRANT'],
      ['CREATE TABLE x (a int)', 'CREATE'],
      ['DROP TABLE products', 'DROP'],
      ['TRUNCATE products', 'TRUNCATE'],
      ['select * into newtable from products', 'INTO'],
    ] as const)
      expect(analyseStatement(q).refusal, q).toContain(what);
  });

  it('refuses functions that reach outside table privileges, however they are written', () => {
    for (const q of [
      "select set_config('role', 'postgres', false)",
      "select pg_catalog.set_config('role', 'postgres', false)",
      "select pg_read_file('/etc/passwd')",
      "select PG_READ_FILE('/etc/passwd')",
      "select * from products where name = pg_read_binary_file('/etc/passwd')::text",
      "select lo_import('/etc/passwd')",
      "select * from dblink('host=127.0.0.1', 'delete from products') as t(a int)",
      "select query_to_xml('delete from products returning 1', true, true, '')",
      "select table_to_xml('secrets', true, true, '')",
      'select pg_advisory_lock(1)',
      'select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity) x',
    ])
      expect(analyseStatement(q).refusal, q).toMatch(/function .* is not run/);
  });

  it('INSERT, UPDATE and DELETE need their privilege (and SELECT when they read)', () => {
    expect(tables("insert into products(name) values ('x')")).toEqual(['products:INSERT']);
    expect(tables("insert into products(name) values ('x') returning id")).toEqual(['products:INSERT+SELECT']);
    expect(tables('update products set price = 1')).toEqual(['products:UPDATE']);
    expect(tables('update products set price = 1 where id = 2')).toEqual(['products:SELECT+UPDATE']);
    expect(tables('delete from products where id in (select id from old)').sort()).toEqual([
      'old:SELECT',
      'products:DELETE+SELECT',
    ]);
    expect(tables('explain analyze delete from products')).toEqual(['products:DELETE']);
    expect(tables('select * from products for update')).toEqual(['products:SELECT+UPDATE']);
  });

  it('quoted names keep their case; schema-qualified names keep their schema', () => {
    expect(tables('select * from "Products", "my schema"."x""y"')).toEqual(['Products:SELECT', 'my schema.x"y:SELECT']);
  });

  it('a syntax error is reported with its position', () => {
    expect(() => analyseStatement('selec * from products')).toThrow(SqlSyntaxError);
  });
});
