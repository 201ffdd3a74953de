/**
 * A server's stderr, cut into bounded, printable lines for the proxy's log
 * and for the reason a session ends.
 *
 * stderr is free-form and untrusted: a line may never end, may be huge, may
 * hold terminal escapes. Each chunk is searched for '\n' only in itself (time
 * is linear in the bytes read); at most `maxLine` bytes of a line are kept,
 * the rest is counted and dropped; control characters are escaped.
 */
export const STDERR_LINE_MAX = 1024;

export class StderrLines {
  private parts: Buffer[] = [];
  private kept = 0;
  private dropped = 0;

  constructor(private readonly maxLine = STDERR_LINE_MAX) {}

  push(chunk: Buffer, out: (line: string) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      this.keep(chunk.subarray(start, end));
      if (nl === -1) return;
      this.flush(out);
      start = nl + 1;
    }
  }

  end(out: (line: string) => void): void {
    if (this.kept > 0 || this.dropped > 0) this.flush(out);
  }

  private keep(part: Buffer): void {
    const room = this.maxLine - this.kept;
    if (room > 0) {
      const take = part.subarray(0, room);
      // A copy: the kept bytes must not pin the whole read chunk.
      this.parts.push(Buffer.from(take));
      this.kept += take.length;
    }
    this.dropped += Math.max(0, part.length - Math.max(0, room));
  }

  private flush(out: (line: string) => void): void {
    const raw = Buffer.concat(this.parts, this.kept).toString('utf8').replace(/\r$/, '');
    const dropped = this.dropped;
    this.parts = [];
    this.kept = 0;
    this.dropped = 0;
    const line = sanitizeLine(raw);
    if (!line.trim() && dropped === 0) return;
    out(dropped > 0 ? `${line}… (${dropped} more bytes dropped)` : line);
  }
}

/** Control characters (C0, DEL, C1) and bidi/format tricks escaped as \xNN / \u{…}; no terminal escape survives. */
export function sanitizeLine(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/gu, (c) => {
      const n = c.codePointAt(0)!;
      return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
    })
    .replace(/\t/g, ' ');
}

/** A bounded, printable excerpt of an untrusted text (for messages a person reads). */
export function excerpt(text: string, max = 200): string {
  const clean = sanitizeLine(text);
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
