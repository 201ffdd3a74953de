/**
 * Decisions from roles: may this identity reach this server, and may it call
 * this tool there. Teleport's semantics, with the choices documented in
 * docs/rbac.md:
 *
 *  - A server is reachable iff some role of the identity allows it
 *    (`spec.allow.app_labels` matches the server's labels, or the role is
 *    tools-only, see below) and no role's `spec.deny.app_labels` matches it.
 *  - The tools allowed on a reachable server are the union of the
 *    `spec.allow` tool entries of the roles that allow that server.
 *  - `spec.deny` tool entries of every role the identity carries apply on every
 *    server, whatever labels those roles name, and always win. Deny entries
 *    match case-insensitively; an entry that cannot be evaluated matches.
 *  - No allow entries → no tools.
 *  - A role that allows tools but writes no `spec.allow.app_labels`
 *    ("tools-only", like `llm-access` in Teleport's MCP access guide) allows every server.
 *
 *  - Resources and prompts (`mcp.resources`, `mcp.prompts`) follow the same
 *    rules; a role that reaches a server and does not write them allows every
 *    resource / prompt there when `defaultResources` / `defaultPrompts` is
 *    `all` (Teleport's behaviour, the default), none when it is `none`.
 *  - Tool entries may carry rules on the call's arguments (arguments.ts).
 *
 * A Policy is immutable: a reload builds a new one. Per (roles, server) the
 * applicable rules are computed once and cached, so the per-message cost of a
 * tool decision is a few pattern tests.
 */
import { compileLabels, describeLabels, describeServerLabels, labelsMatch, type LabelMatchers } from './labels.js';
import type { Role, ToolMatcher } from './roles.js';
import { compilePattern, type Pattern } from './patterns.js';
import { compileArgumentRule, describeArgumentRule, type CompiledArgumentRule } from './arguments.js';
import { uriProblem, uriReadings } from './uris.js';
import { expandRole, type Traits } from './templates.js';

/**
 * Who is asking: role names, or role names with the identity's traits (for
 * role templates `{{internal.NAME}}`, templates.ts). A Peer fits.
 */
export type Subject = readonly string[] | { readonly roles: readonly string[]; readonly traits?: Traits };

function rolesOf(s: Subject): string[] {
  return [...(Array.isArray(s) ? (s as readonly string[]) : (s as { roles: readonly string[] }).roles)];
}
function traitsOf(s: Subject): Traits {
  return Array.isArray(s) ? {} : ((s as { traits?: Traits }).traits ?? {});
}

/** What a role that reaches a server but does not write `mcp.resources` / `mcp.prompts` allows there. */
export type UnwrittenDefault = 'all' | 'none';

export interface PolicyOptions {
  /** `rbac.default_resources` (docs/rbac.md): `all` (Teleport-compatible, the default) or `none`. */
  defaultResources?: UnwrittenDefault;
  /** `rbac.default_prompts`: `all` (the default) or `none`. */
  defaultPrompts?: UnwrittenDefault;
}

/** The argument and rule a call was decided by (for denials: the client sees them, the audit event records them). */
export interface ArgumentVerdict {
  argument: string;
  rule: string;
}

export type CallDecision = Decision & { argument?: ArgumentVerdict };

export type NamedKind = 'resources' | 'prompts';

/** Characters no prompt name (or tool name) has: control, format, separators, whitespace. */
const UNSAFE_NAME = /[\p{Cc}\p{Cf}\p{Z}\s]/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export interface Decision {
  allowed: boolean;
  /** The role whose rule decided (absent when nothing matched). */
  role?: string;
  /** The rule that decided, e.g. `spec.deny.mcp.tools[0] "write_*"`. */
  rule?: string;
  /** One sentence a person can act on. */
  reason: string;
}

export interface ServerRef {
  name: string;
  labels: Record<string, string>;
  /** `postgres` for an enrolled database: reached by `db_labels`, not `app_labels`. */
  transport?: string;
}

