/**
 * The life of a long-running service (`proxy start`, `agent start`): SIGHUP
 * reloads, SIGTERM and SIGINT stop it gracefully (once); resolves when it
 * stopped. One line on stderr per signal.
 */
import { describeError } from '../errors.js';

export interface Service {
  reload(): Promise<void>;
  close(): Promise<void>;
}

export function serveUntilSignal(name: string, service: Service): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${name}: ${sig}: shutting down\n`);
      service
        .close()
        .catch((err: unknown) => process.stderr.write(`${name}: shutting down: ${describeError(err)}\n`))
        .finally(resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      void service.reload();
    });
  });
}
