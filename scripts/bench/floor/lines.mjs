/**
 * A 'data' handler that calls `onLine` with each complete newline-terminated line (bytes, no copy when it
 * fits one chunk).
 */
export function splitLines(onLine) {
  let pending = [];
  return (chunk) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      pending.push(chunk.subarray(start, nl));
      onLine(pending.length === 1 ? pending[0] : Buffer.concat(pending));
      pending = [];
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  };
}
