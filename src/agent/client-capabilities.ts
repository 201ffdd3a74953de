/**
 * What the client said it can do, so that a server cannot ask it for what it
 * never offered. A 2025-era client declares its capabilities in `initialize`;
 * a 2026-07-28 client sends them (and its name and version) in each request's
 * `_meta`. A server→client request for an undeclared capability is answered
 * by the proxy with an error instead of being forwarded.
 */
export const CLIENT_CAPABILITIES_META_KEY = 'io.modelcontextprotocol/clientCapabilities';
export const CLIENT_INFO_META_KEY = 'io.modelcontextprotocol/clientInfo';

/** The client capability each server→client request needs. */
const NEEDS: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

export class ClientCapabilities {
  private declared: Record<string, unknown> | undefined;

  /** Note what a client request declares (initialize params, or a 2026 request's _meta). */
  note(method: string, params: unknown): void {
    const p = params as { capabilities?: unknown; _meta?: Record<string, unknown> } | undefined;
    if (method === 'initialize' && isObject(p?.capabilities)) this.declared = p.capabilities;
    const fromMeta = p?._meta?.[CLIENT_CAPABILITIES_META_KEY];
    if (isObject(fromMeta)) this.declared = fromMeta;
  }

  /** The capability `method` needs that the client did not declare, if any. */
  missingFor(method: string): string | undefined {
    const need = NEEDS[method];
    if (need === undefined) return undefined;
    return this.declared && isObject(this.declared[need]) ? undefined : need;
  }
}

/** A 2026-07-28 client's name and version, from a request's `_meta`. */
export function clientInfoFromMeta(params: unknown): { name?: string; version?: string } | undefined {
  const ci = (params as { _meta?: Record<string, unknown> } | undefined)?._meta?.[CLIENT_INFO_META_KEY] as
    { name?: unknown; version?: unknown } | undefined;
  if (!isObject(ci)) return undefined;
  return {
    name: typeof ci.name === 'string' ? ci.name.slice(0, 200) : undefined,
    version: typeof ci.version === 'string' ? ci.version.slice(0, 100) : undefined,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
