/**
 * Control frames. Data frames are binary WebSocket messages holding exactly
 * one JSON-RPC message, byte for byte. Control frames are text messages
 * holding one small JSON object; the two never mix, so data stays verbatim.
 */
import type { ErrorCode } from '../errors.js';

export const SUBPROTOCOL = 'mcp-access.v1';
export const TUNNEL_PATH = '/v1/tunnel';

export type ControlFrame =
  /** proxy → bridge, first frame of every tunnel: the session and how far the proxy got. */
  | {
      type: 'hello';
      session: string;
      resumeToken: string;
      server: string;
      resumed: boolean;
      received: number;
      graceMs: number;
    }
  /** either way: "I have received this many data frames from you". */
  | { type: 'ack'; received: number }
  /** proxy → bridge, just before a close with a final code: the full reason. */
  | { type: 'fatal'; code: ErrorCode; message: string; hint?: string };

export function encodeControl(frame: ControlFrame): string {
  return JSON.stringify(frame);
}

export function decodeControl(text: string): ControlFrame | undefined {
  try {
    const v = JSON.parse(text) as { type?: unknown };
    if (v && typeof v === 'object' && typeof v.type === 'string') return v as ControlFrame;
  } catch {
    /* fall through */
  }
  return undefined;
}
