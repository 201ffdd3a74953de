/**
 * How `mcp-access demo` looks: coloured with a spinner on a terminal, plain
 * text when piped or with NO_COLOR (https://no-color.org: any non-empty
 * value). The demo's library code (src/demo) only returns data and reports
 * progress through the DemoProgress this implements.
 */
import { relative } from 'node:path';
import type { DemoProgress } from '../demo/progress.js';
import type { DemoEnvironment } from '../demo/environment.js';
import type { TourResult } from '../demo/tour.js';
import type { DemoHandover } from '../demo/client-configs.js';
import { table } from './output.js';

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  red(s: string): string;
  cyan(s: string): string;
  yellow(s: string): string;
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
const COLOURS: Style = {
  bold: sgr(1, 22),
  dim: sgr(2, 22),
  green: sgr(32, 39),
  red: sgr(31, 39),
  cyan: sgr(36, 39),
  yellow: sgr(33, 39),
};
const PLAIN: Style = {
  bold: (s) => s,
  dim: (s) => s,
  green: (s) => s,
  red: (s) => s,
  cyan: (s) => s,
  yellow: (s) => s,
};

/** Colour only on a terminal that can show it, and never when NO_COLOR is set to something. */
export function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const OK = '✔';
const NO = '✘';

export class DemoPrinter implements DemoProgress {
  readonly s: Style;
  private readonly interactive: boolean;
  private readonly out: NodeJS.WriteStream;

  constructor(out: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env) {
    this.out = out;
    this.interactive = out.isTTY === true && env.TERM !== 'dumb';
    this.s = colourWanted(out, env) ? COLOURS : PLAIN;
  }

  line(text = ''): void {
    this.out.write(`${text}\n`);
  }

  async run<T>(text: string, fn: () => Promise<T>, summary: (result: T) => string): Promise<T> {
    const stopSpinner = this.spin(text);
    try {
      const result = await fn();
      stopSpinner();
      this.done(summary(result));
      return result;
    } catch (err) {
      stopSpinner();
      this.line(`  ${this.s.red(NO)} ${text}: failed`);
      throw err;
    }
  }

  done(text: string): void {
    this.line(`  ${this.s.green(OK)} ${text}`);
  }

  /** A spinner with the step's text on a terminal; nothing when piped (the done line follows). */
  private spin(text: string): () => void {
    if (!this.interactive) return () => {};
    let i = 0;
    // One terminal line, or \r cannot take it back.
    const room = Math.max(10, (this.out.columns || 80) - 5);
    const shown = text.length > room ? `${text.slice(0, room - 1)}` : text;
    const draw = () => this.out.write(`\r\x1b[2K  ${this.s.cyan(SPINNER[i++ % SPINNER.length]!)} ${shown}…`);
    draw();
    const timer = setInterval(draw, 80);
    return () => {
      clearInterval(timer);
      this.out.write('\r\x1b[2K');
    };
  }

  heading(text: string): void {
    this.line();
    this.line(this.s.bold(text));
  }

  title(): void {
    this.line(this.s.bold('mcp-access demo: short-lived, role-checked, audited access to MCP servers, end to end'));
  }

  note(text: string): void {
    this.line(this.s.dim(`  ${text}`));
  }

  setupHeading(): void {
    this.heading('Setting up a cluster');
  }

