/**
 * One identity's session with one enrolled PostgreSQL database: the database
 * role it runs as, its connections (one per database name it uses), and the
 * checks and audit events around every query.
 *
 * The database role is created for the session by the admin account and
 * dropped when the session ends (docs/databases.md):
 *  - with `db_permissions` in the roles: a login role holding exactly the
 *    table privileges they grant (granted per database on first use), so
 *    PostgreSQL itself enforces table-level access;
 *  - otherwise: a login role that is a member of the `db_users` account the
 *    roles allow (it inherits that account's privileges, never the admin's).
 * Either way it can log in only until the identity's certificate expires, and
 * its connections carry `application_name` `mcp-access llm <user>`.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { AccessError, describeError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import type { DatabaseGrants } from '../../rbac/policy.js';
import type { DatabaseGate } from '../gate.js';
import { readSecret, type DatabaseConfig } from '../databases.js';
import { analyseStatement, loadSqlParser, SqlSyntaxError, type StatementAnalysis } from './statement.js';
import { jsonRow, resolveRelations, run } from './execute.js';

/** What a tool answers: JSON for the model, or an error it can read. */
export interface ToolAnswer {
  isError: boolean;
  json: Record<string, unknown>;
}

export interface QueryArgs {
  database?: string;
  sql: string;
  params?: unknown[];
  maxRows?: number;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** How long after statement_timeout a query without any answer is given up (the connection is then dropped). */
const BACKSTOP_MS = 5_000;
const STATEMENT_IN_AUDIT = 4096;

export class DatabaseSession {
  private readonly roleName: string;
  private readonly rolePassword = randomBytes(24).toString('base64url');
  /** The db_users account the session role is a member of (no db_permissions). */
  private member: string | undefined;
  private provisioning = false;
  private created = false;
  /** The session role's VALID UNTIL: the certificate's expiry (moved on when a renewed one resumes the session). */
  private validUntil = 0;
  private readonly clients = new Map<string, Promise<pg.Client>>();
  /** Per database: the schemas where table privileges were granted (revoked at the end). */
  private readonly granted = new Map<string, Promise<string[]>>();
  private closed: Promise<void> | undefined;

  constructor(
    private readonly config: DatabaseConfig,
    private readonly sessionId: string,
    private readonly gate: DatabaseGate,
    private readonly log: Logger,
  ) {
    const user = gate
      .peer()
      .user.toLowerCase()
      .replace(/[^a-z0-9_]+/g, '_')
      .slice(0, 32);
    this.roleName = `mcpa_${user}_${sessionId.replace(/-/g, '').slice(0, 12)}`;
  }

  get defaultDatabase(): string {
    return decodeURIComponent(new URL(this.config.uri).pathname.slice(1));
  }

  /** The database account queries run as (for list_databases and the audit trail). */
  get dbUser(): string {
    return this.roleName;
  }

  /** Create the session's database role. Rejects with ACCESS_DENIED or DATABASE_UNAVAILABLE. */
  async start(): Promise<void> {
    await loadSqlParser();
    const grants = this.grants();
    const peer = this.gate.peer();
    const base = { type: 'db.session.start', database: this.defaultDatabase, dbRole: this.roleName };
    try {
      if (!grants.reach.allowed) throw new AccessError('ACCESS_DENIED', grants.reach.reason);
      this.provisioning = grants.provisioning;
      if (!this.provisioning) {
        const user = grants.users[0];
        if (user === undefined)
          throw new AccessError(
            'ACCESS_DENIED',
            `the roles of ${peer.user} grant no db_permissions and name no db_users account for database "${this.config.name}"`,
            { hint: 'give the role db_permissions (a role per session) or a db_users entry naming an account' },
          );
        this.member = user;
      }
      await this.withAdmin(this.defaultDatabase, async (admin) => {
        const name = pg.escapeIdentifier(this.roleName);
        const until = peer.notAfter.toISOString();
        await admin.query('BEGIN');
        await admin.query(
          `CREATE ROLE ${name} LOGIN NOINHERIT NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 8 PASSWORD ${pg.escapeLiteral(this.rolePassword)} VALID UNTIL ${pg.escapeLiteral(until)}`,
        );
        if (this.member !== undefined) {
          // INHERIT: the session role has the account's privileges (never the admin's).
          await admin.query(`ALTER ROLE ${name} INHERIT`);
          await admin.query(`GRANT ${pg.escapeIdentifier(this.member)} TO ${name}`);
        }
        await admin.query(
          `COMMENT ON ROLE ${name} IS ${pg.escapeLiteral(`mcp-access session ${this.sessionId} of ${peer.user}`)}`,
        );
        await admin.query('COMMIT');
        this.created = true;
        this.validUntil = peer.notAfter.getTime();
      });
      this.log.info(
        `${peer.user} → ${this.config.name}: database role ${this.roleName} created (${this.provisioning ? 'db_permissions' : `member of ${this.member}`})`,
      );
      await this.gate.record({
        ...base,
        outcome: 'success',
        dbUser: this.member ?? this.roleName,
        provisioning: this.provisioning,
        applicationName: this.applicationName(),
      });
    } catch (err) {
      const e = err instanceof AccessError ? err : this.unavailable('cannot create the session role', err);
      await this.gate
        .record({ ...base, outcome: e.code === 'ACCESS_DENIED' ? 'denied' : 'error', reason: e.message, error: e.code })
        .catch(() => {});
      throw e;
    }
  }

