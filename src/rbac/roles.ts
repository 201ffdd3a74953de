/**
 * Role documents in Teleport's YAML shape, as the proxy reads them:
 *
 *   kind: role
 *   version: v8                # v6, v7 or v8
 *   metadata: { name: dev }
 *   spec:
 *     allow: { app_labels: {env: dev}, mcp: {tools: ['read_*']} }
 *     deny:  { mcp: {tools: [write_file]} }
 *
 * `mcp_tools` written directly under allow/deny (as the read-only example in
 * Teleport's MCP access guide does) is read like `mcp.tools`.
 *
 * Rule of thumb for what is an error and what is a warning: anything that
 * could silently drop or weaken a deny, or make a grant ambiguous, is a
 * CONFIG_INVALID error naming where it is; anything mcp-access simply does not
 * use (other Teleport fields) is a warning and grants nothing.
 * See docs/rbac.md for every decision.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, parseDocument, type Document } from 'yaml';
import { AccessError } from '../errors.js';
import { compileLabels, LabelSelectorError, NO_LABELS, withUnevaluable, type LabelMatchers } from './labels.js';
import { compilePattern, InvalidRegexError, unevaluable, type Pattern } from './patterns.js';
import { ArgumentRuleError, parseArgumentRules, type ArgumentRule } from './arguments.js';
import { ExpressionError, parseExpression } from './expression.js';

export type { LabelMatchers } from './labels.js';

export interface ToolMatcher extends Pattern {
  /** Where the entry is, e.g. `spec.allow.mcp.tools[2]` or `spec.deny.mcp_tools[0]`. */
  readonly field: string;
  /**
   * Rules on the call's arguments (a tool entry written as a mapping with
   * `name` and `arguments`; docs/rbac.md, "Arguments"). Plain data: Policy
   * compiles them.
   */
  readonly arguments?: ArgumentRule[];
}

export interface RoleRules {
  appLabels: LabelMatchers;
  tools: ToolMatcher[];
  /** `mcp.roots`: client root URIs a server may be told about (servers with `client_roots: true`). */
  roots: ToolMatcher[];
  /** `db_labels`, `db_names`, `db_users`, `db_permissions` (databases: docs/databases.md). */
  db: DbRules;
  /** `mcp.resources`: resource URIs (literals, globs, ^…$ regexes); undefined when the role does not write it. */
  resources?: ToolMatcher[];
  /** `mcp.prompts`: prompt names; undefined when the role does not write it. */
  prompts?: ToolMatcher[];
}

/**
 * Database conditions, kept as plain JSON (entries exactly as written, already
 * validated): roles are sent to remote agents as JSON; Policy compiles them.
 */
export interface DbRules {
  /** `db_labels` as written, each value a list; undefined when the side has none. */
  labels?: Record<string, string[]>;
  /** `db_names`: database names (literal, glob, ^…$ regex). */
  names: string[];
  /** `db_users`: database accounts a session may run as. */
  users: string[];
  permissions: DbPermissionRule[];
}

/** One `db_permissions` entry: `match: {object_kind: table, schema: public, name: products}` → `[SELECT]`. */
export interface DbPermissionRule {
  /** Keys object_kind, schema, name; values as written (literal, glob, ^…$ regex), each a list. */
  match: Record<string, string[]>;
  /** Upper-case table privileges (DB_PRIVILEGES). */
  permissions: string[];
  /** Where the entry is, e.g. `spec.allow.db_permissions[0]`. */
  field: string;
}

/** The table privileges db_permissions may grant. */
export const DB_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] as const;
const DB_MATCH_KEYS = ['object_kind', 'schema', 'name'];
const NO_DB: DbRules = { names: [], users: [], permissions: [] };

export interface Role {
  name: string;
  /** Where it was defined: `roles[0]`, a file path, or `file (document 2)`. */
  source: string;
  /** As written; `v8` when the document has none (with a warning). */
  version: string;
  allow: RoleRules;
  deny: RoleRules;
  /**
   * The role allows MCP tools but writes no `spec.allow.app_labels`: its
   * allow side covers every server (see docs/rbac.md, "Roles without
   * app_labels"). Loading warns about it.
   */
  toolsOnly: boolean;
}

export const SUPPORTED_VERSIONS = ['v6', 'v7', 'v8'] as const;

