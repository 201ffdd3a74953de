/**
 * The per-message gate (enforcement.ts) on its fast path, with the real
 * audit log: a request's verdict is a forward only once its event is in the
 * log; when the log cannot be written the request is refused (never
 * forwarded) and its id is free again; without an audit trail the verdict is
 * given at once; ids in flight are told apart exactly (1 is not "1"); a
 * server's answer is delivered only for a request in flight, once.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { createEnforcingGates, type AuditSink } from '../../src/agent/enforcement.js';
import type { ClientVerdict, SessionGate } from '../../src/agent/gate.js';
import type { ServerConfig } from '../../src/agent/servers.js';
import type { Peer } from '../../src/identity/peer.js';
import { Policy } from '../../src/rbac/policy.js';
import { loadRoles } from '../../src/rbac/roles.js';
import { Logger } from '../../src/util/log.js';

const policy = new Policy(
  loadRoles({
    inline: [
      {
        kind: 'role',
        version: 'v7',
        metadata: { name: 'dev' },
        spec: { allow: { app_labels: { '*': '*' }, mcp: { tools: ['echo'] } } },
      },
    ],
    files: [],
    baseDir: tmpdir(),
  }).roles,
);
const server: ServerConfig = {
  name: 'everything',
  description: 'test',
  labels: { env: 'dev' },
  roots: [],
  clientRoots: false,
  toolPinning: 'off',
  transport: 'stdio',
  command: process.execPath,
  args: [],
  env: {},
  inheritEnv: [],
};
const peer: Peer = {
  user: 'alice',
  roles: ['dev'],
  notAfter: new Date(Date.now() + 3_600_000),
  serial: '1',
  fingerprint256: 'x',
  remoteAddr: '127.0.0.1:1',
};
const log = new Logger({ level: 'silent' });

const call = (id: number | string, tool = 'echo') =>
  Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: {} } }));
const answer = (id: number | string) =>
  Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `for ${id}` }] } }));

async function openGate(audit: AuditSink): Promise<SessionGate> {
  return createEnforcingGates({ policy, audit }, log).open({ sessionId: 's1', peer, server });
}

async function auditLog(): Promise<{ log: AuditLog; path: string; events: () => Promise<Record<string, unknown>[]> }> {
  const path = join(await mkdtemp(join(tmpdir(), 'gate-')), 'audit.jsonl');
  const audit = await AuditLog.open(path);
  const events = async () =>
    (await readFile(path, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log: audit, path, events };
}

const settled = (v: ClientVerdict | Promise<ClientVerdict>) => Promise.resolve(v);
/** The `data.code` of the error a verdict answers with (undefined when it does not answer). */
const refusalCode = (v: ClientVerdict): unknown =>
  'reply' in v ? (JSON.parse(v.reply.toString()) as { error: { data: { code: unknown } } }).error.data.code : undefined;