  private grants(): DatabaseGrants {
    return this.gate.grants();
  }

  private applicationName(): string {
    return `mcp-access llm ${this.gate.peer().user}`.slice(0, 63);
  }

  /** Databases on the server that the roles' db_names allow. */
  async listDatabases(): Promise<ToolAnswer> {
    const client = await this.connection(this.defaultDatabase);
    const r = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname',
    );
    const grants = this.grants();
    const databases = r.rows.map((x) => x.datname).filter((d) => grants.nameDecision(d).allowed);
    return {
      isError: false,
      json: {
        databases,
        default: this.defaultDatabase,
        dbUser: this.member ?? this.roleName,
        access: this.provisioning ? 'db_permissions' : 'db_users',
      },
    };
  }

  /** Tables (and views) the session may use in a database, with its privileges on each. */
  async listTables(database: string | undefined, schema: string | undefined): Promise<ToolAnswer> {
    const db = database ?? this.defaultDatabase;
    const refused = this.checkDatabase(db);
    if (refused) return refused;
    const client = await this.connection(db);
    const r = await client.query<{ schema: string; name: string; kind: string; privileges: string[] }>(
      `SELECT n.nspname AS schema, c.relname AS name,
              CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
              ARRAY(SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE']) p
                    WHERE has_table_privilege(c.oid, p)) AS privileges
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r','p','v','m','f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND ($1::text IS NULL OR n.nspname = $1)
        ORDER BY 1, 2`,
      [schema ?? null],
    );
    const grants = this.grants();
    const tables = r.rows
      .map((t) => ({
        ...t,
        privileges: this.provisioning
          ? t.privileges.filter((p) => grants.tableDecision(t.schema, t.name, p).allowed)
          : t.privileges,
      }))
      .filter((t) => t.privileges.length > 0);
    return { isError: false, json: { database: db, tables } };
  }

