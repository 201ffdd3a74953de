/**
 * Arguments policy: rules on a tool call's arguments, written in a role's
 * tool entry (docs/rbac.md, "Arguments"):
 *
 *   tools:
 *     - name: read_text_file
 *       arguments:
 *         path: { path: '/srv/files/public/**' }   # a normalised absolute path, matched by a glob
 *         head: { min: 1, max: 100, required: false }
 *     - name: query
 *       arguments:
 *         sql: { regex: '\bdrop\b' }               # on the deny side: refused when it matches
 *
 * Rules are plain data in the Role (JSON-serialisable, so roles can be sent to
 * an agent); `compileArgumentRule` turns one into a test inside Policy. They
 * are judged on `params.arguments` exactly as the inspector parsed it, which
 * is what the server parses (the inspector refuses duplicate keys anywhere).
 *
 * Allow rule: the condition must hold (fail closed: a missing argument, a
 * value of another type, an ambiguous key → not satisfied).
 * Deny rule: the call is refused when the condition matches, or when it
 * cannot be evaluated (a value of an unexpected type, a relative path…).
 */
import { posix } from 'node:path';
import { escapeRegex, foldForDeny, type Pattern } from './patterns.js';

export type Scalar = string | number | boolean | null;

/** One rule, as parsed from the role (plain data). */
export interface ArgumentRule {
  /** The argument path as written: `path`, `options.mode`, `paths[]` (every element). */
  argument: string;
  /** Where it is, e.g. `spec.allow.mcp.tools[1].arguments.path`. */
  field: string;
  glob?: string[];
  path?: string[];
  regex?: string;
  enum?: Scalar[];
  min?: number;
  max?: number;
  /** Allow side: whether the argument must be present (default true). */
  required: boolean;
}

const CONDITION_KEYS = ['glob', 'path', 'regex', 'enum', 'min', 'max', 'required'] as const;
export const ARGUMENT_RULE_KEYS: readonly string[] = CONDITION_KEYS;

/** Thrown by parseArgumentRules; the caller turns it into CONFIG_INVALID with the role's location. */
export class ArgumentRuleError extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly unknownKey?: { key: string; known: string[] },
  ) {
    super(message);
  }
}

/** Parse the `arguments:` mapping of a tool entry. */
export function parseArgumentRules(raw: unknown, side: 'allow' | 'deny', field: string): ArgumentRule[] {
  if (!isMapping(raw)) throw new ArgumentRuleError(field, 'must be a mapping of argument names to rules');
  const out: ArgumentRule[] = [];
  for (const [argument, spec] of Object.entries(raw)) {
    const at = `${field}.${argument}`;
    if (!ARGUMENT_PATH.test(argument))
      throw new ArgumentRuleError(at, `"${argument}" is not an argument path (name, a.b, list[] or list[].name)`);
    if (!isMapping(spec))
      throw new ArgumentRuleError(at, 'must be a mapping with glob, path, regex, enum, min and/or max');
    for (const k of Object.keys(spec))
      if (!(CONDITION_KEYS as readonly string[]).includes(k))
        throw new ArgumentRuleError(`${at}.${k}`, 'unknown key', { key: k, known: [...CONDITION_KEYS] });
    const rule: ArgumentRule = { argument, field: at, required: true };
    const strings = (k: 'glob' | 'path'): string[] | undefined => {
      const v = spec[k];
      if (v === undefined) return undefined;
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string'))
        throw new ArgumentRuleError(`${at}.${k}`, 'must be a string or a non-empty list of strings');
      return list;
    };
    rule.glob = strings('glob');
    rule.path = strings('path');
    for (const p of rule.path ?? [])
      if (!p.startsWith('/'))
        throw new ArgumentRuleError(`${at}.path`, `"${p}" must be an absolute path glob (start with /)`);
    if (spec.regex !== undefined) {
      if (typeof spec.regex !== 'string' || spec.regex === '')
        throw new ArgumentRuleError(`${at}.regex`, 'must be a non-empty string');
      try {
        new RegExp(spec.regex, 'u');
      } catch (err) {
        throw new ArgumentRuleError(
          `${at}.regex`,
          `invalid regular expression ${JSON.stringify(spec.regex)}: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`,
        );
      }
      rule.regex = spec.regex;
    }
    if (spec.enum !== undefined) {
      const e = spec.enum;
      if (!Array.isArray(e) || e.length === 0 || !e.every(isScalar))
        throw new ArgumentRuleError(`${at}.enum`, 'must be a non-empty list of strings, numbers, booleans or null');
      rule.enum = e;
    }
    for (const k of ['min', 'max'] as const) {
      const v = spec[k];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentRuleError(`${at}.${k}`, 'must be a number');
      rule[k] = v;
    }
    if (spec.required !== undefined) {
      if (typeof spec.required !== 'boolean') throw new ArgumentRuleError(`${at}.required`, 'must be true or false');
      if (side === 'deny')
        throw new ArgumentRuleError(
          `${at}.required`,
          'is for allow rules only (a deny rule never matches a missing argument)',
        );
      rule.required = spec.required;
    }
    const conditions = ['glob', 'path', 'regex', 'enum', 'min', 'max'].filter(
      (k) => rule[k as keyof ArgumentRule] !== undefined,
    );
    if (conditions.length === 0)
      throw new ArgumentRuleError(at, 'names no condition (glob, path, regex, enum, min or max)');
    const kinds = new Set(conditions.map((k) => (k === 'min' || k === 'max' ? 'range' : k)));
    if (kinds.size > 1)
      throw new ArgumentRuleError(
        at,
        `combines ${[...kinds].join(' and ')}; write one condition per rule (min and max together are one)`,
      );
    out.push(rule);
  }
  return out;
}

