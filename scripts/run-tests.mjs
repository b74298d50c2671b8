#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner. Node 20 does not expand globs and a bare
// `--test` finds no .ts files (and exits 0 having run nothing), so the files are listed here.
// Usage: node scripts/run-tests.mjs [substring...]   (only files whose path contains a substring;
// test/interop/, test/windows/ and test/stress/ only when a substring names them: the interop tier
// needs real servers, the Windows suites need Windows and run under Wine with `npm run test:windows`,
// the kill -9 suites take minutes and run with `npm run test:stress`)
// Files run two at a time (SPRELAY_TEST_CONCURRENCY to change; the stress suites one at a time).
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
      const onRequest = name === 'interop' || name === 'windows' || name === 'stress';
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
// the kill -9 suites drive child processes with random timing: alone, so a slow neighbour does not
// change what they exercise; everything else two files at a time (this machine has two cores)
const stress = files.some((f) => f.includes(`${join('test', 'stress')}`));
const concurrency = process.env.SPRELAY_TEST_CONCURRENCY ?? (stress ? '1' : '2');
const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