  /** Columns, types and primary key of one table the session may use. */
  async describeTable(database: string | undefined, table: string): Promise<ToolAnswer> {
    const db = database ?? this.defaultDatabase;
    const refused = this.checkDatabase(db);
    if (refused) return refused;
    const client = await this.connection(db);
    const found = await client.query<{ schema: string; name: string; oid: number }>(
      `SELECT n.nspname AS schema, c.relname AS name, c.oid::int AS oid
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
      [table],
    );
    const t = found.rows[0];
    if (!t) return sqlError('42P01', `relation "${table}" does not exist`);
    const privileges = await client.query<{ p: string[] }>(
      `SELECT ARRAY(SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE']) p WHERE has_table_privilege($1::oid, p)) AS p`,
      [t.oid],
    );
    const may = privileges.rows[0]?.p ?? [];
    const grants = this.grants();
    if (may.length === 0 || (this.provisioning && !grants.tableDecision(t.schema, t.name, 'SELECT').allowed)) {
      return denied(
        this.provisioning
          ? grants.tableDecision(t.schema, t.name, 'SELECT').reason
          : `${this.member ?? this.roleName} has no privilege on ${t.schema}.${t.name}`,
      );
    }
    const columns = await client.query(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
              pg_get_expr(d.adbin, d.adrelid) AS "default",
              COALESCE(a.attnum = ANY(i.indkey), false) AS "primaryKey"
         FROM pg_attribute a
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
        WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [t.oid],
    );
    return { isError: false, json: { database: db, schema: t.schema, table: t.name, columns: columns.rows } };
  }

  /** Check, run and audit one statement. `rpcId` links the audit event to the tools/call request's. */
  async query(args: QueryArgs, rpcId: string | number | undefined): Promise<ToolAnswer> {
    const db = args.database ?? this.defaultDatabase;
    const started = performance.now();
    const event: Record<string, unknown> = {
      type: 'db.session.query',
      database: db,
      dbUser: this.member ?? this.roleName,
      // As args: audit.args (full, digest, none) and redact apply to the statement as to tool arguments.
      args: {
        statement: args.sql.length > STATEMENT_IN_AUDIT ? `${args.sql.slice(0, STATEMENT_IN_AUDIT)}…` : args.sql,
        ...(args.params?.length ? { params: args.params } : {}),
      },
      viaMcp: true,
      applicationName: this.applicationName(),
      ...(rpcId !== undefined ? { rpcId, requestEventId: this.gate.requestEventId(rpcId) } : {}),
    };
    const finish = async (answer: ToolAnswer, fields: Record<string, unknown>): Promise<ToolAnswer> => {
      await this.gate.record({
        ...event,
        ...fields,
        durationMs: Math.round((performance.now() - started) * 100) / 100,
      });
      return answer;
    };

    const name = this.grants().nameDecision(db);
    if (!name.allowed) {
      return finish(denied(name.reason, name.rule), { outcome: 'denied', reason: name.reason, rule: name.rule });
    }

    let analysis: StatementAnalysis | undefined;
    try {
      analysis = analyseStatement(args.sql);
    } catch (err) {
      if (!(err instanceof SqlSyntaxError)) throw err;
      if (this.config.statementCheck) {
        const message = `syntax error: ${err.message}${err.position !== undefined ? ` (at character ${err.position + 1})` : ''}`;
        return finish(sqlError('42601', message), { outcome: 'error', sqlstate: '42601', reason: message });
      }
    }
    if (analysis) {
      event.kind = analysis.kind;
      event.functions = analysis.functions;
    }
    if (this.config.statementCheck && analysis?.refusal) {
      return finish(denied(analysis.refusal), {
        outcome: 'denied',
        reason: `refused before sending: ${analysis.refusal}`,
      });
    }

    let client: pg.Client;
    try {
      client = await this.connection(db);
    } catch (err) {
      const e = err instanceof AccessError ? err : this.unavailable(`cannot connect to "${db}"`, err);
      return finish(unavailableAnswer(e), { outcome: 'error', reason: e.message, error: e.code });
    }

    try {
      if (analysis) {
        const resolved = await resolveRelations(client, analysis);
        event.tables = resolved.map((r) => ({ table: `${r.schema ?? '?'}.${r.name}`, privileges: r.privileges }));
        if (this.config.statementCheck) {
          const missing = resolved.find((r) => r.schema === undefined);
          if (missing) {
            const message = `relation "${missing.name}" does not exist`;
            return finish(sqlError('42P01', message), {
              outcome: 'denied',
              reason: `refused before sending: ${message}`,
            });
          }
          if (this.provisioning) {
            const grants = this.grants();
            for (const r of resolved) {
              for (const p of r.privileges) {
                const d = grants.tableDecision(r.schema!, r.name, p);
                if (!d.allowed)
                  return finish(denied(d.reason, d.rule), {
                    outcome: 'denied',
                    reason: `refused before sending: ${d.reason}`,
                    rule: d.rule,
                    role: d.role,
                  });
              }
            }
          }
        }
      }
      const max = Math.max(1, Math.min(args.maxRows ?? this.config.maxRows, this.config.maxRows));
      const { rows, rowCount, fields, command, truncated } = await run(
        client,
        args.sql,
        args.params ?? [],
        max,
        analysis,
        this.config.statementTimeoutMs + BACKSTOP_MS,
      );
      return finish(
        {
          isError: false,
          json: { database: db, command, rowCount, truncated, fields, rows: rows.map(jsonRow) },
        },
        { outcome: 'success', rows: rows.length, rowCount, truncated },
      );
    } catch (err) {
      const e = err as Error & { code?: string; severity?: string };
      if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && !/^(08|57P)/.test(e.code)) {
        return finish(sqlError(e.code, e.message), { outcome: 'error', sqlstate: e.code, reason: e.message });
      }
      // The connection broke (server down, terminated): the next query connects again.
      this.clients.delete(db);
      void client.end().catch(() => {});
      const u = this.unavailable(`the connection to "${db}" was lost`, err);
      return finish(unavailableAnswer(u), { outcome: 'error', reason: u.message, error: u.code });
    }
  }

