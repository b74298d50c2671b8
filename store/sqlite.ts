// The ledger's SQLite driver seam: one small synchronous interface over better-sqlite3 (the
// normal install, a native addon compiled by npm) and Node's built-in `node:sqlite` (Node >= 22.13;
// the portable Windows bundle, where no better-sqlite3 binary can exist). The ledger speaks only
// plain SQL through this (prepare/run/get/all/exec), so schema, migrations, pragmas and
// transactions are the same text on both. The driver is chosen once per process: better-sqlite3
// when its binary loads, else node:sqlite; `SPRELAY_LEDGER_DRIVER` forces one (tests run the ledger
// and pipeline suites on both).
import { createRequire } from 'node:module';

export type LedgerDriverName = 'better-sqlite3' | 'node:sqlite';
export const LEDGER_DRIVERS: readonly LedgerDriverName[] = ['better-sqlite3', 'node:sqlite'];

export type SqlValue = string | number | bigint | null | Uint8Array;
export type SqlParams = SqlValue[] | [Record<string, SqlValue>];

export interface SqlStatement {
  run(...params: SqlParams): { changes: number; lastInsertRowid: number };
  get<T = Record<string, unknown>>(...params: SqlParams): T | undefined;
  all<T = Record<string, unknown>>(...params: SqlParams): T[];
  /** Rows one at a time (a million-row listing must not be held in memory at once). */
  iterate<T = Record<string, unknown>>(...params: SqlParams): IterableIterator<T>;
}

export interface SqlDatabase {
  readonly driver: LedgerDriverName;
  readonly isOpen: boolean;
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  close(): void;
}

export interface OpenOptions {
  readonly?: boolean;
  /** Milliseconds a statement waits for another process's write lock (busy_timeout). */
  busyTimeoutMs?: number;
}

export interface DriverInfo {
  name: LedgerDriverName;
  /** The library's version (better-sqlite3) or Node's (node:sqlite). */
  version: string;
  /** The SQLite library's own version. */
  sqliteVersion: string;
}

const require = createRequire(import.meta.url);

// ---- better-sqlite3 -------------------------------------------------------------------------------

// The shapes of better-sqlite3 and node:sqlite that this module uses, written out here so that the
// seam does not depend on either library's type package (node:sqlite has none in @types/node 20).
interface BetterStatement {
  run(...p: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...p: unknown[]): unknown;
  all(...p: unknown[]): unknown[];
  iterate(...p: unknown[]): IterableIterator<unknown>;
}
interface BetterDb {
  open: boolean;
  exec(sql: string): unknown;
  prepare(sql: string): BetterStatement;
  close(): unknown;
}
type BetterCtor = new (
  path: string,
  opts: { readonly?: boolean; fileMustExist?: boolean; timeout?: number },
) => BetterDb;

interface NodeStatement {
  run(...p: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...p: unknown[]): unknown;
  all(...p: unknown[]): unknown[];
  iterate(...p: unknown[]): IterableIterator<unknown>;
}
interface NodeDb {
  isOpen?: boolean;
  exec(sql: string): void;
  prepare(sql: string): NodeStatement;
  close(): void;
}
type NodeCtor = new (path: string, opts: { readOnly?: boolean; open?: boolean }) => NodeDb;

interface Loaded {
  info: DriverInfo;
  open(path: string, opts: OpenOptions): SqlDatabase;
}

let chosen: Loaded | undefined;
const failures = new Map<LedgerDriverName, string>();

/** node:sqlite hands out rows with a null prototype; callers get plain objects on both drivers. */
function plain<T>(row: unknown): T | undefined {
  return row === undefined ? undefined : ({ ...(row as object) } as T);
}