describe('the gate on its fast path', () => {
  it("forwards a request only once its event is in the audit log, with the request's fields", async () => {
    const a = await auditLog();
    const gate = await openGate(a.log);
    const verdict = await settled(gate.fromClient(call(1)));
    expect(verdict).toEqual({ forward: call(1) });
    const request = (await a.events()).find((e) => e.type === 'mcp.session.request' && e.rpcId === 1);
    expect(request).toMatchObject({
      sessionId: 's1',
      user: 'alice',
      roles: ['dev'],
      server: 'everything',
      remoteAddr: '127.0.0.1:1',
      direction: 'client_to_server',
      method: 'tools/call',
      tool: 'echo',
    });
    expect(request).not.toHaveProperty('bot');
    // The answer is delivered, and its outcome refers to the request's event.
    expect(await gate.fromServer(answer(1))).toEqual(answer(1));
    // Its outcome is appended once the turn's I/O is done (the answer leaves first).
    await new Promise((r) => setImmediate(r));
    await a.log.close();
    const outcome = (await a.events()).find((e) => e.phase === 'response' && e.rpcId === 1);
    expect(outcome).toMatchObject({ outcome: 'success', requestEventId: request!.id, direction: 'server_to_client' });
  });

  it('refuses (never forwards) a request whose event cannot be written, and frees its id', async () => {
    const a = await auditLog();
    const gate = await openGate(a.log);
    await a.log.close();
    const verdict = await settled(gate.fromClient(call(7)));
    expect('forward' in verdict).toBe(false);
    expect(JSON.parse((verdict as { reply: Buffer }).reply.toString())).toMatchObject({
      id: 7,
      error: { data: { code: 'AUDIT_UNAVAILABLE' } },
    });
    // Not left pending: the server cannot answer it, the id is not "in use".
    expect(await gate.fromServer(answer(7))).toBeUndefined();
    const again = await settled(gate.fromClient(call(7)));
    expect(refusalCode(again)).toBe('AUDIT_UNAVAILABLE');
  });

  it('refuses the request when the audit sink throws instead of rejecting', async () => {
    const gate = await openGate({
      append: (e) => {
        if (e.type === 'mcp.session.start') return Promise.resolve(undefined);
        throw new Error('sink broke');
      },
    });
    const verdict = await settled(gate.fromClient(call(3)));
    expect(refusalCode(verdict)).toBe('AUDIT_UNAVAILABLE');
    expect(await gate.fromServer(answer(3))).toBeUndefined();
  });

  it('without an audit trail, the verdict is given at once', async () => {
    const gate = await openGate(undefined);
    const verdict = gate.fromClient(call(1));
    expect(verdict).toEqual({ forward: call(1) });
    expect(gate.fromServer(answer(1))).toEqual(answer(1));
  });

  it('a second request with an id in flight is refused; 1 and "1" are different ids', async () => {
    const gate = await openGate(undefined);
    expect(await settled(gate.fromClient(call(1)))).toEqual({ forward: call(1) });
    const dup = await settled(gate.fromClient(call(1)));
    expect(refusalCode(dup)).toBe('INVALID_MESSAGE');
    expect(await settled(gate.fromClient(call('1')))).toEqual({ forward: call('1') });
    // Each answer is delivered once, for its own id.
    expect(await gate.fromServer(answer('1'))).toEqual(answer('1'));
    expect(await gate.fromServer(answer('1'))).toBeUndefined();
    expect(await gate.fromServer(answer(1))).toEqual(answer(1));
    expect(await gate.fromServer(answer(1))).toBeUndefined();
    // Answered: the id is free again.
    expect(await settled(gate.fromClient(call(1)))).toEqual({ forward: call(1) });
  });

  it('a denied tool is answered, audited, and not left in flight', async () => {
    const a = await auditLog();
    const gate = await openGate(a.log);
    const verdict = await settled(gate.fromClient(call(5, 'write_file')));
    expect(refusalCode(verdict)).toBe('TOOL_DENIED');
    expect(await gate.fromServer(answer(5))).toBeUndefined();
    await a.log.close();
    expect((await a.events()).find((e) => e.rpcId === 5 && e.outcome === 'denied')).toMatchObject({
      tool: 'write_file',
    });
  });
});

describe('outcome events after the turn', () => {
  it('hands the answer back before its outcome event is appended, then appends it in order', async () => {
    const appended: Array<Record<string, unknown>> = [];
    const sink: AuditSink = {
      append: (e) => {
        appended.push(e);
        return Promise.resolve({ id: `ev${appended.length}` });
      },
    };
    const gate = await openGate(sink);
    await settled(gate.fromClient(call(1)));
    await settled(gate.fromClient(call(2)));
    const before = appended.length;
    expect(await gate.fromServer(answer(1))).toEqual(answer(1));
    expect(await gate.fromServer(answer(2))).toEqual(answer(2));
    expect(appended).toHaveLength(before); // not yet: the answers go first
    await new Promise((r) => setImmediate(r));
    expect(appended.slice(before).map((e) => [e.phase, e.rpcId, e.outcome])).toEqual([
      ['response', 1, 'success'],
      ['response', 2, 'success'],
    ]);
  });

  it('appends what is still waiting before the session-end event', async () => {
    const types: string[] = [];
    const sink: AuditSink = {
      append: (e) => {
        types.push(typeof e.phase === 'string' ? `${e.type}/${e.phase}` : e.type);
        return Promise.resolve({ id: 'x' });
      },
    };
    const gate = await openGate(sink);
    await settled(gate.fromClient(call(1)));
    await gate.fromServer(answer(1));
    await gate.end('closed');
    expect(types.slice(-2)).toEqual(['mcp.session.request/response', 'mcp.session.end']);
  });
});
