/**
 * What a user, role, cluster or bot name may contain. Names are written into
 * certificate subjects and a SAN URI, and read back from node's printed form of
 * those (`X509Certificate.subject`, `.subjectAltName`). node escapes RFC 2253
 * specials (`,+"\<>;`), control characters and non-ASCII in that form, so we
 * keep to a charset that needs no escaping: then what is read back is exactly
 * what was issued, and no value can smuggle in a second `O=` line.
 */
export const NAME_RULES = {
  user: {
    re: /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/,
    text: 'letters, digits and . _ @ - (starting with a letter or digit, at most 128)',
  },
  role: {
    re: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
    text: 'letters, digits and . _ : - (starting with a letter or digit, at most 128)',
  },
  cluster: {
    re: /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/,
    text: 'letters, digits, . and - (starting with a letter or digit, at most 63)',
  },
  bot: {
    re: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    text: 'letters, digits and . _ - (starting with a letter or digit, at most 64)',
  },
  agent: {
    re: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    text: 'letters, digits and . _ - (starting with a letter or digit, at most 64)',
  },
} as const;

export type NameKind = keyof typeof NAME_RULES;

export function isValidName(kind: NameKind, value: string): boolean {
  return typeof value === 'string' && NAME_RULES[kind].re.test(value);
}

/** The reason a name is refused, or undefined when it is fine. */
export function nameProblem(kind: NameKind, value: string): string | undefined {
  if (isValidName(kind, value)) return undefined;
  return `${kind} name ${JSON.stringify(value)} is not allowed: use ${NAME_RULES[kind].text}`;
}

export function isValidGeneration(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** A bot's certificates carry this user name. */
export function botUserName(bot: string): string {
  return `bot-${bot}`;
}

/**
 * Roles that only mcp-access itself puts into a certificate. A user or bot
 * certificate never carries one (refused when issued and when read), and a
 * certificate that carries one must be of the kind it names.
 */
export const SYSTEM_ROLE_PREFIX = 'system:';

/** The one role of an agent's host certificate. */
export const AGENT_ROLE = 'system:agent';

export function isSystemRole(role: string): boolean {
  return role.toLowerCase().startsWith(SYSTEM_ROLE_PREFIX);
}

/**
 * An agent's certificates carry this user name (subject CN). The `:` is not
 * allowed in user names, so no user (or bot, `bot-NAME`) can be named like an
 * agent.
 */
export function agentUserName(agent: string): string {
  return `agent:${agent}`;
}

/** Machines that join with a token and renew their own certificates. */
export type MachineKind = 'bot' | 'agent';

/** The user name (subject CN) of a machine's certificates. */
export function machineUserName(kind: MachineKind, name: string): string {
  return kind === 'agent' ? agentUserName(name) : botUserName(name);
}
