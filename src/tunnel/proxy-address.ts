/**
 * Dialling the proxy, for every client of it (the bridge, `ls`/`config`, the
 * bot): its address, and what a failed connection means for a person.
 * No `ws` here, so callers that only make HTTPS calls stay light.
 */
import { AccessError } from '../errors.js';

export interface ProxyAddress { host: string; port: number }

/** `host:port`, `[v6]:port`; the port is required. */
export function parseProxyAddress(text: string, hint = 'e.g. --proxy proxy.example.com:443 or set MCP_ACCESS_PROXY'): ProxyAddress {
  const m = /^(?:\[([^\]]+)\]|([^:/\s]+)):(\d{1,5})$/.exec(String(text).trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new AccessError('USAGE', `--proxy "${text}" must be host:port`, { hint });
  return { host: m[1] ?? m[2]!, port };
}

/** `host:port`, brackets around an IPv6 host. */
export function formatProxyAddress(p: ProxyAddress): string {
  return `${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`;
}

const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED', 'CERT_UNTRUSTED',
]);

/**
 * What a failed connection to the proxy at `where` means. The error's own
 * code is used, or its cause's (undici wraps socket errors).
 * `untrustedHint` overrides the catalogue's hint for an unverifiable proxy.
 */
export function classifyDialError(err: unknown, where: string, untrustedHint?: string): AccessError {
  if (err instanceof AccessError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code ?? '';
  const message = e?.message ?? String(err);
  if (TLS_TRUST_ERRORS.has(code)) {
    const why = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'its certificate is not valid for that host name' : `its certificate is not trusted (${code})`;
    return new AccessError('PROXY_UNTRUSTED', `the proxy at ${where} could not be verified: ${why}`, untrustedHint ? { hint: untrustedHint } : {});
  }
  if (e?.name === 'AbortError' || code === 'ABORT_ERR') return new AccessError('PROXY_UNREACHABLE', `the call to the proxy at ${where} was cancelled`);
  if (code === 'ECONNREFUSED') return new AccessError('PROXY_UNREACHABLE', `no proxy is listening at ${where} (connection refused)`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new AccessError('PROXY_UNREACHABLE', `the proxy host in ${where} cannot be resolved`);
  if (/TIMEOUT|ETIMEDOUT/i.test(code) || /handshake has timed out/i.test(message)) return new AccessError('PROXY_UNREACHABLE', `the proxy at ${where} did not answer in time`);
  if (/alert|ssl|tls/i.test(message)) return new AccessError('IDENTITY_REJECTED', `the proxy at ${where} refused the TLS handshake: ${message}`);
  return new AccessError('PROXY_UNREACHABLE', `the connection to the proxy at ${where} failed: ${message}`);
}
