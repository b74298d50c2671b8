#!/usr/bin/env node
// `npm run build`'s second step (after tsc): the CLI that bin/sprelay.js runs, dist/agent/cli.js with
// everything it imports, bundled by esbuild into dist/app/ (cli.js and chunks/). Why: Node loads an
// ES module graph one file at a time, and the compiled tree with its libraries (zod alone is about
// 90 files) took 210-240 ms to import on the bench machine, the bundle about 80 ms: every `once` a
// scheduler starts pays it (issue 11). Code splitting keeps what a cycle may not need (the FTP, SFTP
// and e-mail transports, the ZIP and DKIM checks) in chunks loaded only when a route asks for them,
// as the compiled tree's dynamic imports did. dist/agent/ etc. stay as tsc wrote them (the tests
// import them); the portable Windows bundle (scripts/bundle-win.mjs) makes one file of its own.
// Usage: node scripts/bundle-app.mjs [DIST]   (default: the project's dist/)
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

// Left out of both bundles: better-sqlite3 is a native addon (loaded from node_modules where it is
// installed; absent from the Windows bundle, whose ledger runs on node:sqlite); ssh2's optional
// native crypto binding and cpu-features have pure-JS fallbacks that ssh2 takes when require() throws.
export const EXTERNAL = ['better-sqlite3', 'cpu-features', '*.node'];

// CommonJS code in an ESM bundle still calls require() (node built-ins, the externals above, each in
// its own try/catch) and reads __dirname; give it both, relative to the bundle's file.
export const BANNER = [
  "import { createRequire as __sprelayCreateRequire } from 'node:module';",
  "import { fileURLToPath as __sprelayFileURLToPath } from 'node:url';",
  "import { dirname as __sprelayDirname } from 'node:path';",
  'const require = __sprelayCreateRequire(import.meta.url);',
  'const __filename = __sprelayFileURLToPath(import.meta.url);',
  'const __dirname = __sprelayDirname(__filename);',
].join('\n');

/**
 * The package folders (node_modules/...) a bundle drew from, by its esbuild metafile, sorted. Throws
 * when better-sqlite3 is among them: its native binary cannot travel inside a bundle.
 */
export function bundledPackages(metafile) {
  const packages = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.add(input.slice(0, m.index + m[0].length - 1));
  }
  if ([...packages].some((p) => p.endsWith('/better-sqlite3')))
    throw new Error('better-sqlite3 ended up in the bundle');
  return [...packages].sort();
}

/** Bundles DIST/agent/cli.js into DIST/app/ (replaced whole). */
export async function bundleApp(dist = join(root, 'dist')) {
  const entry = join(dist, 'agent', 'cli.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: tsc writes it first (npm run build)`);
  const out = join(dist, 'app');
  rmSync(out, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: { cli: entry },
    absWorkingDir: root,
    bundle: true,
    splitting: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outdir: out,
    chunkNames: 'chunks/[name]-[hash]',
    external: EXTERNAL,
    banner: { js: BANNER },
    legalComments: 'none', // the libraries' licenses stay in node_modules beside them
    metafile: true,
    logLevel: 'warning',
  });
  bundledPackages(result.metafile);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    await bundleApp(process.argv[2] ? resolve(process.argv[2]) : undefined);
  } catch (err) {
    process.stderr.write(`bundle-app: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
