/**
 * What one SQL string would do, read with PostgreSQL's own parser (libpg-query:
 * the server's grammar compiled to WebAssembly): the statement kind, the
 * tables it touches and with which privilege, the functions it calls, and
 * whether it is one of the statements the query tool never runs.
 *
 * Only SELECT, INSERT, UPDATE, DELETE (also inside WITH) and EXPLAIN of them
 * run through the query tool: anything else (SET, SET ROLE, COPY, DO, DDL,
 * GRANT, transaction control, several statements in one string) is refused,
 * as are functions that reach outside the table privileges (files, large
 * objects, dblink, settings, SQL in a string such as query_to_xml).
 * The database's own GRANTs stay the last line (docs/databases.md).
 */
import { loadModule, parseSync } from 'libpg-query';

export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

export interface RelationUse {
  /** As written; undefined when unqualified (resolved against the session's search_path). */
  schema?: string;
  name: string;
  privileges: TablePrivilege[];
}

export interface StatementAnalysis {
  /** SELECT, INSERT, UPDATE, DELETE, EXPLAIN; for refused ones the parser's type (e.g. VariableSetStmt). */
  kind: string;
  relations: RelationUse[];
  /** Called functions as written (schema.name when qualified), lower-case. */
  functions: string[];
  /** Set when the statement is refused whatever the roles grant. */
  refusal?: string;
}

export class SqlSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number | undefined,
  ) {
    super(message);
  }
}

let loaded: Promise<void> | undefined;
/** Load the parser (WebAssembly) once; call before `analyseStatement`. */
export function loadSqlParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

/**
 * Functions refused by name (the last part, lower-case, in any schema): they
 * read or write server files, run programs or SQL held in a string, change
 * settings or roles, reach other servers, or hold locks past the statement.
 */
const REFUSED_FUNCTION =
  /^(pg_read_file|pg_read_binary_file|pg_ls_\w*|pg_stat_file|pg_file_\w*|lo_\w+|loread|lowrite|dblink\w*|set_config|\w*_to_xml\w*|ts_stat|crosstab\w*|connectby|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile\w*|pg_promote|pg_switch_wal|pg_create_\w+|pg_drop_replication_slot|pg_replication_\w+|pg_logical_\w+|pg_backup_\w+|pg_start_backup|pg_stop_backup|pg_\w*advisory\w*|pg_notify|pg_import_system_collations|pg_log_backend_memory_contexts|pg_wal_replay_\w+|pg_stat_reset\w*|pg_stat_statements_reset|binary_upgrade_\w+|pg_sequence_last_value|setval|pg_current_xact_id|txid_current)$/;

const RUNNABLE: Record<string, string> = {
  SelectStmt: 'SELECT',
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  ExplainStmt: 'EXPLAIN',
};

type Node = Record<string, unknown>;

export function analyseStatement(sql: string): StatementAnalysis {
  let tree: { stmts?: Array<{ stmt?: Node }> };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch (err) {
    const e = err as Error & { sqlDetails?: { cursorPosition?: number } };
    throw new SqlSyntaxError(e.message, e.sqlDetails?.cursorPosition);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length === 0) return { kind: 'EMPTY', relations: [], functions: [], refusal: 'the query is empty' };
  if (stmts.length > 1)
    return {
      kind: 'MULTIPLE',
      relations: [],
      functions: [],
      refusal: `the query holds ${stmts.length} statements; send one statement per call`,
    };
  const stmt = stmts[0]!.stmt ?? {};
  const type = Object.keys(stmt)[0] ?? 'unknown';
  const walker = new Walker();
  const kind = RUNNABLE[type];
  if (kind === undefined)
    return {
      kind: type,
      relations: [],
      functions: [],
      refusal: `${describeType(type)} statements are not run; the query tool runs SELECT, INSERT, UPDATE, DELETE and EXPLAIN`,
    };
  walker.visit(stmt, []);
  return {
    kind,
    relations: [...walker.relations.values()],
    functions: [...walker.functions],
    ...(walker.refusal ? { refusal: walker.refusal } : {}),
  };
}

class Walker {
  readonly relations = new Map<string, RelationUse>();
  readonly functions = new Set<string>();
  refusal: string | undefined;

  private use(rv: Node, privilege: TablePrivilege, scope: string[][]): void {
    const name = typeof rv.relname === 'string' ? rv.relname : '';
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
    if (typeof rv.catalogname === 'string') this.refuse('names with a database part (db.schema.table) are not run');
    // An unqualified name that a WITH in scope defines is that CTE, not a table.
    if (schema === undefined && scope.some((names) => names.includes(name))) return;
    const key = JSON.stringify([schema ?? null, name]);
    let r = this.relations.get(key);
    if (!r) this.relations.set(key, (r = { ...(schema !== undefined ? { schema } : {}), name, privileges: [] }));
    if (!r.privileges.includes(privilege)) r.privileges.push(privilege);
  }

  private refuse(why: string): void {
    this.refusal ??= why;
  }

