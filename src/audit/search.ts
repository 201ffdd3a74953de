/**
 * `audit search`: read events and keep those matching every given filter.
 * Lines that are not events are counted, not fatal (use `audit verify` to
 * judge the file's integrity).
 */
import { AccessError } from '../errors.js';
import { eachLine } from './verify.js';

export interface AuditFilter {
  user?: string;
  server?: string;
  sessionId?: string;
  tool?: string;
  type?: string;
  /** Only denials (outcome `denied`). */
  denied?: boolean;
  /** Only this outcome: success, error or denied. */
  outcome?: string;
  /** Only events at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** Keep the last N matches. */
  limit?: number;
}

export type AuditRecord = Record<string, unknown> & { time?: string; id?: string; type?: string };

export async function searchAuditFile(
  path: string,
  filter: AuditFilter,
): Promise<{ events: AuditRecord[]; unreadable: number }> {
  const events: AuditRecord[] = [];
  let unreadable = 0;
  try {
    await eachLine(path, (buf) => {
      if (buf.length === 0) return undefined;
      let e: unknown;
      try {
        e = JSON.parse(buf.toString('utf8'));
      } catch {
        unreadable++;
        return undefined;
      }
      if (typeof e !== 'object' || e === null || Array.isArray(e)) {
        unreadable++;
        return undefined;
      }
      if (matches(e as AuditRecord, filter)) {
        events.push(e as AuditRecord);
        if (filter.limit !== undefined && events.length > filter.limit) events.shift();
      }
      return undefined;
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AccessError(
      'AUDIT_UNAVAILABLE',
      `audit log ${path} cannot be read (${code === 'ENOENT' ? 'it does not exist' : (code ?? (err as Error).message)})`,
      {
        hint: 'check the path (the proxy writes it at audit.path)',
      },
    );
  }
  return { events, unreadable };
}

function matches(e: AuditRecord, f: AuditFilter): boolean {
  if (f.user !== undefined && e.user !== f.user) return false;
  if (f.server !== undefined && e.server !== f.server) return false;
  if (f.sessionId !== undefined && e.sessionId !== f.sessionId) return false;
  if (f.tool !== undefined && e.tool !== f.tool) return false;
  if (f.type !== undefined && e.type !== f.type) return false;
  if (f.denied && e.outcome !== 'denied') return false;
  if (f.outcome !== undefined && e.outcome !== f.outcome) return false;
  if (f.sinceMs !== undefined) {
    const t = typeof e.time === 'string' ? Date.parse(e.time) : NaN;
    if (!(t >= f.sinceMs)) return false;
  }
  return true;
}