const TOP_FIELDS = new Set(['kind', 'version', 'metadata', 'spec']);
const METADATA_FIELDS = new Set(['name', 'description', 'labels', 'namespace', 'revision']);
const SPEC_FIELDS = new Set(['allow', 'deny']);
const SIDE_FIELDS = new Set([
  'app_labels',
  'app_labels_expression',
  'mcp',
  'mcp_tools',
  'db_labels',
  'db_names',
  'db_users',
  'db_permissions',
]);
/** Teleport's other `spec` fields: loaded with a warning. Any other key in `spec` refuses the role. */
const TELEPORT_SPEC_FIELDS = new Set(['options']);
/** Teleport's other allow/deny conditions (RoleConditions): loaded with a warning. */
const TELEPORT_SIDE_FIELDS = new Set([
  'logins',
  'node_labels',
  'node_labels_expression',
  'rules',
  'kubernetes_groups',
  'kubernetes_users',
  'kubernetes_labels',
  'kubernetes_labels_expression',
  'kubernetes_resources',
  'cluster_labels',
  'cluster_labels_expression',
  'db_labels_expression',
  'db_service_labels',
  'db_service_labels_expression',
  'db_roles',
  'aws_role_arns',
  'azure_identities',
  'gcp_service_accounts',
  'windows_desktop_labels',
  'windows_desktop_labels_expression',
  'windows_desktop_logins',
  'host_groups',
  'host_sudoers',
  'impersonate',
  'review_requests',
  'request',
  'join_sessions',
  'group_labels',
  'group_labels_expression',
  'desktop_groups',
  'spiffe',
  'account_assignments',
  'github_permissions',
  'workload_identity_labels',
  'workload_identity_labels_expression',
]);
/** Keys under `mcp`: `tools`, `roots` (client roots a role may forward), `resources` and `prompts`. */
const MCP_FIELDS = new Set(['tools', 'roots', 'resources', 'prompts']);
const MCP_IGNORED_FIELDS = new Set<string>();

/**
 * Where a key of a role document is written, as `line L, column C: `, when
 * the document came from YAML text; '' otherwise.
 */
export type Locate = (path: Array<string | number>) => string;
const NOWHERE: Locate = () => '';

export interface LoadRolesOptions {
  /** Role documents from the proxy config's `roles` key. */
  inline: unknown[];
  /** Files or directories (every `.yaml`/`.yml` directly inside, sorted by name). */
  files: string[];
  /** Relative paths in `files` resolve against it (the config file's directory). */
  baseDir: string;
  /** The proxy configuration file `inline` came from: errors in inline roles then name line and column. */
  configPath?: string;
}

/** A role document as written and where it came from: what a proxy sends its agents (they parse it themselves). */
export interface RoleDocument {
  where: string;
  doc: unknown;
}

export function loadRoles(opts: LoadRolesOptions): { roles: Role[]; warnings: string[]; documents: RoleDocument[] } {
  const warnings: string[] = [];
  const roles: Role[] = [];
  const documents: RoleDocument[] = [];
  const seen = new Map<string, string>();
  const add = (role: Role) => {
    const earlier = seen.get(role.name);
    if (earlier !== undefined) {
      // Which one should win is ambiguous, and a second definition could hide a deny.
      throw new AccessError('CONFIG_INVALID', `${role.source}: role "${role.name}" is already defined in ${earlier}`, {
        hint: 'every role name must be defined once; rename or remove one of them',
      });
    }
    seen.set(role.name, role.source);
    roles.push(role);
  };

  const inlineAt = opts.configPath ? locatorForConfig(opts.configPath) : undefined;
  opts.inline.forEach((doc, i) => {
    documents.push({ where: `roles[${i}]`, doc });
    add(
      parseRole(doc, `roles[${i}]`, (w) => warnings.push(w), inlineAt ? (p) => inlineAt(['roles', i, ...p]) : NOWHERE),
    );
  });
  opts.files.forEach((given, i) => {
    for (const file of expandRoleFiles(given, resolve(opts.baseDir, given), `roles_files[${i}]`)) {
      for (const { doc, where, locate } of readYamlDocuments(file.shown, file.path)) {
        documents.push({ where, doc });
        add(parseRole(doc, where, (w) => warnings.push(w), locate));
      }
    }
  });
  return { roles, warnings, documents };
}

