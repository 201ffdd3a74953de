/** Wires `mcp-access connect` options to a Bridge and runs it to the end. */
import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { AccessError } from '../errors.js';
import { Logger } from '../util/log.js';
import { parseDuration } from '../util/duration.js';
import { parseSize } from '../util/size.js';
import { loadIdentity } from '../identity/load.js';
import { Bridge } from './bridge.js';
import { parseProxyAddress } from '../tunnel/proxy-address.js';

export interface ConnectOptions {
  server: string;
  identityPath: string;
  proxy: string;
  caFiles: string[];
  maxMessageSize: string;
  logFile?: string;
  keepalive: string;
  connectRetries: number;
  debug: boolean;
  input: Readable;
  output: Writable;
}

export async function runConnect(o: ConnectOptions): Promise<number> {
  const proxy = parseProxyAddress(o.proxy);
  const maxMessageSize = parseSize(o.maxMessageSize);
  if (maxMessageSize === undefined || maxMessageSize < 1024) {
    throw new AccessError(
      'USAGE',
      `--max-message-size "${o.maxMessageSize}" must be a size like 64MiB (at least 1KiB)`,
    );
  }
  const keepaliveMs = parseDuration(o.keepalive, '--keepalive');
  const extraCa: string[] = [];
  for (const f of o.caFiles) {
    try {
      extraCa.push(await readFile(f, 'utf8'));
    } catch (err) {
      throw new AccessError('USAGE', `--ca-file ${f} cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  const log = new Logger({ name: 'mcp-access connect', level: o.debug ? 'debug' : 'info', file: o.logFile });
  const bridge = new Bridge({
    server: o.server,
    identityPath: o.identityPath,
    proxy,
    extraCa,
    maxMessageSize,
    keepaliveMs,
    connectRetries: o.connectRetries,
    input: o.input,
    output: o.output,
    log,
    loadIdentity: (path) => loadIdentity(path, { warn: (m) => log.warn(m) }),
  });
  const stop = (sig: string) => {
    void bridge.shutdown(sig);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return bridge.run();
}
