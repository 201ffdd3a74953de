/**
 * Calls to the proxy's JSON endpoints with an identity's client certificate
 * (undici over mTLS, trusting only the identity's CAs and --ca-file roots).
 */
import { Agent, request } from 'undici';
import { AccessError, CATALOGUE, type ErrorCode } from '../errors.js';
import type { Identity } from '../identity/load.js';
import { classifyDialError, formatProxyAddress, type ProxyAddress } from '../tunnel/proxy-address.js';

export interface ServerListing {
  name: string;
  description: string;
  transport: string;
  labels: Record<string, string>;
  tools?: { allow: string[]; deny: string[] };
  /** Resource URI and prompt patterns; `defaulted` names roles that do not write them (rbac.default_*: all). */
  resources?: { allow: string[]; deny: string[]; defaulted?: string[] };
  prompts?: { allow: string[]; deny: string[]; defaulted?: string[] };
  /** Set when the proxy knows the server cannot work (e.g. its command is missing). */
  problem?: string;
}

export async function proxyGet<T>(
  proxy: ProxyAddress,
  path: string,
  identity: Identity,
  extraCa: string[] = [],
): Promise<T> {
  const where = formatProxyAddress(proxy);
  const agent = new Agent({
    connect: {
      key: identity.keyPem,
      cert: identity.certPem,
      ca: [...identity.caPems, ...extraCa],
      rejectUnauthorized: true,
    },
    connectTimeout: 10_000,
  });
  try {
    const res = await request(`https://${where}${path}`, {
      dispatcher: agent,
      method: 'GET',
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    const body = (await res.body.json().catch(() => undefined)) as
      { error?: { code?: string; message?: string; hint?: string } } | undefined;
    if (res.statusCode !== 200) {
      const e = body?.error;
      const code: ErrorCode = e?.code && e.code in CATALOGUE ? (e.code as ErrorCode) : 'PROXY_PROTOCOL';
      throw new AccessError(
        code,
        e?.message ?? `the proxy at ${where} answered HTTP ${res.statusCode} to ${path}`,
        e?.hint ? { hint: e.hint } : {},
      );
    }
    return body as T;
  } catch (err) {
    throw classifyDialError(err, where);
  } finally {
    await agent.close().catch(() => {});
  }
}

export interface ServerList {
  cluster: string;
  servers: ServerListing[];
  /** The caller's roles that the proxy defines no role document for. */
  unknownRoles?: string[];
  /** What the proxy wants the caller (or its operator) to know: unknown roles, no audit trail. */
  warnings?: string[];
}

export async function listServers(
  proxy: ProxyAddress,
  identity: Identity,
  extraCa: string[] = [],
): Promise<ServerList> {
  return proxyGet(proxy, '/v1/servers', identity, extraCa);
}
