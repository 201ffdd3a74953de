/**
 * WebSocket close codes of the tunnel (documented in docs/protocol.md).
 * The private range 4000–4999 is ours; 1000/1009 are WebSocket's own.
 */
import type { ErrorCode } from '../errors.js';

export const CLOSE = {
  NORMAL: 1000,
  /** ws closes with this by itself when a frame exceeds maxPayload. */
  WS_MESSAGE_TOO_BIG: 1009,
  GOING_AWAY: 4001,
  /** bridge → proxy: moving onto a renewed certificate; the session stays for a resume. */
  ROTATING: 4002,
  PROTOCOL_ERROR: 4400,
  IDENTITY_REJECTED: 4401,
  IDENTITY_EXPIRED: 4402,
  ACCESS_DENIED: 4403,
  UNKNOWN_SERVER: 4404,
  RESUME_REJECTED: 4409,
  MESSAGE_TOO_LARGE: 4413,
  SESSION_LOCKED: 4423,
  /** A session limit (sessions per identity, per proxy, processes per server) was reached. */
  LIMIT_REACHED: 4429,
  UPSTREAM_FAILED: 4500,
  UPSTREAM_EXITED: 4502,
} as const;
export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];

/** The error catalogue entry a close code stands for (for the bridge's messages). */
export function errorCodeForClose(code: number): ErrorCode | undefined {
  switch (code) {
    case CLOSE.GOING_AWAY:
      return 'PROXY_GOING_AWAY';
    case CLOSE.PROTOCOL_ERROR:
      return 'PROXY_PROTOCOL';
    case CLOSE.IDENTITY_REJECTED:
      return 'IDENTITY_REJECTED';
    case CLOSE.IDENTITY_EXPIRED:
      return 'IDENTITY_EXPIRED';
    case CLOSE.ACCESS_DENIED:
      return 'ACCESS_DENIED';
    case CLOSE.UNKNOWN_SERVER:
      return 'UNKNOWN_SERVER';
    case CLOSE.MESSAGE_TOO_LARGE:
    case CLOSE.WS_MESSAGE_TOO_BIG:
      return 'MESSAGE_TOO_LARGE';
    case CLOSE.SESSION_LOCKED:
      return 'SESSION_LOCKED';
    case CLOSE.LIMIT_REACHED:
      return 'LIMIT_REACHED';
    case CLOSE.RESUME_REJECTED:
      return 'SESSION_LOST';
    case CLOSE.UPSTREAM_FAILED:
      return 'UPSTREAM_FAILED';
    case CLOSE.UPSTREAM_EXITED:
      return 'UPSTREAM_EXITED';
    default:
      return undefined;
  }
}

/** Close codes after which reconnecting to the same session cannot help. */
export function isFinalClose(code: number): boolean {
  return code !== CLOSE.GOING_AWAY && errorCodeForClose(code) !== undefined && code !== CLOSE.RESUME_REJECTED;
}
