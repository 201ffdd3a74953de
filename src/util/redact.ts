/**
 * Secrets in URLs never reach a message, a log line, a fatal frame, a close
 * reason or an audit event. An upstream URL may carry a password
 * (`https://user:secret@host/`) or a key in its query (`?api_key=…`); every
 * text the proxy builds from such a URL passes through `redactSecrets`.
 */

/** Query parameters whose values are secrets (compared case-insensitively, `-` and `_` ignored). */
const SECRET_PARAMS = new Set([
  'apikey',
  'key',
  'token',
  'accesstoken',
  'authtoken',
  'idtoken',
  'refreshtoken',
  'secret',
  'clientsecret',
  'password',
  'passwd',
  'pwd',
  'auth',
  'authorization',
  'sig',
  'signature',
  'code',
  'session',
  'sessionid',
  'credential',
  'credentials',
  'privatekey',
  'xapikey',
  'bearer',
  'jwt',
]);

export const REDACTED = 'REDACTED';

/** userinfo in any URL-looking text: `scheme://user:pass@` or `scheme://token@`. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]+@/gi;
/** name=value pairs in query strings (after ? & or ;). */
const QUERY_PARAM = /([?&;])([^=&#\s"'<>?;]+)=([^&#\s"'<>;]*)/g;

function isSecretName(name: string): boolean {
  let decoded = name;
  try {
    decoded = decodeURIComponent(name);
  } catch {
    /* keep as is */
  }
  const n = decoded.toLowerCase().replace(/[-_.]/g, '');
  return (
    SECRET_PARAMS.has(n) ||
    n.endsWith('token') ||
    n.endsWith('secret') ||
    n.endsWith('apikey') ||
    n.endsWith('password')
  );
}

/** The text with every URL password, user name and secret query value replaced by REDACTED. */
export function redactSecrets(text: string): string {
  if (!text.includes('=') && !text.includes('@')) return text;
  return text
    .replace(USERINFO, `$1${REDACTED}@`)
    .replace(QUERY_PARAM, (all, sep: string, name: string, value: string) =>
      value !== '' && isSecretName(name) ? `${sep}${name}=${REDACTED}` : all,
    );
}

/** A URL as it may be shown: no userinfo, no secret query values. */
export function redactUrl(url: string | URL): string {
  return redactSecrets(String(url));
}
