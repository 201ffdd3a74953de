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
import { errorResponse, RPC } from '../tunnel/jsonrpc.js';
import type { AuditEventInput } from '../audit/log.js';
import {
  isPromise,
  type ClientVerdict,
  type DatabaseGate,
  type GateFactory,
  type ServerVerdict,
  type SessionGate,
  type SessionInfo,
} from './gate.js';
import { ClientCapabilities, clientInfoFromMeta } from './client-capabilities.js';
import { inspectServerMessage, type ServerInspected } from './server-messages.js';
import { excerpt } from './upstream/stderr-lines.js';
import { redactSecrets } from '../util/redact.js';
import type { Peer } from '../identity/peer.js';
import type { ServerConfig } from './servers.js';
import { inspectClientMessage, type Inspected } from '../rbac/inspect.js';
import type { CallDecision, Policy } from '../rbac/policy.js';
import type { ErrorCode } from '../errors.js';
import { definitionDigest, toolDefinition, type PinStore, type ServerPins } from './pins.js';
import type { JwtSigner } from '../identity/jwt.js';

/**
 * The audit trail as the gate needs it: the proxy's log, or (in a remote
 * agent) the proxy's log reached over the control connection; `undefined`
 * when no audit.path is configured. `append` resolves once the event is
 * durable, with its id when it has one.
 */
export type AuditSink = { append(event: AuditEventInput): Promise<{ id: string } | undefined> } | undefined;

/**
 * What a reload replaces. Running sessions read it per message, so after a
 * SIGHUP their next request is judged by the new roles.
 */
export interface LiveAccess {
  policy: Policy;
  audit: AuditSink;
  /** Pinned tool definitions, for servers with `tool_pinning` (pins.ts). */
  pins?: PinStore;
  /** Signs identity assertions for HTTP upstreams with `identity_jwt` (identity/jwt.ts). */
  jwt?: JwtSigner;
}

interface Pending {
  method: string;
  tool: string | undefined;
  startedAt: number;
  eventId: string | undefined;
}

/** The session's own fields, at the head of each of its audit events. */
interface EventBase {
  sessionId: string;
  user: string;
  roles: string[];
  server: string;
  remoteAddr: string;
  bot?: string;
}

export function accessDenied(peer: Peer, server: { name: string }, reason: string): AccessError {
  return new AccessError(
    'ACCESS_DENIED',
    `access to MCP server "${server.name}" is denied for ${peer.user}: ${reason}`,
  );
}

