/**
 * Reads the top level of a JSON object fed to it in pieces, without keeping
 * it: which keys it has, and the values of `id` (string, number or null) and
 * `method` (string). Linear in the input, constant memory (captured text is
 * capped). Used where a whole parse would be wasted: an over-size line that
 * is being discarded (its error still answers the right request), and large
 * messages the bridge only needs to route.
 *
 * It is not a validator: `ok` says whether the input looked like one complete
 * top-level object; callers that need certainty parse in full.
 */
const MAX_KEY = 256;
const MAX_VALUE = 1024;

type Phase = 'start' | 'key' | 'colon' | 'value' | 'scalar' | 'after-value' | 'done' | 'bad';

export interface TopLevelSummary {
  keys: ReadonlySet<string>;
  id: string | number | null | undefined;
  method: string | undefined;
}

export class TopLevelScanner implements TopLevelSummary {
  readonly keys = new Set<string>();
  id: string | number | null | undefined;
  method: string | undefined;

  private phase: Phase = 'start';
  /** Nesting below the top-level object (0 = directly in it). */
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Bytes of the string or scalar being captured (a key, or the id/method value). */
  private capture: number[] | undefined;
  private captureLimit = 0;
  private key = '';

  /** True when the input was one complete top-level object, as far as this scan can tell. */
  get ok(): boolean {
    return this.phase === 'done';
  }

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.inString) {
        if (this.capture && this.capture.length < this.captureLimit) this.capture.push(c);
        if (this.escaped) {
          this.escaped = false;
          continue;
        }
        if (c === 0x5c) {
          this.escaped = true;
          continue;
        }
        if (c === 0x22) {
          this.inString = false;
          if (this.depth === 0) this.endTopString();
        }
        continue;
      }
      if (this.phase === 'done' || this.phase === 'bad') {
        if (c > 0x20) this.phase = 'bad'; // something after the object
        continue;
      }
      if (this.depth > 0) {
        if (c === 0x22) this.inString = true;
        else if (c === 0x7b || c === 0x5b) this.depth++;
        else if (c === 0x7d || c === 0x5d) {
          if (--this.depth === 0) this.phase = 'after-value';
        }
        continue;
      }
      // Directly inside the top-level object (or before it).
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        if (this.phase === 'scalar') this.endScalar();
        continue;
      }
      switch (this.phase) {
        case 'start':
          this.phase = c === 0x7b ? 'key' : 'bad';
          break;
        case 'key':
          if (c === 0x22) this.beginString(MAX_KEY);
          else if (c === 0x7d && this.keys.size === 0) this.phase = 'done';
          else this.phase = 'bad';
          break;
        case 'colon':
          this.phase = c === 0x3a ? 'value' : 'bad';
          break;
        case 'value':
          if (c === 0x22) {
            this.inString = true;
            if (this.key === 'id' || this.key === 'method') this.beginCapture(MAX_VALUE);
            this.phase = 'after-value';
          } else if (c === 0x7b || c === 0x5b) {
            this.depth = 1;
          } else {
            // A scalar: number, true, false, null. Only the id's is kept.
            if (this.key === 'id') {
              this.beginCapture(MAX_VALUE);
              this.capture!.push(c);
            }
            this.phase = 'scalar';
          }
          break;
        case 'scalar':
          if (c !== 0x2c && c !== 0x7d) {
            if (this.capture && this.capture.length < this.captureLimit) this.capture.push(c);
            break;
          }
          this.endScalar();
          this.phase = c === 0x2c ? 'key' : 'done';
          break;
        case 'after-value':
          if (c === 0x2c) this.phase = 'key';
          else if (c === 0x7d) this.phase = 'done';
          else this.phase = 'bad';
          break;
      }
    }
  }

  /** End of input: settles a scalar that ran to the end. */
  end(): void {
    if (this.phase === 'scalar') this.endScalar();
  }

  private beginString(limit: number): void {
    this.inString = true;
    this.beginCapture(limit);
  }

  private beginCapture(limit: number): void {
    this.capture = [];
    this.captureLimit = limit + 1; // one more than allowed: "too long" is detectable
  }

  /** A string directly in the top-level object ended: a key, or a captured value. */
  private endTopString(): void {
    const bytes = this.capture;
    this.capture = undefined;
    const text = bytes ? decodeJsonString(bytes) : undefined;
    if (this.phase === 'key') {
      if (text === undefined) {
        this.phase = 'bad';
        return;
      }
      this.key = text;
      this.keys.add(text);
      this.phase = 'colon';
      return;
    }
    // A value (phase already moved to after-value).
    if (text === undefined) return;
    if (this.key === 'id') this.id = text;
    else if (this.key === 'method') this.method = text;
  }

  private endScalar(): void {
    this.phase = 'after-value';
    const bytes = this.capture;
    this.capture = undefined;
    if (!bytes) return;
    const t = Buffer.from(bytes).toString('latin1');
    if (t === 'null') this.id = null;
    else if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) this.id = Number(t);
  }
}

/** The bytes of a JSON string including its closing quote → its value; undefined if too long or broken. */
function decodeJsonString(bytes: number[]): string | undefined {
  if (bytes.length === 0 || bytes[bytes.length - 1] !== 0x22) return undefined; // capped
  try {
    return JSON.parse(`"${Buffer.from(bytes.slice(0, -1)).toString('utf8')}"`) as string;
  } catch {
    return undefined;
  }
}

/** Summarise a whole message at once. */
export function scanTopLevel(message: Uint8Array): TopLevelScanner {
  const s = new TopLevelScanner();
  s.push(message);
  s.end();
  return s;
}
