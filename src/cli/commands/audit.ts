/** `mcp-access audit verify|search`: check the hash chain of an audit log, and read it. */
import type { CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface VerifyArgs {
  file?: string;
  config?: string;
  format: 'text' | 'json';
}

/**
 * Where the trail is: FILE, or the proxy configuration's trail (`--config`):
 * its audit.path, or PostgreSQL with backend type postgres.
 */
async function trailOf(argv: {
  file?: string;
  config?: string;
}): Promise<{ file: string } | { pg: import('../../backend/postgres.js').PostgresBackend }> {
  const { AccessError } = await import('../../errors.js');
  if ((argv.file === undefined) === (argv.config === undefined))
    throw new AccessError('USAGE', 'name the audit log FILE, or the proxy configuration with --config (not both)');
  if (argv.file !== undefined) return { file: argv.file };
  const { loadProxyConfig } = await import('../../proxy/config.js');
  const config = await loadProxyConfig(argv.config!);
  if (config.backend.type === 'postgres') {
    const { PostgresBackend } = await import('../../backend/postgres.js');
    return { pg: await PostgresBackend.open(config.backend) };
  }
  if (!config.audit?.path)
    throw new AccessError('USAGE', `${config.path} keeps no audit trail (no audit.path)`, {
      hint: 'see docs/audit.md',
    });
  return { file: config.audit.path };
}

const verifyCommand = defineCommand<VerifyArgs>({
  command: 'verify [file]',
  describe: 'Check the hash chain; report the first edited, deleted or reordered event',
  builder: (y) =>
    y
      .positional('file', {
        type: 'string',
        describe: 'The audit log (audit.path in the proxy config)',
      })
      .option('config', {
        alias: 'c',
        type: 'string',
        describe: "Instead of FILE: the proxy configuration's trail (its file, or PostgreSQL)",
      })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Output format' })
      .example('$0 audit verify --config proxy.yaml', "Every writer's chain in PostgreSQL (backend type postgres)")
      .example(
        '$0 audit verify /var/log/mcp-access/audit.jsonl',
        'Exit 0 if intact, 9 with the first broken line otherwise',
      ),
  handler: async (argv) => {
    const { AccessError } = await import('../../errors.js');
    const { verifyAuditFile } = await import('../../audit/verify.js');
    const { print, printJson } = await import('../output.js');
    const trail = await trailOf(argv);
    if ('pg' in trail) {
      const { verifyPgAudit } = await import('../../backend/pg-read.js');
      let r;
      try {
        r = await verifyPgAudit(trail.pg);
      } finally {
        await trail.pg.close();
      }
      if (argv.format === 'json') printJson({ backend: 'postgresql', ...r });
      if (!r.ok)
        throw new AccessError(
          'AUDIT_TAMPERED',
          `PostgreSQL: writer ${r.writer}: event ${r.seq}: ${r.problem} (${r.events} event(s) before it verified)`,
          { detail: { writer: r.writer, seq: r.seq, problem: r.problem, events: r.events } },
        );
      if (argv.format === 'text') print(`PostgreSQL: every chain intact, ${r.writers} writer(s), ${r.events} event(s)`);
      return;
    }
    const file = trail.file;
    const result = await verifyAuditFile(file);
    if (argv.format === 'json') printJson({ file, ...result });
    if (!result.ok) {
      throw new AccessError(
        'AUDIT_TAMPERED',
        `${file}: line ${result.line}: ${result.problem} (${result.events} event(s) before it verified)`,
        {
          detail: { line: result.line, problem: result.problem, events: result.events },
        },
      );
    }
    if (argv.format === 'text') print(`${file}: chain intact, ${result.events} event(s); last hash ${result.head}`);
  },
});

interface SearchArgs {
  file?: string;
  config?: string;
  outcome?: 'success' | 'error' | 'denied';
  user?: string;
  server?: string;
  session?: string;
  tool?: string;
  type?: string;
  denied: boolean;
  since?: string;
  limit?: number;
  format: 'text' | 'json';
}

const searchCommand = defineCommand<SearchArgs>({
  command: 'search [file]',
  describe: 'List audit events matching every filter given',
  builder: (y) =>
    y
      .positional('file', { type: 'string', describe: 'The audit log' })
      .option('config', {
        alias: 'c',
        type: 'string',
        describe: "Instead of FILE: the proxy configuration's trail (its file, or PostgreSQL)",
      })
      .option('outcome', { choices: ['success', 'error', 'denied'] as const, describe: 'Only this outcome' })
      .option('user', { type: 'string', describe: 'Only this user' })
      .option('server', { type: 'string', describe: 'Only this server' })
      .option('session', { type: 'string', describe: 'Only this session id' })
      .option('tool', { type: 'string', describe: 'Only this tool' })
      .option('type', { type: 'string', describe: 'Only this event type, e.g. mcp.session.request' })
      .option('denied', { type: 'boolean', default: false, describe: 'Only denials' })
      .option('since', {
        type: 'string',
        describe: 'Only events since a time (RFC 3339) or for a duration back (e.g. 1h)',
      })
      .option('limit', { type: 'number', describe: 'Only the last N matches' })
      .option('format', {
        choices: ['text', 'json'] as const,
        default: 'text' as const,
        describe: 'A table, or a JSON array of the events',
      })
      .example('$0 audit search audit.jsonl --denied --since 1h', 'Denials in the last hour')
      .example(
        '$0 audit search audit.jsonl --user alice --server filesystem --format json',
        "alice's events on one server, as JSON",
      ),
  handler: async (argv) => {
    const { AccessError } = await import('../../errors.js');
    const { searchAuditFile } = await import('../../audit/search.js');
    const { print, table } = await import('../output.js');
    let sinceMs: number | undefined;
    if (argv.since !== undefined) {
      sinceMs = await parseSince(argv.since);
      if (sinceMs === undefined) {
        throw new AccessError('USAGE', `--since "${argv.since}" is neither a time nor a duration`, {
          hint: 'write it like 2026-11-21T10:00:00Z or 30m, 1h, 2d',
        });
      }
    }
    if (argv.limit !== undefined && !(Number.isInteger(argv.limit) && argv.limit > 0)) {
      throw new AccessError('USAGE', '--limit must be a positive whole number');
    }
    const filter = {
      user: argv.user,
      server: argv.server,
      sessionId: argv.session,
      tool: argv.tool,
      type: argv.type,
      denied: argv.denied,
      outcome: argv.outcome,
      sinceMs,
      limit: argv.limit,
    };
    const trail = await trailOf(argv);
    let events;
    if ('pg' in trail) {
      const { searchPgAudit } = await import('../../backend/pg-read.js');
      try {
        ({ events } = await searchPgAudit(trail.pg, filter));
      } finally {
        await trail.pg.close();
      }
    } else {
      const found = await searchAuditFile(trail.file, filter);
      events = found.events;
      if (found.unreadable > 0)
        process.stderr.write(
          `mcp-access: ${found.unreadable} line(s) of ${trail.file} are not events (run \`mcp-access audit verify\`)\n`,
        );
    }
    if (argv.format === 'json') {
      // JSON escapes C0 controls itself; C1 controls (a bare CSI) and bidi overrides are escaped too.
      print(
        JSON.stringify(events, null, 2).replace(
          UNSAFE_IN_JSON,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
        ),
      );
      return;
    }
    if (events.length === 0) {
      print('no matching events');
      return;
    }
    // Every cell: control and invisible characters escaped, then capped, so
    // an event cannot move the cursor, retitle the terminal, fake a row or
    // widen every row of the table.
    const cell = (v: unknown, max = 40) =>
      shorten(escapeControl(v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v)), max);
    const rows = events.map((e) => [
      cell(e.time),
      cell(e.type).replace(/^mcp\.session\./, ''),
      cell(e.code),
      cell(e.user),
      cell(e.server),
      cell(e.method),
      cell(e.tool),
      cell(e.outcome),
      cell(e.id),
      cell(e.reason, 80),
    ]);
    print(table(['TIME', 'TYPE', 'CODE', 'USER', 'SERVER', 'METHOD', 'TOOL', 'OUTCOME', 'EVENT ID', 'REASON'], rows));
  },
});

/** A duration back from now (`30m`, `1h`, `2d`) or an RFC 3339 time. */
async function parseSince(text: string): Promise<number | undefined> {
  const { parseDuration } = await import('../../util/duration.js');
  try {
    return Date.now() - parseDuration(text, '--since');
  } catch {
    if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
    const t = Date.parse(text);
    return Number.isNaN(t) ? undefined : t;
  }
}

/** C0/C1 controls, DEL, line/paragraph separators, bidi controls and zero-width characters. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Visible escapes (`\x1b`, `\u202e`) for characters a terminal would act on or hide. */
export function escapeControl(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}

function shorten(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

export const auditCommand: CommandModule = {
  command: 'audit',
  describe: 'Verify and search the audit log (see docs/audit.md)',
  builder: (y) =>
    y.command(verifyCommand).command(searchCommand).demandCommand(1, 'name an audit command: verify or search'),
  handler: () => {},
};