function loadBetter(): Loaded {
  const Database = require('better-sqlite3') as BetterCtor;
  const version = (require('better-sqlite3/package.json') as { version: string }).version;
  // Loading the JS is not enough: the native binary is loaded on first open, so open one now.
  const probe = new Database(':memory:', {});
  const sqliteVersion = (probe.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  probe.close();
  return {
    info: { name: 'better-sqlite3', version, sqliteVersion },
    open(path, opts) {
      const db = new Database(path, {
        readonly: opts.readonly === true,
        fileMustExist: opts.readonly === true,
        timeout: opts.busyTimeoutMs ?? 5000,
      });
      const wrap = (s: BetterStatement): SqlStatement => ({
        run: (...p) => {
          const r = s.run(...p);
          return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
        },
        get: <T>(...p: SqlParams) => s.get(...p) as T | undefined,
        all: <T>(...p: SqlParams) => s.all(...p) as T[],
        iterate: <T>(...p: SqlParams) => s.iterate(...p) as IterableIterator<T>,
      });
      return {
        driver: 'better-sqlite3',
        get isOpen() {
          return db.open;
        },
        exec: (sql) => void db.exec(sql),
        prepare: (sql) => wrap(db.prepare(sql)),
        close: () => void (db.open && db.close()),
      };
    },
  };
}

function loadNodeSqlite(): Loaded {
  // node:sqlite prints an ExperimentalWarning when first loaded (Node 22-24). On a station that line
  // would stand in every `status`; it is the one warning hidden, and only while loading.
  const emit = process.emitWarning;
  let mod: { DatabaseSync: NodeCtor } | undefined;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type === 'ExperimentalWarning' && /sqlite/i.test(text)) return;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- emitWarning's overloads cannot be re-spread typed
    (emit as any).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    mod = require('node:sqlite') as { DatabaseSync: NodeCtor };
  } finally {
    process.emitWarning = emit;
  }
  const { DatabaseSync } = mod;
  const probe = new DatabaseSync(':memory:', {});
  const sqliteVersion = (probe.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  probe.close();
  return {
    info: { name: 'node:sqlite', version: process.versions.node, sqliteVersion },
    open(path, opts) {
      const db = new DatabaseSync(path, { readOnly: opts.readonly === true });
      let open = true;
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
      const wrap = (s: NodeStatement): SqlStatement => ({
        run: (...p) => {
          const r = s.run(...p);
          return { changes: Number(r.changes), lastInsertRowid: Number(r.lastInsertRowid) };
        },
        get: <T>(...p: SqlParams) => plain<T>(s.get(...p)),
        all: <T>(...p: SqlParams) => s.all(...p).map((r) => plain<T>(r)!),
        iterate: function* <T>(...p: SqlParams): IterableIterator<T> {
          for (const r of s.iterate(...p)) yield plain<T>(r)!;
        },
      });
      return {
        driver: 'node:sqlite',
        get isOpen() {
          return open;
        },
        exec: (sql) => db.exec(sql),
        prepare: (sql) => wrap(db.prepare(sql)),
        close: () => {
          if (open) db.close();
          open = false;
        },
      };
    },
  };
}

const LOADERS: Record<LedgerDriverName, () => Loaded> = {
  'better-sqlite3': loadBetter,
  'node:sqlite': loadNodeSqlite,
};

function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  // Node's "Require stack:" after a failed require only names our own files
  return text
    .split(/\n\s*Require stack:/)[0]!
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

/**
 * The driver this process uses: `SPRELAY_LEDGER_DRIVER` if set, else better-sqlite3 when its
 * binary loads, else node:sqlite. Throws one error that says why neither can be had.
 */
export function ledgerDriver(env: NodeJS.ProcessEnv = process.env): Loaded {
  if (chosen) return chosen;
  const forced = env.SPRELAY_LEDGER_DRIVER?.trim();
  if (forced) {
    if (!(LEDGER_DRIVERS as readonly string[]).includes(forced)) {
      throw new Error(`SPRELAY_LEDGER_DRIVER must be one of ${LEDGER_DRIVERS.join(', ')}, not "${forced}"`);
    }
    try {
      chosen = LOADERS[forced as LedgerDriverName]();
    } catch (err) {
      throw new Error(`ledger driver ${forced} (SPRELAY_LEDGER_DRIVER) cannot be loaded: ${reason(err)}`, {
        cause: err,
      });
    }
    return chosen;
  }
  for (const name of LEDGER_DRIVERS) {
    try {
      chosen = LOADERS[name]();
      return chosen;
    } catch (err) {
      failures.set(name, reason(err));
    }
  }
  throw new Error(
    `no SQLite driver for the ledger: better-sqlite3 (${failures.get('better-sqlite3')}); ` +
      `node:sqlite needs Node.js 22.13 or newer (${failures.get('node:sqlite')})`,
  );
}

/** Which driver the ledger uses here, and why the other was passed over (for --version and check). */
export function ledgerDriverInfo(env: NodeJS.ProcessEnv = process.env): DriverInfo & { passedOver?: string } {
  const { info } = ledgerDriver(env);
  const other = failures.get('better-sqlite3');
  return info.name === 'node:sqlite' && other ? { ...info, passedOver: `better-sqlite3: ${other}` } : info;
}

/** SQLite's "database is locked" (SQLITE_BUSY, also its extended codes), from either driver. */
export function isBusy(err: unknown): boolean {
  const e = err as { code?: unknown; errcode?: unknown } | null;
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_BUSY')) return true; // better-sqlite3
  return typeof e?.errcode === 'number' && (e.errcode & 0xff) === 5; // node:sqlite
}

/**
 * Runs `fn` again while SQLite answers "database is locked", for up to `withinMs`. For the few
 * statements where SQLite gives up at once instead of waiting out busy_timeout: it does so when
 * waiting could deadlock, e.g. two processes switching one new file to WAL together.
 */
export function retryBusy<T>(fn: () => T, withinMs: number): T {
  const deadline = Date.now() + withinMs;
  for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
    try {
      return fn();
    } catch (err) {
      const left = deadline - Date.now();
      if (!isBusy(err) || left <= 0) throw err;
      // a synchronous pause (the ledger is opened synchronously); one last try at the deadline
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(pause, left));
    }
  }
}

/** Opens a SQLite file with the process's driver (the ledger, or a test reading it). */
export function openSqlite(path: string, opts: OpenOptions = {}): SqlDatabase {
  return ledgerDriver().open(path, opts);
}
