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
  /** Keys seen so far in this object; reused (cleared) between objects at the same depth. */
  readonly keys: Set<string>;
  /** Case-folded keys, at the levels where case matters. */
  readonly folded: Map<string, string>;
  canonical: ReadonlySet<string> | null;
  expectKey: boolean;
  lastKey: string | null;
  /** The key (or `[]`) under which this value sits in its parent, for messages. */
  name: string;
}

export interface KeyProblem {
  reason: string;
  /** Dotted path of the object holding the key; '' for the message object. */
  path: string;
  key: string;
}

/** Returns the first problem, or undefined when the text is clean. */
export function scanKeys(text: string, opts: KeyScanOptions): KeyProblem | undefined {
  // One frame object per depth, reused: no allocation per object or array.
  const frames: Frame[] = [];
  let depth = 0; // frames[0 .. depth-1] are open
  const pathTo = (d: number): string => {
    let path = '';
    for (let k = 1; k <= d; k++)
      path = frames[k]!.name === '[]' ? `${path}[]` : path === '' ? frames[k]!.name : `${path}.${frames[k]!.name}`;
    return path;
  };
  // One closure per scan (not per key): it reads `depth` when a problem is reported.
  const where = (): string => {
    const path = pathTo(depth - 1);
    return path === '' ? 'the message' : `"${path}"`;
  };
  const len = text.length;
  // A plain charCodeAt loop: several times faster than a regex search when
  // structure is dense; strings are skipped with indexOf.
  for (let i = 0; i < len; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const end = stringEnd(text, i + 1);
      const top = depth > 0 ? frames[depth - 1]! : undefined;
      if (top !== undefined && top.isObject && top.expectKey) {
        const key = decodeKey(text, i, end);
        const problem = addKey(top, key, where);
        if (problem !== undefined) return { reason: problem, path: pathTo(depth - 1), key };
        top.lastKey = key;
        top.expectKey = false;
      }
      i = end;
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      if (depth >= opts.maxDepth)
        return { reason: `nesting is deeper than ${opts.maxDepth} levels`, path: pathTo(depth - 1), key: '' };
      const top = depth > 0 ? frames[depth - 1]! : undefined;
      const isObject = ch === 0x7b;
      const name = top === undefined ? '' : top.isObject ? (top.lastKey ?? '') : '[]';
      let canonical: ReadonlySet<string> | null = null;
      if (isObject && depth === 0) canonical = opts.topKeys;
      else if (isObject && depth === 1 && top!.isObject && name === 'params') canonical = opts.paramsKeys;
      let f = frames[depth];
      if (f === undefined) {
        f = { isObject, keys: new Set(), folded: new Map(), canonical, expectKey: isObject, lastKey: null, name };
        frames[depth] = f;
      } else {
        f.isObject = isObject;
        if (f.keys.size) f.keys.clear();
        if (f.folded.size) f.folded.clear();
        f.canonical = canonical;
        f.expectKey = isObject;
        f.lastKey = null;
        f.name = name;
      }
      depth++;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      depth--;
    } else if (ch === 0x2c /* , */) {
      const top = frames[depth - 1];
      if (top?.isObject) top.expectKey = true;
    }
  }
  return undefined;
}

/** `where` names the object, built only when there is a problem to report. */
function addKey(frame: Frame, key: string, where: () => string): string | undefined {
  if (frame.canonical === null) {
    if (frame.keys.has(key)) return `duplicate key "${key}" in ${where()}`;
    frame.keys.add(key);
  } else {
    // Where case matters, the folded map alone finds both: the first key of
    // each folded form is kept, so the same key again is a duplicate and
    // another key of that form differs only in letter case.
    const f = fold(key);
    const other = frame.folded.get(f);
    if (other === key) return `duplicate key "${key}" in ${where()}`;
    if (other !== undefined) return `keys "${other}" and "${key}" in ${where()} differ only in letter case`;
    frame.folded.set(f, key);
    if (!frame.canonical.has(key)) {
      const c = foldedCanonical(frame.canonical).get(f);
      if (c !== undefined) return `key "${key}" in ${where()} must be written "${c}"`;
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
  const lower = s.toLowerCase();
  return lower.includes('ſ') ? lower.replace(/ſ/g, 's') : lower;
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
