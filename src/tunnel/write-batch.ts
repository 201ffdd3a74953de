/**
 * Writes made in one turn of the event loop leave in one system call.
 *
 * A small MCP call is a few hundred bytes; written one by one, each message
 * costs a `write` (and, on a TLS socket, a TLS record) of its own, and under
 * load (64 calls in flight) the relays spend more time in those calls than in
 * anything else. `holdWrites(stream)` corks a stream until the current turn's
 * work is done (`process.nextTick`, which runs after the promise jobs queued
 * so far): everything written meanwhile goes out in one `writev`, and a TLS
 * socket coalesces the buffers of one `writev` into one record. Nothing waits
 * for a timer: a lone message leaves at the end of the turn that wrote it.
 */

/** What can be held: a Writable (a pipe, a TCP or TLS socket). */
export interface Corkable {
  cork(): void;
  uncork(): void;
  readonly destroyed?: boolean;
}

const held = new Set<Corkable>();
let scheduled = false;

/** Hold `stream`'s writes until the end of this turn (once per stream per turn). */
export function holdWrites(stream: Corkable | undefined): void {
  if (stream === undefined || held.has(stream)) return;
  stream.cork();
  held.add(stream);
  if (!scheduled) {
    scheduled = true;
    process.nextTick(release);
  }
}

function release(): void {
  scheduled = false;
  for (const stream of held) {
    held.delete(stream);
    stream.uncork();
  }
}