/** Roles from documents a proxy sent (already checked there: a name defined twice never gets here). */
export function rolesFromDocuments(documents: RoleDocument[]): Role[] {
  return documents.map(({ where, doc }) => parseRole(doc, where, () => {}));
}

/** Parse one role document. `where` prefixes every error and warning. */
export function parseRole(doc: unknown, where: string, warn: (msg: string) => void, locate: Locate = NOWHERE): Role {
  const fail = (field: string, what: string): never => {
    throw new AccessError('CONFIG_INVALID', `${where}: ${field}: ${what}`, {
      hint: 'fix the role document (see docs/rbac.md)',
    });
  };
  if (!isMapping(doc))
    return fail('(document)', 'a role document must be a mapping with kind, version, metadata and spec');
  for (const k of Object.keys(doc))
    if (!TOP_FIELDS.has(k)) warn(`${where}: ${k}: not a role field mcp-access uses (ignored)`);

  if (doc.kind !== 'role')
    fail(
      'kind',
      doc.kind === undefined ? 'is required and must be "role"' : `is ${JSON.stringify(doc.kind)}, expected "role"`,
    );

  let version = 'v8';
  if (doc.version === undefined) {
    warn(`${where}: version: missing; read as v8 (the semantics of v6, v7 and v8 are the same for MCP access)`);
  } else if (typeof doc.version === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(doc.version)) {
    version = doc.version;
  } else {
    fail('version', `${JSON.stringify(doc.version)} is not supported (use ${SUPPORTED_VERSIONS.join(', ')})`);
  }

  if (!isMapping(doc.metadata)) fail('metadata', 'is required and must be a mapping with name');
  const metadata = doc.metadata as Record<string, unknown>;
  for (const k of Object.keys(metadata))
    if (!METADATA_FIELDS.has(k)) warn(`${where}: metadata.${k}: not used by mcp-access (ignored)`);
  if (typeof metadata.name !== 'string' || metadata.name.trim() === '')
    fail('metadata.name', 'is required and must be a non-empty string');
  const name = metadata.name as string;
  if (name !== name.trim()) fail('metadata.name', `${JSON.stringify(name)} has leading or trailing spaces`);

  let spec: Record<string, unknown> = {};
  if (doc.spec !== undefined && doc.spec !== null) {
    if (!isMapping(doc.spec)) fail('spec', 'must be a mapping with allow and/or deny');
    spec = doc.spec as Record<string, unknown>;
  } else {
    warn(`${where}: spec: missing; role "${name}" allows nothing`);
  }
  for (const k of Object.keys(spec)) {
    if (TELEPORT_SPEC_FIELDS.has(k)) warn(`${where}: spec.${k}: not used by mcp-access (ignored)`);
    else if (!SPEC_FIELDS.has(k)) unknownKey(where, locate, ['spec', k], [...SPEC_FIELDS, ...TELEPORT_SPEC_FIELDS]);
  }

  const allow = parseSide(spec.allow, 'allow', where, warn, fail, locate);
  const deny = parseSide(spec.deny, 'deny', where, warn, fail, locate);
  const toolsOnly = allow.tools.length > 0 && !allow.appLabels.written;
  if (toolsOnly) {
    warn(
      `${where}: role "${name}" allows MCP tools but has no spec.allow.app_labels: its tools apply to every server ` +
        `(see docs/rbac.md, "Roles without app_labels"); add app_labels to narrow it`,
    );
  }
  if (allow.appLabels.written && allow.appLabels.entries.length > 0 && allow.tools.length === 0) {
    warn(
      `${where}: role "${name}" reaches servers but allows no MCP tools (no spec.allow.mcp.tools): its servers show no tools`,
    );
  }
  return { name, source: where, version, allow, deny, toolsOnly };
}

type Fail = (field: string, what: string) => never;

/**
 * A key mcp-access does not know in a role's spec: the role is refused, since
 * a misspelt key (`app_lables`) would otherwise widen a grant (no app_labels
 * means every server) or drop a deny.
 */
function unknownKey(where: string, locate: Locate, path: string[], known: string[]): never {
  const key = path[path.length - 1]!;
  const guess = closest(key, known);
  throw new AccessError(
    'CONFIG_INVALID',
    `${where}: ${locate(path)}${path.join('.')}: unknown key${guess ? ` — did you mean "${guess}"?` : ''}`,
    {
      hint: 'a role with an unknown key is refused (it could be a misspelt grant or deny); fix the key (see docs/rbac.md)',
    },
  );
}

