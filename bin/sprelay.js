#!/usr/bin/env node
// The installed `sprelay` command: runs the compiled CLI (npm ci builds dist/ through `prepare`).
import { main } from '../dist/agent/cli.js';

const code = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(text + '\n'),
  err: (text) => process.stderr.write(text + '\n'),
  stdout: process.stdout,
  env: process.env,
  cwd: process.cwd(),
});
// exitCode rather than exit(): stdout to a pipe is written asynchronously and exit() would cut a
// long `list --json`. The unref'd timer only matters if something wrongly keeps the process alive.
process.exitCode = code;
setTimeout(() => process.exit(code), 5000).unref();
