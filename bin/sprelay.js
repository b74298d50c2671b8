#!/usr/bin/env node
// The installed `sprelay` command: runs the CLI as bundled into dist/app/ (npm ci builds dist/
// through `prepare`: tsc, then scripts/bundle-app.mjs).

// Node runs every file-system call (and DNS lookups, zlib, crypto) on a pool of 4 threads by
// default. A call stuck on a dead share holds its thread until the OS answers, however soon the
// deadline gives up on it: the lan transport lets one share hold at most 2 (CALLS_PER_SHARE in
// transports/lan/gate.ts), and 16 threads leave the other routes room even with several dead shares.
// libuv reads the variable once, when the pool starts (the first such call of the process), so it
// is set before the app is imported: the import below is dynamic, and the Windows bundle
// (scripts/bundle-win.mjs bundles this file) keeps that order. Node 22+, whose module loader reads
// files synchronously, takes it from here; Node 20's loader has started the pool before this line
// runs (4 threads): set UV_THREADPOOL_SIZE=16 in the environment there. A value set by the user wins.
process.env.UV_THREADPOOL_SIZE ??= '16';

const { main, endProcess } = await import('../dist/app/cli.js');

const code = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(text + '\n'),
  err: (text) => process.stderr.write(text + '\n'),
  stdout: process.stdout,
  env: process.env,
  cwd: process.cwd(),
});
endProcess(code);
