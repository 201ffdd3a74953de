/**
 * The bot's HTTP endpoints on the proxy (documented in docs/bot.md).
 *
 *   GET  /v1/bot/ca      open: the cluster CA certificate. The bot checks it
 *                        against its pin, then trusts nothing else.
 *   POST /v1/bot/join    open: a one-time token + a certificate request.
 *   POST /v1/bot/renew   mTLS with the bot's current certificate + a new request.
 *
 * Requests carry a PKCS#10 certificate request (PEM): it proves the bot holds
 * the private key it wants certified, and it is the only key material that
 * ever leaves the bot's machine.
 */
export const BOT_PATHS = { ca: '/v1/bot/ca', join: '/v1/bot/join', renew: '/v1/bot/renew' } as const;

/** Both open paths need no client certificate (the bot has none yet). */
export const BOT_OPEN_PATHS = [BOT_PATHS.ca, BOT_PATHS.join];

/** Largest request body the proxy reads on these endpoints. */
export const MAX_BOT_REQUEST_BYTES = 64 * 1024;

export interface CaResponse {
  cluster: string;
  /** PEM. */
  ca: string;
}

export interface JoinRequest {
  token: string;
  csr: string;
  ttl_ms: number;
}

export interface RenewRequest {
  csr: string;
  ttl_ms: number;
}

/** What join and renew return. */
export interface CertificateResponse {
  bot: string;
  user: string;
  roles: string[];
  generation: number;
  certificate: string;
  ca: string[];
  cluster: string;
  not_after: string;
}

export interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

/** A token as typed or read from a file: trimmed; undefined when it cannot be one. */
export function cleanToken(text: string): string | undefined {
  const t = text.trim();
  return /^[A-Za-z0-9_-]{16,200}$/.test(t) ? t : undefined;
}
