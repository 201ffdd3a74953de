/**
 * A linear scan over JSON text that JSON.parse has already accepted, looking
 * for what JSON.parse silently hides and other parsers read differently:
 *
 *  - duplicate keys in any object (JSON.parse keeps the last, many parsers the
 *    first): `{"name":"read_file","name":"write_file"}`. Keys are compared
 *    after unescaping, so `"na\u006de"` duplicates `"name"`.
 *  - at the levels the proxy decides on (the message object and `params`),
 *    keys that differ only in letter case from each other or from a protocol
 *    key (`Name`, `Params`, `Method`): Go's encoding/json, for one, matches
 *    struct fields case-insensitively, and folds `ſ` to `s` and `K` (Kelvin)
 *    to `k`.
 *  - nesting deeper than `maxDepth`.
 *
 * Cost: one pass. Strings are skipped with indexOf (native speed, no regex
 * backtracking), structure is found with a sticky-free global regex; each key
 * is added to one Set. Nothing is re-scanned, so a 16 MiB message costs
 * about as much as reading it once.
 */

export interface KeyScanOptions {
  /** Canonical keys of the message object. */
  topKeys: ReadonlySet<string>;
  /** Canonical keys inside `params`. */
  paramsKeys: ReadonlySet<string>;
  maxDepth: number;
}

interface Frame {
  isObject: boolean;
  /** Keys seen so far (objects only). */
  keys: Set<string> | null;
  /** Case-folded keys, at the levels where case matters. */
  folded: Map<string, string> | null;
  canonical: ReadonlySet<string> | null;
  expectKey: boolean;
  lastKey: string | null;
  path: string;
}


export interface KeyProblem {
  reason: string;
  /** Dotted path of the object holding the key; '' for the message object. */
  path: string;
  key: string;
}

/** Returns the first problem, or undefined when the text is clean. */
export function scanKeys(text: string, opts: KeyScanOptions): KeyProblem | undefined {
  const stack: Frame[] = [];
  let pos = 0;
  const re = /["{}[\],]/g;
  for (;;) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null) return undefined;
    const i = m.index;
    const ch = text.charCodeAt(i);
    const top = stack.length ? stack[stack.length - 1]! : undefined;
    switch (ch) {
      case 0x22 /* " */: {
        const end = stringEnd(text, i + 1);
        if (top !== undefined && top.isObject && top.expectKey) {
          const key = decodeKey(text, i, end);
          const problem = addKey(top, key);
          if (problem !== undefined) return problem;
          top.lastKey = key;
          top.expectKey = false;
        }
        pos = end + 1;
        break;
      }
      case 0x7b /* { */:
      case 0x5b /* [ */: {
        if (stack.length >= opts.maxDepth) return { reason: `nesting is deeper than ${opts.maxDepth} levels`, path: top?.path ?? '', key: '' };
        const isObject = ch === 0x7b;
        const depth = stack.length; // 0 = the message object
        const parentKey = top?.isObject ? top.lastKey : null;
        const path = top === undefined ? '' : top.isObject ? join(top.path, parentKey ?? '') : `${top.path}[]`;
        let canonical: ReadonlySet<string> | null = null;
        if (isObject && depth === 0) canonical = opts.topKeys;
        else if (isObject && depth === 1 && parentKey === 'params' && top?.isObject) canonical = opts.paramsKeys;
        stack.push({
          isObject,
          keys: isObject ? new Set() : null,
          folded: canonical ? new Map() : null,
          canonical,
          expectKey: isObject,
          lastKey: null,
          path,
        });
        pos = i + 1;
        break;
      }
      case 0x7d /* } */:
      case 0x5d /* ] */:
        stack.pop();
        pos = i + 1;
        break;
      default /* , */:
        if (top?.isObject) top.expectKey = true;
        pos = i + 1;
    }
  }
}

function addKey(frame: Frame, key: string): KeyProblem | undefined {
  const where = frame.path === '' ? 'the message' : `"${frame.path}"`;
  const problem = (reason: string): KeyProblem => ({ reason, path: frame.path, key });
  if (frame.keys!.has(key)) return problem(`duplicate key "${key}" in ${where}`);
  frame.keys!.add(key);
  if (frame.folded !== null) {
    const f = fold(key);
    const other = frame.folded.get(f);
    if (other !== undefined) return problem(`keys "${other}" and "${key}" in ${where} differ only in letter case`);
    frame.folded.set(f, key);
    if (!frame.canonical!.has(key)) {
      const c = foldedCanonical(frame.canonical!).get(f);
      if (c !== undefined) return problem(`key "${key}" in ${where} must be written "${c}"`);
    }
  }
  return undefined;
}

const foldedCache = new WeakMap<ReadonlySet<string>, Map<string, string>>();
function foldedCanonical(set: ReadonlySet<string>): Map<string, string> {
  let m = foldedCache.get(set);
  if (m === undefined) {
    m = new Map([...set].map((c) => [fold(c), c]));
    foldedCache.set(set, m);
  }
  return m;
}

/** Case folding as lenient decoders do it (Go folds ſ→s and K→k too). */
export function fold(s: string): string {
  return s.toLowerCase().replace(/ſ/g, 's');
}

/** Index of the closing quote of the string whose content starts at `from`. */
function stringEnd(text: string, from: number): number {
  let p = from;
  for (;;) {
    const q = text.indexOf('"', p);
    if (q < 0) return text.length; // unreachable for text JSON.parse accepted
    let backslashes = 0;
    for (let b = q - 1; b >= from && text.charCodeAt(b) === 0x5c; b--) backslashes++;
    if (backslashes % 2 === 0) return q;
    p = q + 1;
  }
}

function decodeKey(text: string, open: number, close: number): string {
  const raw = text.slice(open + 1, close);
  return raw.includes('\\') ? (JSON.parse(text.slice(open, close + 1)) as string) : raw;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}
