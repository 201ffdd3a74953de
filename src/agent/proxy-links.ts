/**
 * An agent's connections to every proxy replica behind one address. The agent
 * dials the address (a load balancer, or one proxy); each proxy process
 * answers with its id. Besides the link it keeps to each replica it reached,
 * the agent probes the address again now and then: a probe that reaches a
 * replica it has no link to yet becomes that replica's link; one that reaches
 * a known replica is closed. So any replica can route any session to the
 * agent, and a replica that starts later is found within the probe interval.
 *
 * Probing backs off from 1 s to 10 s while it finds nothing new, and starts
 * again from 1 s whenever a link is lost (a replica went away, another may
 * have taken its place).
 */
import type { Logger } from '../util/log.js';
import { ProxyLink, type ProxyLinkOptions } from './proxy-link.js';

type LinkOptions = Omit<ProxyLinkOptions, 'probe' | 'onWelcome' | 'onLost' | 'onEnded'>;

const PROBE_MIN_MS = 1000;
const PROBE_MAX_MS = 10_000;

export class ProxyLinks {
  private readonly links = new Set<ProxyLink>();
  private readonly byProxy = new Map<string, ProxyLink>();
  private probeTimer: NodeJS.Timeout | undefined;
  private probeEveryMs = PROBE_MIN_MS;
  private probing: ProxyLink | undefined;
  private closed: Promise<void> | undefined;
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(private readonly o: LinkOptions & { log: Logger; probeMinMs?: number }) {
    this.ready = new Promise((r) => (this.markReady = r));
    this.probeEveryMs = o.probeMinMs ?? PROBE_MIN_MS;
  }

  get where(): string {
    return [...this.links][0]?.where ?? '';
  }

  /** Proxy processes the agent is connected to now. */
  get connectedProxies(): string[] {
    return [...this.byProxy.keys()];
  }

  start(): void {
    this.add(false);
    this.scheduleProbe();
  }

  announce(): void {
    for (const l of this.links) l.announce();
  }

  /** The certificate was renewed: move every connection onto it, sessions untouched. */
  renew(): void {
    for (const l of this.links) void l.renew();
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.probeTimer) clearTimeout(this.probeTimer);
      await Promise.all([...this.links].map((l) => l.close()));
    })();
    return this.closed;
  }

  private add(probe: boolean): ProxyLink {
    const link = new ProxyLink({
      ...this.o,
      probe,
      onWelcome: (l, id) => {
        const known = this.byProxy.get(id);
        if (known && known !== l) return false;
        this.byProxy.set(id, l);
        if (this.probing === l) this.probing = undefined;
        if (probe) {
          this.o.log.info(`found another proxy replica behind ${l.where} (${id.slice(0, 8)})`);
          this.probeEveryMs = this.o.probeMinMs ?? PROBE_MIN_MS;
        }
        this.markReady();
        return true;
      },
      onLost: (l, id) => {
        if (id !== undefined && this.byProxy.get(id) === l) this.byProxy.delete(id);
        this.probeEveryMs = this.o.probeMinMs ?? PROBE_MIN_MS;
        this.scheduleProbe();
      },
      onEnded: (l) => {
        this.links.delete(l);
        if (this.probing === l) this.probing = undefined;
      },
    });
    this.links.add(link);
    link.start();
    return link;
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      // One probe at a time; none while no replica is reachable at all (the links retry by themselves).
      if (!this.probing && this.byProxy.size > 0) this.probing = this.add(true);
      this.probeEveryMs = Math.min(PROBE_MAX_MS, this.probeEveryMs * 2);
      this.scheduleProbe();
    }, this.probeEveryMs);
    this.probeTimer.unref();
  }
}
