/**
 * `app_labels` selectors: which servers a role's allow or deny side covers.
 *
 * A selector matches a server when every key in it matches: the server has
 * that label and its value matches one of the listed values (exact, `*`,
 * glob, or `^…$` regex). The key `*` with the value `*` matches every server,
 * labelled or not. An empty selector matches nothing.
 */
import { compilePattern, InvalidRegexError, type Pattern } from './patterns.js';
import { evaluateExpression } from './expression.js';

export interface LabelEntry {
  key: string;
  values: Pattern[];
}

export interface LabelMatchers {
  /** The field was written in the role (even if empty). */
  written: boolean;
  entries: LabelEntry[];
  /**
   * Set when part of the selector cannot be evaluated (e.g. app_labels_expression): deny matches every
   * server, allow none.
   */
  unevaluable?: string;
  /** `app_labels_expression` as written (expression.ts); plain text, parsed at load and cached. */
  expression?: string;
  /** The role writes the expression but no `app_labels`: the expression alone selects servers. */
  expressionOnly?: boolean;
}

export const NO_LABELS: LabelMatchers = { written: false, entries: [] };

export class LabelSelectorError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Compile a selector. `field` is the location used in errors and warnings
 * (`spec.allow.app_labels`). Values may be a string, a number/boolean (read
 * as its text), or a list of those.
 */
export function compileLabels(
  raw: unknown,
  side: 'allow' | 'deny',
  field: string,
  warn: (msg: string) => void,
): LabelMatchers {
  if (raw === undefined) return NO_LABELS;
  if (raw === null) return { written: true, entries: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new LabelSelectorError(field, 'must be a mapping of label names to a value or a list of values');
  }
  const entries: LabelEntry[] = [];
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const at = `${field}.${quoteKey(key)}`;
    const list = Array.isArray(value) ? value : [value];
    const texts: string[] = [];
    list.forEach((v, i) => {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') texts.push(String(v));
      else
        throw new LabelSelectorError(
          Array.isArray(value) ? `${at}[${i}]` : at,
          'must be a string or a list of strings',
        );
    });
    if (key === '*') {
      if (texts.length !== 1 || texts[0] !== '*') {
        throw new LabelSelectorError(
          at,
          `the key '*' only takes the value '*' (matches every server), not ${JSON.stringify(value)}`,
        );
      }
      entries.push({ key, values: [compilePattern('*', side)] });
      continue;
    }
    if (texts.length === 0) warn(`${at}: an empty list of values matches no server`);
    const values = texts.map((t, i) => {
      try {
        const p = compilePattern(t, side);
        if (p.kind === 'unevaluable') {
          warn(
            `${at}: "${t}" is a template, expanded from the identity's traits (identity issue --trait); for an identity without that trait ${side === 'deny' ? 'this deny matches every server (fail closed)' : 'it matches no server'}`,
          );
        }
        return p;
      } catch (err) {
        if (err instanceof InvalidRegexError) {
          throw new LabelSelectorError(
            Array.isArray(value) ? `${at}[${i}]` : at,
            `invalid regular expression ${JSON.stringify(t)}: ${err.message}`,
          );
        }
        throw err;
      }
    });
    entries.push({ key, values });
  }
  return { written: true, entries };
}

/** Mark a selector as not evaluable (for fields such as app_labels_expression that mcp-access cannot read). */
export function withUnevaluable(m: LabelMatchers, why: string): LabelMatchers {
  return { ...m, written: true, unevaluable: why };
}

/**
 * Does the selector cover a server? With `app_labels_expression`: on allow,
 * the labels (when written) AND the expression must match; on deny, the labels
 * OR the expression. An expression that fails to evaluate (a type error)
 * matches on deny, not on allow (fail closed).
 */
export function labelsMatch(
  m: LabelMatchers,
  labels: Record<string, string>,
  side: 'allow' | 'deny',
  traits: Readonly<Record<string, readonly string[]>> = {},
): boolean {
  if (m.unevaluable !== undefined) return side === 'deny';
  if (m.expression === undefined) return entriesMatch(m, labels);
  let expr: boolean;
  try {
    expr = evaluateExpression(m.expression, labels, traits);
  } catch {
    expr = side === 'deny';
  }
  const selector = m.expressionOnly ? undefined : entriesMatch(m, labels);
  if (side === 'allow') return expr && selector !== false;
  return expr || selector === true;
}

function entriesMatch(m: LabelMatchers, labels: Record<string, string>): boolean {
  if (m.entries.length === 0) return false;
  for (const entry of m.entries) {
    if (entry.key === '*') continue;
    if (!Object.hasOwn(labels, entry.key)) return false;
    const value = labels[entry.key]!;
    if (!entry.values.some((p) => p.test(value))) return false;
  }
  return true;
}

/** `env: dev, team: [a, b]` — for explanations. */
export function describeLabels(m: LabelMatchers): string {
  if (m.unevaluable !== undefined) return `(cannot be evaluated: ${m.unevaluable})`;
  if (m.expression !== undefined) {
    const expr = `app_labels_expression ${JSON.stringify(m.expression)}`;
    return m.expressionOnly ? expr : `${describeSelector(m)} and ${expr}`;
  }
  return describeSelector(m);
}

function describeSelector(m: LabelMatchers): string {
  if (m.entries.length === 0) return '{}';
  return `{${m.entries
    .map(
      (e) =>
        `${quoteKey(e.key)}: ${e.values.length === 1 ? e.values[0]!.text : `[${e.values.map((v) => v.text).join(', ')}]`}`,
    )
    .join(', ')}}`;
}

export function describeServerLabels(labels: Record<string, string>): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return 'no labels';
  return keys.map((k) => `${k}=${labels[k]}`).join(', ');
}

function quoteKey(key: string): string {
  return /^[A-Za-z0-9_.\-/]+$/.test(key) ? key : `'${key}'`;
}
