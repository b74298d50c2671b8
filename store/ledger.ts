// The ledger: one SQLite file that says, for every package of every route, where it is and what
// happened to it. It is the agent's memory across crashes, so it is WAL with synchronous=FULL
// (better-sqlite3 defaults WAL to NORMAL, where a commit can roll back on power loss) and every
// state change is one transaction together with its event row. It speaks plain SQL through the
// driver seam (store/sqlite.ts): better-sqlite3, or node:sqlite where that binary is absent.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, type LedgerDriverName, type SqlDatabase, type SqlValue } from './sqlite.js';

export type Direction = 'in' | 'out';
export type PackageState =
  // out
  | 'queued'
  | 'sent'
  | 'failed'
  | 'dead'
  /** A stable outbox file that is not taken (bad name, not well-formed, too large): kept while it is there. */
  | 'refused'
  // both
  | 'duplicate'
  // in
  | 'delivered'
  | 'waiting'
  | 'quarantined';

export const PACKAGE_STATES: readonly PackageState[] = [
  'queued',
  'sent',
  'failed',
  'dead',
  'refused',
  'duplicate',
  'delivered',
  'waiting',
  'quarantined',
];

export interface PackageRow {
  id: number;
  route: string;
  direction: Direction;
  name: string;
  size: number;
  sha256: string | null;
  state: PackageState;
  attempts: number;
  nextAttemptAt: number | null;
  lastError: string | null;
  remoteRef: string | null;
  /** Our copy of the bytes, relative to dataDir (spool, archive or quarantine), or null. */
  storedPath: string | null;
  /** In: temp file in the inbox that is yet to be renamed to `name` (write-ahead for a crash). */
  pendingPath: string | null;
  /** In: when the remote was acknowledged. */
  ackedAt: number | null;
  duplicateOf: number | null;
  origin: string | null;
  /** When a person acknowledged this dead/quarantined/refused package (`sprelay ack`), or null. */
  seenAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** States a person is told about until they acknowledge them (`sprelay ack`) or they go away. */
export const PERSON_STATES: readonly PackageState[] = ['dead', 'quarantined', 'refused'];
/** States of work still to do: a problem once older than the route's alertAfter. */
export const PENDING_STATES: readonly PackageState[] = ['queued', 'failed', 'waiting'];

export interface PackageEvent {
  at: number;
  event: string;
  detail: string | null;
}

export interface RouteRun {
  route: string;
  lastRunAt: number | null;
  lastSuccessAt: number | null;
  lastError: string | null;
  /** The first failed run of the current run of failures (null once a run succeeds). */
  failingSince: number | null;
}

export interface RouteLockRow {
  route: string;
  pid: number;
  boot: number;
  acquiredAt: number;
  /** The holder writes this every little while; a stale one is a holder that is gone. */
  renewedAt: number;
}

export interface ListFilter {
  states?: PackageState[];
  route?: string;
  since?: number;
  direction?: Direction;
  limit?: number;
  /** Newest first (what a person wants to see); default oldest first. */
  newestFirst?: boolean;
}

type NewPackage = Pick<PackageRow, 'route' | 'direction' | 'name' | 'size' | 'state'> &
  Partial<
    Pick<
      PackageRow,
      'sha256' | 'lastError' | 'remoteRef' | 'storedPath' | 'pendingPath' | 'duplicateOf' | 'origin' | 'ackedAt'
    >
  >;

export type PackagePatch = Partial<
  Pick<
    PackageRow,
    | 'state'
    | 'attempts'
    | 'nextAttemptAt'
    | 'lastError'
    | 'remoteRef'
    | 'storedPath'
    | 'pendingPath'
    | 'ackedAt'
    | 'sha256'
    | 'size'
    | 'seenAt'
  >
>;

// Numbered migrations: index i brings user_version from i to i+1. Never edit a shipped one.
const MIGRATIONS: string[] = [
  `CREATE TABLE packages (
     id INTEGER PRIMARY KEY,
     route TEXT NOT NULL,
     direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
     name TEXT NOT NULL,
     size INTEGER NOT NULL,
     sha256 TEXT,
     state TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER,
     last_error TEXT,
     remote_ref TEXT,
     stored_path TEXT,
     pending_path TEXT,
     acked_at INTEGER,
     duplicate_of INTEGER REFERENCES packages(id) ON DELETE SET NULL,
     origin TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX packages_key ON packages(route, name, sha256);
   CREATE INDEX packages_due ON packages(route, state, next_attempt_at);
   CREATE INDEX packages_updated ON packages(updated_at);
   CREATE TABLE events (
     id INTEGER PRIMARY KEY,
     package_id INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
     at INTEGER NOT NULL,
     event TEXT NOT NULL,
     detail TEXT
   );
   CREATE INDEX events_package ON events(package_id);
   CREATE TABLE route_runs (
     route TEXT PRIMARY KEY,
     last_run_at INTEGER,
     last_success_at INTEGER,
     last_error TEXT
   );`,
  // 2: who works a route right now (one process per route: `run` and a Task Scheduler `once`)
  `CREATE TABLE route_locks (
     route TEXT PRIMARY KEY,
     pid INTEGER NOT NULL,
     boot INTEGER NOT NULL,
     acquired_at INTEGER NOT NULL
   );`,
  // 3: what a person has seen (ack), since when a route fails, and lock renewals (a reused pid
  // must not keep a dead holder's lock alive)
  `ALTER TABLE packages ADD COLUMN seen_at INTEGER;
   ALTER TABLE route_runs ADD COLUMN failing_since INTEGER;
   ALTER TABLE route_locks ADD COLUMN renewed_at INTEGER;
   UPDATE route_locks SET renewed_at = acquired_at;
   UPDATE route_runs SET failing_since = last_run_at WHERE last_error IS NOT NULL;`,
];

export interface LockHolder {
  pid: number;
  /** When the holder's machine booted (ms): a pid from before a reboot is nobody. */
  boot: number;
}

const COLUMNS: Record<keyof PackagePatch, string> = {
  state: 'state',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  lastError: 'last_error',
  remoteRef: 'remote_ref',
  storedPath: 'stored_path',
  pendingPath: 'pending_path',
  ackedAt: 'acked_at',
  sha256: 'sha256',
  size: 'size',
  seenAt: 'seen_at',
};

interface RawRow {
  id: number;
  route: string;
  direction: Direction;
  name: string;
  size: number;
  sha256: string | null;
  state: PackageState;
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  remote_ref: string | null;
  stored_path: string | null;
  pending_path: string | null;
  acked_at: number | null;
  duplicate_of: number | null;
  origin: string | null;
  seen_at: number | null;
  created_at: number;
  updated_at: number;
}

function toRow(r: RawRow): PackageRow {
  return {
    id: r.id,
    route: r.route,
    direction: r.direction,
    name: r.name,
    size: r.size,
    sha256: r.sha256,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    remoteRef: r.remote_ref,
    storedPath: r.stored_path,
    pendingPath: r.pending_path,
    ackedAt: r.acked_at,
    duplicateOf: r.duplicate_of,
    origin: r.origin,
    seenAt: r.seen_at ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class Ledger {
  private readonly db: SqlDatabase;
  private readonly now: () => number;
  /** Open transactions: 0 outside, 1 in BEGIN IMMEDIATE, more in nested SAVEPOINTs. */
  private depth = 0;

  private constructor(db: SqlDatabase, now: () => number) {
    this.db = db;
    this.now = now;
  }

  static open(path: string, opts: { now?: () => number } = {}): Ledger {
    mkdirSync(dirname(path), { recursive: true });
    const db = openSqlite(path, { busyTimeoutMs: 10_000 });
    try {
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = FULL');
      db.exec('PRAGMA foreign_keys = ON');
      const ledger = new Ledger(db, opts.now ?? Date.now);
      ledger.migrate();
      return ledger;
    } catch (err) {
      // an open handle keeps the file locked on Windows: never leave one behind a failed open
      db.close();
      throw err;
    }
  }

  /** The ledger's clock (tests move it). */
  time(): number {
    return this.now();
  }

  /** The SQLite driver behind this ledger. */
  get driver(): LedgerDriverName {
    return this.db.driver;
  }

  private pragma(name: string): SqlValue {
    const row = this.db.prepare(`PRAGMA ${name}`).get<Record<string, SqlValue>>();
    return row === undefined ? null : (Object.values(row)[0] ?? null);
  }

  private migrate(): void {
    const version = Number(this.pragma('user_version'));
    if (version > MIGRATIONS.length) {
      throw new Error(
        `ledger schema version ${version} is newer than this sprelay understands (${MIGRATIONS.length}); upgrade sprelay`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }

  get schemaVersion(): number {
    return Number(this.pragma('user_version'));
  }

  close(): void {
    this.db.close();
  }

  integrityCheck(): string {
    return String(this.pragma('integrity_check'));
  }

  /**
   * Runs `fn` as one transaction (one fsync for the lot): BEGIN IMMEDIATE, so the write lock is
   * taken first and two processes never both read-then-write; nested calls are savepoints that
   * roll back alone. `fn` must be synchronous: a transaction never spans an await.
   */
  transaction<T>(fn: () => T): T {
    const outer = this.depth === 0;
    const savepoint = `sp${this.depth}`;
    this.db.exec(outer ? 'BEGIN IMMEDIATE' : `SAVEPOINT ${savepoint}`);
    this.depth++;
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise) throw new Error('ledger: a transaction must not be async');
    } catch (err) {
      this.depth--;
      this.rollback(outer, savepoint);
      throw err;
    }
    this.depth--;
    try {
      this.db.exec(outer ? 'COMMIT' : `RELEASE ${savepoint}`);
    } catch (err) {
      this.rollback(outer, savepoint);
      throw err;
    }
    return result;
  }

  private rollback(outer: boolean, savepoint: string): void {
    try {
      this.db.exec(outer ? 'ROLLBACK' : `ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
    } catch {
      // SQLite already rolled the transaction back itself (e.g. after a disk-full error)
    }
  }

  insert(pkg: NewPackage, event: string, detail?: string): PackageRow {
    return this.transaction(() => {
      const t = this.now();
      const info = this.db
        .prepare(
          `INSERT INTO packages (route, direction, name, size, sha256, state, last_error, remote_ref, stored_path,
             pending_path, acked_at, duplicate_of, origin, created_at, updated_at)
           VALUES (@route, @direction, @name, @size, @sha256, @state, @lastError, @remoteRef, @storedPath,
             @pendingPath, @ackedAt, @duplicateOf, @origin, @t, @t)`,
        )
        .run({
          route: pkg.route,
          direction: pkg.direction,
          name: pkg.name,
          size: pkg.size,
          sha256: pkg.sha256 ?? null,
          state: pkg.state,
          lastError: pkg.lastError ?? null,
          remoteRef: pkg.remoteRef ?? null,
          storedPath: pkg.storedPath ?? null,
          pendingPath: pkg.pendingPath ?? null,
          ackedAt: pkg.ackedAt ?? null,
          duplicateOf: pkg.duplicateOf ?? null,
          origin: pkg.origin ?? null,
          t,
        });
      const id = Number(info.lastInsertRowid);
      this.addEvent(id, event, detail ?? null, t);
      return this.get(id)!;
    });
  }

  update(id: number, patch: PackagePatch, event?: string, detail?: string): PackageRow {
    return this.transaction(() => {
      const t = this.now();
      const sets = ['updated_at = @t'];
      const params: Record<string, SqlValue> = { id, t };
      // a package that becomes dead/quarantined/refused (again) is news: a person has not seen it yet
      if (patch.state && PERSON_STATES.includes(patch.state) && patch.seenAt === undefined) sets.push('seen_at = NULL');
      for (const [key, value] of Object.entries(patch) as [keyof PackagePatch, SqlValue | undefined][]) {
        if (value === undefined) continue;
        sets.push(`${COLUMNS[key]} = @${key}`);
        params[key] = value;
      }
      const info = this.db.prepare(`UPDATE packages SET ${sets.join(', ')} WHERE id = @id`).run(params);
      if (info.changes !== 1) throw new Error(`ledger: no package with id ${id}`);
      if (event) this.addEvent(id, event, detail ?? null, t);
      return this.get(id)!;
    });
  }

  private addEvent(id: number, event: string, detail: string | null, at: number): void {
    this.db
      .prepare('INSERT INTO events (package_id, at, event, detail) VALUES (?, ?, ?, ?)')
      .run(id, at, event, detail);
  }

  get(id: number): PackageRow | undefined {
    const r = this.db.prepare('SELECT * FROM packages WHERE id = ?').get(id) as RawRow | undefined;
    return r && toRow(r);
  }

  events(id: number): PackageEvent[] {
    return this.db
      .prepare('SELECT at, event, detail FROM events WHERE package_id = ? ORDER BY id')
      .all(id) as PackageEvent[];
  }

  /**
   * The package this name+bytes already is on this route, if any: the first row that is not
   * itself a duplicate record, so dedup always points at the original.
   */
  findOriginal(route: string, name: string, sha256: string, states: PackageState[]): PackageRow | undefined {
    const marks = states.map(() => '?').join(', ');
    const r = this.db
      .prepare(
        `SELECT * FROM packages WHERE route = ? AND name = ? AND sha256 = ? AND state IN (${marks}) ORDER BY id LIMIT 1`,
      )
      .get(route, name, sha256, ...states) as RawRow | undefined;
    return r && toRow(r);
  }

  /** Rows of one route in the given states (small sets: pending work, waiting, quarantine marks). */
  inState(route: string, states: PackageState[]): PackageRow[] {
    const marks = states.map(() => '?').join(', ');
    return (
      this.db
        .prepare(`SELECT * FROM packages WHERE route = ? AND state IN (${marks}) ORDER BY id`)
        .all(route, ...states) as RawRow[]
    ).map(toRow);
  }

  /** Outbound packages of a route that are due to be sent now, oldest first. */
  due(route: string, now: number): PackageRow[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM packages WHERE route = ? AND direction = 'out'
             AND (state = 'queued' OR (state = 'failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)))
           ORDER BY id`,
        )
        .all(route, now) as RawRow[]
    ).map(toRow);
  }

  /** Inbound rows whose inbox rename may not have happened (crash between ledger and rename). */
  pendingInbound(route: string): PackageRow[] {
    return (
      this.db
        .prepare(`SELECT * FROM packages WHERE route = ? AND pending_path IS NOT NULL ORDER BY id`)
        .all(route) as RawRow[]
    ).map(toRow);
  }

  list(filter: ListFilter = {}): PackageRow[] {
    return [...this.iterate(filter)];
  }

  /** The rows of `list`, one at a time (`list --json --all` over a million rows). */
  *iterate(filter: ListFilter = {}): IterableIterator<PackageRow> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.states?.length) {
      where.push(`state IN (${filter.states.map(() => '?').join(', ')})`);
      params.push(...filter.states);
    }
    if (filter.route) {
      where.push('route = ?');
      params.push(filter.route);
    }
    if (filter.direction) {
      where.push('direction = ?');
      params.push(filter.direction);
    }
    if (filter.since !== undefined) {
      where.push('updated_at >= ?');
      params.push(filter.since);
    }
    const sql = `SELECT * FROM packages ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id${
      filter.newestFirst ? ' DESC' : ''
    }${filter.limit ? ` LIMIT ${Math.floor(filter.limit)}` : ''}`;
    for (const r of this.db.prepare(sql).iterate<RawRow>(...params)) yield toRow(r);
  }

  countsByState(route: string): Partial<Record<PackageState, number>> {
    const rows = this.db
      .prepare('SELECT state, COUNT(*) AS n FROM packages WHERE route = ? GROUP BY state')
      .all(route) as {
      state: PackageState;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /**
   * How a cycle of a route ended. `ok`: it did its work; `error`: the route could not (failing
   * from this run on, unless it already was); `interrupted`: stopped by a person (Ctrl+C, SIGTERM):
   * neither a success nor a failure of the route.
   */
  recordRun(route: string, outcome: { at: number; ok: boolean; error?: string | null; interrupted?: boolean }): void {
    this.transaction(() => {
      if (outcome.interrupted) {
        this.db
          .prepare(
            `INSERT INTO route_runs (route, last_run_at) VALUES (?, ?)
             ON CONFLICT(route) DO UPDATE SET last_run_at = excluded.last_run_at`,
          )
          .run(route, outcome.at);
        return;
      }
      const error = outcome.error ?? null;
      this.db
        .prepare(
          `INSERT INTO route_runs (route, last_run_at, last_success_at, last_error, failing_since)
             VALUES (@route, @at, @success, @error, @failing)
           ON CONFLICT(route) DO UPDATE SET last_run_at = @at,
             last_success_at = COALESCE(@success, last_success_at),
             last_error = @error,
             failing_since = CASE WHEN @error IS NULL THEN NULL ELSE COALESCE(failing_since, @at) END`,
        )
        .run({
          route,
          at: outcome.at,
          success: outcome.ok ? outcome.at : null,
          error,
          failing: error === null ? null : outcome.at,
        });
    });
  }

  routeRun(route: string): RouteRun {
    const r = this.db
      .prepare('SELECT last_run_at, last_success_at, last_error, failing_since FROM route_runs WHERE route = ?')
      .get<{
        last_run_at: number | null;
        last_success_at: number | null;
        last_error: string | null;
        failing_since: number | null;
      }>(route);
    return {
      route,
      lastRunAt: r?.last_run_at ?? null,
      lastSuccessAt: r?.last_success_at ?? null,
      lastError: r?.last_error ?? null,
      failingSince: r?.failing_since ?? null,
    };
  }

  /** Who holds the route's lock row, if anyone (alive or not: the caller judges). */
  lockHolder(route: string): RouteLockRow | undefined {
    const r = this.db
      .prepare('SELECT route, pid, boot, acquired_at, renewed_at FROM route_locks WHERE route = ?')
      .get<{ route: string; pid: number; boot: number; acquired_at: number; renewed_at: number | null }>(route);
    return (
      r && {
        route: r.route,
        pid: r.pid,
        boot: r.boot,
        acquiredAt: r.acquired_at,
        renewedAt: r.renewed_at ?? r.acquired_at,
      }
    );
  }

  /** The holder says it is still at work. False when the row is no longer ours (taken over). */
  renewLock(route: string, me: LockHolder): boolean {
    return (
      this.db
        .prepare('UPDATE route_locks SET renewed_at = ? WHERE route = ? AND pid = ? AND boot = ?')
        .run(this.now(), route, me.pid, me.boot).changes === 1
    );
  }

  /**
   * A person saw these dead/quarantined/refused packages: they stop counting as problems (the
   * rows stay). Returns the rows acknowledged now; ids in other states are left alone.
   */
  acknowledge(ids: number[], event = 'ack', detail = 'acknowledged by a person'): PackageRow[] {
    return this.transaction(() => {
      const done: PackageRow[] = [];
      const marks = PERSON_STATES.map(() => '?').join(', ');
      const stmt = this.db.prepare(
        `UPDATE packages SET seen_at = ?, updated_at = ? WHERE id = ? AND seen_at IS NULL AND state IN (${marks})`,
      );
      for (const id of ids) {
        const t = this.now();
        if (stmt.run(t, t, id, ...PERSON_STATES).changes === 1) {
          this.addEvent(id, event, detail, t);
          done.push(this.get(id)!);
        }
      }
      return done;
    });
  }

  /**
   * What needs a person on one route: unacknowledged dead/quarantined/refused packages, and
   * queued/failed/waiting ones created before `olderThan`. Oldest first, at most `limit`.
   */
  problems(route: string, olderThan: number, limit = 1000): PackageRow[] {
    const person = PERSON_STATES.map(() => '?').join(', ');
    const pending = PENDING_STATES.map(() => '?').join(', ');
    return this.db
      .prepare(
        `SELECT * FROM packages WHERE route = ?
           AND ((state IN (${person}) AND seen_at IS NULL) OR (state IN (${pending}) AND created_at < ?))
         ORDER BY id LIMIT ?`,
      )
      .all<RawRow>(route, ...PERSON_STATES, ...PENDING_STATES, olderThan, Math.floor(limit))
      .map(toRow);
  }

  /** Counts behind `problems`, by state, without a limit. */
  problemCounts(route: string, olderThan: number): { state: PackageState; n: number; oldest: number }[] {
    const person = PERSON_STATES.map(() => '?').join(', ');
    const pending = PENDING_STATES.map(() => '?').join(', ');
    return this.db
      .prepare(
        `SELECT state, COUNT(*) AS n, MIN(CASE WHEN state IN (${pending}) THEN created_at ELSE updated_at END) AS oldest
           FROM packages WHERE route = ?
           AND ((state IN (${person}) AND seen_at IS NULL) OR (state IN (${pending}) AND created_at < ?))
         GROUP BY state`,
      )
      .all<{ state: PackageState; n: number; oldest: number }>(
        ...PENDING_STATES,
        route,
        ...PERSON_STATES,
        ...PENDING_STATES,
        olderThan,
      );
  }

  /** Oldest created_at among a route's rows in these states (how long work has been waiting). */
  oldestIn(route: string, states: readonly PackageState[]): number | null {
    const marks = states.map(() => '?').join(', ');
    const r = this.db
      .prepare(`SELECT MIN(created_at) AS t FROM packages WHERE route = ? AND state IN (${marks})`)
      .get<{ t: number | null }>(route, ...states);
    return r?.t ?? null;
  }

  /**
   * Takes the route for `me` unless a live holder has it. One transaction (BEGIN IMMEDIATE), so
   * two processes can never both take it; a holder that `isGone` (killed, rebooted) is replaced.
   */
  lockRoute(route: string, me: LockHolder, isGone: (h: RouteLockRow) => boolean): RouteLockRow | null {
    return this.transaction(() => {
      const h = this.lockHolder(route);
      if (h && !(h.pid === me.pid && h.boot === me.boot) && !isGone(h)) return h;
      const t = this.now();
      this.db
        .prepare(
          'INSERT OR REPLACE INTO route_locks (route, pid, boot, acquired_at, renewed_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(route, me.pid, me.boot, t, t);
      return null;
    });
  }

  unlockRoute(route: string, me: LockHolder): void {
    this.transaction(() => {
      this.db.prepare('DELETE FROM route_locks WHERE route = ? AND pid = ? AND boot = ?').run(route, me.pid, me.boot);
    });
  }

  /** Rows in a final state last touched before `before`; pending work is never purged. */
  purgeable(before: number): PackageRow[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM packages WHERE updated_at < ? AND pending_path IS NULL
             AND state IN ('sent', 'duplicate', 'delivered', 'quarantined') ORDER BY id`,
        )
        .all(before) as RawRow[]
    ).map(toRow);
  }

  delete(ids: number[]): void {
    this.transaction(() => {
      const stmt = this.db.prepare('DELETE FROM packages WHERE id = ?');
      for (const id of ids) stmt.run(id);
    });
  }
}
