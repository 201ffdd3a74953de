/**
 * `connect`'s options, defined once: yargs uses them for --help and parsing,
 * and the start-up fast path (fast-connect.ts) parses them with node:util
 * without loading yargs at all.
 */
export interface ConnectOptionSpec {
  type: 'string' | 'number' | 'boolean';
  alias?: string;
  array?: boolean;
  default?: string | number;
  describe: string;
}

export const CONNECT_OPTIONS: Record<string, ConnectOptionSpec> = {
  identity: { type: 'string', alias: 'i', describe: 'Identity file (default: $MCP_ACCESS_IDENTITY)' },
  proxy: { type: 'string', describe: 'Proxy host:port (default: $MCP_ACCESS_PROXY)' },
  'ca-file': { type: 'string', array: true, describe: "Extra CA certificate(s) for the proxy's certificate" },
  'max-message-size': { type: 'string', default: '64MiB', describe: 'Largest JSON-RPC message accepted either way' },
  'log-file': { type: 'string', describe: 'Also append logs to this file' },
  keepalive: { type: 'string', default: '15s', describe: 'Tunnel keepalive interval (dead peer after two missed)' },
  'connect-retries': { type: 'number', default: 5, describe: 'Retries with backoff before "proxy unreachable"' },
};

export const CONNECT_EXAMPLE = '$0 connect -i ~/machine-id/identity --proxy proxy.example.com:443 my-mcp-server';