  /** Database names outside db_names are refused (audited by the caller's tool). */
  private checkDatabase(db: string): ToolAnswer | undefined {
    const d = this.grants().nameDecision(db);
    return d.allowed ? undefined : denied(d.reason, d.rule);
  }

  /** The session role's connection to a database (grants its privileges there first, with db_permissions). */
  private connection(db: string): Promise<pg.Client> {
    let c = this.clients.get(db);
    if (!c) {
      c = (async () => {
        await this.extendValidity();
        if (this.provisioning) await this.grantIn(db);
        const client = new pg.Client({
          connectionString: this.url(db, this.roleName, this.rolePassword),
          application_name: this.applicationName(),
          statement_timeout: this.config.statementTimeoutMs,
          // No client-wide query_timeout: pg arms it for cursors too and never clears it; run() has its own backstop.
          connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        });
        client.on('error', (err) => {
          this.log.warn(`${this.config.name}/${db}: ${err.message}`);
          if (this.clients.get(db) === c) this.clients.delete(db);
        });
        try {
          await client.connect();
        } catch (err) {
          void client.end().catch(() => {});
          throw this.unavailable(`cannot connect to "${db}" as the session role`, err);
        }
        return client;
      })();
      c.catch(() => {
        if (this.clients.get(db) === c) this.clients.delete(db);
      });
      this.clients.set(db, c);
    }
    return c;
  }

  /** A session resumed with a renewed certificate: its role may log in until the new expiry. */
  private async extendValidity(): Promise<void> {
    const until = this.gate.peer().notAfter.getTime();
    if (until <= this.validUntil) return;
    await this.withAdmin(this.defaultDatabase, (admin) =>
      admin.query(
        `ALTER ROLE ${pg.escapeIdentifier(this.roleName)} VALID UNTIL ${pg.escapeLiteral(new Date(until).toISOString())}`,
      ),
    );
    this.validUntil = until;
  }

  /** With db_permissions: grant the session role exactly what they grant on this database's tables. */
  private grantIn(db: string): Promise<string[]> {
    let g = this.granted.get(db);
    if (!g) {
      g = this.withAdmin(db, async (admin) => {
        const grants = this.grants();
        const role = pg.escapeIdentifier(this.roleName);
        const tables = await admin.query<{ schema: string; name: string; oid: number }>(
          `SELECT n.nspname AS schema, c.relname AS name, c.oid::int AS oid
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r','p','v','m','f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`,
        );
        const schemas = new Set<string>();
        await admin.query('BEGIN');
        for (const t of tables.rows) {
          const privileges = grants.tablePrivileges(t.schema, t.name);
          if (privileges.length === 0) continue;
          schemas.add(t.schema);
          const target = `${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(t.name)}`;
          await admin.query(`GRANT ${privileges.join(', ')} ON TABLE ${target} TO ${role}`);
          if (privileges.includes('INSERT')) {
            // serial columns: their sequences (identity columns need nothing).
            const seqs = await admin.query<{ seq: string }>(
              `SELECT s.oid::regclass::text AS seq FROM pg_class s JOIN pg_depend d ON d.objid = s.oid
                WHERE s.relkind = 'S' AND d.deptype = 'a' AND d.refobjid = $1::oid`,
              [t.oid],
            );
            for (const s of seqs.rows) await admin.query(`GRANT USAGE ON SEQUENCE ${s.seq} TO ${role}`);
          }
        }
        for (const s of schemas) await admin.query(`GRANT USAGE ON SCHEMA ${pg.escapeIdentifier(s)} TO ${role}`);
        await admin.query('COMMIT');
        return [...schemas];
      });
      this.granted.set(db, g);
      g.catch(() => {
        if (this.granted.get(db) === g) this.granted.delete(db);
      });
    }
    return g;
  }

