/**
 * The tools of a database session's built-in MCP server, described for a
 * language model: what each does, what the identity may do, and what an
 * error means. Answers are JSON text (and the same object as structured
 * content); errors are tool errors (`isError`) carrying the SQLSTATE.
 */
import { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { VERSION } from '../../version.js';
import type { DatabaseConfig } from '../databases.js';
import type { DatabaseSession, ToolAnswer } from './session.js';

export const DATABASE_TOOLS = ['list_databases', 'list_tables', 'describe_table', 'query'] as const;

export function buildDatabaseServer(config: DatabaseConfig, db: DatabaseSession): McpServer {
  const server = new McpServer(
    { name: `mcp-access-postgres-${config.name}`, version: VERSION },
    {
      capabilities: { tools: {} },
      instructions:
        `PostgreSQL database "${config.name}"${config.description ? ` (${config.description})` : ''}, reached through mcp-access. ` +
        'Start with list_tables, then describe_table, then query. Every query is checked against your roles and audited.',
    },
  );
  const database = z
    .string()
    .min(1)
    .optional()
    .describe(
      `Database name on the server; default "${db.defaultDatabase}". list_databases shows the ones you may use.`,
    );

  server.registerTool(
    'list_databases',
    {
      title: 'List databases',
      description:
        'Lists the PostgreSQL databases on this server that your roles allow (db_names), the default one, and the database account your queries run as.',
      inputSchema: z.object({}),
      annotations: { readOnlyHint: true },
    },
    async () => answer(await safely(() => db.listDatabases())),
  );

  server.registerTool(
    'list_tables',
    {
      title: 'List tables',
      description:
        'Lists the tables and views you may use in a database, each with the privileges you have on it (SELECT, INSERT, UPDATE, DELETE). Tables you have no privilege on are not listed.',
      inputSchema: z.object({
        database,
        schema: z.string().min(1).optional().describe('Only this schema (e.g. "public").'),
      }),
      annotations: { readOnlyHint: true },
    },
    async ({ database: d, schema }) => answer(await safely(() => db.listTables(d, schema))),
  );

  server.registerTool(
    'describe_table',
    {
      title: 'Describe a table',
      description:
        'Columns of a table or view you may use: name, type, whether it may be null, default, and whether it is part of the primary key.',
      inputSchema: z.object({
        database,
        table: z.string().min(1).describe('Table name, optionally schema-qualified: "products" or "public.products".'),
      }),
      annotations: { readOnlyHint: true },
    },
    async ({ database: d, table }) => answer(await safely(() => db.describeTable(d, table))),
  );

  server.registerTool(
    'query',
    {
      title: 'Run one SQL statement',
      description:
        'Runs ONE PostgreSQL statement (SELECT, INSERT, UPDATE, DELETE, or EXPLAIN of one) and returns ' +
        '{command, rowCount, truncated, fields, rows} with rows as JSON objects. Pass values as parameters ($1, $2, …) ' +
        `instead of writing them into the SQL. At most ${config.maxRows} rows are returned (truncated: true when there were more); ` +
        `a statement running longer than ${Math.round(config.statementTimeoutMs / 1000)} s is cancelled. ` +
        'Refused before it reaches the database (error.code QUERY_DENIED): several statements in one string, SET, COPY, DO, DDL, ' +
        'transaction control, functions that reach files or other servers, and tables your roles do not grant. ' +
        'A database error is returned as error.sqlstate and error.message (e.g. 42501 permission denied, 42P01 no such table).',
      inputSchema: z.object({
        database,
        sql: z
          .string()
          .min(1)
          .describe('One SQL statement, e.g. "SELECT id, name, price FROM products WHERE price < $1".'),
        params: z
          .array(z.union([z.string(), z.number(), z.boolean(), z.null()]))
          .optional()
          .describe('Values for $1, $2, … in order.'),
        max_rows: z
          .number()
          .int()
          .min(1)
          .max(config.maxRows)
          .optional()
          .describe(`Return at most this many rows (default and maximum ${config.maxRows}).`),
      }),
    },
    async ({ database: d, sql, params, max_rows }, ctx) =>
      answer(await safely(() => db.query({ database: d, sql, params, maxRows: max_rows }, ctx.mcpReq.id))),
  );
  return server;
}

/** An unexpected failure (a broken connection, an audit log that cannot be written) as a tool error. */
async function safely(fn: () => Promise<ToolAnswer>): Promise<ToolAnswer> {
  try {
    return await fn();
  } catch (err) {
    const e = err as Error & { code?: string; hint?: string };
    const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
    return {
      isError: true,
      json: {
        error: {
          ...(sqlstate ? { sqlstate } : { code: e.code ?? 'DATABASE_UNAVAILABLE' }),
          message: e.message,
          ...(e.hint ? { hint: e.hint } : {}),
        },
      },
    };
  }
}

function answer(a: ToolAnswer): { content: Array<{ type: 'text'; text: string }>; isError?: boolean } {
  return { content: [{ type: 'text', text: JSON.stringify(a.json) }], ...(a.isError ? { isError: true } : {}) };
}