/** What the roles grant on one database (docs/databases.md). */
export interface DatabaseGrants {
  reach: Decision;
  /** Some role that reaches the database has db_permissions: a database role is provisioned per session. */
  provisioning: boolean;
  /** Literal db_users entries of the roles that reach the database, not denied, in role order. */
  users: string[];
  /** Allow and deny entries, for `policy check` and `ls`. */
  patterns: { names: string[]; users: string[]; permissions: string[]; denyNames: string[]; denyPermissions: string[] };
  nameDecision(database: string): Decision;
  userDecision(user: string): Decision;
  /** May the identity use this privilege on this table? */
  tableDecision(schema: string, table: string, privilege: string): Decision;
  /** Every privilege granted on this table (deny removed). */
  tablePrivileges(schema: string, table: string): string[];
}

interface RoleToolMatcher {
  role: string;
  matcher: ToolMatcher;
}

/** What applies to one identity on one server. */
interface ServerView {
  reach: Decision;
  allow: RoleToolMatcher[];
  deny: RoleToolMatcher[];
  resources: { allow: RoleToolMatcher[]; deny: RoleToolMatcher[] };
  prompts: { allow: RoleToolMatcher[]; deny: RoleToolMatcher[] };
}

/** Stands for a role that does not write mcp.resources / mcp.prompts when the default is `all`. */
const matchAll = (kind: NamedKind): ToolMatcher => ({
  text: '*',
  kind: 'glob',
  test: () => true,
  field: `(no spec.allow.mcp.${kind}; rbac.default_${kind}: all)`,
});

const CACHE_LIMIT = 4096;

export class Policy {
  private readonly byName: Map<string, Role>;
  private readonly cache = new Map<string, ServerView>();
  /** The last view computed or found for a subject without traits, with what it was for (copied). */
  private last: LastView | undefined;
  private readonly dbCache = new Map<string, DatabaseGrants>();
  private readonly compiled = new WeakMap<ToolMatcher, CompiledArgumentRule[]>();
  readonly defaults: Required<PolicyOptions>;

  constructor(
    readonly roles: Role[],
    options: PolicyOptions = {},
  ) {
    this.byName = new Map(roles.map((r) => [r.name, r]));
    this.defaults = {
      defaultResources: options.defaultResources ?? 'all',
      defaultPrompts: options.defaultPrompts ?? 'all',
    };
  }

  /** Role names the identity carries that no role document defines (report them; they grant nothing). */
  unknownRoles(roleNames: string[]): string[] {
    return unique(roleNames).filter((n) => !this.byName.has(n));
  }

  canReachServer(roleNames: Subject, server: ServerRef): Decision {
    return this.view(roleNames, server).reach;
  }

  toolDecision(roleNames: Subject, server: ServerRef, tool: string): Decision {
    const view = this.view(roleNames, server);
    if (!view.reach.allowed) return view.reach;
    for (const { role, matcher } of view.deny) {
      // A deny with argument rules refuses some calls, not the tool: it stays listed.
      if (matcher.arguments === undefined && matcher.test(tool)) {
        return {
          allowed: false,
          role,
          rule: ruleText(matcher),
          reason:
            matcher.kind === 'unevaluable'
              ? `tool "${tool}" is denied by role ${role}: ${matcher.field} cannot be evaluated, so it denies every tool (fail closed)`
              : `tool "${tool}" is denied by role ${role} (${matcher.field} "${matcher.text}")`,
        };
      }
    }
    for (const { role, matcher } of view.allow) {
      if (matcher.test(tool)) {
        return {
          allowed: true,
          role,
          rule: ruleText(matcher),
          reason: `tool "${tool}" is allowed by role ${role} (${matcher.field} "${matcher.text}")`,
        };
      }
    }
    const patterns = unique(view.allow.map((a) => a.matcher.text));
    return {
      allowed: false,
      reason:
        patterns.length === 0
          ? `no role that reaches server ${server.name} allows any tool (no spec.allow.mcp.tools), so "${tool}" is denied`
          : `no role allows tool "${tool}" on server ${server.name} (allowed: ${patterns.join(', ')})`,
    };
  }