/** `name`, `a.b`, `list[]`, `list[].name`: letters, digits, `_`, `-`, `$`, joined by dots, `[]` for every element. */
const ARGUMENT_PATH = /^[A-Za-z0-9_$-]+(?:\[\])?(?:\.[A-Za-z0-9_$-]+(?:\[\])?)*$/;

/** The rule as one line, for decisions: `path path "/srv/files/public/**"`. */
export function describeArgumentRule(r: ArgumentRule): string {
  if (r.glob) return `${r.argument} glob ${r.glob.map((g) => JSON.stringify(g)).join(' | ')}`;
  if (r.path) return `${r.argument} path ${r.path.map((g) => JSON.stringify(g)).join(' | ')}`;
  if (r.regex !== undefined) return `${r.argument} regex ${JSON.stringify(r.regex)}`;
  if (r.enum) return `${r.argument} enum [${r.enum.map((v) => JSON.stringify(v)).join(', ')}]`;
  const range = [r.min !== undefined ? `>= ${r.min}` : '', r.max !== undefined ? `<= ${r.max}` : '']
    .filter(Boolean)
    .join(' and ');
  return `${r.argument} ${range}`;
}

/** How one argument value fared against a rule. */
export type RuleOutcome =
  /** Allow: satisfied. Deny: matched (the call is refused). */
  { hit: true; why?: string } | { hit: false; why: string };

export interface CompiledArgumentRule {
  readonly rule: ArgumentRule;
  /** Judges the call's whole arguments object. */
  judge(args: Record<string, unknown> | undefined): RuleOutcome;
}

export function compileArgumentRule(rule: ArgumentRule, side: 'allow' | 'deny'): CompiledArgumentRule {
  const deny = side === 'deny';
  const test = compileCondition(rule, deny);
  const segments = parsePath(rule.argument);
  return {
    rule,
    judge(args) {
      const found = resolveValues(args ?? {}, segments);
      if ('ambiguous' in found) {
        // e.g. `Path` next to (or instead of) `path`: a server that looks keys up
        // without regard to case could read another value than the one judged.
        return deny
          ? { hit: true, why: found.ambiguous }
          : { hit: false, why: `${found.ambiguous}, so the rule on "${rule.argument}" cannot be judged` };
      }
      if (found.values.length === 0) {
        if (deny) return { hit: false, why: `argument "${rule.argument}" is absent` };
        return rule.required
          ? { hit: false, why: `argument "${rule.argument}" is missing (the rule requires it)` }
          : { hit: true };
      }
      for (const v of found.values) {
        const r = test(v);
        if (deny && r.hit) return r;
        if (!deny && !r.hit) return r;
      }
      return deny ? { hit: false, why: 'no value matches' } : { hit: true };
    },
  };
}

type Segment = { key: string; each: boolean };

function parsePath(path: string): Segment[] {
  return path.split('.').map((s) => (s.endsWith('[]') ? { key: s.slice(0, -2), each: true } : { key: s, each: false }));
}

/**
 * The values at an argument path. `[]` expands a list (a value that is not a
 * list there is ambiguous). A key written in another letter case or Unicode
 * form than the rule's (`Path`, `ｐａｔｈ`) makes the call ambiguous.
 */
function resolveValues(root: unknown, segments: Segment[]): { values: unknown[] } | { ambiguous: string } {
  let current: unknown[] = [root];
  for (const seg of segments) {
    const next: unknown[] = [];
    for (const obj of current) {
      if (!isMapping(obj)) {
        if (obj === undefined) continue;
        return { ambiguous: `the arguments hold ${describeType(obj)} where an object with "${seg.key}" is expected` };
      }
      const folded = foldForDeny(seg.key);
      for (const k of Object.keys(obj))
        if (k !== seg.key && foldForDeny(k) === folded)
          return { ambiguous: `the arguments hold "${k}", which a server could read as "${seg.key}"` };
      if (!Object.hasOwn(obj, seg.key)) continue;
      const v = obj[seg.key];
      if (seg.each) {
        if (!Array.isArray(v))
          return { ambiguous: `argument "${seg.key}" is ${describeType(v)}, where the rule expects a list` };
        next.push(...(v as unknown[]));
      } else {
        next.push(v);
      }
    }
    current = next;
  }
  return { values: current };
}

