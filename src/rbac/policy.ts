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
 * A Policy is immutable: a reload builds a new one. Per (roles, server) the
 * applicable rules are computed once and cached, so the per-message cost of a
 * tool decision is a few pattern tests.
 */
import { describeLabels, describeServerLabels, labelsMatch } from './labels.js';
import type { Role, ToolMatcher } from './roles.js';

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
}

const CACHE_LIMIT = 4096;

export class Policy {
  private readonly byName: Map<string, Role>;
  private readonly cache = new Map<string, ServerView>();

  constructor(readonly roles: Role[]) {
    this.byName = new Map(roles.map((r) => [r.name, r]));
  }

  /** Role names the identity carries that no role document defines (report them; they grant nothing). */
  unknownRoles(roleNames: string[]): string[] {
    return unique(roleNames).filter((n) => !this.byName.has(n));
  }

  canReachServer(roleNames: string[], server: ServerRef): Decision {
    return this.view(roleNames, server).reach;
  }

  toolDecision(roleNames: string[], server: ServerRef, tool: string): Decision {
    const view = this.view(roleNames, server);
    if (!view.reach.allowed) return view.reach;
    for (const { role, matcher } of view.deny) {
      if (matcher.test(tool)) {
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
   * May the server be told about this client root (servers with
   * `client_roots: true`)? Like tools: a deny `mcp.roots` entry of any role
   * wins; otherwise an allow entry of a role that reaches the server must
   * match; no entry means no root. `uri` should be normalised (`new URL().href`).
   */
  rootDecision(roleNames: string[], server: ServerRef, uri: string): Decision {
    const view = this.view(roleNames, server);
    if (!view.reach.allowed) return view.reach;
    const roles = unique(roleNames)
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

  toolPatterns(roleNames: string[], server: ServerRef): { allow: string[]; deny: string[] } {
    const view = this.view(roleNames, server);
    return {
      allow: view.reach.allowed ? unique(view.allow.map((a) => a.matcher.text)) : [],
      deny: unique(view.deny.map((d) => d.matcher.text)),
    };
  }

  private view(roleNames: string[], server: ServerRef): ServerView {
    const key = JSON.stringify([unique(roleNames), server.name, server.labels]);
    let view = this.cache.get(key);
    if (view === undefined) {
      view = this.compute(unique(roleNames), server);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(key, view);
    }
    return view;
  }

  private compute(roleNames: string[], server: ServerRef): ServerView {
    const roles = roleNames.map((n) => this.byName.get(n)).filter((r): r is Role => r !== undefined);
    const deny: RoleToolMatcher[] = roles.flatMap((r) => r.deny.tools.map((matcher) => ({ role: r.name, matcher })));
    const granting = roles.filter((r) => (r.toolsOnly ? true : labelsMatch(r.allow.appLabels, server.labels, 'allow')));
    const allow: RoleToolMatcher[] = granting.flatMap((r) =>
      r.allow.tools.map((matcher) => ({ role: r.name, matcher })),
    );

    const denier = roles.find((r) => r.deny.appLabels.written && labelsMatch(r.deny.appLabels, server.labels, 'deny'));
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
      const names = roles.map((r) => r.name);
      reach = {
        allowed: false,
        reason:
          names.length === 0
            ? `the identity has no known role (roles: ${roleNames.length ? roleNames.join(', ') : 'none'}), so it reaches no server`
            : `no role of ${names.join(', ')} allows server ${server.name} (${describeServerLabels(server.labels)}): no spec.allow.app_labels matches`,
      };
    }
    return { reach, allow, deny };
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

function unique(list: string[]): string[] {
  return [...new Set(list)];
}