  /**
   * May this call run: the tool (as toolDecision) and its arguments, judged on
   * `params.arguments` as the inspector parsed it. A deny entry whose name
   * matches refuses when any of its argument rules matches (or cannot be
   * evaluated); an allow entry whose name matches allows when all of its rules
   * hold; an entry without rules decides on the name alone. Deny wins.
   */
  callDecision(roleNames: Subject, server: ServerRef, tool: string, args: unknown): CallDecision {
    const view = this.view(roleNames, server);
    if (!view.reach.allowed) return view.reach;
    const argsObject =
      args === undefined ? undefined : typeof args === 'object' && args !== null && !Array.isArray(args) ? args : null;
    for (const { role, matcher } of view.deny) {
      if (!matcher.test(tool)) continue;
      if (matcher.arguments === undefined) return this.toolDecision(roleNames, server, tool);
      for (const c of this.rulesOf(matcher, 'deny')) {
        const out =
          argsObject === null
            ? { hit: true, why: 'the arguments are not an object' }
            : c.judge(argsObject as Record<string, unknown> | undefined);
        if (out.hit) {
          const rule = `${c.rule.field} (${describeArgumentRule(c.rule)})`;
          return {
            allowed: false,
            role,
            rule,
            argument: { argument: c.rule.argument, rule },
            reason: `argument "${c.rule.argument}" of tool "${tool}" is denied by role ${role} (${rule}): ${out.why ?? 'it matches'}`,
          };
        }
      }
    }
    let failure: CallDecision | undefined;
    for (const { role, matcher } of view.allow) {
      if (!matcher.test(tool)) continue;
      if (matcher.arguments === undefined)
        return {
          allowed: true,
          role,
          rule: ruleText(matcher),
          reason: `tool "${tool}" is allowed by role ${role} (${matcher.field} "${matcher.text}")`,
        };
      let unmet: { rule: CompiledArgumentRule; why: string } | undefined;
      for (const c of this.rulesOf(matcher, 'allow')) {
        const out =
          argsObject === null
            ? { hit: false, why: 'the arguments are not an object' }
            : c.judge(argsObject as Record<string, unknown> | undefined);
        if (!out.hit) {
          unmet = { rule: c, why: out.why ?? '' };
          break;
        }
      }
      if (unmet === undefined)
        return {
          allowed: true,
          role,
          rule: ruleText(matcher),
          reason: `tool "${tool}" is allowed by role ${role} (${matcher.field} "${matcher.text}"), and its arguments meet every rule of that entry`,
        };
      if (failure === undefined) {
        const rule = `${unmet.rule.rule.field} (${describeArgumentRule(unmet.rule.rule)})`;
        failure = {
          allowed: false,
          role,
          rule,
          argument: { argument: unmet.rule.rule.argument, rule },
          reason: `argument "${unmet.rule.rule.argument}" of tool "${tool}" is not allowed: role ${role} allows the tool only when ${describeArgumentRule(unmet.rule.rule)} (${unmet.rule.rule.field}), and ${unmet.why}`,
        };
      }
    }
    return failure ?? this.toolDecision(roleNames, server, tool);
  }

  /**
   * May the identity read (or subscribe to) this resource on the server? Every
   * reading of the URI (uris.ts) must be allowed by an allow entry of a role
   * that reaches the server (or that role's default, rbac.default_resources),
   * and no deny entry may match any reading.
   */
  resourceDecision(roleNames: Subject, server: ServerRef, uri: string): Decision {
    const problem = uriProblem(uri);
    if (problem !== undefined) return { allowed: false, reason: `${problem}, so it is refused` };
    return this.namedDecision('resources', roleNames, server, uri, uriReadings(uri));
  }

