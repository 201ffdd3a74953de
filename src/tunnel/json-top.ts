/**
 * The top level of a small JSON-RPC message, read straight from its bytes:
 * which of `id`, `method`, `result` and `error` it has, and the values of
 * `id` and `method`. The scan is a strict JSON validator (RFC 8259, the
 * grammar `JSON.parse` accepts), so the bridge can route a message without
 * decoding it to a string and building its object tree, yet still knows that
 * it is JSON.
 *
 * It answers only when its reading is certain to be `JSON.parse`'s; in every
 * other case (not valid JSON, not an object, a top-level key or an `id` or
 * `method` string written with escapes, nesting deeper than it tracks) it
 * returns undefined and the caller parses in full, as before. Bytes ≥ 0x80
 * are accepted inside strings only: decoding can turn them into U+FFFD but
 * never into a quote, a backslash or a control character, so they cannot
 * change what `JSON.parse` of the decoded text accepts.
 */

export interface JsonTop {
  hasId: boolean;
  /** The `id` when it is a string, a number or null; undefined for any other value (or none). */
  id: string | number | null | undefined;
  /** The `method` when it is a string. */
  method: string | undefined;
  hasResult: boolean;
  hasError: boolean;
  /** A raw CR or LF appears (as whitespace between tokens: inside strings they cannot). */
  lineBreaks: boolean;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Containers open inside one value (1: object, 2: array); deeper values are left to `JSON.parse`. */
const MAX_DEPTH = 256;
const stack = new Uint8Array(MAX_DEPTH);

/** Set by `endOfString` when the string had an escape. */
let escaped = false;
/** Set by `skipWs` when it passed a CR or LF. */
let lineBreak = false;

/** Read the top level of `b`, or undefined when only a full parse can say (see above). */
export function readJsonTop(b: Buffer): JsonTop | undefined {
  const n = b.length;
  lineBreak = false;
  let i = skipWs(b, 0, n);
  if (b[i] !== OPEN_OBJECT) return undefined;
  const top: JsonTop = {
    hasId: false,
    id: undefined,
    method: undefined,
    hasResult: false,
    hasError: false,
    lineBreaks: false,
  };
  i = skipWs(b, i + 1, n);
  if (b[i] === CLOSE_OBJECT) return end(b, i, n, top);
  for (;;) {
    if (b[i] !== QUOTE) return undefined;
    const keyStart = i + 1;
    escaped = false;
    i = endOfString(b, i, n);
    if (i < 0 || escaped) return undefined;
    const key = memberOf(b, keyStart, i - 1 - keyStart);
    i = skipWs(b, i, n);
    if (b[i] !== COLON) return undefined;
    i = skipWs(b, i + 1, n);
    const valueStart = i;
    if ((key === ID || key === METHOD) && b[i] === QUOTE) {
      escaped = false;
      i = endOfString(b, i, n);
      if (i < 0 || escaped) return undefined;
      if (key === ID) {
        top.hasId = true;
        top.id = b.toString('utf8', valueStart + 1, i - 1);
      } else top.method = methodAt(b, valueStart + 1, i - 1);
    } else {
      i = endOfValue(b, i, n);
      if (i < 0) return undefined;
      if (key === ID) {
        top.hasId = true;
        const c = b[valueStart]!;
        top.id = c === 0x6e ? null : c === 0x2d || (c >= 0x30 && c <= 0x39) ? numberAt(b, valueStart, i) : undefined;
      } else if (key === METHOD) top.method = undefined;
      else if (key === RESULT) top.hasResult = true;
      else if (key === ERROR) top.hasError = true;
    }
    i = skipWs(b, i, n);
    const c = b[i];
    if (c === COMMA) i = skipWs(b, i + 1, n);
    else if (c === CLOSE_OBJECT) return end(b, i, n, top);
    else return undefined;
  }
}

/** The top-level object closed at `b[i]`: only whitespace may follow. */
function end(b: Buffer, i: number, n: number, top: JsonTop): JsonTop | undefined {
  if (skipWs(b, i + 1, n) !== n) return undefined;
  top.lineBreaks = lineBreak;
  return top;
}

const OTHER = 0;
const ID = 1;
const METHOD = 2;
const RESULT = 3;
const ERROR = 4;

/**
 * The last method read and its bytes. Most messages repeat the one before's
 * method (`tools/call`, say): its string is reused instead of decoded again.
 */
let lastMethod = '';
let lastMethodBytes = Buffer.alloc(0);

/** The method whose bytes (without escapes) are `b[start, end)`. */
function methodAt(b: Buffer, start: number, end: number): string {
  const length = end - start;
  if (length === lastMethodBytes.length) {
    let k = 0;
    while (k < length && b[start + k] === lastMethodBytes[k]) k++;
    if (k === length) return lastMethod;
  }
  lastMethod = b.toString('utf8', start, end);
  lastMethodBytes = Buffer.from(b.subarray(start, end));
  return lastMethod;
}

/** Which member a key (without escapes) names. */
function memberOf(b: Buffer, at: number, length: number): number {
  if (length === 2) return b[at] === 0x69 && b[at + 1] === 0x64 ? ID : OTHER;
  if (length === 5) return bytesAre(b, at, 'error') ? ERROR : OTHER;
  if (length === 6) return bytesAre(b, at, 'method') ? METHOD : bytesAre(b, at, 'result') ? RESULT : OTHER;
  return OTHER;
}

/** `word` (ASCII) is at `b[at]` (the caller knows the bytes are there). */
function bytesAre(b: Buffer, at: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (b[at + k] !== word.charCodeAt(k)) return false;
  return true;
}

/** The value of a valid JSON number, as `JSON.parse` reads it. */
function numberAt(b: Buffer, start: number, end: number): number {
  let i = start;
  const negative = b[i] === 0x2d;
  if (negative) i++;
  if (end - i <= 15) {
    let v = 0;
    for (; i < end; i++) {
      const d = b[i]! - 0x30;
      if (d < 0 || d > 9) return Number(b.toString('latin1', start, end));
      v = v * 10 + d;
    }
    return negative ? -v : v;
  }
  return Number(b.toString('latin1', start, end));
}

function skipWs(b: Buffer, i: number, n: number): number {
  while (i < n) {
    const c = b[i];
    if (c === 0x0a || c === 0x0d) lineBreak = true;
    else if (c !== 0x20 && c !== 0x09) return i;
    i++;
  }
  return i;
}

/** Just past the string that starts at `b[i]` (a quote), or -1. Sets `escaped` when it has an escape. */
function endOfString(b: Buffer, i: number, n: number): number {
  i++;
  while (i < n) {
    const c = b[i]!;
    // Most bytes of a string: lower case, and every byte of a multi-byte character.
    if (c > BACKSLASH) {
      i++;
      continue;
    }
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      escaped = true;
      const e = b[i + 1];
      if (e === 0x75) {
        if (i + 5 >= n || !isHex(b[i + 2]!) || !isHex(b[i + 3]!) || !isHex(b[i + 4]!) || !isHex(b[i + 5]!)) return -1;
        i += 6;
      } else if (
        e === QUOTE ||
        e === BACKSLASH ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        i += 2;
      } else return -1;
      continue;
    }
    if (c < 0x20) return -1;
    i++;
  }
  return -1;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** Just past the number that starts at `b[i]`, or -1. */
function endOfNumber(b: Buffer, i: number, n: number): number {
  if (b[i] === 0x2d) i++;
  const first = b[i];
  if (first === 0x30) i++;
  else if (first !== undefined && first >= 0x31 && first <= 0x39) {
    i++;
    while (i < n && isDigit(b[i])) i++;
  } else return -1;
  if (b[i] === 0x2e) {
    const from = ++i;
    while (i < n && isDigit(b[i])) i++;
    if (i === from) return -1;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const from = i;
    while (i < n && isDigit(b[i])) i++;
    if (i === from) return -1;
  }
  return i;
}

/** Just past `word` (ASCII) at `b[i]`, or -1. */
function endOfWord(b: Buffer, i: number, n: number, word: string): number {
  return i + word.length <= n && bytesAre(b, i, word) ? i + word.length : -1;
}

/** Just past the JSON value that starts at `b[i]`, or -1 (invalid, or nested deeper than MAX_DEPTH). */
function endOfValue(b: Buffer, i: number, n: number): number {
  let depth = 0;
  for (;;) {
    // A value starts at i.
    const c = b[i];
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      i = skipWs(b, i + 1, n);
      if (b[i] === (c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) i++;
      else {
        if (depth === MAX_DEPTH) return -1;
        stack[depth++] = c === OPEN_OBJECT ? 1 : 2;
        if (c === OPEN_OBJECT) {
          i = memberKey(b, i, n);
          if (i < 0) return -1;
        }
        continue;
      }
    } else if (c === QUOTE) i = endOfString(b, i, n);
    else if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) i = endOfNumber(b, i, n);
    else if (c === 0x74) i = endOfWord(b, i, n, 'true');
    else if (c === 0x66) i = endOfWord(b, i, n, 'false');
    else if (c === 0x6e) i = endOfWord(b, i, n, 'null');
    else return -1;
    if (i < 0) return -1;
    // After a value: close containers, or go on to the next element.
    for (;;) {
      if (depth === 0) return i;
      i = skipWs(b, i, n);
      const d = b[i];
      const inObject = stack[depth - 1] === 1;
      if (d === COMMA) {
        i = skipWs(b, i + 1, n);
        if (inObject) {
          i = memberKey(b, i, n);
          if (i < 0) return -1;
        }
        break;
      }
      if (d !== (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return -1;
      depth--;
      i++;
    }
  }
}

/** `"key" :` at `b[i]`; returns where its value starts, or -1. */
function memberKey(b: Buffer, i: number, n: number): number {
  if (b[i] !== QUOTE) return -1;
  i = endOfString(b, i, n);
  if (i < 0) return -1;
  i = skipWs(b, i, n);
  if (b[i] !== COLON) return -1;
  return skipWs(b, i + 1, n);
}
