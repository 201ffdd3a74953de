/**
 * A TCP relay between the bridge and the proxy that misbehaves on command:
 * cuts connections (FIN), resets them (RST), stalls them (stops forwarding,
 * keeps them open), or cuts one after N more bytes (mid-message). Loopback only.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  stalled: boolean;
  cutAfter?: { bytes: number };
}

export class FaultRelay {
  readonly pairs = new Set<Pair>();
  connections = 0;
  private cutNextAfter: number | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FaultRelay> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const relay = new FaultRelay(server, (server.address() as { port: number }).port);
    server.on('connection', (client) => relay.accept(client, targetPort));
    return relay;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Close every live connection (FIN both ways). */
  cut(): number {
    return this.each((p) => {
      p.client.destroy();
      p.upstream.destroy();
    });
  }
  /** Reset every live connection (RST). */
  reset(): number {
    return this.each((p) => {
      p.client.resetAndDestroy();
      p.upstream.resetAndDestroy();
    });
  }
  /** Stop forwarding on every live connection but keep it open (a dead peer, as keepalive sees it). */
  stall(): number {
    return this.each((p) => {
      p.stalled = true;
    });
  }
  /** Cut the current connections after `bytes` more bytes from the bridge have passed (mid-message). */
  cutAfterClientBytes(bytes: number): void {
    this.each((p) => {
      p.cutAfter = { bytes };
    });
    this.cutNextAfter = undefined;
  }

  async close(): Promise<void> {
    this.reset();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private each(f: (p: Pair) => void): number {
    const n = this.pairs.size;
    for (const p of this.pairs) f(p);
    return n;
  }

  private accept(client: Socket, targetPort: number): void {
    this.connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: Pair = { client, upstream, stalled: false };
    if (this.cutNextAfter !== undefined) pair.cutAfter = { bytes: this.cutNextAfter };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (d: Buffer) => {
      if (pair.stalled) return;
      if (pair.cutAfter) {
        if (d.length >= pair.cutAfter.bytes) {
          upstream.write(d.subarray(0, pair.cutAfter.bytes), () => drop());
          pair.stalled = true;
          return;
        }
        pair.cutAfter.bytes -= d.length;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!pair.stalled) client.write(d);
    });
  }
}
