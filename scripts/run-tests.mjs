#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner. Node 20 does not expand globs and a bare
// `--test` finds no .ts files (and exits 0 having run nothing), so the files are listed here.
// Usage: node scripts/run-tests.mjs [substring...]   (only files whose path contains a substring;
// test/interop/ and test/windows/ only when a substring names them: the interop tier needs real
// servers, the Windows suites need Windows and run under Wine with `npm run test:windows`)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);

function walk(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    // test/interop needs real servers (scripts/run-interop.sh starts them), test/windows needs
    // Windows (scripts/windows/run-tests.sh): only when asked for
    if (statSync(p).isDirectory()) {
      const onRequest = name === 'interop' || name === 'windows';
      if (!onRequest || filters.some((f) => f.includes(name))) walk(p, out);
    } else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

const files = walk(join(root, 'test'), []).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files matched ${filters.join(' ') || 'test/**/*.test.ts'}`);
  process.exit(1);
}
const args = ['--import', 'tsx', '--test', '--test-concurrency=1', ...files];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