function compileCondition(rule: ArgumentRule, deny: boolean): (v: unknown) => RuleOutcome {
  const desc = describeArgumentRule(rule);
  const cannot = (v: unknown, what: string): RuleOutcome =>
    deny
      ? {
          hit: true,
          why: `${describeType(v)} cannot be judged by ${desc} (${what}), so the deny applies (fail closed)`,
        }
      : { hit: false, why: `${describeType(v)} is not ${what}` };
  const matched = (ok: boolean, v: unknown): RuleOutcome => ({
    hit: ok,
    why: `${describeValue(v)} ${ok ? 'matches' : 'does not match'} ${desc}`,
  });

  if (rule.glob || rule.regex !== undefined) {
    const patterns: Pattern[] = rule.glob
      ? rule.glob.map((g) => globPattern(g, deny))
      : [regexPattern(rule.regex!, deny)];
    return (v) => {
      const text = textOf(v, deny);
      if (text === undefined) return cannot(v, 'a string');
      return matched(
        patterns.some((p) => p.test(text)),
        v,
      );
    };
  }
  if (rule.path) {
    const patterns = rule.path.map((g) => globPattern(g, deny));
    return (v) => {
      if (typeof v !== 'string') return cannot(v, 'a path');
      const readings = pathReadings(v);
      if (readings === undefined) return cannot(v, 'an absolute path without ~, NUL or backslash');
      // Allow: every reading must be allowed; deny: any reading denied refuses.
      const ok = deny
        ? readings.some((r) => patterns.some((p) => p.test(r)))
        : readings.every((r) => patterns.some((p) => p.test(r)));
      return matched(ok, v);
    };
  }
  if (rule.enum) {
    const list = rule.enum;
    return (v) => {
      if (!isScalar(v)) return cannot(v, 'a string, number, boolean or null');
      const ok = deny
        ? list.some((e) => e === v || (typeof e === 'string' && foldForDeny(e) === foldForDeny(String(v))))
        : list.some((e) => e === v);
      return matched(ok, v);
    };
  }
  const { min, max } = rule;
  return (v) => {
    let n: number | undefined = typeof v === 'number' ? v : undefined;
    // Numbers written as strings ("5000"): a server may coerce them, so a deny judges the number they spell.
    if (n === undefined && deny && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v.trim())))
      n = Number(v.trim());
    if (n === undefined || !Number.isFinite(n)) return cannot(v, 'a number');
    return matched((min === undefined || n >= min) && (max === undefined || n <= max), v);
  };
}

/** In argument rules a glob is a glob (`*`: any run of characters) or a literal, never a `^…$` regex. */
function globPattern(glob: string, deny: boolean): Pattern {
  return regexPattern(`^${glob.split('*').map(escapeRegex).join('[\\s\\S]*')}$`, deny, glob, 'glob');
}

/** A regex as written (searched, not anchored); deny: case-insensitive and also tested on the Unicode fold. */
function regexPattern(source: string, deny: boolean, text = source, kind: 'glob' | 'regex' = 'regex'): Pattern {
  const re = new RegExp(source, deny ? 'iu' : 'u');
  return {
    text,
    kind,
    test: (value: string) => {
      try {
        if (re.test(value)) return true;
        if (!deny) return false;
        const folded = foldForDeny(value);
        return folded !== value && re.test(folded);
      } catch {
        return deny;
      }
    },
  };
}

/**
 * The readings of a path argument a server could act on: as written, and
 * normalised (`.` and `..` resolved, repeated slashes merged). Undefined when
 * it cannot be judged: not absolute, `~` (servers expand it to a home
 * directory), NUL, backslash, or a percent-encoded dot or slash.
 */
export function pathReadings(p: string): string[] | undefined {
  if (!p.startsWith('/') || p.includes('\0') || p.includes('\\') || /%2e|%2f|%5c/i.test(p)) return undefined;
  const normal = posix.normalize(p);
  const trimmed = normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
  return [...new Set([p, normal, trimmed])];
}

/** Strings as they are; for a deny, numbers and booleans as their JSON text too. */
function textOf(v: unknown, deny: boolean): string | undefined {
  if (typeof v === 'string') return v;
  if (deny && (typeof v === 'number' || typeof v === 'boolean')) return String(v);
  return undefined;
}

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${describeValue(v)}`;
  return `the ${typeof v} ${JSON.stringify(v) ?? typeof v}`;
}

function describeValue(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}
