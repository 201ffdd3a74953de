/**
 * A stdio MCP server: one child process per session.
 *
 * The child runs in its own process group so that stopping it also stops
 * whatever it started (npx → node → server). Stop = close stdin, SIGTERM to
 * the group, SIGKILL after the grace period. Node reaps the child, so no
 * zombies; if the proxy itself is killed, the child sees EOF on stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { AccessError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import { LineFramer } from '../../tunnel/line-framer.js';
import { errorResponse, RPC } from '../../tunnel/jsonrpc.js';
import { writeLine } from '../../tunnel/write-line.js';
import type { StdioServerConfig } from '../servers.js';
import { excerpt, StderrLines } from './stderr-lines.js';
import type { Upstream, UpstreamEvents } from './upstream.js';
import { childProcessOptions } from './child-env.js';

const STDERR_TAIL_LINES = 5;
/** How long an exited server's last stderr bytes may take to arrive before its exit is reported. */
const STDERR_SETTLE_MS = 250;

export class StdioUpstream implements Upstream {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private stopping = false;
  private closed = false;
  private readonly stderrTail: string[] = [];
  private started: Promise<void> | undefined;

  constructor(
    private readonly serverName: string,
    private readonly config: StdioServerConfig,
    private readonly events: UpstreamEvents,
    private readonly log: Logger,
    private readonly opts: { maxMessageSize: number; stopGraceMs: number },
  ) {}

  describe(): string {
    return this.child?.pid ? `pid ${this.child.pid}` : this.config.command;
  }

  /** Idempotent: a spare is started before a session takes it. */
  start(): Promise<void> {
    this.started ??= this.spawnChild();
    return this.started;
  }

  /** Still running (not exited, not stopped)? */
  get alive(): boolean {
    const c = this.child;
    return !this.closed && !this.stopping && c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  private spawnChild(): Promise<void> {
    return new Promise((resolveStart, rejectStart) => {
      let child: ChildProcess;
      try {
        child = spawn(this.config.command, this.config.args, {
          cwd: this.config.cwd,
          // A minimal environment and the run_as user, never the proxy's secrets (child-env.ts).
          ...childProcessOptions(this.serverName, this.config),
          stdio: ['pipe', 'pipe', 'pipe'],
          detached: true,
        });
      } catch (err) {
        rejectStart(this.startError(err));
        return;
      }
      this.child = child;
      let started = false;
      this.exited = new Promise((resolveExit) => child.once('close', () => resolveExit()));

      child.once('spawn', () => {
        started = true;
        resolveStart();
      });
      child.once('error', (err) => {
        if (!started) rejectStart(this.startError(err));
        else this.log.warn(`${this.serverName}: ${err.message}`);
      });
      let stderrEnded: () => void = () => {};
      const stderrDone = new Promise<void>((r) => {
        stderrEnded = r;
      });
      child.once('exit', (code, signal) => {
        if (!started) return;
        if (this.stopping) return;
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        // Its last words on stderr may still be in the pipe: wait for them (bounded).
        const settle = setTimeout(stderrEnded, STDERR_SETTLE_MS);
        void stderrDone.then(() => {
          clearTimeout(settle);
          if (this.stopping) return;
          const last = this.stderrTail.at(-1);
          const tail = last ? ` (last stderr line: "${excerpt(last)}")` : '';
          this.log.warn(`${this.serverName}: server ${how}${tail}`);
          this.finish(new AccessError('UPSTREAM_EXITED', `MCP server "${this.serverName}" ${how}${tail}`));
        });
      });

      const framer = new LineFramer(this.opts.maxMessageSize);
      child.stdout!.on('data', (chunk: Buffer) => {
        framer.push(chunk, (line) => {
          // A short line is copied out of the 64 KiB read chunk, so what the
          // tunnel's outbox counts is what it really keeps in memory.
          if (line.kind === 'line')
            this.events.onMessage(
              line.bytes.length * 4 < line.bytes.buffer.byteLength ? Buffer.from(line.bytes) : line.bytes,
            );
          else {
            this.log.error(`${this.serverName}: dropped a ${line.size}-byte message over max_message_size`);
            if (line.id !== undefined && line.id !== null) {
              this.events.onMessage(
                Buffer.from(
                  errorResponse(
                    line.id,
                    RPC.INTERNAL_ERROR,
                    `the response from "${this.serverName}" is ${line.size} bytes, over the proxy's max_message_size`,
                  ),
                ),
              );
            }
          }
        });
      });
      child.stdin!.on('drain', () => this.events.onDrain());
      child.stdin!.on('error', () => {
        /* EPIPE when the child died: reported by 'exit' */
      });

      const stderr = new StderrLines();
      const line = (l: string) => this.stderrLine(l);
      child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk, line));
      child.stderr!.on('end', () => {
        stderr.end(line);
        stderrEnded();
      });
      child.stderr!.on('error', () => stderrEnded());
    });
  }

  send(message: Buffer): boolean {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable) return true;
    return writeLine(stdin, message);
  }

  pause(): void {
    this.child?.stdout?.pause();
  }
  resume(): void {
    this.child?.stdout?.resume();
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.closed = true;
    if (!child || !this.exited) return;
    if (child.exitCode !== null || child.signalCode !== null) return this.exited;
    if (!this.stopping) {
      this.stopping = true;
      child.stdin?.end();
      this.signalGroup('SIGTERM');
      const timer = setTimeout(() => {
        this.log.warn(
          `${this.serverName}: server did not stop within ${this.opts.stopGraceMs}ms of SIGTERM; sending SIGKILL`,
        );
        this.signalGroup('SIGKILL');
      }, this.opts.stopGraceMs);
      this.exited.finally(() => clearTimeout(timer)).catch(() => {});
    }
    return this.exited;
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        this.child?.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  private stderrLine(line: string): void {
    if (!line) return;
    this.stderrTail.push(excerpt(line));
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    this.log.info(`[${this.serverName}] ${line}`);
  }

  private finish(reason: AccessError): void {
    if (this.closed) return;
    this.closed = true;
    this.events.onClose(reason);
  }

  private startError(err: unknown): AccessError {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT'
        ? `command "${this.config.command}" was not found`
        : e.code === 'EACCES'
          ? `command "${this.config.command}" is not executable`
          : e.code === 'EPERM' && this.config.runAs !== undefined
            ? `the proxy may not start processes as run_as "${this.config.runAs}" (it needs to run as root, or with CAP_SETUID, CAP_SETGID and CAP_KILL)`
            : e.message;
    return new AccessError('UPSTREAM_FAILED', `MCP server "${this.serverName}" could not be started: ${why}`);
  }
}
