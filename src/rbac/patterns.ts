/**
 * The three pattern forms roles use for tool names and label values,
 * as Teleport writes them:
 *   - a regular expression when the entry starts with `^` and ends with `$`,
 *   - a glob when it contains `*` (the only wildcard; it matches any run of
 *     characters, including none),
 *   - otherwise a literal.
 *
 * A pattern is compiled once, when the role is loaded; an invalid regular
 * expression is a configuration error raised by the caller with the entry's
 * location. Matching never throws: `test` returns false for allow entries
 * and true for deny entries if evaluation fails (see `compilePattern`).
 */

export type PatternKind = 'literal' | 'glob' | 'regex' | 'unevaluable';

export interface Pattern {
  /** The entry exactly as written in the role. */
  readonly text: string;
  readonly kind: PatternKind;
  /** A plain function (no `this`): callers keep it apart from the pattern. */
  readonly test: (value: string) => boolean;
}

export class InvalidRegexError extends Error {}

const TEMPLATE = /\{\{.*\}\}/;

/**
 * `side` decides how a pattern behaves when it cannot be evaluated:
 * an allow pattern then matches nothing, a deny pattern matches everything
 * (fail closed). Deny patterns also match case-insensitively, and against
 * the name's Unicode fold (`foldForDeny`): an upstream that looks names up
 * without regard to case must not be able to run `Write_File`, `wrıte_file`
 * or `WRİTE_FILE` past a deny of `write_file`. Allow patterns are exact.
 */
export function compilePattern(text: string, side: 'allow' | 'deny'): Pattern {
  const denySide = side === 'deny';
  if (TEMPLATE.test(text)) {
    // Teleport's trait templates ({{internal.mcp_tools}}): mcp-access has no
    // user traits to expand them with.
    return unevaluable(text, denySide);
  }
  if (text.length >= 2 && text.startsWith('^') && text.endsWith('$')) {
    let re: RegExp;
    try {
      re = new RegExp(text, denySide ? 'i' : '');
    } catch (err) {
      throw new InvalidRegexError((err as Error).message.replace(/^Invalid regular expression: /, ''));
    }
    return guarded(text, 'regex', re, denySide);
  }
  if (text.includes('*')) {
    if (text === '*') return { text, kind: 'glob', test: () => true };
    const source = `^${text.split('*').map(escapeRegex).join('[\\s\\S]*')}$`;
    return guarded(text, 'glob', new RegExp(source, denySide ? 'i' : ''), denySide);
  }
  if (denySide) {
    const folded = foldForDeny(text);
    return { text, kind: 'literal', test: (v) => v === text || foldForDeny(v) === folded };
  }
  return { text, kind: 'literal', test: (v) => v === text };
}

/** A deny entry that is not a string, or a template: matches everything on the deny side, nothing on the allow side. */
export function unevaluable(text: string, denySide: boolean): Pattern {
  return { text, kind: 'unevaluable', test: () => denySide };
}

/**
 * The name a deny is also checked against: compatibility-decomposed (NFKD:
 * `ſ`→s, `ﬁ`→fi, fullwidth→ASCII), combining marks removed (`İ`→I), then
 * upper- and lower-cased with full Unicode case mapping (`ı`→I→i, `ß`→SS→ss).
 * Whatever an upstream does to a name — `toUpperCase`, Python's `upper()` or
 * `casefold()`, NFKC — a name it would turn into a denied one is denied here.
 * ASCII names are only lower-cased. Deny only ever gets broader by it.
 */
export function foldForDeny(value: string): string {
  if (/^[\x00-\x7f]*$/.test(value)) return value.toLowerCase();
  const strip = (s: string) => s.normalize('NFKD').replace(/\p{M}/gu, '');
  return strip(strip(value).toUpperCase()).toLowerCase();
}

function guarded(text: string, kind: PatternKind, re: RegExp, denySide: boolean): Pattern {
  return {
    text,
    kind,
    test(value: string): boolean {
      try {
        if (denySide) {
          if (re.test(value)) return true;
          const folded = foldForDeny(value);
          return folded !== value && re.test(folded);
        }
        return re.test(value);
      } catch {
        // e.g. a stack overflow inside the regex engine: fail closed on deny.
        return denySide;
      }
    },
  };
}

export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