  /** Visit any node; statements, relations and functions are handled, everything else walked through. */
  visit(node: unknown, scope: string[][]): void {
    if (Array.isArray(node)) {
      for (const n of node) this.visit(n, scope);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const n = node as Node;
    for (const [key, value] of Object.entries(n)) {
      if (value === null || typeof value !== 'object') continue;
      const v = value as Node;
      switch (key) {
        case 'SelectStmt':
        case 'InsertStmt':
        case 'UpdateStmt':
        case 'DeleteStmt':
          this.statement(key, v, scope);
          break;
        case 'ExplainStmt':
          this.visit(v.query, scope);
          break;
        case 'RangeVar':
          this.use(v, 'SELECT', scope);
          break;
        case 'FuncCall': {
          const parts = ((v.funcname as Node[] | undefined) ?? []).map((p) => {
            const sval = (p.String as Node | undefined)?.sval;
            return typeof sval === 'string' ? sval.toLowerCase() : '';
          });
          const name = parts.join('.');
          this.functions.add(name);
          const last = parts.at(-1) ?? '';
          if (REFUSED_FUNCTION.test(last))
            this.refuse(`function ${name}() is not run: it reaches outside table privileges`);
          this.visit(v.args, scope);
          this.visit(v.agg_order, scope);
          this.visit(v.agg_filter, scope);
          this.visit(v.over, scope);
          break;
        }
        default:
          if (key.endsWith('Stmt')) this.refuse(`${describeType(key)} statements are not run`);
          else this.visit(v, scope);
      }
    }
  }

  /** A statement (top level, in a CTE or a subquery): its WITH names are in scope for its parts. */
  private statement(type: string, s: Node, outer: string[][]): void {
    let scope = outer;
    const withClause = s.withClause as Node | undefined;
    if (withClause) {
      const ctes = ((withClause.ctes as Node[] | undefined) ?? []).map((c) => c.CommonTableExpr as Node);
      const names = ctes.map((c) => String(c.ctename));
      const recursive = withClause.recursive === true;
      ctes.forEach((c, i) => {
        // A CTE sees the ones before it; with RECURSIVE, all of them (itself included).
        this.visit(c.ctequery, [...outer, recursive ? names : names.slice(0, i)]);
      });
      scope = [...outer, names];
    }
    const rest = { ...s };
    delete rest.withClause;
    if (type === 'SelectStmt') {
      if (s.intoClause) this.refuse('SELECT … INTO creates a table and is not run');
      if (s.lockingClause) {
        // FOR UPDATE / SHARE needs UPDATE on what it locks.
        const before = new Set(this.relations.keys());
        this.visit(rest, scope);
        for (const [k, r] of this.relations)
          if (!before.has(k) && !r.privileges.includes('UPDATE')) r.privileges.push('UPDATE');
        return;
      }
      this.visit(rest, scope);
      return;
    }
    const target = s.relation as Node | undefined;
    delete rest.relation;
    const reads = s.whereClause !== undefined || s.returningList !== undefined;
    if (type === 'InsertStmt') {
      if (target) {
        this.use(target, 'INSERT', scope);
        if (s.returningList !== undefined) this.use(target, 'SELECT', scope);
        const conflict = s.onConflictClause as Node | undefined;
        if (conflict?.action === 'ONCONFLICT_UPDATE') this.use(target, 'UPDATE', scope);
      }
    } else if (type === 'UpdateStmt') {
      if (target) {
        this.use(target, 'UPDATE', scope);
        if (reads) this.use(target, 'SELECT', scope);
      }
    } else if (type === 'DeleteStmt') {
      if (target) {
        this.use(target, 'DELETE', scope);
        if (reads) this.use(target, 'SELECT', scope);
      }
    }
    this.visit(rest, scope);
  }
}

function describeType(type: string): string {
  const known: Record<string, string> = {
    VariableSetStmt: 'SET / RESET (including SET ROLE)',
    VariableShowStmt: 'SHOW',
    CopyStmt: 'COPY',
    DoStmt: 'DO',
    TransactionStmt: 'transaction control (BEGIN, COMMIT, ROLLBACK)',
    GrantStmt: 'GRANT / REVOKE',
    GrantRoleStmt: 'GRANT / REVOKE of roles',
    CallStmt: 'CALL',
    MergeStmt: 'MERGE',
    TruncateStmt: 'TRUNCATE',
    CreateStmt: 'CREATE TABLE',
    CreateTableAsStmt: 'CREATE TABLE AS',
    DropStmt: 'DROP',
    AlterRoleStmt: 'ALTER ROLE',
    CreateRoleStmt: 'CREATE ROLE',
    LockStmt: 'LOCK',
    ListenStmt: 'LISTEN',
    NotifyStmt: 'NOTIFY',
    PrepareStmt: 'PREPARE',
    ExecuteStmt: 'EXECUTE',
    DeclareCursorStmt: 'DECLARE CURSOR',
  };
  return (
    known[type] ??
    type
      .replace(/Stmt$/, '')
      .replace(/([a-z])([A-Z])/g, '$1 $2')
      .toUpperCase()
  );
}