  /**
   * A resource template (`resources/templates/list`, `completion/complete` ref/resource): its text is matched
   * as written.
   */
  resourceTemplateDecision(roleNames: Subject, server: ServerRef, uriTemplate: string): Decision {
    const problem = uriProblem(uriTemplate);
    if (problem !== undefined)
      return { allowed: false, reason: `${problem.replace('resource URI', 'resource template')}, so it is refused` };
    return this.namedDecision('resources', roleNames, server, uriTemplate, [uriTemplate]);
  }

  /** May the identity get this prompt (and complete its arguments)? Like tools, by name. */
  promptDecision(roleNames: Subject, server: ServerRef, name: string): Decision {
    if (name === '' || UNSAFE_NAME.test(name) || LONE_SURROGATE.test(name))
      return {
        allowed: false,
        reason:
          'the prompt name is empty or contains spaces, control or invisible characters, which no prompt name has',
      };
    return this.namedDecision('prompts', roleNames, server, name, [name]);
  }

  /** Allowed and denied resource / prompt patterns on the server (for `ls` and `policy check`). */
  namedPatterns(
    kind: NamedKind,
    roleNames: Subject,
    server: ServerRef,
  ): { allow: string[]; deny: string[]; defaulted: string[] } {
    const view = this.view(roleNames, server);
    const v = view[kind];
    return {
      allow: view.reach.allowed ? unique(v.allow.map((a) => a.matcher.text)) : [],
      deny: unique(v.deny.map((d) => d.matcher.text)),
      defaulted: view.reach.allowed
        ? unique(v.allow.filter((a) => a.matcher.field.startsWith('(')).map((a) => a.role))
        : [],
    };
  }

  private namedDecision(
    kind: NamedKind,
    roleNames: Subject,
    server: ServerRef,
    value: string,
    readings: string[],
  ): Decision {
    const what = kind === 'resources' ? 'resource' : 'prompt';
    const view = this.view(roleNames, server);
    if (!view.reach.allowed) return view.reach;
    const v = view[kind];
    for (const reading of readings) {
      const d = v.deny.find((x) => x.matcher.test(reading));
      if (d) {
        const also = reading === value ? '' : ` (read as "${reading}")`;
        return {
          allowed: false,
          role: d.role,
          rule: ruleText(d.matcher),
          reason: `${what} "${value}"${also} is denied by role ${d.role} (${d.matcher.field} "${d.matcher.text}")`,
        };
      }
    }
    let first: RoleToolMatcher | undefined;
    for (const reading of readings) {
      const a = v.allow.find((x) => x.matcher.test(reading));
      if (!a) {
        const patterns = unique(v.allow.map((x) => x.matcher.text));
        const also = reading === value ? '' : ` (it can also be read as "${reading}", which no entry allows)`;
        return {
          allowed: false,
          reason:
            patterns.length === 0
              ? `no role that reaches server ${server.name} allows any ${what} (spec.allow.mcp.${kind}), so "${value}" is denied`
              : `no role allows ${what} "${value}" on server ${server.name}${also} (allowed: ${patterns.join(', ')})`,
        };
      }
      first ??= a;
    }
    return {
      allowed: true,
      role: first!.role,
      rule: ruleText(first!.matcher),
      reason: `${what} "${value}" is allowed by role ${first!.role} (${first!.matcher.field} "${first!.matcher.text}")`,
    };
  }

  private rulesOf(m: ToolMatcher, side: 'allow' | 'deny'): CompiledArgumentRule[] {
    let c = this.compiled.get(m);
    if (c === undefined) {
      c = (m.arguments ?? []).map((r) => compileArgumentRule(r, side));
      this.compiled.set(m, c);
    }
    return c;
  }

