/**
 * What differs between the two kinds of machine that enrol with the proxy:
 * bots (machine identities for MCP clients, docs/bot.md) and agents (the
 * host certificates of the processes that run MCP servers next to them,
 * docs/agent.md). Everything else (one-time tokens, certificate requests,
 * generations, locks, removal, the state directory, the audit trail) is the
 * same machinery.
 */
import type { ErrorCode } from '../../errors.js';
import { AGENT_ROLE, machineUserName, type MachineKind } from '../../identity/names.js';
import { ENROL_PATHS, type EnrolPaths } from '../../tunnel/enrolment.js';

export type { MachineKind };

export interface AuditEventType {
  type: string;
  code: string;
}

export interface KindSpec {
  kind: MachineKind;
  /** `bots` / `agents`: the records' subdirectory of the state directory. */
  plural: string;
  paths: EnrolPaths;
  /** Join tokens of this kind start with this (secret scanners, and a bot token is never taken for an agent's). */
  tokenPrefix: string;
  codes: {
    tokenInvalid: ErrorCode;
    locked: ErrorCode;
    exists: ErrorCode;
    unknown: ErrorCode;
  };
  events: {
    join: AuditEventType;
    joinDenied: AuditEventType;
    renew: AuditEventType;
    renewDenied: AuditEventType;
    lock: AuditEventType;
    lockCopied: AuditEventType;
    unlock: AuditEventType;
    add: AuditEventType;
    remove: AuditEventType;
  };
  userName(name: string): string;
  /** The roles a new registration's certificates carry (an agent's are fixed). */
  fixedRoles?: string[];
}

function events(prefix: string, code: string): KindSpec['events'] {
  return {
    join: { type: `${prefix}.join`, code: `${code}001I` },
    joinDenied: { type: `${prefix}.join.denied`, code: `${code}001E` },
    renew: { type: `${prefix}.renew`, code: `${code}002I` },
    renewDenied: { type: `${prefix}.renew.denied`, code: `${code}002E` },
    lock: { type: `${prefix}.lock`, code: `${code}003I` },
    lockCopied: { type: `${prefix}.lock`, code: `${code}003W` },
    unlock: { type: `${prefix}.unlock`, code: `${code}004I` },
    add: { type: `${prefix}.add`, code: `${code}005I` },
    remove: { type: `${prefix}.remove`, code: `${code}006I` },
  };
}

export const BOT_KIND: KindSpec = {
  kind: 'bot',
  plural: 'bots',
  paths: ENROL_PATHS.bot,
  tokenPrefix: 'mcpab_',
  codes: { tokenInvalid: 'BOT_TOKEN_INVALID', locked: 'BOT_LOCKED', exists: 'BOT_EXISTS', unknown: 'BOT_UNKNOWN' },
  events: events('bot', 'BOT'),
  userName: (name) => machineUserName('bot', name),
};

export const AGENT_KIND: KindSpec = {
  kind: 'agent',
  plural: 'agents',
  paths: ENROL_PATHS.agent,
  tokenPrefix: 'mcpag_',
  codes: {
    tokenInvalid: 'AGENT_TOKEN_INVALID',
    locked: 'AGENT_LOCKED',
    exists: 'AGENT_EXISTS',
    unknown: 'AGENT_UNKNOWN',
  },
  events: events('agent', 'AGT'),
  userName: (name) => machineUserName('agent', name),
  fixedRoles: [AGENT_ROLE],
};

export function kindSpec(kind: MachineKind): KindSpec {
  return kind === 'agent' ? AGENT_KIND : BOT_KIND;
}
