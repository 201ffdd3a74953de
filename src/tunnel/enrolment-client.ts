/**
 * The bot's HTTPS calls to the proxy (undici). Three trust levels:
 *
 *   fetchClusterCa   trusts nothing: it only fetches the CA, which the caller
 *                    checks against its pin before anything secret is sent
 *   requestJoin      trusts only the pinned CA (host name checked as well)
 *   requestRenewal   the same, plus the bot's current certificate (mTLS)
 */
import { Agent, request, type Dispatcher } from 'undici';
import { AccessError, CATALOGUE, type ErrorCode } from '../errors.js';
import {
  BOT_PATHS,
  type EnrolPaths,
  type CaResponse,
  type CertificateResponse,
  type JoinRequest,
  type RenewRequest,
} from './enrolment.js';

import { classifyDialError, formatProxyAddress, type ProxyAddress } from './proxy-address.js';

export type { ProxyAddress };

export interface CallOptions {
  /** The endpoints of the kind of machine enrolling (default: the bot's). */
  paths?: EnrolPaths;
  /** Connect + answer time limit per call; default 15 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** `host:port` of the proxy, as messages show it. */
export const proxyLabel = formatProxyAddress;

const UNTRUSTED_HINT =
  'check --proxy: it must be a name or address in the proxy certificate, of the cluster the CA pin names';

function networkError(err: unknown, where: string): AccessError {
  return classifyDialError(err, where, UNTRUSTED_HINT);
}

async function call<T>(
  proxy: ProxyAddress,
  agent: Dispatcher,
  path: string,
  opts: CallOptions,
  body?: unknown,
): Promise<T> {
  const where = proxyLabel(proxy);
  const timeout = opts.timeoutMs ?? 15_000;
  try {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`https://${where}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        dispatcher: agent,
        headers:
          body === undefined
            ? { accept: 'application/json' }
            : { accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: opts.signal,
      });
    } catch (err) {
      throw networkError(err, where);
    }
    const text = await res.body.text().catch((err: unknown) => {
      throw networkError(err, where);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new AccessError(
        'PROXY_PROTOCOL',
        `${where}${path} answered HTTP ${res.statusCode} with something that is not JSON`,
      );
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return parsed as T;
    const e = (parsed as { error?: { code?: string; message?: string; hint?: string } }).error;
    if (!e || typeof e.message !== 'string') {
      throw new AccessError(
        res.statusCode >= 500 ? 'PROXY_UNREACHABLE' : 'PROXY_PROTOCOL',
        `${where}${path} answered HTTP ${res.statusCode}`,
      );
    }
    const code: ErrorCode =
      e.code && e.code in CATALOGUE
        ? (e.code as ErrorCode)
        : res.statusCode >= 500
          ? 'PROXY_UNREACHABLE'
          : 'PROXY_PROTOCOL';
    if (res.statusCode === 404 && code === 'PROXY_PROTOCOL') {
      throw new AccessError(
        'PROXY_PROTOCOL',
        `${where} does not offer ${path}: the proxy has no bot.state_dir configured (it holds bots and agents), or it is not an mcp-access proxy (or an older one)`,
        {
          hint: 'ask the operator to add `bot: { state_dir: … }` to the proxy config',
        },
      );
    }
    throw new AccessError(code, `the proxy refused: ${e.message}`, typeof e.hint === 'string' ? { hint: e.hint } : {});
  } finally {
    await agent.close().catch(() => {});
  }
}

function connectTimeout(opts: CallOptions): number {
  return opts.timeoutMs ?? 15_000;
}

/** The cluster CA as the proxy presents it, fetched without trusting the proxy yet. Sends nothing secret. */
export async function fetchClusterCa(proxy: ProxyAddress, opts: CallOptions = {}): Promise<CaResponse> {
  // Deliberately unverified: this answer is only used after its pin matched.
  const agent = new Agent({ connect: { rejectUnauthorized: false, timeout: connectTimeout(opts) } });
  const path = (opts.paths ?? BOT_PATHS).ca;
  const res = await call<CaResponse>(proxy, agent, path, opts);
  if (typeof res?.ca !== 'string' || typeof res.cluster !== 'string') {
    throw new AccessError('PROXY_PROTOCOL', `${proxyLabel(proxy)} answered ${path} without a CA certificate`);
  }
  return res;
}

/** Exchange a one-time token and a certificate request for the bot's first certificate. */
export function requestJoin<T = CertificateResponse>(
  proxy: ProxyAddress,
  caPem: string,
  body: JoinRequest,
  opts: CallOptions = {},
): Promise<T> {
  const agent = new Agent({ connect: { ca: [caPem], rejectUnauthorized: true, timeout: connectTimeout(opts) } });
  return call<T>(proxy, agent, (opts.paths ?? BOT_PATHS).join, opts, body);
}

/** Renew over mTLS with the current certificate. */
export function requestRenewal<T = CertificateResponse>(
  proxy: ProxyAddress,
  caPem: string,
  tls: { key: string; cert: string },
  body: RenewRequest,
  opts: CallOptions = {},
): Promise<T> {
  const agent = new Agent({
    connect: { ca: [caPem], key: tls.key, cert: tls.cert, rejectUnauthorized: true, timeout: connectTimeout(opts) },
  });
  return call<T>(proxy, agent, (opts.paths ?? BOT_PATHS).renew, opts, body);
}