  /**
   * May the server be told about this client root (servers with
   * `client_roots: true`)? Like tools: a deny `mcp.roots` entry of any role
   * wins; otherwise an allow entry of a role that reaches the server must
   * match; no entry means no root. `uri` should be normalised (`new URL().href`).
   */
  rootDecision(roleNames: Subject, server: ServerRef, uri: string): Decision {
    const view = this.view(roleNames, server);
    if (!view.reach.allowed) return view.reach;
    const roles = unique(rolesOf(roleNames))
      .map((n) => this.byName.get(n))
      .filter((r): r is Role => r !== undefined);
    for (const r of roles) {
      const m = r.deny.roots.find((x) => x.test(uri));
      if (m) return rootMatch(false, r, m, uri);
    }
    for (const r of roles) {
      if (!(r.toolsOnly || labelsMatch(r.allow.appLabels, server.labels, 'allow'))) continue;
      const m = r.allow.roots.find((x) => x.test(uri));
      if (m) return rootMatch(true, r, m, uri);
    }
    return { allowed: false, reason: `no role allows root "${uri}" on server ${server.name} (spec.allow.mcp.roots)` };
  }

  /** The database side of the roles for a database (a server with transport `postgres`). */
  databaseGrants(roleNames: string[], server: ServerRef): DatabaseGrants {
    const key = JSON.stringify([unique(roleNames), server.name, server.labels, 'db']);
    let g = this.dbCache.get(key);
    if (g === undefined) {
      const roles = unique(roleNames)
        .map((n) => this.byName.get(n))
        .filter((r): r is Role => r !== undefined);
      g = databaseGrants(roles, server, this.view(roleNames, server).reach);
      if (this.dbCache.size >= CACHE_LIMIT) this.dbCache.clear();
      this.dbCache.set(key, g);
    }
    return g;
  }

  toolPatterns(roleNames: Subject, server: ServerRef): { allow: string[]; deny: string[] } {
    const view = this.view(roleNames, server);
    return {
      allow: view.reach.allowed ? unique(view.allow.map((a) => a.matcher.text)) : [],
      deny: unique(view.deny.map((d) => d.matcher.text)),
    };
  }

  private view(subject: Subject, server: ServerRef): ServerView {
    // A session asks about the same identity and server for every message:
    // the last answer is reused when the role names, the server's name,
    // transport and labels are the same as then (compared by value) and
    // there are no traits; anything else takes the keyed cache below.
    const names = Array.isArray(subject)
      ? (subject as readonly string[])
      : (subject as { roles: readonly string[] }).roles;
    const last = this.last;
    if (last !== undefined && !hasTraits(subject) && sameServer(last, server) && sameList(last.roles, names))
      return last.view;
    const roleNames = unique(rolesOf(subject));
    const traits = traitsOf(subject);
    const key = JSON.stringify([roleNames, server.name, server.labels, server.transport ?? '', traits]);
    let view = this.cache.get(key);
    if (view === undefined) {
      view = this.compute(roleNames, server, traits);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(key, view);
    }
    if (!hasTraits(subject))
      this.last = {
        roles: [...names],
        name: server.name,
        transport: server.transport,
        labels: Object.entries(server.labels),
        view,
      };
    return view;
  }

