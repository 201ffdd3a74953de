/**
 * One attempt to open a tunnel: a WebSocket over mTLS to the proxy that ends
 * in the proxy's `hello`, or in an AccessError that says what went wrong
 * (unreachable, untrusted proxy, refused identity, unknown server, …).
 */
import WebSocket from 'ws';
import { AccessError, isErrorCode, type ErrorCode } from '../errors.js';
import { errorCodeForClose } from '../tunnel/close-codes.js';
import { FrameHold } from '../tunnel/frame-hold.js';
import type { TunnelSocket } from '../tunnel/socket.js';
import { classifyDialError, formatProxyAddress, type ProxyAddress } from '../tunnel/proxy-address.js';
import { decodeControl, SUBPROTOCOL, TUNNEL_PATH, type ControlFrame } from '../tunnel/control.js';

export type Hello = Extract<ControlFrame, { type: 'hello' }>;

export interface ConnectParams {
  proxy: ProxyAddress;
  server: string;
  tls: { key: string; cert: string; ca: string[] };
  maxMessageSize: number;
  resume?: { token: string; received: number };
  handshakeTimeoutMs?: number;
}

export interface Opened {
  socket: TunnelSocket;
  hello: Hello;
  /**
   * Frames that arrived after the hello, before the caller took the socket
   * over (ws emits every frame of a TCP chunk at once), and whether it
   * closed: hand it to TunnelEndpoint.attach, which handles them in order.
   */
  held: FrameHold;
}

/** Errors worth another attempt (the proxy may come back). */
export function isRetryable(err: AccessError): boolean {
  return err.code === 'PROXY_UNREACHABLE' || err.code === 'PROXY_GOING_AWAY';
}

export function openTunnel(p: ConnectParams): Promise<Opened> {
  const where = formatProxyAddress(p.proxy);
  const qs = new URLSearchParams({ server: p.server });
  if (p.resume) {
    qs.set('resume', p.resume.token);
    qs.set('received', String(p.resume.received));
  }
  const url = `wss://${where}${TUNNEL_PATH}?${qs.toString()}`;

  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = new WebSocket(url, SUBPROTOCOL, {
      key: p.tls.key,
      cert: p.tls.cert,
      ca: p.tls.ca,
      rejectUnauthorized: true,
      maxPayload: p.maxMessageSize + 1024,
      perMessageDeflate: false,
      handshakeTimeout: p.handshakeTimeoutMs ?? 10_000,
      followRedirects: false,
    });
    let fatal: AccessError | undefined;
    const fail = (err: AccessError) => {
      if (settled) return;
      settled = true;
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.terminate();
      reject(err);
    };
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return fail(new AccessError('PROXY_PROTOCOL', `the proxy at ${where} sent data before its hello`));
      const frame = decodeControl(data.toString('utf8'));
      if (frame?.type === 'hello') {
        settled = true;
        socket.removeAllListeners();
        resolve({ socket, hello: frame, held: new FrameHold(socket) });
      } else if (frame?.type === 'fatal' && isErrorCode(frame.code) && typeof frame.message === 'string') {
        fatal = new AccessError(frame.code, frame.message, typeof frame.hint === 'string' ? { hint: frame.hint } : {});
      }
    });
    socket.on('close', (code: number, reason: Buffer) => {
      if (fatal) return fail(fatal);
      const ec: ErrorCode = errorCodeForClose(code) ?? 'PROXY_UNREACHABLE';
      fail(
        new AccessError(
          ec,
          `the proxy at ${where} closed the tunnel (${code}${reason.length ? `: ${reason.toString()}` : ''})`,
        ),
      );
    });
    socket.on('unexpected-response', (_req, res) => {
      // A refusal before the upgrade (401: no valid certificate, 400) carries the proxy's error as JSON.
      const fallback = new AccessError(
        'PROXY_PROTOCOL',
        `${where} answered HTTP ${res.statusCode} instead of opening a tunnel`,
      );
      if (res.statusCode !== 401 && res.statusCode !== 400) return fail(fallback);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (t: string) => {
        if (body.length < 8192) body += t;
      });
      res.on('error', () => fail(fallback));
      res.on('end', () => fail(proxyErrorFromBody(body) ?? fallback));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(classifyDialError(err, where)));
  });
}

/** The `{error: {code, message, hint}}` the proxy answers a refused upgrade with. */
function proxyErrorFromBody(body: string): AccessError | undefined {
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown; hint?: unknown } }).error;
    if (!isErrorCode(e?.code) || typeof e.message !== 'string') return undefined;
    return new AccessError(e.code, e.message, typeof e.hint === 'string' ? { hint: e.hint } : {});
  } catch {
    return undefined;
  }
}
