/** Writing one message and its newline to a stream (stdout, a child's stdin). */
import type { Writable } from 'node:stream';

const NEWLINE = Buffer.from('\n');
/** Up to this size one copy and one write are cheaper than two writes. */
const SMALL_MESSAGE = 16 * 1024;

/** Returns what `write` returns: false means wait for 'drain'. */
export function writeLine(stream: Writable, message: Buffer): boolean {
  if (message.length <= SMALL_MESSAGE) return stream.write(Buffer.concat([message, NEWLINE], message.length + 1));
  stream.cork();
  stream.write(message);
  const ok = stream.write(NEWLINE);
  stream.uncork();
  return ok;
}