  private compute(roleNames: string[], server: ServerRef, traits: Traits): ServerView {
    const roles = roleNames
      .map((n) => this.byName.get(n))
      .filter((r): r is Role => r !== undefined)
      .map((r) => expandRole(r, traits));
    if (server.transport === 'postgres') return computeDatabase(roles, roleNames, server);
    const deny: RoleToolMatcher[] = roles.flatMap((r) => r.deny.tools.map((matcher) => ({ role: r.name, matcher })));
    const granting = roles.filter((r) =>
      r.toolsOnly ? true : labelsMatch(r.allow.appLabels, server.labels, 'allow', traits),
    );
    const allow: RoleToolMatcher[] = granting.flatMap((r) =>
      r.allow.tools.map((matcher) => ({ role: r.name, matcher })),
    );
    const named = (kind: NamedKind) => {
      const all = (kind === 'resources' ? this.defaults.defaultResources : this.defaults.defaultPrompts) === 'all';
      return {
        deny: roles.flatMap((r) => (r.deny[kind] ?? []).map((matcher) => ({ role: r.name, matcher }))),
        allow: granting.flatMap((r) => {
          const written = r.allow[kind];
          if (written !== undefined) return written.map((matcher) => ({ role: r.name, matcher }));
          return all ? [{ role: r.name, matcher: matchAll(kind) }] : [];
        }),
      };
    };

    const denier = roles.find(
      (r) => r.deny.appLabels.written && labelsMatch(r.deny.appLabels, server.labels, 'deny', traits),
    );
    let reach: Decision;
    if (denier) {
      reach = {
        allowed: false,
        role: denier.name,
        rule: `spec.deny.app_labels ${describeLabels(denier.deny.appLabels)}`,
        reason: `server ${server.name} (${describeServerLabels(server.labels)}) is denied by role ${denier.name} (spec.deny.app_labels ${describeLabels(denier.deny.appLabels)})`,
      };
    } else if (granting.length > 0) {
      const r = granting.find((g) => !g.toolsOnly) ?? granting[0]!;
      reach = r.toolsOnly
        ? {
            allowed: true,
            role: r.name,
            rule: 'spec.allow without app_labels: every server',
            reason: `role ${r.name} allows MCP tools and names no app_labels, so it applies to every server, including ${server.name}`,
          }
        : {
            allowed: true,
            role: r.name,
            rule: `spec.allow.app_labels ${describeLabels(r.allow.appLabels)}`,
            reason: `role ${r.name} allows servers labelled ${describeLabels(r.allow.appLabels)}; ${server.name} has ${describeServerLabels(server.labels)}`,
          };
    } else {
      reach = noRoleReaches(
        roles,
        roleNames,
        server,
        'server',
        `spec.allow.app_labels matches${roles.some((r) => r.allow.appLabels.expression !== undefined) ? ' (app_labels_expression included)' : ''}`,
      );
    }
    return { reach, allow, deny, resources: named('resources'), prompts: named('prompts') };
  }
}

function ruleText(m: ToolMatcher): string {
  return `${m.field} "${m.text}"`;
}

/** The decision for a root URI that a role's allow or deny `mcp.roots` entry matched. */
function rootMatch(allowed: boolean, r: Role, m: ToolMatcher, uri: string): Decision {
  const verb = allowed ? 'allowed' : 'denied';
  return {
    allowed,
    role: r.name,
    rule: ruleText(m),
    reason: `root "${uri}" is ${verb} by role ${r.name} (${ruleText(m)})`,
  };
}

interface LastView {
  roles: string[];
  name: string;
  transport: string | undefined;
  labels: Array<[string, string]>;
  view: ServerView;
}

