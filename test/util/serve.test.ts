import { describe, expect, it, vi } from 'vitest';
import { serveUntilSignal } from '../../src/util/serve.js';

/** The listeners serveUntilSignal added for `sig` (called directly: no real signal reaches the test process). */
type Listener = (...args: unknown[]) => void;
const added = (sig: NodeJS.Signals, before: Listener[]) =>
  (process.listeners(sig) as Listener[]).filter((l) => !before.includes(l));

describe('serveUntilSignal', () => {
  it('keeps a SIGHUP that arrives while the service starts, and reloads once it runs', async () => {
    const before = {
      SIGHUP: process.listeners('SIGHUP') as Listener[],
      SIGTERM: process.listeners('SIGTERM') as Listener[],
      SIGINT: process.listeners('SIGINT') as Listener[],
    };
    let started!: () => void;
    const calls: string[] = [];
    const service = {
      reload: () => {
        calls.push('reload');
        return Promise.resolve();
      },
      close: () => {
        calls.push('close');
        return Promise.resolve();
      },
    };
    const served = serveUntilSignal('test', () => new Promise((r) => (started = () => r(service))));
    const [hup] = added('SIGHUP', before.SIGHUP);
    expect(hup).toBeDefined(); // installed before the service has started
    expect(added('SIGTERM', before.SIGTERM)).toEqual([]); // SIGTERM still stops a start that hangs
    (hup as () => void)();
    expect(calls).toEqual([]);
    started();
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['reload']);
    (hup as () => void)();
    expect(calls).toEqual(['reload', 'reload']);
    const [term] = added('SIGTERM', before.SIGTERM);
    const quiet = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      (term as () => void)();
      await served;
    } finally {
      quiet.mockRestore();
      for (const sig of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const)
        for (const l of added(sig, before[sig])) process.off(sig, l);
    }
    expect(calls).toEqual(['reload', 'reload', 'close']);
  });
});
