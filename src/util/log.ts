/**
 * Logging to stderr (or a file). Never stdout: in `connect`, stdout is the
 * MCP stream. Quiet by default: `info` is one line per state change or error.
 */
import { appendFileSync } from 'node:fs';
import { redactSecrets } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LoggerOptions {
  level?: LogLevel;
  /** Prefix for every line, e.g. `mcp-access connect`. */
  name?: string;
  /** Append here as well as stderr. */
  file?: string;
  /** Include an ISO timestamp (the proxy does; the bridge's terse lines do not). */
  timestamps?: boolean;
  /** Write sink; defaults to process.stderr. */
  sink?: (line: string) => void;
}

export class Logger {
  level: LogLevel;
  readonly name: string;
  private readonly file?: string;
  private readonly timestamps: boolean;
  private readonly sink: (line: string) => void;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? 'info';
    this.name = options.name ?? 'mcp-access';
    this.file = options.file;
    this.timestamps = options.timestamps ?? false;
    this.sink = options.sink ?? ((line) => process.stderr.write(line));
  }

  child(name: string): Logger {
    const child = new Logger({
      level: this.level,
      name,
      file: this.file,
      timestamps: this.timestamps,
      sink: this.sink,
    });
    return child;
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  debug(msg: string): void {
    this.write('debug', msg);
  }
  info(msg: string): void {
    this.write('info', msg);
  }
  warn(msg: string): void {
    this.write('warn', msg);
  }
  error(msg: string): void {
    this.write('error', msg);
  }

  private write(level: Exclude<LogLevel, 'silent'>, msg: string): void {
    if (!this.enabled(level)) return;
    const ts = this.timestamps ? `${new Date().toISOString()} ` : '';
    const tag = level === 'info' ? '' : `${level}: `;
    const line = `${ts}${this.name}: ${tag}${redactSecrets(msg)}\n`;
    try {
      this.sink(line);
    } catch {
      /* stderr closed: nothing more to do */
    }
    if (this.file) {
      try {
        appendFileSync(this.file, line);
      } catch {
        /* a log file must never break the data path */
      }
    }
  }
}