/** The known key nearest to `key` (edit distance at most 2, or 3 for long keys), if any. */
export function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = key.length >= 8 ? 3 : 2;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d <= bestD && (best === undefined || d < bestD)) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and
 * adjacent transpositions (`app_lables`).
 */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

function parseSide(
  raw: unknown,
  side: 'allow' | 'deny',
  where: string,
  warn: (msg: string) => void,
  fail: Fail,
  locate: Locate,
): RoleRules {
  const base = `spec.${side}`;
  if (raw === undefined || raw === null) return { appLabels: NO_LABELS, tools: [], roots: [], db: NO_DB };
  if (!isMapping(raw)) return fail(base, 'must be a mapping');
  for (const k of Object.keys(raw)) {
    if (TELEPORT_SIDE_FIELDS.has(k))
      warn(`${where}: ${base}.${k}: not used by mcp-access (ignored${side === 'allow' ? '; it grants nothing' : ''})`);
    else if (!SIDE_FIELDS.has(k))
      unknownKey(where, locate, ['spec', side, k], [...SIDE_FIELDS, ...TELEPORT_SIDE_FIELDS]);
  }

  let appLabels: LabelMatchers;
  try {
    appLabels = compileLabels(raw.app_labels, side, `${base}.app_labels`, (w) => warn(`${where}: ${w}`));
  } catch (err) {
    if (err instanceof LabelSelectorError) return fail(err.field, err.message);
    throw err;
  }
  if (raw.app_labels_expression !== undefined && raw.app_labels_expression !== null) {
    const expression = raw.app_labels_expression;
    if (typeof expression !== 'string' || expression.trim() === '')
      return fail(`${base}.app_labels_expression`, 'must be a predicate expression (a string)');
    try {
      parseExpression(expression);
    } catch (err) {
      if (!(err instanceof ExpressionError)) throw err;
      if (side === 'deny') {
        // Teleport's language is larger than what mcp-access reads: a deny it cannot read denies every server.
        warn(
          `${where}: ${base}.app_labels_expression: ${err.message}; mcp-access cannot evaluate it, so this deny matches every server (fail closed)`,
        );
        appLabels = withUnevaluable(appLabels, 'app_labels_expression');
      } else {
        warn(
          `${where}: ${base}.app_labels_expression: ${err.message}; mcp-access cannot evaluate it, so this role reaches no server (see docs/rbac.md, "app_labels_expression")`,
        );
        appLabels = withUnevaluable(appLabels, 'app_labels_expression');
      }
    }
    if (appLabels.unevaluable === undefined)
      appLabels = { ...appLabels, written: true, expression, ...(appLabels.written ? {} : { expressionOnly: true }) };
  }

  const tools: ToolMatcher[] = [];
  let roots: ToolMatcher[] = [];
  let resources: ToolMatcher[] | undefined;
  let prompts: ToolMatcher[] | undefined;
  if (raw.mcp !== undefined && raw.mcp !== null) {
    if (!isMapping(raw.mcp)) return fail(`${base}.mcp`, 'must be a mapping with tools');
    for (const k of Object.keys(raw.mcp)) {
      if (MCP_IGNORED_FIELDS.has(k)) warn(`${where}: ${base}.mcp.${k}: not used by mcp-access (ignored)`);
      else if (!MCP_FIELDS.has(k))
        unknownKey(where, locate, ['spec', side, 'mcp', k], [...MCP_FIELDS, ...MCP_IGNORED_FIELDS]);
    }
    tools.push(...parseTools(raw.mcp.tools, side, `${base}.mcp.tools`, where, warn, fail, locate));
    roots = parseTools(raw.mcp.roots, side, `${base}.mcp.roots`, where, warn, fail);
    // Written (even empty or null) means the role decides; absent means rbac.default_resources / default_prompts.
    if (Object.hasOwn(raw.mcp, 'resources'))
      resources = parseTools(raw.mcp.resources, side, `${base}.mcp.resources`, where, warn, fail);
    if (Object.hasOwn(raw.mcp, 'prompts'))
      prompts = parseTools(raw.mcp.prompts, side, `${base}.mcp.prompts`, where, warn, fail);
  }
  if (raw.mcp_tools !== undefined) {
    if (raw.mcp !== undefined && isMapping(raw.mcp) && raw.mcp.tools !== undefined) {
      warn(`${where}: ${base} has both mcp.tools and mcp_tools; both lists apply`);
    }
    tools.push(...parseTools(raw.mcp_tools, side, `${base}.mcp_tools`, where, warn, fail, locate));
  }
  return {
    appLabels,
    tools,
    roots,
    ...(resources ? { resources } : {}),
    ...(prompts ? { prompts } : {}),
    db: parseDb(raw, side, base, where, warn, fail),
  };
}

