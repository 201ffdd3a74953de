/**
 * `mcp-access demo` (`npm start`): a whole cluster in a temporary directory,
 * a guided tour through a real `mcp-access connect`, then client configs for
 * the running demo until Ctrl-C (or, with --exit, a clean stop after the tour).
 */
import { defineCommand } from './define.js';

interface DemoArgs {
  exit: boolean;
  port?: number;
  dir?: string;
}

export const demoCommand = defineCommand<DemoArgs>({
  command: 'demo',
  describe: 'Run a local cluster (CA, proxy, two MCP servers, read-only roles, a bot) and tour it',
  builder: (y) =>
    y
      .option('exit', {
        type: 'boolean',
        default: false,
        describe: 'Stop after the tour (exit 0) instead of running until Ctrl-C',
      })
      .option('port', { type: 'number', describe: 'Proxy port on 127.0.0.1 (default: a free one)' })
      .option('dir', {
        type: 'string',
        describe: "Keep the cluster in this directory (new, empty, or an earlier demo's) instead of a temporary one",
      })
      .example('$0 demo', 'Tour, then keep the proxy and bot running for your own MCP client (Ctrl-C stops)')
      .example('$0 demo --exit', 'Tour and stop (what `npm start -- --exit` runs)')
      .example('$0 demo --dir ./demo --port 3080', 'A fixed place and port, kept after it stops'),
  handler: async (argv) => {
    const { AccessError } = await import('../../errors.js');
    if (argv.port !== undefined && !(Number.isInteger(argv.port) && argv.port >= 0 && argv.port <= 65535)) {
      throw new AccessError('USAGE', `--port ${argv.port} is not a port number (0 to 65535)`);
    }
    const [{ DemoPrinter }, { createDemoEnvironment }, { runTour }, { demoHandover }] = await Promise.all([
      import('../demo-printer.js'),
      import('../../demo/environment.js'),
      import('../../demo/tour.js'),
      import('../../demo/client-configs.js'),
    ]);
    const printer = new DemoPrinter();
    const stop = stopSignal();
    const startedAt = Date.now();

    printer.title();
    printer.setupHeading();
    // A Ctrl-C part-way also stops the bot and servers (they share the terminal), so a step may fail because
    // of it: that is a stop, not an error.
    const stoppedOr = async <T>(work: Promise<T>): Promise<T | undefined> => {
      try {
        return await work;
      } catch (err) {
        if (stop.requested()) return undefined;
        throw err;
      }
    };
    const env = await stoppedOr(createDemoEnvironment({ dir: argv.dir, port: argv.port }, printer));
    if (!env) {
      printer.line(`Stopped during set-up (${stop.signal()}).`);
      stop.dispose();
      return;
    }
    try {
      if (!stop.requested()) {
        const tour = await stoppedOr(runTour(env, printer));
        if (tour) {
          printer.tour(env, tour);
          printer.took(Date.now() - startedAt);
        }
      }
      if (!argv.exit && !stop.requested()) {
        printer.handover(env, demoHandover(env));
        env.bot.onLog((line) => printer.botLog(line));
        await stop.wait();
      }
      if (stop.requested()) printer.line(`\n${stop.signal()}: stopping…`);
      await env.close();
      printer.closing(env);
    } finally {
      // A failure part-way: stop what runs and remove a temporary directory.
      await env.close();
      stop.dispose();
    }
  },
});

/**
 * SIGINT/SIGTERM while the demo runs: the first asks for a clean stop (the
 * current step finishes, then everything is stopped); a second one exits at once.
 */
function stopSignal() {
  let received: NodeJS.Signals | undefined;
  let wake: ((s: NodeJS.Signals) => void) | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received) {
      process.stderr.write(`mcp-access demo: second ${sig}: exiting without cleaning up\n`);
      process.exit(130);
    }
    received = sig;
    wake?.(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested: () => received !== undefined,
    signal: () => received,
    wait: () =>
      new Promise<NodeJS.Signals>((resolve) => {
        if (received) resolve(received);
        else wake = resolve;
      }),
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
