/**
 * Role templates (`{{internal.NAME}}`, `{{external.NAME}}`, as Teleport
 * writes them) expanded from an identity's traits (docs/rbac.md, "Traits and
 * templates"). A role is loaded once with its templates unexpanded (they are
 * `unevaluable` patterns); Policy expands them per identity:
 *
 *  - an entry with templates becomes one entry per combination of the trait
 *    values it names (`read_{{internal.prefix}}*` with prefix [a, b] → `read_a*`, `read_b*`);
 *  - a trait the identity lacks (or an expression mcp-access does not read):
 *    an allow entry grants nothing, a deny entry keeps matching everything
 *    (fail closed);
 *  - expanded values are compiled like written ones (a regex must still be ^…$).
 */
import { compilePattern, unevaluable, type Pattern } from './patterns.js';
import type { LabelMatchers } from './labels.js';
import type { Role, RoleRules, ToolMatcher } from './roles.js';

export type Traits = Readonly<Record<string, readonly string[]>>;

const ANY_TEMPLATE = /\{\{.*?\}\}/g;
const TRAIT_TEMPLATE = /^\{\{\s*(?:internal|external)\.([A-Za-z0-9_.-]+)\s*\}\}$/;
/** Combinations produced by one entry at most (a role cannot explode into millions of patterns). */
const MAX_EXPANSIONS = 256;

export function hasTemplate(text: string): boolean {
  return /\{\{.*\}\}/.test(text);
}

/** The texts an entry expands to, or undefined when it cannot be expanded (a missing trait, an unknown expression). */
export function expandText(text: string, traits: Traits): string[] | undefined {
  const parts = text.split(ANY_TEMPLATE);
  const templates = text.match(ANY_TEMPLATE) ?? [];
  let out = [parts[0]!];
  for (let i = 0; i < templates.length; i++) {
    const m = TRAIT_TEMPLATE.exec(templates[i]!);
    const values = m ? traits[m[1]!] : undefined;
    if (!values || values.length === 0) return undefined;
    const next: string[] = [];
    for (const prefix of out) for (const v of values) next.push(prefix + v + parts[i + 1]!);
    if (next.length > MAX_EXPANSIONS) return undefined;
    out = next;
  }
  return [...new Set(out)];
}

function expandPattern(p: Pattern, side: 'allow' | 'deny', traits: Traits): Pattern[] {
  if (p.kind !== 'unevaluable' || !hasTemplate(p.text)) return [p];
  const texts = expandText(p.text, traits);
  if (texts === undefined) return side === 'deny' ? [p] : [];
  const out: Pattern[] = [];
  for (const t of texts) {
    try {
      out.push(compilePattern(t, side));
    } catch {
      // An expansion that is an invalid regex: grants nothing, or denies everything.
      if (side === 'deny') out.push(unevaluable(t, true));
    }
  }
  return out;
}

function expandMatchers(list: ToolMatcher[], side: 'allow' | 'deny', traits: Traits): ToolMatcher[] {
  if (!list.some((m) => m.kind === 'unevaluable' && hasTemplate(m.text))) return list;
  return list.flatMap((m) =>
    expandPattern(m, side, traits).map((p) =>
      p === m
        ? m
        : { text: p.text, kind: p.kind, test: p.test, field: `${m.field} "${m.text}" →`, arguments: m.arguments },
    ),
  );
}

function expandLabels(m: LabelMatchers, side: 'allow' | 'deny', traits: Traits): LabelMatchers {
  if (!m.entries.some((e) => e.values.some((v) => v.kind === 'unevaluable' && hasTemplate(v.text)))) return m;
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, values: e.values.flatMap((v) => expandPattern(v, side, traits)) })),
  };
}

function expandSide(rules: RoleRules, side: 'allow' | 'deny', traits: Traits): RoleRules {
  return {
    ...rules,
    appLabels: expandLabels(rules.appLabels, side, traits),
    tools: expandMatchers(rules.tools, side, traits),
    ...(rules.resources ? { resources: expandMatchers(rules.resources, side, traits) } : {}),
    ...(rules.prompts ? { prompts: expandMatchers(rules.prompts, side, traits) } : {}),
  };
}

/** The role with its templates expanded from `traits` (the role itself when it has none). */
export function expandRole(role: Role, traits: Traits): Role {
  const allow = expandSide(role.allow, 'allow', traits);
  const deny = expandSide(role.deny, 'deny', traits);
  const same = (a: RoleRules, b: RoleRules) =>
    a.appLabels === b.appLabels && a.tools === b.tools && a.resources === b.resources && a.prompts === b.prompts;
  if (same(allow, role.allow) && same(deny, role.deny)) return role;
  return { ...role, allow, deny };
}
