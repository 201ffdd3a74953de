/**
 * Ending a tunnel with an error: the full reason in a `fatal` control frame,
 * then the close code the error catalogue gives it (docs/protocol.md).
 */
import type { AccessError } from '../errors.js';
import { closeCodeFor } from './close-codes.js';
import { encodeControl } from './control.js';
import type { TunnelSocket } from './socket.js';

/** Refuse a tunnel (or end one): `fatal`, then the error's close code. Works on any open WebSocket. */
export function refuseTunnel(socket: Pick<TunnelSocket, 'send' | 'close'>, err: AccessError): void {
  try {
    socket.send(encodeControl({ type: 'fatal', code: err.code, message: err.message, hint: err.hint }));
  } catch {
    /* socket already gone */
  }
  socket.close(closeCodeFor(err.code), closeReason(err.message));
}

/** A close frame's reason is at most 123 bytes: a message cut to 120, on a character boundary. */
export function closeReason(text: string): string {
  const buf = Buffer.from(text);
  if (buf.length <= 120) return text;
  return `${buf
    .subarray(0, 117)
    .toString('utf8')
    .replace(/\uFFFD$/, '')}...`;
}