/** db_labels, db_names, db_users, db_permissions: validated here, kept as written (plain JSON). */
function parseDb(
  raw: Record<string, unknown>,
  side: 'allow' | 'deny',
  base: string,
  where: string,
  warn: (msg: string) => void,
  fail: Fail,
): DbRules {
  const db: DbRules = { names: [], users: [], permissions: [] };
  if (raw.db_labels !== undefined) {
    try {
      const m = compileLabels(raw.db_labels, side, `${base}.db_labels`, (w) => warn(`${where}: ${w}`));
      db.labels = Object.fromEntries(m.entries.map((e) => [e.key, e.values.map((v) => v.text)]));
    } catch (err) {
      if (err instanceof LabelSelectorError) return fail(err.field, err.message);
      throw err;
    }
  }
  const names = (key: 'db_names' | 'db_users'): string[] => {
    const v = raw[key];
    if (v === undefined || v === null) return [];
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string'))
      return fail(`${base}.${key}`, 'must be a list of names, globs or ^…$ regexes');
    list.forEach((entry: string, i) => {
      try {
        if (compilePattern(entry, side).kind === 'unevaluable')
          warn(
            `${where}: ${base}.${key}[${i}]: "${entry}" is a template, which mcp-access cannot expand; ${side === 'deny' ? 'it matches every name (fail closed)' : 'it grants nothing'}`,
          );
      } catch (err) {
        if (err instanceof InvalidRegexError)
          fail(`${base}.${key}[${i}]`, `invalid regular expression ${JSON.stringify(entry)}: ${err.message}`);
        throw err;
      }
    });
    return list;
  };
  db.names = names('db_names');
  db.users = names('db_users');
  const perms = raw.db_permissions;
  if (perms !== undefined && perms !== null) {
    if (!Array.isArray(perms)) return fail(`${base}.db_permissions`, 'must be a list of {match, permissions}');
    perms.forEach((entry: unknown, i) => {
      const at = `${base}.db_permissions[${i}]`;
      if (!isMapping(entry)) return fail(at, 'must be a mapping with match and permissions');
      for (const k of Object.keys(entry))
        if (k !== 'match' && k !== 'permissions') fail(`${at}.${k}`, 'unknown key (known: match, permissions)');
      if (!isMapping(entry.match)) return fail(`${at}.match`, 'must be a mapping of object_kind, schema and name');
      const match: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(entry.match)) {
        if (!DB_MATCH_KEYS.includes(k)) fail(`${at}.match.${k}`, `unknown key (known: ${DB_MATCH_KEYS.join(', ')})`);
        const list = Array.isArray(v) ? v : [v];
        if (!list.every((x) => typeof x === 'string' && x !== ''))
          fail(`${at}.match.${k}`, 'must be a name, a glob, a ^…$ regex or a list of them');
        for (const x of list as string[]) {
          try {
            compilePattern(x, side);
          } catch (err) {
            if (err instanceof InvalidRegexError)
              fail(`${at}.match.${k}`, `invalid regular expression ${JSON.stringify(x)}: ${err.message}`);
            throw err;
          }
        }
        match[k] = list as string[];
      }
      if ((match.object_kind ?? ['table']).some((k) => k !== 'table' && k !== '*'))
        fail(`${at}.match.object_kind`, 'only table is supported');
      const p = entry.permissions;
      const plist = typeof p === 'string' ? [p] : p;
      if (!Array.isArray(plist) || plist.length === 0 || !plist.every((x) => typeof x === 'string'))
        return fail(`${at}.permissions`, `must be a list of privileges (${DB_PRIVILEGES.join(', ')})`);
      const upper = plist.map((x) => x.trim().toUpperCase());
      for (const x of upper)
        if (!(DB_PRIVILEGES as readonly string[]).includes(x) && x !== 'ALL')
          fail(`${at}.permissions`, `"${x}" is not a table privilege (${DB_PRIVILEGES.join(', ')}, ALL)`);
      const expanded = upper.includes('ALL') ? [...DB_PRIVILEGES] : [...new Set(upper)];
      db.permissions.push({ match, permissions: expanded, field: at });
    });
  }
  return db;
}