export function createEnforcingGates(live: LiveAccess, log: Logger): GateFactory {
  return {
    async open(info: SessionInfo): Promise<SessionGate> {
      const { policy, audit } = live;
      const { peer, server, sessionId } = info;
      const base: EventBase = {
        sessionId,
        user: peer.user,
        roles: peer.roles,
        server: server.name,
        remoteAddr: peer.remoteAddr,
        ...(peer.bot ? { bot: peer.bot.name } : {}),
      };
      const unknown = policy.unknownRoles(peer.roles);
      if (unknown.length)
        log.warn(`${peer.user} carries roles no role document defines (they grant nothing): ${unknown.join(', ')}`);

      const reach = policy.canReachServer(peer, server);
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
  /**
   * Requests in flight, by JSON-RPC id (a Map keeps 1 and "1" apart): the
   * client's and the server's apart, since both may use the same id.
   */
  private readonly clientPending = new Map<string | number, Pending>();
  private readonly serverPending = new Map<string | number, Pending>();
  private readonly capabilities = new ClientCapabilities();
  private serverRefusals = 0;
  /** Events for `recordAfterTurn`, appended at the end of this turn. */
  private afterTurn: AuditEventInput[] = [];
  readonly database: DatabaseGate | undefined;
  /** With tool_pinning: the tools this session was shown, by name, with the digest that was approved. */
  private readonly approvedTools = new Map<string, string>();
  /** tool_pinning auto: this session's listing is the server's first, so its pages are pinned as they come. */
  private autoPinning = false;

  constructor(
    private readonly live: LiveAccess,
    private readonly log: Logger,
    private peer: Peer,
    private readonly server: ServerConfig,
    private base: EventBase,
  ) {
    this.database =
      server.transport === 'postgres'
        ? {
            peer: () => this.peer,
            grants: () => this.policy.databaseGrants(this.peer.roles, this.server),
            record: async (event) =>
              (await this.record({ ...this.base, client: this.client, ...event } as AuditEventInput))?.id,
            requestEventId: (rpcId) => this.clientPending.get(rpcId)?.eventId,
          }
        : undefined;
  }

  /** A resume: judged by the certificate presented now (roles, expiry, bot), audited with the roles in force. */
  async resumed(peer: Peer): Promise<void> {
    const before = this.peer.roles;
    this.peer = peer;
    this.base = {
      ...this.base,
      user: peer.user,
      roles: peer.roles,
      remoteAddr: peer.remoteAddr,
      ...(peer.bot ? { bot: peer.bot.name } : {}),
    };
    const changed = before.length !== peer.roles.length || before.some((r, i) => r !== peer.roles[i]);
    await this.audit?.append({
      ...this.base,
      client: this.client,
      type: 'mcp.session.resume',
      code: 'TMCP005I',
      outcome: 'success',
      ...(changed ? { previousRoles: before } : {}),
    });
  }

  /** `identity_jwt`: who is calling, signed for this request; never the client's own credentials. */
  upstreamIdentity(): string | undefined {
    if ((this.server.transport !== 'http' && this.server.transport !== 'sse') || !this.server.identityJwt)
      return undefined;
    const signer = this.live.jwt;
    if (!signer) return undefined;
    const peer = this.peer;
    return signer.sign({
      sub: peer.user,
      roles: peer.roles,
      traits: peer.traits ?? {},
      aud: this.server.name,
      sid: String(this.base.sessionId),
      ...(peer.bot ? { bot: peer.bot.name } : {}),
      notAfter: peer.notAfter,
    });
  }

  private get policy(): Policy {
    return this.live.policy;
  }
  private get audit(): AuditSink {
    return this.live.audit;
  }

  /**
   * Synchronous where nothing has to be waited for: with an audit trail, a
   * request's verdict is a promise that settles once its event is durable
   * (one `then` on the append); without one, the verdict itself.
   */
  fromClient(bytes: Buffer): ClientVerdict | Promise<ClientVerdict> {
    const m = inspectClientMessage(bytes);
    let out: ClientVerdict | Promise<ClientVerdict>;
    try {
      out = this.judge(m, bytes);
    } catch (err) {
      return this.auditFailed(m, err);
    }
    return isPromise(out) ? out.then(undefined, (err: unknown) => this.auditFailed(m, err)) : out;
  }

  /** Never forwarded unaudited: the request is refused, the reason logged. */
  private auditFailed(m: Inspected, err: unknown): ClientVerdict {
    this.log.error(`refusing ${this.peer.user}'s message: ${describeError(err)}`);
    if (m.kind === 'request' || m.kind === 'invalid') {
      return reply(
        m.id,
        RPC.INTERNAL_ERROR,
        `mcp-access: refused: the proxy cannot write its audit log, so it runs no request (${(err as Error).message})`,
        { code: 'AUDIT_UNAVAILABLE' },
      );
    }
    throw err;
  }

  /** A new event with the fields every event of this session starts with (no spread on the hot path). */
  private common(direction: 'client_to_server' | 'server_to_client'): AuditEventInput {
    const b = this.base;
    return {
      sessionId: b.sessionId,
      user: b.user,
      roles: b.roles,
      server: b.server,
      remoteAddr: b.remoteAddr,
      bot: b.bot,
      client: this.client,
      direction,
    } as unknown as AuditEventInput;
  }

  private judge(m: Inspected, bytes: Buffer): ClientVerdict | Promise<ClientVerdict> {
    if (m.kind !== 'request') return this.judgeOther(m, bytes);
    if (this.clientPending.has(m.id)) return this.refuseDuplicate(m);
    if (m.method === 'initialize') this.client = clientInfo(m.params);
    else this.client = clientInfoFromMeta(m.params) ?? this.client;
    this.capabilities.note(m.method, m.params);
    const args = m.method === 'tools/call' ? (m.params as { arguments?: unknown } | undefined)?.arguments : undefined;
    const event = this.common('client_to_server');
    event.type = 'mcp.session.request';
    event.method = m.method;
    event.rpcId = m.id;
    event.tool = m.toolName;
    event.args = args;
    const refusal = this.decide(m.method, m.params, m.toolName);
    if (refusal !== undefined) return this.refuseRequest(m, event, refusal);
    // Pending from now (before the append settles): a second request with this id
    // that arrives meanwhile is refused above.
    const entry: Pending = { method: m.method, tool: m.toolName, startedAt: performance.now(), eventId: undefined };
    const id = m.id;
    this.clientPending.set(id, entry);
    const audit = this.audit;
    if (audit === undefined) return { forward: bytes };
    let appended: Promise<{ id: string } | undefined>;
    try {
      appended = audit.append(event);
    } catch (err) {
      appended = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return appended.then(
      (ev) => {
        entry.eventId = ev?.id;
        return { forward: bytes };
      },
      (err: unknown) => {
        if (this.clientPending.get(id) === entry) this.clientPending.delete(id);
        throw err;
      },
    );
  }

  /**
   * Two requests with one id: the server's answer could be taken for the other
   * one's (an unfiltered tools/list, say). MCP forbids it; refuse.
   */
  private async refuseDuplicate(m: Extract<Inspected, { kind: 'request' }>): Promise<ClientVerdict> {
    const reason = `id ${JSON.stringify(m.id)} is already used by a request that has not been answered`;
    const ev = await this.record({
      ...this.common('client_to_server'),
      type: 'mcp.session.request',
      method: m.method,
      rpcId: m.id,
      tool: m.toolName,
      outcome: 'denied',
      reason,
    });
    return reply(m.id, RPC.INVALID_REQUEST, `mcp-access: refused: ${reason}`, {
      code: 'INVALID_MESSAGE',
      auditEventId: ev?.id,
    });
  }

  private async refuseRequest(
    m: Extract<Inspected, { kind: 'request' }>,
    event: AuditEventInput,
    refusal: { decision: CallDecision; code: ErrorCode; what: string; fields: Record<string, unknown> },
  ): Promise<ClientVerdict> {
    const { decision, code, what, fields } = refusal;
    const ev = await this.record({
      ...event,
      ...fields,
      outcome: 'denied',
      reason: decision.reason,
      role: decision.role,
      rule: decision.rule,
    });
    this.log.info(`denied ${this.peer.user} ${m.method} ${what} on ${this.server.name}: ${decision.reason}`);
    return reply(
      m.id,
      RPC.INVALID_PARAMS,
      `access to ${what} on MCP server "${this.server.name}" is denied by the identity's roles (${decision.reason})`,
      { code, auditEventId: ev?.id, ...fields, server: this.server.name },
    );
  }

  /** Invalid messages, notifications and the client's answers to the server's requests. */
  private async judgeOther(m: Exclude<Inspected, { kind: 'request' }>, bytes: Buffer): Promise<ClientVerdict> {
    const common = this.common('client_to_server');
    switch (m.kind) {
      case 'invalid': {
        const ev = await this.record({
          ...common,
          type: 'mcp.session.request',
          rpcId: m.id,
          outcome: 'denied',
          reason: m.reason,
        });
        return reply(m.id, m.code, `mcp-access: refused: ${m.reason}`, {
          code: 'INVALID_MESSAGE',
          auditEventId: ev?.id,
        });
      }
      case 'notification':
        if (m.method === 'notifications/roots/list_changed' && !this.server.clientRoots) {
          // The server never sees the client's roots, so their changes are not its business.
          await this.record({
            ...common,
            type: 'mcp.session.notification',
            method: m.method,
            outcome: 'denied',
            reason: `not forwarded: "${this.server.name}" is not given client roots (client_roots is off)`,
          });
          return { drop: true };
        }
        await this.record({ ...common, type: 'mcp.session.notification', method: m.method });
        return { forward: bytes };
      case 'response': {
        // The client answering a server → client request (sampling, elicitation, roots).
        const p = m.id === null ? undefined : this.serverPending.get(m.id);
        if (!p) {
          // Only answers the server asked for reach it: a forged early answer
          // could otherwise win the race against the real one (or the proxy's own roots).
          await this.record({
            ...common,
            type: 'mcp.session.request',
            phase: 'response',
            rpcId: m.id,
            outcome: 'denied',
            reason: `not forwarded: the server has no pending request with id ${JSON.stringify(m.id)}`,
          });
          return { drop: true };
        }
        this.serverPending.delete(m.id!);
        let forward = bytes;
        let rootsAudit: Record<string, unknown> = {};
        if (p.method === 'roots/list' && !m.isError) ({ forward, rootsAudit } = this.filterClientRoots(bytes));
        await this.record({
          ...common,
          type: 'mcp.session.request',
          phase: 'response',
          rpcId: m.id,
          method: p.method,
          ...rootsAudit,
          requestEventId: p.eventId,
          outcome: m.isError ? 'error' : 'success',
          latencyMs: round(performance.now() - p.startedAt),
        });
        return { forward };
      }
    }
  }

  /**
   * The policy decision for a request that names a tool, resource or prompt;
   * undefined when it may go on. Anything the decision cannot read (a URI
   * that is not a string, an unknown completion reference) is refused.
   */
  private decide(
    method: string,
    params: unknown,
    toolName: string | undefined,
  ): { decision: CallDecision; code: ErrorCode; what: string; fields: Record<string, unknown> } | undefined {
    const p = (params ?? {}) as Record<string, unknown>;
    const roles = this.peer;
    /** A resource URI or prompt name judged by `allowed`; one that is not a string is refused. */
    const judged = (
      kind: 'resource' | 'prompt',
      value: unknown,
      allowed: (v: string) => CallDecision,
      fields: Record<string, unknown>,
    ) => {
      const shown = typeof value === 'string' ? value : (JSON.stringify(value) ?? 'nothing');
      const what = kind === 'resource' ? 'resource URI' : 'prompt name';
      const decision: CallDecision =
        typeof value === 'string'
          ? allowed(value)
          : { allowed: false, reason: `the ${what} must be a string, not ${shown}` };
      if (decision.allowed) return undefined;
      return {
        decision,
        code: kind === 'resource' ? ('RESOURCE_DENIED' as const) : ('PROMPT_DENIED' as const),
        what: `${kind} "${bounded(shown)}"`,
        fields: { [kind]: bounded(shown), ...fields },
      };
    };
    const resource = (uri: unknown, fields: Record<string, unknown> = {}) =>
      judged('resource', uri, (u) => this.policy.resourceDecision(roles, this.server, u), fields);
    const prompt = (name: unknown, fields: Record<string, unknown> = {}) =>
      judged('prompt', name, (n) => this.policy.promptDecision(roles, this.server, n), fields);
    switch (method) {
      case 'tools/call': {
        const decision = this.policy.callDecision(roles, this.server, toolName!, p.arguments);
        if (decision.allowed && this.server.toolPinning !== 'off' && !this.approvedTools.has(toolName!)) {
          return {
            decision: {
              allowed: false,
              reason: `the definition of tool "${toolName}" has not been approved on ${this.server.name} (tool_pinning: ${this.server.toolPinning}): it is new or changed since it was pinned, or this session has not listed it since the server's tool list last changed`,
            },
            code: 'TOOL_NOT_APPROVED',
            what: `tool "${toolName}"`,
            fields: { tool: toolName },
          };
        }
        if (decision.allowed) return undefined;
        return decision.argument
          ? {
              decision,
              code: 'ARGUMENT_DENIED',
              what: `tool "${toolName}" with these arguments`,
              fields: { tool: toolName, argument: decision.argument.argument },
            }
          : { decision, code: 'TOOL_DENIED', what: `tool "${toolName}"`, fields: { tool: toolName } };
      }
      case 'resources/read':
      case 'resources/subscribe':
        return resource(p.uri);
      case 'prompts/get':
        return prompt(p.name);
      case 'completion/complete': {
        const ref = (p.ref ?? {}) as Record<string, unknown>;
        const variant = Object.keys(ref).find(
          (k) => ['type', 'name', 'uri'].includes(k.toLowerCase()) && k !== k.toLowerCase(),
        );
        if (variant !== undefined)
          return {
            decision: {
              allowed: false,
              reason: `params.ref holds "${bounded(variant)}", which a server could read as "${variant.toLowerCase()}"`,
            },
            code: 'PROMPT_DENIED',
            what: 'an ambiguous completion reference',
            fields: { completion: true },
          };
        if (ref.type === 'ref/prompt') return prompt(ref.name, { completion: true });
        if (ref.type === 'ref/resource') {
          const uri = ref.uri;
          const decision =
            typeof uri === 'string'
              ? this.policy.resourceTemplateDecision(roles, this.server, uri)
              : { allowed: false, reason: 'the resource reference needs a string uri' };
          const shown = bounded(typeof uri === 'string' ? uri : (JSON.stringify(uri) ?? 'nothing'));
          return decision.allowed
            ? undefined
            : {
                decision,
                code: 'RESOURCE_DENIED',
                what: `resource "${shown}"`,
                fields: { resource: shown, completion: true },
              };
        }
        return {
          decision: {
            allowed: false,
            reason: `completion/complete needs params.ref of type "ref/prompt" or "ref/resource", not ${bounded(JSON.stringify(ref.type) ?? 'nothing')}`,
          },
          code: 'PROMPT_DENIED',
          what: 'an unknown completion reference',
          fields: { completion: true },
        };
      }
      default:
        return undefined;
    }
  }

  fromServer(bytes: Buffer): ServerVerdict | Promise<ServerVerdict> {
    // Every server message is checked in full, whatever its size (a server is
    // not trusted either): what is not one clean JSON-RPC message, and answers
    // to requests the client never sent or that were already answered, are
    // dropped and audited; the session goes on.
    const m = inspectServerMessage(bytes);
    if (m.kind === 'invalid') return this.refuseServer(m.reason, m.id !== undefined ? { rpcId: m.id } : {});
    if (m.kind === 'response') {
      const p = m.id === null ? undefined : this.clientPending.get(m.id);
      if (p === undefined) {
        return this.refuseServer(
          `an answer to id ${JSON.stringify(m.id)}, which the client did not send or which was already answered`,
          { rpcId: m.id, phase: 'response' },
        );
      }
      this.clientPending.delete(m.id!);
      const error = m.isError ? (m.message.error as { message?: unknown }) : undefined;
      if (this.audit !== undefined) {
        const event = this.common('server_to_client');
        event.type = 'mcp.session.request';
        event.phase = 'response';
        event.rpcId = m.id;
        event.method = p.method;
        event.tool = p.tool;
        event.requestEventId = p.eventId;
        event.outcome = error ? 'error' : 'success';
        event.reason = error ? redactSecrets(excerpt(stringOf(error.message), 1000)) : undefined;
        event.latencyMs = round(performance.now() - p.startedAt);
        this.recordAfterTurn(event);
      }
      if (error) return bytes;
      switch (p.method) {
        case 'tools/list':
          if (this.server.toolPinning !== 'off')
            return this.checkPins(m.message, this.common('server_to_client')).then((pinned) =>
              this.filterToolList(m.message, bytes, pinned),
            );
          return this.filterToolList(m.message, bytes);
        case 'resources/list':
          return this.filterList(m.message, bytes, 'resources', (r) =>
            typeof r.uri === 'string' ? this.policy.resourceDecision(this.peer, this.server, r.uri).allowed : false,
          );
        case 'resources/templates/list':
          return this.filterList(m.message, bytes, 'resourceTemplates', (r) =>
            typeof r.uriTemplate === 'string'
              ? this.policy.resourceTemplateDecision(this.peer, this.server, r.uriTemplate).allowed
              : false,
          );
        case 'prompts/list':
          return this.filterList(m.message, bytes, 'prompts', (r) =>
            typeof r.name === 'string' ? this.policy.promptDecision(this.peer, this.server, r.name).allowed : false,
          );
        default:
          return bytes;
      }
    }
    if (m.kind === 'request') return this.serverRequest(m, bytes);
    // The server's tools changed: nothing listed before is trusted until listed (and checked) again.
    if (m.method === 'notifications/tools/list_changed') this.approvedTools.clear();
    this.recordAfterTurn({ ...this.common('server_to_client'), type: 'mcp.session.notification', method: m.method });
    return bytes;
  }

  /** A message from the server refused: dropped, and recorded (bounded, see REFUSALS_RECORDED). */
  private refuseServer(reason: string, fields: Partial<AuditEventInput> = {}): undefined {
    // A server that floods refusals cannot flood the log and the audit trail:
    // the first ones are recorded one by one, then one event per thousand.
    const n = ++this.serverRefusals;
    if (n <= REFUSALS_RECORDED) {
      this.log.warn(`refused a message from ${this.server.name}: ${reason}`);
      void this.recordLater({
        ...this.common('server_to_client'),
        type: 'mcp.session.request',
        outcome: 'denied',
        reason: `refused from the server: ${reason}`,
        ...fields,
      });
    } else if ((n - REFUSALS_RECORDED) % 1000 === 0) {
      const more = `${n} messages from the server refused so far in this session (only the first ${REFUSALS_RECORDED} are recorded one by one); the latest: ${reason}`;
      this.log.warn(`${this.server.name}: ${more}`);
      void this.recordLater({
        ...this.common('server_to_client'),
        type: 'mcp.session.request',
        outcome: 'denied',
        reason: `refused from the server: ${more}`,
      });
    }
    return undefined;
  }

  /** A request from the server (sampling, elicitation, roots): audited before it reaches the client. */
  private async serverRequest(m: Extract<ServerInspected, { kind: 'request' }>, bytes: Buffer): Promise<ServerVerdict> {
    const common = this.common('server_to_client');
    if (m.method === 'roots/list' && !this.server.clientRoots) return this.answerRoots(m.id, common);
    const missing = this.capabilities.missingFor(m.method);
    if (missing !== undefined) {
      const reason = `the client did not declare the "${missing}" capability`;
      const ev = await this.recordLater({
        ...common,
        type: 'mcp.session.request',
        method: m.method,
        rpcId: m.id,
        outcome: 'denied',
        reason,
      });
      this.log.info(`answered ${this.server.name}'s ${m.method} itself: ${reason}`);
      return {
        toServer: Buffer.from(
          errorResponse(
            m.id,
            RPC.METHOD_NOT_FOUND,
            `mcp-access: refused: ${reason}, so "${m.method}" is not forwarded`,
            { code: 'CAPABILITY_NOT_DECLARED', auditEventId: ev?.id },
          ),
        ),
      };
    }
    const ev = await this.recordLater({ ...common, type: 'mcp.session.request', method: m.method, rpcId: m.id });
    this.serverPending.set(m.id, {
      method: m.method,
      tool: undefined,
      startedAt: performance.now(),
      eventId: ev?.id,
    });
    return bytes;
  }

  /**
   * tool_pinning: keep in the tools/list answer only tools whose definition
   * matches its pin; record new and changed ones as pending (audited), pin
   * the server's first listing in `auto` mode, and audit approvals made with
   * the CLI. Returns whether the answer was changed. If the pins cannot be
   * read or written, no tool is shown (fail closed).
   */
  private async checkPins(msg: Record<string, unknown>, common: Record<string, unknown>): Promise<boolean> {
    const result = msg.result as { tools?: unknown; nextCursor?: unknown } | undefined;
    if (!result || !Array.isArray(result.tools)) return false;
    const tools = (result.tools as unknown[]).filter(
      (t): t is Record<string, unknown> =>
        typeof t === 'object' && t !== null && typeof (t as { name?: unknown }).name === 'string',
    );
    const store = this.live.pins;
    const server = this.server.name;
    const now = new Date().toISOString();
    try {
      if (!store) throw new Error('no pin store is configured');
      const seen = tools.map((t) => {
        const definition = toolDefinition(t);
        return { tool: t, definition, digest: definitionDigest(definition) };
      });
      const current = await store.get(server);
      const empty = Object.keys(current.pinned).length === 0 && Object.keys(current.pending).length === 0;
      if (this.server.toolPinning === 'auto' && empty) this.autoPinning = true;
      const needsWrite =
        Object.values(current.pinned).some((r) => r.unaudited) ||
        seen.some(
          (s) =>
            current.pinned[s.definition.name]?.digest !== s.digest &&
            current.pending[s.definition.name]?.digest !== s.digest,
        );
      const events: AuditEventInput[] = [];
      let pins: ServerPins = current;
      if (needsWrite) {
        const autoPinning = this.autoPinning;
        pins = await store.update(server, (p) => {
          for (const [name, r] of Object.entries(p.pinned)) {
            if (!r.unaudited) continue;
            delete r.unaudited;
            events.push({
              ...common,
              type: 'mcp.tool.approved',
              tool: name,
              digest: r.digest,
              previousDigest: r.previousDigest,
              approvedBy: r.by,
            });
          }
          for (const s of seen) {
            const name = s.definition.name;
            const pin = p.pinned[name];
            if (pin?.digest === s.digest) continue;
            if (!pin && autoPinning) {
              p.pinned[name] = { digest: s.digest, definition: s.definition, pinnedAt: now, by: 'auto' };
              delete p.pending[name];
              events.push({ ...common, type: 'mcp.tool.pinned', tool: name, digest: s.digest });
              continue;
            }
            if (p.pending[name]?.digest === s.digest) continue;
            p.pending[name] = {
              digest: s.digest,
              definition: s.definition,
              firstSeen: now,
              ...(pin ? { pinnedDigest: pin.digest } : {}),
            };
            events.push({
              ...common,
              type: 'mcp.tool.changed',
              tool: name,
              digest: s.digest,
              ...(pin ? { pinnedDigest: pin.digest } : { new: true }),
              reason: pin
                ? `the definition of "${name}" differs from the one approved; it is hidden and refused until approved`
                : `"${name}" was never approved on this server; it is hidden and refused until approved`,
            });
          }
          return structuredClone(p);
        });
      }
      for (const e of events) await this.recordLater(e);
      for (const e of events)
        if (e.type === 'mcp.tool.changed') this.log.warn(`${server}: tool ${String(e.tool)}: ${String(e.reason)}`);
      const kept = seen.filter((s) => pins.pinned[s.definition.name]?.digest === s.digest);
      for (const s of kept) this.approvedTools.set(s.definition.name, s.digest);
      if (result.nextCursor === undefined) this.autoPinning = false;
      if (kept.length === result.tools.length) return false;
      result.tools = kept.map((s) => s.tool);
      return true;
    } catch (err) {
      this.log.error(`${server}: tool pins: ${describeError(err)}; no tool is shown (fail closed)`);
      result.tools = [];
      return true;
    }
  }

  async end(reason: string): Promise<void> {
    this.appendAfterTurn();
    await this.audit?.append({
      ...this.base,
      client: this.client,
      type: 'mcp.session.end',
      outcome: reason === 'closed' ? 'success' : 'error',
      reason,
    });
  }

  /**
   * Roots belong to the client's machine: unless the server is configured with
   * `client_roots: true`, the proxy answers `roots/list` itself with the
   * server's configured `roots` (none by default) and the client never sees it.
   */
  private async answerRoots(id: string | number, common: Record<string, unknown>): Promise<ServerVerdict> {
    const roots = this.server.roots;
    await this.recordLater({
      ...common,
      type: 'mcp.session.request',
      method: 'roots/list',
      rpcId: id,
      outcome: 'success',
      reason: "answered by the proxy from the server's configuration (client_roots is off)",
      roots: roots.map((r) => r.uri),
    });
    return { toServer: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, result: { roots } })) };
  }

  /** With `client_roots: true`: only the roots the roles allow (mcp.roots) reach the server. */
  private filterClientRoots(bytes: Buffer): { forward: Buffer; rootsAudit: Record<string, unknown> } {
    const msg = JSON.parse(bytes.toString('utf8')) as { result?: { roots?: unknown } };
    const list = Array.isArray(msg.result?.roots) ? (msg.result.roots as unknown[]) : [];
    const kept: unknown[] = [];
    const refused: string[] = [];
    for (const r of list) {
      const uri = normaliseRootUri((r as { uri?: unknown } | null)?.uri);
      if (uri !== undefined && this.policy.rootDecision(this.peer, this.server, uri).allowed)
        kept.push({ ...(r as object), uri });
      else refused.push(stringOf((r as { uri?: unknown } | null)?.uri ?? r).slice(0, 512));
    }
    const forward = Buffer.from(JSON.stringify({ ...msg, result: { ...msg.result, roots: kept } }));
    return {
      forward,
      rootsAudit: {
        roots: kept.map((r) => (r as { uri: string }).uri),
        ...(refused.length ? { refusedRoots: refused } : {}),
      },
    };
  }

  /** tools/list answers carry only the tools the roles allow; the cursor stays. */
  private filterToolList(msg: Record<string, unknown>, bytes: Buffer, changed = false): Buffer {
    const result = msg.result as { tools?: Array<{ name?: unknown }> } | undefined;
    if (!result || !Array.isArray(result.tools)) return changed ? Buffer.from(JSON.stringify(msg)) : bytes;
    const kept = result.tools.filter(
      (t) => typeof t?.name === 'string' && this.policy.toolDecision(this.peer, this.server, t.name).allowed,
    );
    if (markPrivate(result)) changed = true;
    if (kept.length === result.tools.length && !changed) return bytes;
    result.tools = kept;
    return Buffer.from(JSON.stringify(msg));
  }

  /** resources/list, resources/templates/list, prompts/list: only the entries the roles allow; the cursor stays. */
  private filterList(
    msg: Record<string, unknown>,
    bytes: Buffer,
    key: 'resources' | 'resourceTemplates' | 'prompts',
    keep: (entry: Record<string, unknown>) => boolean,
  ): Buffer {
    const result = msg.result as Record<string, unknown> | undefined;
    const list = result?.[key];
    if (!result || !Array.isArray(list)) return bytes;
    const kept = (list as unknown[]).filter(
      (e) => typeof e === 'object' && e !== null && !Array.isArray(e) && keep(e as Record<string, unknown>),
    );
    const madePrivate = markPrivate(result);
    if (kept.length === list.length && !madePrivate) return bytes;
    result[key] = kept;
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
    try {
      return this.audit.append(event).catch(this.auditWriteFailed);
    } catch (err) {
      return Promise.resolve(this.auditWriteFailed(err));
    }
  }

  /**
   * An answer's outcome, a server notification: appended once this turn's
   * I/O is done (`setImmediate`), so the answer leaves first (its write goes
   * out at the end of the turn, tunnel/write-batch.ts) and the events of one
   * turn share one audit write. It may follow an event of the same turn (the
   * next request's, say), never one of a later turn; `end` appends what is
   * left before the session's end event.
   */
  private recordAfterTurn(event: AuditEventInput): void {
    if (this.afterTurn.push(event) === 1) setImmediate(this.appendAfterTurn);
  }

  private readonly appendAfterTurn = (): void => {
    if (this.afterTurn.length === 0) return;
    const events = this.afterTurn;
    this.afterTurn = [];
    for (const e of events) void this.recordLater(e);
  };

  /** One handler for every event nobody waits for (no closure per event). */
  private readonly auditWriteFailed = (err: unknown): undefined => {
    this.log.error(`audit: ${describeError(err)}`);
    return undefined;
  };
}

