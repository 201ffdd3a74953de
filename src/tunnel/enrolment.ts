/**
 * The enrolment endpoints on the proxy, for bots (docs/bot.md) and agents
 * (docs/agent.md); KIND is `bot` or `agent`:
 *
 *   GET  /v1/KIND/ca     open: the cluster CA certificate. The machine checks
 *                        it against its pin, then trusts nothing else.
 *   POST /v1/KIND/join   open: a one-time token + a certificate request.
 *   POST /v1/KIND/renew  mTLS with the machine's current certificate + a new request.
 *
 * Requests carry a PKCS#10 certificate request (PEM): it proves the machine
 * holds the private key it wants certified, and it is the only key material
 * that ever leaves it. The CA key never leaves the proxy's host.
 */
export interface EnrolPaths {
  ca: string;
  join: string;
  renew: string;
}

export const ENROL_PATHS = {
  bot: { ca: '/v1/bot/ca', join: '/v1/bot/join', renew: '/v1/bot/renew' },
  agent: { ca: '/v1/agent/ca', join: '/v1/agent/join', renew: '/v1/agent/renew' },
} as const satisfies Record<string, EnrolPaths>;

export const BOT_PATHS = ENROL_PATHS.bot;
export const AGENT_PATHS = ENROL_PATHS.agent;

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

/** What an agent's join and renew return: the same, naming the agent instead of a bot. */
export type AgentCertificateResponse = Omit<CertificateResponse, 'bot'> & { agent: string };

/** What join and renew return (for a bot; see AgentCertificateResponse). */
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
