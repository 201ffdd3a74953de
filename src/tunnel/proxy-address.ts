/**
 * Dialling the proxy, for every client of it (the bridge, `ls`/`config`, the
 * bot): its address, and what a failed connection means for a person.
 * No `ws` here, so callers that only make HTTPS calls stay light.
 */
import { AccessError } from '../errors.js';

export interface ProxyAddress {
  host: string;
  port: number;
}

/** `host:port`, `[v6]:port`; the port is required. */
export function parseProxyAddress(
  text: string,
  hint = 'e.g. --proxy proxy.example.com:443 or set MCP_ACCESS_PROXY',
): ProxyAddress {
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
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_UNTRUSTED',
]);

/** OpenSSL's ways of saying "what answered is not TLS" (a plain HTTP server, an SSH daemon…). */
const NOT_TLS =
  /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL|HTTP_REQUEST|RECORD_LENGTH_MISMATCH|UNEXPECTED_RECORD|BAD_RECORD_TYPE/;

/** The names and addresses a certificate holds (its subjectAltName), for messages. */
function certificateNames(cert: unknown): string[] {
  const san = (cert as { subjectaltname?: unknown } | undefined)?.subjectaltname;
  if (typeof san !== 'string' || !san) return [];
  return san
    .split(/,\s*/)
    .map((n) => n.replace(/^(DNS|IP Address):/, ''))
    .filter(Boolean);
}

/** The first line of an error message, without OpenSSL's `…:error:0A00010B:…:file.c:350:` detail. */
function oneLine(message: string): string {
  const first = message.split('\n')[0]!.trim();
  const ssl = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+)/.exec(first);
  return ssl ? ssl[1]!.trim() : first;
}

/**
 * What a failed connection to the proxy at `where` means. The error's own
 * code is used, or its cause's (undici wraps socket errors).
 * `untrustedHint` overrides the catalogue's hint for an unverifiable proxy
 * (not for a host name the certificate lacks: that message names the names
 * it holds, the same for every client).
 */
export function classifyDialError(err: unknown, where: string, untrustedHint?: string): AccessError {
  if (err instanceof AccessError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException; cert?: unknown };
  const code = e?.code ?? e?.cause?.code ?? '';
  const message = e?.message ?? String(err);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return hostNotInCertificate(where, certificateNames(e.cert ?? (e.cause as { cert?: unknown } | undefined)?.cert));
  if (TLS_TRUST_ERRORS.has(code)) {
    return new AccessError(
      'PROXY_UNTRUSTED',
      `the proxy at ${where} could not be verified: its certificate is not trusted (${code})`,
      untrustedHint ? { hint: untrustedHint } : {},
    );
  }
  if (e?.name === 'AbortError' || code === 'ABORT_ERR')
    return new AccessError('PROXY_UNREACHABLE', `the call to the proxy at ${where} was cancelled`);
  if (code === 'ECONNREFUSED')
    return new AccessError('PROXY_UNREACHABLE', `no proxy is listening at ${where} (connection refused)`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new AccessError('PROXY_UNREACHABLE', `the proxy host in ${where} cannot be resolved`);
  if (/TIMEOUT|ETIMEDOUT/i.test(code) || /handshake has timed out/i.test(message))
    return new AccessError('PROXY_UNREACHABLE', `the proxy at ${where} did not answer in time`);
  if (NOT_TLS.test(code) || (/SSL routines/i.test(message) && NOT_TLS.test(message.toUpperCase().replace(/ /g, '_')))) {
    return new AccessError(
      'PROXY_PROTOCOL',
      `what answers at ${where} does not speak TLS, so it is not an mcp-access proxy`,
      { hint: 'check --proxy: the host and port the proxy listens on, not those of another service' },
    );
  }
  if (/ALERT/.test(code) || /alert/i.test(message))
    return new AccessError(
      'IDENTITY_REJECTED',
      `the proxy at ${where} refused the TLS handshake (${oneLine(message)})`,
    );
  if (code.startsWith('ERR_SSL_') || /ssl|tls/i.test(message))
    return new AccessError('PROXY_PROTOCOL', `the TLS handshake with ${where} failed (${oneLine(message)})`);
  return new AccessError('PROXY_UNREACHABLE', `the connection to the proxy at ${where} failed: ${oneLine(message)}`);
}

/**
 * The one message for a proxy address whose host the proxy's certificate does
 * not name (connect, ls, config, the bot).
 */
export function hostNotInCertificate(where: string, names: string[]): AccessError {
  const m = /^(?:\[(.*)\]|(.*)):(\d+)$/.exec(where);
  const host = m ? (m[1] ?? m[2]!) : where;
  const port = m ? Number(m[3]) : 0;
  const holds = names.length ? `it holds ${names.map((n) => `"${n}"`).join(', ')}` : 'it holds no host name';
  const use = names.length && port ? `use --proxy ${formatProxyAddress({ host: names[0]!, port })}, or ` : '';
  return new AccessError(
    'PROXY_UNTRUSTED',
    `the proxy at ${where} could not be verified: its certificate is not valid for "${host}" (${holds})`,
    {
      hint: `${use}have the operator add "${host}" to the proxy certificate: mcp-access ca init --proxy-host ${host} …`,
    },
  );
}