function parseTools(
  raw: unknown,
  side: 'allow' | 'deny',
  field: string,
  where: string,
  warn: (msg: string) => void,
  fail: Fail,
  /** Given for tool lists: entries may then be mappings with `name` and `arguments`. */
  locate?: Locate,
): ToolMatcher[] {
  if (raw === undefined || raw === null) return [];
  // Teleport accepts a single string where a list is expected.
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list)) {
    if (side === 'deny') {
      warn(
        `${where}: ${field}: must be a list of tool names; this deny cannot be evaluated and matches every tool (fail closed)`,
      );
      return [{ ...unevaluable(JSON.stringify(raw), true), field }];
    }
    return fail(field, 'must be a list of tool names, globs or ^…$ regexes');
  }
  const out: ToolMatcher[] = [];
  list.forEach((entry, i) => {
    const at = `${field}[${i}]`;
    if (locate !== undefined && isMapping(entry) && Object.hasOwn(entry, 'name')) {
      out.push(parseToolWithArguments(entry, side, at, where, fail, locate));
      return;
    }
    if (typeof entry !== 'string') {
      if (side === 'deny') {
        warn(
          `${where}: ${at}: ${JSON.stringify(entry)} is not a string; this deny cannot be evaluated and matches every tool (fail closed)`,
        );
        out.push({ ...unevaluable(JSON.stringify(entry) ?? String(entry), true), field: at });
      } else {
        warn(`${where}: ${at}: ${JSON.stringify(entry)} is not a string (ignored; it grants nothing)`);
      }
      return;
    }
    let pattern: Pattern;
    try {
      pattern = compilePattern(entry, side);
    } catch (err) {
      if (err instanceof InvalidRegexError)
        return fail(at, `invalid regular expression ${JSON.stringify(entry)}: ${err.message}`);
      throw err;
    }
    lintToolEntry(entry, pattern, side, `${where}: ${at}`, warn);
    out.push({ text: pattern.text, kind: pattern.kind, test: pattern.test, field: at });
  });
  return out;
}

/** `{name: read_text_file, arguments: {path: {path: '/srv/**'}}}`: a tool entry with rules on its arguments. */
function parseToolWithArguments(
  entry: Record<string, unknown>,
  side: 'allow' | 'deny',
  at: string,
  where: string,
  fail: Fail,
  locate: Locate,
): ToolMatcher {
  const path: Array<string | number> = at
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  for (const k of Object.keys(entry)) {
    if (k === 'name' || k === 'arguments') continue;
    const guess = closest(k, ['name', 'arguments']);
    return fail(`${locate([...path, k])}${at}.${k}`, `unknown key${guess ? ` — did you mean "${guess}"?` : ''}`);
  }
  if (typeof entry.name !== 'string' || entry.name === '')
    return fail(`${at}.name`, 'is required: the tool name, glob or ^…$ regex the rules apply to');
  if (entry.arguments === undefined) return fail(`${at}.arguments`, 'is required in a tool entry written as a mapping');
  let pattern: Pattern;
  try {
    pattern = compilePattern(entry.name, side);
  } catch (err) {
    if (err instanceof InvalidRegexError)
      return fail(`${at}.name`, `invalid regular expression ${JSON.stringify(entry.name)}: ${err.message}`);
    throw err;
  }
  if (pattern.kind === 'unevaluable')
    return fail(`${at}.name`, 'templates are not supported in a tool entry with arguments');
  let rules: ArgumentRule[];
  try {
    rules = parseArgumentRules(entry.arguments, side, `${at}.arguments`);
  } catch (err) {
    if (!(err instanceof ArgumentRuleError)) throw err;
    if (err.unknownKey) {
      const guess = closest(err.unknownKey.key, err.unknownKey.known);
      return fail(err.field, `unknown key${guess ? ` — did you mean "${guess}"?` : ''}`);
    }
    return fail(err.field, err.message);
  }
  return { text: pattern.text, kind: pattern.kind, test: pattern.test, field: at, arguments: rules };
}

