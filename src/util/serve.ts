/**
 * The life of a long-running service (`proxy start`, `agent start`): SIGHUP
 * reloads, SIGTERM and SIGINT stop it gracefully (once); resolves when it
 * stopped. One line on stderr per signal.
 *
 * The SIGHUP handler is installed before the service starts: a SIGHUP that
 * arrives while it is still starting (a config written and signalled right
 * after "listening on") must not kill it, as SIGHUP's default action would;
 * it reloads as soon as the service runs. SIGTERM and SIGINT keep their
 * default action until then, so a start that hangs can still be stopped.
 */
import { describeError } from '../errors.js';

export interface Service {
  reload(): Promise<void>;
  close(): Promise<void>;
}

export async function serveUntilSignal(name: string, start: () => Promise<Service>): Promise<void> {
  let service: Service | undefined;
  let reloadPending = false;
  const onHup = () => {
    if (service) void service.reload();
    else reloadPending = true;
  };
  process.on('SIGHUP', onHup);
  try {
    service = await start();
  } catch (err) {
    process.off('SIGHUP', onHup);
    throw err;
  }
  const running = service;
  if (reloadPending) void running.reload();
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${name}: ${sig}: shutting down\n`);
      running
        .close()
        .catch((err: unknown) => process.stderr.write(`${name}: shutting down: ${describeError(err)}\n`))
        .finally(resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