  tour(env: DemoEnvironment, t: TourResult): void {
    const s = this.s;
    const rel = (p: string) => relative(env.dir, p);

    this.heading('1. Who may reach what  (mcp-access ls)');
    const rows: string[][] = [];
    for (const r of t.reach) {
      r.servers.forEach((srv, i) =>
        rows.push([
          i === 0 ? r.user : '',
          i === 0 ? r.roles.join(',') : '',
          srv.name,
          Object.entries(srv.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
          srv.tools ? srv.tools.allow.join(', ') || '(none)' : '',
        ]),
      );
      if (r.servers.length === 0) rows.push([r.user, r.roles.join(','), '(no server)', '', '']);
    }
    this.indent(table(['USER', 'ROLES', 'SERVER', 'LABELS', 'ALLOWED TOOLS'], rows));
    this.note(' example-role allows servers labelled env: dev. llm-access names no app_labels,');
    this.note(' so it applies to every server; prod-get-tools adds env: prod (docs/rbac.md).');

    this.heading(`2. tools/list through \`mcp-access connect ${t.launch.args.at(-1)}\`, as the bot`);
    this.line(`   ${s.green(OK)} ${t.tools.visible.length} visible: ${t.tools.visible.join(', ')}`);
    this.line(
      `   ${s.red(NO)} ${t.tools.hidden.length} filtered out by llm-access (the operator sees them): ${t.tools.hidden.join(', ')}`,
    );

    this.heading(`3. A read: ${t.read.tool} ${rel(t.read.path)}`);
    this.line(`   ${s.green(OK)} allowed; the server answered:`);
    for (const l of t.read.text.trimEnd().split('\n').slice(0, 6)) this.line(s.dim(`     ${l}`));

    this.heading(`4. A write: ${t.write.tool} ${rel(t.write.path)}`);
    this.line(
      `   ${s.red(NO)} denied by the proxy before it reached the server: JSON-RPC error ${s.bold(String(t.write.code))}`,
    );
    this.line(`     ${t.write.message}`);
    this.line(
      `     audit event ${t.write.auditEventId ?? '(none given)'}; ${rel(t.write.path)} on disk is ${t.write.fileUnchanged ? 'unchanged' : s.red('CHANGED')}`,
    );

    const p = t.prod;
    this.heading(`5. The env: prod server, ${p.server}, as the bot`);
    this.note(" Its tools are named with hyphens (get-sum), so llm-access's get_*, list_*");
    this.note(' and read_* match none of them: tool patterns match the names a server uses.');
    this.note(' prod-get-tools allows get-* and echo on env: prod, and denies get-env.');
    this.line(`   ${s.green(OK)} ${p.visible.length} visible: ${p.visible.join(', ')}`);
    this.line(`   ${s.green(OK)} ${p.call.tool} ${JSON.stringify(p.call.arguments)}: ${p.call.text}`);
    this.line(
      `   ${s.red(NO)} ${p.denied.tool} (it would print the server's environment): JSON-RPC error ${s.bold(String(p.denied.code))}`,
    );
    this.line(`     ${p.denied.message}`);

    this.heading(`6. The audit trail: the bot's events in ${t.audit.path}`);
    const cell = (v: unknown): string =>
      typeof v === 'string' ? v : v === undefined || v === null ? '' : (JSON.stringify(v) ?? '');
    // Fits an 80-column terminal: the time to the second, the event type
    // without its "mcp.session." prefix, the direction and tool with the
    // method, no event codes (`mcp-access audit search` shows every field).
    const arrow = (d: string) => (d === 'server_to_client' ? '← ' : d === 'client_to_server' ? '→ ' : '');
    const auditRows = t.audit.events.map((e) => [
      cell(e.time).slice(11, 19),
      cell(e.type).replace(/^mcp\.session\./, ''),
      e.method ? `${arrow(cell(e.direction))}${[cell(e.method), cell(e.tool)].filter(Boolean).join(' ')}` : '',
      cell(e.outcome),
      cell(e.id).slice(0, 8),
    ]);
    const lines = table(['UTC', 'EVENT', 'REQUEST', 'OUTCOME', 'EVENT ID'], auditRows).split('\n');
    lines.forEach((l, i) => {
      const denied = i > 0 && t.audit.events[i - 1]?.outcome === 'denied';
      this.line(`   ${denied ? s.red(l) : i === 0 ? s.dim(l) : l}`);
    });
    this.line(s.dim('   (EVENT: the type after "mcp.session."; every field: mcp-access audit search)'));
    if (t.audit.otherEvents > 0)
      this.line(s.dim(`   (and ${t.audit.otherEvents} events of the operator's session and the bot's registration)`));
    if (t.audit.chain.ok)
      this.line(`   ${s.green(OK)} hash chain intact: ${t.audit.chain.events} events  (mcp-access audit verify)`);
  }

  handover(env: DemoEnvironment, h: DemoHandover): void {
    const s = this.s;
    this.heading('Use it from your own MCP client while the demo runs');
    this.line(`Claude Desktop: add this to claude_desktop_config.json`);
    this.line(JSON.stringify(h.claude, null, 2));
    this.line();
    this.line('LangGraph (langchain-mcp-adapters):');
    this.line(h.langgraph);
    this.line();
    this.line('Try:');
    const width = Math.max(...h.tryCommands.map((c) => c.what.length));
    for (const c of h.tryCommands) this.line(`  ${s.dim(c.what.padEnd(width))}  ${s.cyan(c.command)}`);
    this.line();
    this.line(
      `The proxy (${env.proxyAddress}) and the bot (pid ${env.bot.pid}, renewing ${env.bot.identityPath} every ${env.bot.renewalInterval}) keep running.`,
    );
    this.line(s.bold('Press Ctrl-C to stop.'));
  }

  /** A line the running bot logged (renewals), while the demo waits. */
  botLog(line: string): void {
    const time = new Date().toTimeString().slice(0, 8);
    this.line(this.s.dim(`  ${time} bot: ${line}`));
  }

  took(ms: number): void {
    this.line();
    this.line(this.s.dim(`The tour took ${(ms / 1000).toFixed(1)} s from start.`));
  }

  closing(env: { dir: string; temporary: boolean }): void {
    this.line(`Stopped the bot and the proxy; ${env.temporary ? `removed ${env.dir}` : `kept ${env.dir}`}.`);
  }

  private indent(text: string): void {
    for (const l of text.split('\n')) this.line(`   ${l}`);
  }
}