  /** Close the connections, then revoke and drop the session role (disable it if it cannot be dropped). Memoised. */
  close(reason: string): Promise<void> {
    this.closed ??= (async () => {
      const clients = [...this.clients.values()];
      this.clients.clear();
      await Promise.all(clients.map((c) => c.then((x) => x.end()).catch(() => {})));
      if (!this.created) return;
      let fate = 'dropped';
      try {
        for (const [db, schemasP] of this.granted) {
          const schemas = await schemasP.catch(() => [] as string[]);
          if (schemas.length === 0) continue;
          await this.withAdmin(db, async (admin) => {
            const role = pg.escapeIdentifier(this.roleName);
            for (const s of schemas) {
              const schema = pg.escapeIdentifier(s);
              await admin.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${schema} FROM ${role}`);
              await admin.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${schema} FROM ${role}`);
              await admin.query(`REVOKE ALL ON SCHEMA ${schema} FROM ${role}`);
            }
          });
        }
        await this.withAdmin(this.defaultDatabase, async (admin) => {
          await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [
            this.roleName,
          ]);
          try {
            await admin.query(`DROP ROLE ${pg.escapeIdentifier(this.roleName)}`);
          } catch (err) {
            // It owns something or holds privileges elsewhere: it can no longer log in.
            fate = 'disabled';
            this.log.warn(
              `${this.config.name}: cannot drop role ${this.roleName} (${describeError(err)}); disabling it`,
            );
            await admin.query(`ALTER ROLE ${pg.escapeIdentifier(this.roleName)} NOLOGIN`);
          }
        });
      } catch (err) {
        fate = 'left behind';
        this.log.error(
          `${this.config.name}: role ${this.roleName} could not be removed (${describeError(err)}); it cannot log in after ${this.gate.peer().notAfter.toISOString()}`,
        );
      }
      await this.gate
        .record({
          type: 'db.session.end',
          database: this.defaultDatabase,
          dbRole: this.roleName,
          dbRoleFate: fate,
          outcome: fate === 'left behind' ? 'error' : 'success',
          reason,
        })
        .catch((err: Error) => this.log.error(`audit: ${err.message}`));
    })();
    return this.closed;
  }

  private async withAdmin<T>(db: string, fn: (admin: pg.Client) => Promise<T>): Promise<T> {
    const password = await readSecret(this.config.admin.password, `database "${this.config.name}"`);
    const admin = new pg.Client({
      connectionString: this.url(db, this.config.admin.user, password),
      application_name: 'mcp-access provisioning',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: 30_000,
    });
    admin.on('error', (err) => this.log.debug(`${this.config.name}: admin connection: ${err.message}`));
    try {
      await admin.connect();
    } catch (err) {
      void admin.end().catch(() => {});
      throw this.unavailable(`cannot connect to "${db}" as the admin account ${this.config.admin.user}`, err);
    }
    try {
      return await fn(admin);
    } catch (err) {
      await admin.query('ROLLBACK').catch(() => {});
      throw err instanceof AccessError ? err : this.unavailable(`provisioning in "${db}" failed`, err);
    } finally {
      await admin.end().catch(() => {});
    }
  }

  private url(db: string, user: string, password: string): string {
    const u = new URL(this.config.uri);
    u.username = encodeURIComponent(user);
    u.password = encodeURIComponent(password);
    u.pathname = `/${encodeURIComponent(db)}`;
    return u.href;
  }

  private unavailable(what: string, err: unknown): AccessError {
    const e = err as Error & { code?: string };
    const detail = e?.message || e?.code || String(err);
    return new AccessError('DATABASE_UNAVAILABLE', `database "${this.config.name}": ${what}: ${detail}`);
  }
}

function sqlError(sqlstate: string, message: string): ToolAnswer {
  return { isError: true, json: { error: { sqlstate, message } } };
}

function denied(reason: string, rule?: string): ToolAnswer {
  return {
    isError: true,
    json: {
      error: {
        code: 'QUERY_DENIED',
        sqlstate: '42501',
        message: `refused before sending: ${reason}`,
        ...(rule ? { rule } : {}),
      },
    },
  };
}

function unavailableAnswer(e: AccessError): ToolAnswer {
  return { isError: true, json: { error: { code: e.code, message: e.message, hint: e.hint } } };
}
