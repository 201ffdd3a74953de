/**
 * WebSocket close codes of the tunnel (documented in docs/protocol.md).
 * The private range 4000–4999 is ours; 1000/1009 are WebSocket's own.
 *
 * A code that stands for an error is the `close` of its entry in the error
 * catalogue (src/errors.ts), and is read back through the same entry: no
 * other table maps errors to close codes.
 */
import { CATALOGUE, type CatalogueEntry, type ErrorCode } from '../errors.js';

/** Close codes that stand for no error of the catalogue. */
export const CLOSE = {
  NORMAL: 1000,
  /** ws closes with this by itself when a frame exceeds maxPayload (read as MESSAGE_TOO_LARGE). */
  WS_MESSAGE_TOO_BIG: 1009,
  /** bridge → proxy: moving onto a renewed certificate; the session stays for a resume. */
  ROTATING: 4002,
  /** What a tunnel ends with when its error has no close code of its own (PROXY_PROTOCOL's). */
  PROTOCOL_ERROR: CATALOGUE.PROXY_PROTOCOL.close,
  GOING_AWAY: CATALOGUE.PROXY_GOING_AWAY.close,
  RESUME_REJECTED: CATALOGUE.SESSION_LOST.close,
} as const;

const BY_CLOSE = new Map<number, ErrorCode>();
for (const [code, entry] of Object.entries(CATALOGUE) as Array<[ErrorCode, CatalogueEntry]>) {
  if (entry.close !== undefined) BY_CLOSE.set(entry.close, code);
}

/** The close code a tunnel that ends with this error closes with. */
export function closeCodeFor(code: ErrorCode): number {
  const entry: CatalogueEntry = CATALOGUE[code];
  return entry.close ?? CLOSE.PROTOCOL_ERROR;
}

/** The error catalogue entry a close code stands for (for the bridge's messages). */
export function errorCodeForClose(code: number): ErrorCode | undefined {
  if (code === CLOSE.WS_MESSAGE_TOO_BIG) return 'MESSAGE_TOO_LARGE';
  return BY_CLOSE.get(code);
}

/** Close codes after which reconnecting to the same session cannot help. */
export function isFinalClose(code: number): boolean {
  return code !== CLOSE.GOING_AWAY && errorCodeForClose(code) !== undefined && code !== CLOSE.RESUME_REJECTED;
}
