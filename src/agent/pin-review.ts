/**
 * What `mcp-access tools diff` shows and `tools approve` does: the pending
 * tool definitions of a server next to their pins, and their approval.
 * Approvals are marked `unaudited`; the proxy writes the `mcp.tool.approved`
 * event when it next reads that server's pins (the CLI does not write the
 * proxy's hash-chained audit log).
 */
import { AccessError } from '../errors.js';
import type { PinStore, ServerPins, ToolDefinition } from './pins.js';

export interface PendingChange {
  tool: string;
  status: 'new' | 'changed';
  digest: string;
  pinnedDigest?: string;
  firstSeen: string;
  /** A line diff of the pinned and the pending definition (pretty JSON, keys sorted): `  `, `- `, `+ ` lines. */
  diff: string[];
}

export function pendingChanges(pins: ServerPins): PendingChange[] {
  return Object.entries(pins.pending)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([tool, p]) => {
      const pin = pins.pinned[tool];
      return {
        tool,
        status: pin ? 'changed' : 'new',
        digest: p.digest,
        ...(pin ? { pinnedDigest: pin.digest } : {}),
        firstSeen: p.firstSeen,
        diff: lineDiff(pin ? pretty(pin.definition) : [], pretty(p.definition)),
      };
    });
}

/** Move pending definitions (all, or one tool's) to the pins. Returns the tools approved. */
export async function approvePending(store: PinStore, server: string, by: string, tool?: string): Promise<string[]> {
  return store.update(server, (pins) => {
    const names = tool === undefined ? Object.keys(pins.pending) : [tool];
    if (tool !== undefined && !Object.hasOwn(pins.pending, tool)) {
      const waiting = Object.keys(pins.pending);
      throw new AccessError(
        'TOOL_NOT_PENDING',
        `tool "${tool}" of server "${server}" is not waiting for approval (${waiting.length ? `waiting: ${waiting.join(', ')}` : 'nothing is waiting'})`,
      );
    }
    const now = new Date().toISOString();
    for (const name of names) {
      const p = pins.pending[name]!;
      const previous = pins.pinned[name]?.digest;
      pins.pinned[name] = {
        digest: p.digest,
        definition: p.definition,
        pinnedAt: now,
        by,
        unaudited: true,
        ...(previous ? { previousDigest: previous } : {}),
      };
      delete pins.pending[name];
    }
    return names;
  });
}

function pretty(d: ToolDefinition): string[] {
  return JSON.stringify(sortKeys(d), null, 2).split('\n');
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** Longest-common-subsequence line diff (definitions are small). */
export function lineDiff(a: string[], b: string[]): string[] {
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push(`- ${a[i]}`);
      i++;
    } else {
      out.push(`+ ${b[j]}`);
      j++;
    }
  }
  return out;
}