function hasTraits(s: Subject): boolean {
  if (Array.isArray(s)) return false;
  const traits = (s as { traits?: Traits }).traits;
  if (traits === undefined) return false;
  for (const _ in traits) return true;
  return false;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameServer(last: LastView, server: ServerRef): boolean {
  if (last.name !== server.name || last.transport !== server.transport) return false;
  const labels = server.labels;
  let n = 0;
  for (const _ in labels) n++;
  if (n !== last.labels.length) return false;
  for (const [k, v] of last.labels) if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  return true;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

/**
 * A database is reached by `db_labels` (Teleport's field), never by
 * `app_labels` or a tools-only role. Its tools are the built-in database
 * tools: all allowed once the database is reached, except those a deny
 * `mcp.tools` entry names (deny wins everywhere).
 */
function computeDatabase(roles: Role[], roleNames: string[], server: ServerRef): ServerView {
  const deny: RoleToolMatcher[] = roles.flatMap((r) => r.deny.tools.map((matcher) => ({ role: r.name, matcher })));
  const denier = roles.find((r) => r.deny.db.labels && labelsMatch(dbLabels(r, 'deny'), server.labels, 'deny'));
  const granting = roles.filter((r) => r.allow.db.labels && labelsMatch(dbLabels(r, 'allow'), server.labels, 'allow'));
  let reach: Decision;
  if (denier) {
    const sel = describeLabels(dbLabels(denier, 'deny'));
    reach = {
      allowed: false,
      role: denier.name,
      rule: `spec.deny.db_labels ${sel}`,
      reason: `database ${server.name} (${describeServerLabels(server.labels)}) is denied by role ${denier.name} (spec.deny.db_labels ${sel})`,
    };
  } else if (granting[0]) {
    const r = granting[0];
    const sel = describeLabels(dbLabels(r, 'allow'));
    reach = {
      allowed: true,
      role: r.name,
      rule: `spec.allow.db_labels ${sel}`,
      reason: `role ${r.name} allows databases labelled ${sel}; ${server.name} has ${describeServerLabels(server.labels)}`,
    };
  } else {
    reach = noRoleReaches(roles, roleNames, server, 'database', 'spec.allow.db_labels matches');
  }
  const all: ToolMatcher = {
    text: '*',
    kind: 'glob',
    test: () => true,
    field: 'spec.allow.db_labels (the built-in database tools)',
  };
  // Databases serve tools only (the built-in ones): no resources or prompts.
  return {
    reach,
    allow: granting.map((r) => ({ role: r.name, matcher: all })),
    deny,
    resources: { allow: [], deny: [] },
    prompts: { allow: [], deny: [] },
  };
}

const compiledDbLabels = new WeakMap<Role, { allow?: LabelMatchers; deny?: LabelMatchers }>();
function dbLabels(r: Role, side: 'allow' | 'deny'): LabelMatchers {
  let c = compiledDbLabels.get(r);
  if (!c) compiledDbLabels.set(r, (c = {}));
  return (c[side] ??= compileLabels(r[side].db.labels ?? null, side, `spec.${side}.db_labels`, () => {}));
}

interface Entry {
  role: string;
  field: string;
  pattern: Pattern;
}

function databaseGrants(roles: Role[], server: ServerRef, reach: Decision): DatabaseGrants {
  const granting = reach.allowed
    ? roles.filter((r) => r.allow.db.labels && labelsMatch(dbLabels(r, 'allow'), server.labels, 'allow'))
    : [];
  const entries = (list: Role[], side: 'allow' | 'deny', key: 'names' | 'users'): Entry[] =>
    list.flatMap((r) =>
      r[side].db[key].map((text, i) => ({
        role: r.name,
        field: `spec.${side}.db_${key}[${i}]`,
        pattern: compilePattern(text, side),
      })),
    );
  const allowNames = entries(granting, 'allow', 'names');
  const denyNames = entries(roles, 'deny', 'names');
  const allowUsers = entries(granting, 'allow', 'users');
  const denyUsers = entries(roles, 'deny', 'users');
  const perms = (list: Role[], side: 'allow' | 'deny') =>
    list.flatMap((r) =>
      r[side].db.permissions.map((p) => ({
        role: r.name,
        rule: p,
        match: Object.fromEntries(
          Object.entries(p.match).map(([k, vs]) => [k, vs.map((v) => compilePattern(v, side))]),
        ),
      })),
    );
  const allowPerms = perms(granting, 'allow');
  const denyPerms = perms(roles, 'deny');
  const matches = (m: Record<string, Pattern[]>, schema: string, table: string) =>
    (m.object_kind ?? []).every(() => true) &&
    (m.schema === undefined || m.schema.some((p) => p.test(schema))) &&
    (m.name === undefined || m.name.some((p) => p.test(table)));
  const decide = (what: string, value: string, allow: Entry[], deny: Entry[]): Decision => {
    if (!reach.allowed) return reach;
    const d = deny.find((e) => e.pattern.test(value));
    if (d)
      return {
        allowed: false,
        role: d.role,
        rule: `${d.field} "${d.pattern.text}"`,
        reason: `${what} "${value}" is denied by role ${d.role} (${d.field} "${d.pattern.text}")`,
      };
    const a = allow.find((e) => e.pattern.test(value));
    if (a)
      return {
        allowed: true,
        role: a.role,
        rule: `${a.field} "${a.pattern.text}"`,
        reason: `${what} "${value}" is allowed by role ${a.role} (${a.field} "${a.pattern.text}")`,
      };
    return {
      allowed: false,
      reason: `no role that reaches database ${server.name} allows ${what} "${value}" (${what === 'database' ? 'db_names' : 'db_users'}: ${unique(allow.map((e) => e.pattern.text)).join(', ') || 'none'})`,
    };
  };
  const describePerm = (p: { match: Record<string, string[]>; permissions: string[] }) =>
    `${Object.entries(p.match)
      .map(([k, v]) => `${k}=${v.join('|')}`)
      .join(',')}: ${p.permissions.join(',')}`;
  const tableDecision = (schema: string, table: string, privilege: string): Decision => {
    if (!reach.allowed) return reach;
    const obj = `${schema}.${table}`;
    for (const d of denyPerms) {
      if (d.rule.permissions.includes(privilege) && matches(d.match, schema, table))
        return {
          allowed: false,
          role: d.role,
          rule: d.rule.field,
          reason: `${privilege} on ${obj} is denied by role ${d.role} (${d.rule.field} ${describePerm(d.rule)})`,
        };
    }
    for (const a of allowPerms) {
      if (a.rule.permissions.includes(privilege) && matches(a.match, schema, table))
        return {
          allowed: true,
          role: a.role,
          rule: a.rule.field,
          reason: `${privilege} on ${obj} is allowed by role ${a.role} (${a.rule.field} ${describePerm(a.rule)})`,
        };
    }
    return {
      allowed: false,
      reason: `the statement needs ${privilege} on ${obj}, which no db_permissions of the roles grants`,
    };
  };
  return {
    reach,
    provisioning: allowPerms.length > 0,
    users: unique(
      allowUsers
        .filter((e) => e.pattern.kind === 'literal' && !denyUsers.some((d) => d.pattern.test(e.pattern.text)))
        .map((e) => e.pattern.text),
    ),
    patterns: {
      names: unique(allowNames.map((e) => e.pattern.text)),
      users: unique(allowUsers.map((e) => e.pattern.text)),
      permissions: allowPerms.map((p) => describePerm(p.rule)),
      denyNames: unique(denyNames.map((e) => e.pattern.text)),
      denyPermissions: denyPerms.map((p) => describePerm(p.rule)),
    },
    nameDecision: (db) => decide('database', db, allowNames, denyNames),
    userDecision: (u) => decide('database user', u, allowUsers, denyUsers),
    tableDecision,
    tablePrivileges: (schema, table) =>
      ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'].filter(
        (p) => tableDecision(schema, table, p).allowed,
      ),
  };
}

/** The refusal when no role reaches a server or database: which roles were tried, and what matched nothing. */
function noRoleReaches(
  roles: Role[],
  roleNames: string[],
  server: ServerRef,
  what: 'server' | 'database',
  unmatched: string,
): Decision {
  const names = roles.map((r) => r.name);
  return {
    allowed: false,
    reason:
      names.length === 0
        ? `the identity has no known role (roles: ${roleNames.length ? roleNames.join(', ') : 'none'}), so it reaches no ${what}`
        : `no role of ${names.join(', ')} allows ${what} ${server.name} (${describeServerLabels(server.labels)}): no ${unmatched}`,
  };
}
