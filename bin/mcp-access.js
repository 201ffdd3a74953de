#!/usr/bin/env node
// The CLI lives in dist/ (built by `npm run build`, and by `npm pack` through
// prepack). A clone that was not built, or whose dependencies are missing,
// gets one line saying what to run instead of a module-loader stack trace.
try {
  await import('../dist/cli/main.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || process.argv.includes('--debug')) throw err;
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('..', import.meta.url)).replace(/[\\/]$/, '');
  const message = String(err.message);
  const pkg =
    /Cannot find package '([^']+)'/.exec(message)?.[1] ??
    /^Cannot find module '(?!\.{0,2}\/)([^']+)'/.exec(message)?.[1];
  process.stderr.write(
    pkg
      ? `mcp-access: a dependency of mcp-access is missing: ${pkg} (run npm install in ${root})\n`
      : `mcp-access: this copy of mcp-access is not built (run npm install, then npm run build, in ${root})\n`,
  );
  process.exitCode = 1;
}