function lintToolEntry(
  entry: string,
  pattern: Pattern,
  side: 'allow' | 'deny',
  at: string,
  warn: (msg: string) => void,
): void {
  const effect = side === 'allow' ? 'it grants nothing' : 'it matches every tool (fail closed)';
  if (pattern.kind === 'unevaluable') {
    warn(
      `${at}: "${entry}" is a template, expanded from the identity's traits (identity issue --trait); for an identity without that trait ${effect}`,
    );
  } else if (entry === '') {
    warn(`${at}: an empty entry matches no tool`);
  } else if (/\s/.test(entry) && pattern.kind !== 'regex') {
    warn(`${at}: "${entry}" contains whitespace, which no valid tool name has; check for a YAML typo`);
  } else if (pattern.kind !== 'regex' && (entry.startsWith('^') || entry.endsWith('$'))) {
    warn(`${at}: "${entry}" is read as a ${pattern.kind}: a regular expression must both start with ^ and end with $`);
  }
}

/** A `roles_files` entry: the file itself, or every .yaml/.yml directly inside a directory, by name. */
function expandRoleFiles(shown: string, path: string, field: string): Array<{ shown: string; path: string }> {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AccessError(
      'CONFIG_INVALID',
      `${field}: ${shown} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`,
    );
  }
  if (!isDir) return [{ shown, path }];
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (err) {
    throw new AccessError(
      'CONFIG_INVALID',
      `${field}: directory ${shown} cannot be listed (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  return names
    .filter((n) => !n.startsWith('.') && /\.ya?ml$/i.test(n))
    .sort()
    .map((n) => ({ shown: join(shown, n), path: join(path, n) }))
    .filter((f) => statSync(f.path).isFile());
}

/** Every non-empty document of a (multi-document) YAML file; a list document yields one role per item. */
function readYamlDocuments(shown: string, path: string): Array<{ doc: unknown; where: string; locate: Locate }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AccessError('CONFIG_INVALID', `${shown} cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [];
  const values: Array<{ value: unknown; index: number; locate: Locate }> = [];
  list.forEach((d, i) => {
    const error = d.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      const sourceLine = text.split('\n')[line - 1] ?? '';
      // The read-only role in Teleport's MCP access guide has `_ list_*` where `- list_*` was meant.
      const typo = /^(\s*)_(\s+\S.*)$/.exec(sourceLine.replace(/\r$/, ''));
      const detail = typo
        ? `line ${line}, column ${typo[1]!.length + 1}: not valid YAML: "${sourceLine.trim()}" is not a list item — did you mean "-${typo[2]}"?`
        : `line ${line}, column ${col}: not valid YAML: ${error.message}`;
      throw new AccessError('CONFIG_INVALID', `${shown}: ${detail}`, {
        hint: 'fix the role file; a role file that cannot be read is never partly applied',
      });
    }
    let value: unknown;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new AccessError(
        'CONFIG_INVALID',
        `${shown} (document ${i + 1}): not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      );
    }
    if (value !== null && value !== undefined) values.push({ value, index: i, locate: locator(d, lineCounter) });
  });
  const multi = values.length > 1;
  const out: Array<{ doc: unknown; where: string; locate: Locate }> = [];
  for (const { value, index, locate } of values) {
    const whereDoc = multi ? `${shown} (document ${index + 1})` : shown;
    if (Array.isArray(value))
      value.forEach((item, j) => out.push({ doc: item, where: `${whereDoc}[${j}]`, locate: (p) => locate([j, ...p]) }));
    else out.push({ doc: value, where: whereDoc, locate });
  }
  return out;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Finds the key at a path in a parsed YAML document: `line L, column C: `, or '' when it cannot. */
function locator(doc: Document, lines: LineCounter): Locate {
  return (path) => {
    let node: unknown = doc.contents;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
      } else if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
        if (!pair) return '';
        if (i === path.length - 1) {
          const at = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
          if (at === undefined) return '';
          const { line, col } = lines.linePos(at);
          return `line ${line}, column ${col}: `;
        }
        node = pair.value;
      } else {
        return '';
      }
    }
    return '';
  };
}

/** A locator for the inline `roles:` of the proxy configuration file. */
function locatorForConfig(path: string): Locate | undefined {
  try {
    const lines = new LineCounter();
    const doc = parseDocument(readFileSync(path, 'utf8'), { lineCounter: lines });
    return doc.errors.length ? undefined : locator(doc, lines);
  } catch {
    return undefined;
  }
}