function reply(
  id: string | number | null,
  code: number,
  message: string,
  data: Record<string, unknown>,
): ClientVerdict {
  return { reply: Buffer.from(errorResponse(id, code, message, data)) };
}

function clientInfo(params: unknown): { name?: string; version?: string } | undefined {
  const ci = (params as { clientInfo?: { name?: unknown; version?: unknown } } | undefined)?.clientInfo;
  if (!ci) return undefined;
  return {
    name: typeof ci.name === 'string' ? ci.name : undefined,
    version: typeof ci.version === 'string' ? ci.version : undefined,
  };
}

/** Refused server messages recorded (log and audit) one by one per session; after that one per thousand. */
const REFUSALS_RECORDED = 100;

/**
 * A root URI in the one form policy judges: parsed and re-printed (so `..`
 * segments and `%2e%2e` are resolved), never one with an encoded slash or
 * backslash that a server could decode into another path. Undefined: refused.
 */
export function normaliseRootUri(uri: unknown): string | undefined {
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > 4096) return undefined;
  if (/%2f|%5c|\\/i.test(uri) || /[\u0000-\u001f\u007f]/.test(uri)) return undefined;
  try {
    const href = new URL(uri).href;
    return /%2f|%5c/i.test(href) ? undefined : href;
  } catch {
    return undefined;
  }
}

/** A value from a message as text for the audit trail: strings as they are, anything else as JSON. */
function stringOf(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined ? '' : (JSON.stringify(v) ?? '');
}

/**
 * MCP 2026-07-28 list results carry `cacheScope`; a list the proxy judges per
 * identity must not be cached for others, so it is marked `private` (a
 * 2025-era result has no cacheScope and is left as it is). Returns whether it changed.
 */
function markPrivate(result: Record<string, unknown>): boolean {
  if (!Object.hasOwn(result, 'cacheScope') || result.cacheScope === 'private') return false;
  result.cacheScope = 'private';
  return true;
}

/** A client-chosen name or URI in messages and audit fields: at most 512 characters. */
function bounded(s: string): string {
  return s.length > 512 ? `${s.slice(0, 509)}…` : s;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
