/**
 * Splice against real `ws` sockets on loopback (no TLS: the splice never sees it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { Splice } from '../../src/proxy/splice.js';

let wss: WebSocketServer | undefined;
afterEach(() => wss?.close());

/** Two clients (bridge, agent) and the server-side sockets the splice joins. */
async function pair(): Promise<{ bridge: WebSocket; agent: WebSocket; splice: Splice }> {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss!.once('listening', r));
  const port = (wss.address() as { port: number }).port;
  const accepted: WebSocket[] = [];
  const both = new Promise<void>((resolve) =>
    wss!.on('connection', (ws) => {
      accepted.push(ws);
      if (accepted.length === 2) resolve();
    }),
  );
  const bridge = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((r) => bridge.once('open', r));
  const agent = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((r) => agent.once('open', r));
  await both;
  return { bridge, agent, splice: new Splice(accepted[0]!, accepted[1]!) };
}

function next(ws: WebSocket): Promise<{ data: string; binary: boolean }> {
  return new Promise((r) => ws.once('message', (d: Buffer, binary: boolean) => r({ data: d.toString(), binary })));
}
function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((r) => ws.once('close', (code: number, reason: Buffer) => r({ code, reason: reason.toString() })));
}

describe('Splice', () => {
  it('relays data (binary) and control (text) frames verbatim, both ways, in order', async () => {
    const { bridge, agent } = await pair();
    const got: Array<{ data: string; binary: boolean }> = [];
    agent.on('message', (d: Buffer, binary: boolean) => got.push({ data: d.toString(), binary }));
    const all = new Promise<void>((r) => agent.on('message', () => got.length === 51 && r()));
    for (let i = 0; i < 50; i++) bridge.send(Buffer.from(`{"id":${i}}`), { binary: true });
    bridge.send('{"type":"ack","received":3}');
    await all;
    expect(got.slice(0, 50).map((g) => g.data)).toEqual(Array.from({ length: 50 }, (_, i) => `{"id":${i}}`));
    expect(got.slice(0, 50).every((g) => g.binary)).toBe(true);
    expect(got[50]).toEqual({ data: '{"type":"ack","received":3}', binary: false });
    const back = next(bridge);
    agent.send('{"type":"hello"}');
    expect(await back).toEqual({ data: '{"type":"hello"}', binary: false });
  });

  it('a final close code from the agent reaches the bridge as it is', async () => {
    const { bridge, agent } = await pair();
    const c = closed(bridge);
    agent.close(4502, 'upstream exited');
    expect(await c).toEqual({ code: 4502, reason: 'upstream exited' });
  });

  it('a bridge that vanishes (1006) becomes "going away" (4001) for the agent: its session waits for a resume', async () => {
    const { bridge, agent } = await pair();
    const c = closed(agent);
    bridge.terminate();
    expect((await c).code).toBe(4001);
  });

  it('close() ends both sides with the given code', async () => {
    const { bridge, agent, splice } = await pair();
    const cb = closed(bridge);
    const ca = closed(agent);
    splice.close(4409, 'the agent went away');
    expect((await cb).code).toBe(4409);
    expect((await ca).code).toBe(4409);
    await splice.done;
  });
});
