/**
 * Roles and audit, per session and per message. This is the gate the proxy's
 * sessions call (see gate.ts):
 *
 *   client → server  inspect strictly (inspect.ts) → decide (policy.ts) →
 *                    write the audit event → forward, or answer the denial
 *   server → client  audit outcomes and notifications; filter tools/list
 *
 * A request's event is written before the request is forwarded, a denial's
 * before it is answered; if the audit log cannot be written the request is
 * refused, never forwarded unaudited.
 */
import { AccessError, describeError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { classify, classifyLarge, errorResponse, idKey, LARGE_MESSAGE, RPC } from '../tunnel/jsonrpc.js';
import type { AuditEventInput, AuditLog } from './audit/log.js';
import type { ClientVerdict, GateFactory, SessionGate, SessionInfo } from './gate.js';
import type { Peer } from './peer.js';
import type { ServerConfig } from './config.js';
import { inspectClientMessage } from './rbac/inspect.js';
import type { Policy } from './rbac/policy.js';

/** The audit trail as the gate needs it; `undefined` when no audit.path is configured. */
export type AuditSink = Pick<AuditLog, 'append'> | undefined;

/**
 * What a reload replaces. Running sessions read it per message, so after a
 * SIGHUP their next request is judged by the new roles.
 */
export interface LiveAccess { policy: Policy; audit: AuditSink }

interface Pending { method: string; tool?: string; startedAt: number; eventId?: string; direction: 'client_to_server' | 'server_to_client' }

export function accessDenied(peer: Peer, server: ServerConfig, reason: string): AccessError {
  return new AccessError('ACCESS_DENIED', `access to MCP server "${server.name}" is denied for ${peer.user}: ${reason}`);
}

export function createEnforcingGates(live: LiveAccess, log: Logger): GateFactory {
  return {
    async open(info: SessionInfo): Promise<SessionGate> {
      const { policy, audit } = live;
      const { peer, server, sessionId } = info;
      const base = { sessionId, user: peer.user, roles: peer.roles, server: server.name, remoteAddr: peer.remoteAddr, ...(peer.bot ? { bot: peer.bot.name } : {}) };
      const unknown = policy.unknownRoles(peer.roles);
      if (unknown.length) log.warn(`${peer.user} carries roles no role document defines (they grant nothing): ${unknown.join(', ')}`);

      const reach = policy.canReachServer(peer.roles, server);
      if (!reach.allowed) {
        await audit?.append({ ...base, type: 'mcp.session.start', outcome: 'denied', reason: reach.reason });
        throw accessDenied(peer, server, reach.reason);
      }
      await audit?.append({ ...base, type: 'mcp.session.start', outcome: 'success' });
      return new EnforcingGate(live, log, peer, server, base);
    },
  };
}

class EnforcingGate implements SessionGate {
  private client: { name?: string; version?: string } | undefined;
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly live: LiveAccess,
    private readonly log: Logger,
    private readonly peer: Peer,
    private readonly server: ServerConfig,
    private readonly base: Record<string, unknown>,
  ) {}

  private get policy(): Policy { return this.live.policy; }
  private get audit(): AuditSink { return this.live.audit; }

  async fromClient(bytes: Buffer): Promise<ClientVerdict> {
    const m = inspectClientMessage(bytes);
    try {
      return await this.judge(m, bytes);
    } catch (err) {
      // Never forwarded unaudited: the request is refused, the reason logged.
      this.log.error(`refusing ${this.peer.user}'s message: ${describeError(err)}`);
      const id = m.kind === 'request' || m.kind === 'invalid' ? m.id : null;
      if (m.kind === 'request' || m.kind === 'invalid') {
        return reply(id, RPC.INTERNAL_ERROR, `mcp-access: refused: the proxy cannot write its audit log, so it runs no request (${(err as Error).message})`, { code: 'AUDIT_UNAVAILABLE' });
      }
      throw err;
    }
  }

  private async judge(m: ReturnType<typeof inspectClientMessage>, bytes: Buffer): Promise<ClientVerdict> {
    const common = { ...this.base, client: this.client, direction: 'client_to_server' as const };
    switch (m.kind) {
      case 'invalid': {
        const ev = await this.record({ ...common, type: 'mcp.session.request', rpcId: m.id, outcome: 'denied', reason: m.reason });
        return reply(m.id, m.code, `mcp-access: refused: ${m.reason}`, { code: 'INVALID_MESSAGE', auditEventId: ev?.id });
      }
      case 'request': {
        if (m.method === 'initialize') this.client = clientInfo(m.params);
        const args = m.method === 'tools/call' ? (m.params as { arguments?: unknown } | undefined)?.arguments : undefined;
        const event: AuditEventInput = { ...common, client: this.client, type: 'mcp.session.request', method: m.method, rpcId: m.id, tool: m.toolName, args };
        if (m.method === 'tools/call') {
          const decision = this.policy.toolDecision(this.peer.roles, this.server, m.toolName!);
          if (!decision.allowed) {
            const ev = await this.record({ ...event, outcome: 'denied', reason: decision.reason, role: decision.role, rule: decision.rule });
            this.log.info(`denied ${this.peer.user} ${m.toolName} on ${this.server.name}: ${decision.reason}`);
            return reply(m.id, RPC.INVALID_PARAMS,
              `access to tool "${m.toolName}" on MCP server "${this.server.name}" is denied by the identity's roles (${decision.reason})`,
              { code: 'TOOL_DENIED', auditEventId: ev?.id, tool: m.toolName, server: this.server.name });
          }
        }
        const ev = await this.record(event);
        this.pending.set(idKey(m.id), { method: m.method, tool: m.toolName, startedAt: performance.now(), eventId: ev?.id, direction: 'client_to_server' });
        return { forward: bytes };
      }
      case 'notification':
        await this.record({ ...common, type: 'mcp.session.notification', method: m.method });
        return { forward: bytes };
      case 'response': {
        // The client answering a server → client request (sampling, elicitation, roots).
        const p = this.pending.get(idKey(m.id));
        if (p?.direction === 'server_to_client') this.pending.delete(idKey(m.id));
        await this.record({
          ...common, type: 'mcp.session.request', phase: 'response', rpcId: m.id, method: p?.method,
          requestEventId: p?.eventId, outcome: m.isError ? 'error' : 'success', latencyMs: p ? round(performance.now() - p.startedAt) : undefined,
        });
        return { forward: bytes };
      }
    }
  }

  async fromServer(bytes: Buffer): Promise<Buffer | undefined> {
    // A large message is routed by its top level (one pass, no string or object
    // tree); it is parsed in full only when its content matters: a tools/list
    // answer to filter, an error to quote.
    const quick = bytes.length > LARGE_MESSAGE ? classifyLarge(bytes) : undefined;
    let parsed: Record<string, unknown> | undefined;
    const message = (): Record<string, unknown> | undefined => {
      if (parsed === undefined) {
        try {
          parsed = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      }
      return parsed;
    };
    if (!quick && message() === undefined) {
      this.log.warn(`${this.server.name} sent a line that is not JSON; dropped`);
      return undefined;
    }
    const c = quick?.classified ?? classify(parsed);
    const common = { ...this.base, client: this.client, direction: 'server_to_client' as const };
    if (c.kind === 'response' && c.id !== null) {
      const key = idKey(c.id);
      const p = this.pending.get(key);
      if (p?.direction === 'client_to_server') this.pending.delete(key);
      const isError = quick ? quick.keys.has('error') : parsed!.error !== undefined;
      const error = isError ? (message()?.error as { message?: unknown } | undefined) ?? {} : undefined;
      void this.recordLater({
        ...common, type: 'mcp.session.request', phase: 'response', rpcId: c.id, method: p?.method, tool: p?.tool,
        requestEventId: p?.eventId, outcome: error ? 'error' : 'success', reason: error ? textOf(error.message) : undefined,
        latencyMs: p ? round(performance.now() - p.startedAt) : undefined,
      });
      if (p?.method === 'tools/list' && !error) {
        const msg = message();
        // Fail closed: what cannot be filtered is not passed on.
        if (!msg) return Buffer.from(errorResponse(c.id, RPC.INTERNAL_ERROR, `mcp-access: the tools/list answer of "${this.server.name}" is not valid JSON`));
        return this.filterToolList(msg, bytes);
      }
      return bytes;
    }
    if (c.kind === 'request') {
      const ev = await this.recordLater({ ...common, type: 'mcp.session.request', method: c.method, rpcId: c.id });
      this.pending.set(idKey(c.id), { method: c.method, startedAt: performance.now(), eventId: ev?.id, direction: 'server_to_client' });
    } else if (c.kind === 'notification') {
      void this.recordLater({ ...common, type: 'mcp.session.notification', method: c.method });
    }
    return bytes;
  }

  async end(reason: string): Promise<void> {
    await this.audit?.append({ ...this.base, client: this.client, type: 'mcp.session.end', outcome: reason === 'closed' ? 'success' : 'error', reason });
  }

  /** tools/list answers carry only the tools the roles allow; the cursor stays. */
  private filterToolList(msg: Record<string, unknown>, bytes: Buffer): Buffer {
    const result = msg.result as { tools?: Array<{ name?: unknown }> } | undefined;
    if (!result || !Array.isArray(result.tools)) return bytes;
    const kept = result.tools.filter((t) => typeof t?.name === 'string' && this.policy.toolDecision(this.peer.roles, this.server, t.name).allowed);
    if (kept.length === result.tools.length) return bytes;
    result.tools = kept;
    return Buffer.from(JSON.stringify(msg));
  }

  /** Written before the caller goes on; a failure refuses the message. */
  private async record(event: AuditEventInput): Promise<{ id: string } | undefined> {
    if (!this.audit) return undefined;
    return this.audit.append(event);
  }

  /** Outcomes and server notifications: written in order, the message is not held back for it. */
  private recordLater(event: AuditEventInput): Promise<{ id: string } | undefined> {
    if (!this.audit) return Promise.resolve(undefined);
    const p = this.audit.append(event);
    return p.catch((err) => {
      this.log.error(`audit: ${describeError(err)}`);
      return undefined;
    });
  }
}

function reply(id: string | number | null, code: number, message: string, data: Record<string, unknown>): ClientVerdict {
  return { reply: Buffer.from(errorResponse(id, code, message, data)) };
}

function clientInfo(params: unknown): { name?: string; version?: string } | undefined {
  const ci = (params as { clientInfo?: { name?: unknown; version?: unknown } } | undefined)?.clientInfo;
  if (!ci) return undefined;
  return { name: typeof ci.name === 'string' ? ci.name : undefined, version: typeof ci.version === 'string' ? ci.version : undefined };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** A server's error message as text (a malformed one may not be a string). */
function textOf(message: unknown): string {
  if (message === undefined || message === null) return '';
  return typeof message === 'string' ? message : JSON.stringify(message);
}
