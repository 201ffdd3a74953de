/** Writing one message and its newline to a stream (stdout, a child's stdin). */
import type { Writable } from 'node:stream';
import { holdWrites } from './write-batch.js';

const NEWLINE = Buffer.from('\n');
/** Up to this size one copy and one chunk are cheaper than two chunks. */
const SMALL_MESSAGE = 16 * 1024;

/**
 * Returns what `write` returns: false means wait for 'drain'. Messages
 * written in one turn of the event loop leave in one `writev` (write-batch.ts).
 */
export function writeLine(stream: Writable, message: Buffer): boolean {
  holdWrites(stream);
  if (message.length <= SMALL_MESSAGE) return stream.write(Buffer.concat([message, NEWLINE], message.length + 1));
  stream.write(message);
  return stream.write(NEWLINE);
}
