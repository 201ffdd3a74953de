/**
 * Resource URIs as policy judges them (docs/rbac.md, "Resources and prompts").
 *
 * A server may read the URI a client sends in more than one way: as written,
 * percent-decoded (`%31` → `1`), with `.`/`..` segments resolved, or
 * re-printed by a URL parser (`DEMO://x` → `demo://x`). Policy therefore
 * judges every reading: an allow must cover all of them, and a deny that
 * matches any of them refuses. URIs that cannot be judged at all (control,
 * format or space characters, a backslash, lone surrogates, over 4096
 * characters) are refused outright.
 */

const UNSAFE = /[\p{Cc}\p{Cf}\p{Z}\s\\]/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const MAX_URI_LENGTH = 4096;

/** Why a URI cannot be judged, or undefined when it can. */
export function uriProblem(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return 'the resource URI must be a string';
  if (uri === '') return 'the resource URI is empty';
  if (uri.length > MAX_URI_LENGTH) return `the resource URI is longer than ${MAX_URI_LENGTH} characters`;
  if (UNSAFE.test(uri) || LONE_SURROGATE.test(uri))
    return 'the resource URI contains spaces, control or invisible characters, or a backslash';
  return undefined;
}

/** Every reading of `uri` a server could act on (the URI itself first). Call uriProblem first. */
export function uriReadings(uri: string): string[] {
  const out = new Set<string>([uri]);
  const add = (u: string) => {
    out.add(u);
    const parsed = reprint(u);
    if (parsed !== undefined) out.add(parsed);
    out.add(resolveDots(u));
  };
  add(uri);
  // Percent-decoding, repeated while it changes anything (`%2531` → `%31` → `1`), a few times at most.
  let current = uri;
  for (let i = 0; i < 4; i++) {
    const decoded = percentDecode(current);
    if (decoded === current) break;
    add(decoded);
    current = decoded;
  }
  return [...out];
}

function reprint(u: string): string | undefined {
  try {
    return new URL(u).href;
  } catch {
    return undefined;
  }
}

/** Decode %XX sequences that are valid UTF-8; leave the others as they are. */
function percentDecode(u: string): string {
  try {
    return decodeURIComponent(u);
  } catch {
    return u.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

/** `a/b/../c` → `a/c`, `a/./b` → `a/b` in the part after the scheme and authority (no URL parser needed). */
function resolveDots(u: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:(?:\/\/[^/?#]*)?)([^?#]*)(.*)$/.exec(u);
  if (!m) return u;
  const [, head, path, tail] = m as unknown as [string, string, string, string];
  if (!/(^|\/)\.\.?(\/|$)/.test(path)) return u;
  const segs: string[] = [];
  const parts = path.split('/');
  parts.forEach((s, i) => {
    if (s === '.') {
      if (i === parts.length - 1) segs.push('');
    } else if (s === '..') {
      if (segs.length > 1 || (segs.length === 1 && segs[0] !== '')) segs.pop();
      if (i === parts.length - 1) segs.push('');
    } else {
      segs.push(s);
    }
  });
  return head + segs.join('/') + tail;
}
