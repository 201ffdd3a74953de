/**
 * How the demo's library code reports progress without printing: the CLI's
 * printer implements this (a spinner on a terminal, plain lines when piped).
 */
export interface DemoProgress {
  /**
   * Run one step: `text` shows while it runs, `summary(result)` once it is done; a failure marks the step
   * failed and rethrows.
   */
  run<T>(text: string, fn: () => Promise<T>, summary: (result: T) => string): Promise<T>;
  /** A fact worth a line of its own. */
  done(text: string): void;
  /** Context (where things are), shown quieter than a done step. */
  note(text: string): void;
}
