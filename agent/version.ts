// What `sprelay --version` and `check` say about this build: the package version, Node, the OS,
// and which SQLite driver the ledger runs on (better-sqlite3, or node:sqlite in the portable bundle).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ledgerDriverInfo } from '../store/sqlite.js';

// Set by the portable bundle's build (esbuild `define`), where no package.json travels along.
declare const __SPRELAY_VERSION__: string | undefined;

export function appVersion(): string {
  if (typeof __SPRELAY_VERSION__ === 'string') return __SPRELAY_VERSION__;
  // from dist/agent/ or agent/ (tsx): the package.json a level or two up
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sprelay' && pkg.version) return pkg.version;
    } catch {
      // not ours or unreadable: keep looking up
    }
  }
  return 'unknown';
}

/** One line on the ledger driver, or why there is none (never throws). */
export function ledgerDriverText(env: NodeJS.ProcessEnv = process.env): string {
  try {
    const d = ledgerDriverInfo(env);
    const why = d.passedOver ? ` (${d.passedOver})` : '';
    return `ledger driver: ${d.name} ${d.version}, SQLite ${d.sqliteVersion}${why}`;
  } catch (err) {
    return `ledger driver: NONE — ${err instanceof Error ? err.message : String(err)}`;
  }
}

export function versionText(env: NodeJS.ProcessEnv = process.env): string {
  return [
    `sprelay ${appVersion()}`,
    `node ${process.version} ${process.platform}-${process.arch}`,
    ledgerDriverText(env),
  ].join('\n');
}
