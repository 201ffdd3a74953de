/** The options every client-side command shares: identity, proxy, extra CAs. */
import type { Argv } from 'yargs';
import { readFile } from 'node:fs/promises';
import { AccessError } from '../../errors.js';

export function clientOptions<T>(y: Argv<T>) {
  return y
    .option('identity', { alias: 'i', type: 'string', describe: 'Identity file (default: $MCP_ACCESS_IDENTITY)' })
    .option('proxy', { type: 'string', describe: 'Proxy host:port (default: $MCP_ACCESS_PROXY)' })
    .option('ca-file', {
      type: 'string',
      array: true,
      describe: "Extra CA certificate(s) for the proxy's certificate",
    });
}

export function identityAndProxy(argv: Record<string, unknown>): { identityPath: string; proxyText: string } {
  const identityPath = (argv.identity as string | undefined) ?? process.env.MCP_ACCESS_IDENTITY;
  const proxyText = (argv.proxy as string | undefined) ?? process.env.MCP_ACCESS_PROXY;
  if (!identityPath)
    throw new AccessError('USAGE', 'no identity file given', { hint: 'pass -i FILE or set MCP_ACCESS_IDENTITY' });
  if (!proxyText)
    throw new AccessError('USAGE', 'no proxy address given', {
      hint: 'pass --proxy HOST:PORT or set MCP_ACCESS_PROXY',
    });
  return { identityPath, proxyText };
}

export async function resolveClient(argv: Record<string, unknown>) {
  const { identityPath, proxyText } = identityAndProxy(argv);
  const [{ loadIdentity }, { parseProxyAddress }] = await Promise.all([
    import('../../identity/load.js'),
    import('../../tunnel/proxy-address.js'),
  ]);
  const proxy = parseProxyAddress(proxyText);
  const identity = await loadIdentity(identityPath, {
    warn: (m) => process.stderr.write(`mcp-access: warning: ${m}\n`),
  });
  const extraCa: string[] = [];
  for (const f of (argv['ca-file'] as string[] | undefined) ?? []) {
    try {
      extraCa.push(await readFile(f, 'utf8'));
    } catch (err) {
      throw new AccessError('USAGE', `--ca-file ${f} cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return { identity, identityPath, proxy, proxyText, extraCa };
}
