/**
 * Finds the top-level `"id"` of a JSON object fed to it in pieces, without
 * keeping the object. Used on an over-size line that is being discarded, so
 * the error can still answer the request it belonged to. Linear, O(1) memory
 * (but for the id value itself, capped).
 */
const MAX_CAPTURE = 256;

export class TopLevelIdScanner {
  private depth = 0;
  private inString = false;
  private escape = false;
  /** Characters of the current depth-1 string (a key or a value), capped. */
  private str = '';
  private strTooLong = false;
  private lastKey: string | undefined;
  private expectValueFor: string | undefined;
  private capturing = false;
  private captured = '';
  private done = false;
  private result: string | number | null | undefined;
  private afterColon = false;

  /** The id once seen: string, number, null; undefined when not (yet) found. */
  get id(): string | number | null | undefined {
    return this.result;
  }

  push(chunk: Uint8Array): void {
    if (this.done) return;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.inString) {
        if (this.depth === 1 && !this.strTooLong) {
          if (this.str.length >= MAX_CAPTURE) this.strTooLong = true;
          else this.str += String.fromCharCode(c);
        }
        if (this.escape) { this.escape = false; continue; }
        if (c === 0x5c) { this.escape = true; continue; }
        if (c === 0x22) {
          this.inString = false;
          if (this.depth === 1) this.endString();
          if (this.done) return;
        }
        continue;
      }
      if (this.capturing) {
        if (c === 0x2c || c === 0x7d || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          this.finishScalar();
          if (this.done) return;
        } else {
          if (this.captured.length < MAX_CAPTURE) this.captured += String.fromCharCode(c);
          continue;
        }
      }
      switch (c) {
        case 0x22: // "
          this.inString = true;
          this.str = '';
          this.strTooLong = false;
          break;
        case 0x7b: case 0x5b: // { [
          this.depth++;
          if (this.depth === 2) this.expectValueFor = undefined;
          break;
        case 0x7d: case 0x5d: // } ]
          this.depth--;
          break;
        case 0x3a: // :
          if (this.depth === 1) {
            this.expectValueFor = this.lastKey;
            this.afterColon = true;
          }
          break;
        case 0x2c: // ,
          if (this.depth === 1) { this.expectValueFor = undefined; this.afterColon = false; this.lastKey = undefined; }
          break;
        default:
          if (this.depth === 1 && this.afterColon && this.expectValueFor === 'id' && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
            this.capturing = true;
            this.captured = String.fromCharCode(c);
          }
      }
    }
  }

  /** Call at the end of the input: settles a scalar id that ran to the end. */
  end(): void {
    if (this.capturing) this.finishScalar();
  }

  private endString(): void {
    const text = this.str.slice(0, -1); // drop the closing quote
    if (this.afterColon && this.expectValueFor === 'id') {
      if (!this.strTooLong) {
        try { this.result = JSON.parse(`"${text}"`) as string; } catch { /* not a clean string */ }
      }
      this.done = true;
      return;
    }
    if (!this.afterColon) this.lastKey = this.strTooLong ? undefined : text;
  }

  private finishScalar(): void {
    this.capturing = false;
    const t = this.captured.trim();
    if (t === 'null') this.result = null;
    else if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) this.result = Number(t);
    this.done = true;
  }
}
