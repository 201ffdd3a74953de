/** `--proxy host:port` for the bot (`[v6]:port` too; the port is required). */
import { AccessError } from '../errors.js';
import type { ProxyAddress } from './client.js';

export function parseProxyAddress(text: string): ProxyAddress {
  const m = /^(?:\[([^\]]+)\]|([^:/\s]+)):(\d{1,5})$/.exec(String(text).trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new AccessError('USAGE', `--proxy "${text}" must be host:port`, { hint: 'use the address `mcp-access bot add` printed, e.g. --proxy mcp.example.com:3080' });
  }
  return { host: m[1] ?? m[2]!, port };
}
