// The ledger: one SQLite file that says, for every package of every route, where it is and what
// happened to it. It is the agent's memory across crashes, so it is WAL with synchronous=FULL
// (better-sqlite3 defaults WAL to NORMAL, where a commit can roll back on power loss) and every
// state change is one transaction together with its event row. It speaks plain SQL through the
// driver seam (store/sqlite.ts): better-sqlite3, or node:sqlite where that binary is absent.
// Rows and their mapping, migrations, the SQL texts and the legal moves live in store/ledger/.
import { dirname } from 'node:path';
import { ensurePrivateDir, ensurePrivateFile } from './durable.js';
import {
  openSqlite,
  retryBusy,
  type LedgerDriverName,
  type SqlDatabase,
  type SqlStatement,
  type SqlValue,
} from './sqlite.js';
import { ControlStore } from './ledger/control.js';
import { MIGRATIONS } from './ledger/migrations.js';
import { IllegalTransitionError, isLegalMove, type LedgerEvent } from './ledger/moves.js';
import { listQuery, SQL } from './ledger/queries.js';
import {
  COLUMNS,
  PENDING_STATES,
  PERSON_STATES,
  toRow,
  type ListFilter,
  type LockHolder,
  type NewPackage,
  type PackageEvent,
  type PackagePatch,
  type PackageRow,
  type PackageState,
  type RawRow,
  type ConfirmOutcome,
  type ControlInRow,
  type StationDelivery,
  type StationRow,
  type RouteLockRow,
  type RouteRun,
  type PackageKind,
} from './ledger/rows.js';

export {
  PACKAGE_KINDS,
  PACKAGE_STATES,
  PENDING_STATES,
  type ConfirmOutcome,
  type ControlInRow,
  type PackageKind,
  type StationDelivery,
  type StationRow,
  PERSON_STATES,
  type Direction,
  type ListFilter,
  type LockHolder,
  type NewPackage,
  type PackageEvent,
  type PackagePatch,
  type PackageRow,
  type PackageState,
  type RouteLockRow,
  type RouteRun,
} from './ledger/rows.js';
export { HEARTBEAT_JSON_MAX } from './ledger/control.js';
export { IllegalTransitionError, LEDGER_EVENTS, LEGAL_MOVES, isLegalMove, type LedgerEvent } from './ledger/moves.js';

export class Ledger {
  private readonly db: SqlDatabase;
  private readonly now: () => number;
  /** Open transactions: 0 outside, 1 in BEGIN IMMEDIATE, more in nested SAVEPOINTs. */
  private depth = 0;
  /** Every statement is prepared once, by its SQL text. */
  private readonly statements = new Map<string, SqlStatement>();
  /** Receipts, heartbeats and stations (store/ledger/control.ts). */
  private readonly control: ControlStore;

  private constructor(db: SqlDatabase, now: () => number) {
    this.db = db;
    this.now = now;
    this.control = new ControlStore({
      sql: (text) => this.sql(text),
      transaction: (fn) => this.transaction(fn),
      now: () => this.now(),
      addEvent: (id, event, detail, at) => this.addEvent(id, event, detail, at),
    });
  }

  static open(path: string, opts: { now?: () => number } = {}): Ledger {
    if (path !== ':memory:') {
      ensurePrivateDir(dirname(path));
      // created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database's mode
      ensurePrivateFile(path);
    }
    const busyTimeoutMs = 10_000;
    const db = openSqlite(path, { busyTimeoutMs });
    try {
      // A new file's switch to WAL takes its exclusive lock, and SQLite answers "database is locked"
      // at once, without waiting out busy_timeout, when several processes switch it together (a
      // scheduled `once` and a person's `status` on a station's first run; seen with node:sqlite).
      retryBusy(() => db.exec('PRAGMA journal_mode = WAL'), busyTimeoutMs);
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

  private sql(text: string): SqlStatement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  private pragma(name: string): SqlValue {
    const row = this.sql(`PRAGMA ${name}`).get<Record<string, SqlValue>>();
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
        // read again under the write lock: another process opening the same new file may have
        // migrated it between our first read and BEGIN IMMEDIATE
        if (Number(this.pragma('user_version')) > v) return;
        this.db.exec(MIGRATIONS[v]!);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }

  get schemaVersion(): number {
    return Number(this.pragma('user_version'));
  }

  close(): void {
    this.statements.clear();
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

  insert(pkg: NewPackage, event: LedgerEvent, detail?: string): PackageRow {
    return this.transaction(() => {
      const t = this.now();
      const info = this.sql(SQL.insertPackage).run({
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
        kind: pkg.kind ?? 'package',
        station: pkg.station ?? null,
        t,
      });
      const id = Number(info.lastInsertRowid);
      this.addEvent(id, event, detail ?? null, t);
      return this.get(id)!;
    });
  }

  /** Patches a package's row; a change of state goes through `transition`. */
  update(id: number, patch: Omit<PackagePatch, 'state'>, event?: LedgerEvent, detail?: string): PackageRow {
    if ((patch as PackagePatch).state !== undefined)
      throw new Error('ledger: a change of state goes through transition');
    return this.transaction(() => this.write(id, patch, event, detail));
  }

  /**
   * Moves a package from one of the states `from` to `to`, with `patch` and an event, in one
   * transaction. Refused (IllegalTransitionError, nothing written) when the package is in none of
   * `from`, or when the move is not in its direction's table (store/ledger/moves.ts).
   */
  transition(
    id: number,
    from: readonly PackageState[],
    to: PackageState,
    patch: Omit<PackagePatch, 'state'>,
    event: LedgerEvent,
    detail?: string,
  ): PackageRow {
    return this.transaction(() => {
      const row = this.get(id);
      if (!row) throw new Error(`ledger: no package with id ${id}`);
      if (!from.includes(row.state))
        throw new IllegalTransitionError(id, row.state, to, `it is ${row.state}, not ${from.join(' or ')}`);
      if (!isLegalMove(row.direction, row.state, to))
        throw new IllegalTransitionError(id, row.state, to, `not a move an ${row.direction}bound package makes`);
      return this.write(id, { ...patch, state: to }, event, detail);
    });
  }

  /** The row's UPDATE and its event; the caller holds the transaction. */
  private write(id: number, patch: PackagePatch, event?: LedgerEvent, detail?: string): PackageRow {
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
    const info = this.sql(`UPDATE packages SET ${sets.join(', ')} WHERE id = @id`).run(params);
    if (info.changes !== 1) throw new Error(`ledger: no package with id ${id}`);
    if (event) this.addEvent(id, event, detail ?? null, t);
    return this.get(id)!;
  }

  private addEvent(id: number, event: LedgerEvent, detail: string | null, at: number): void {
    this.sql(SQL.insertEvent).run(id, at, event, detail);
  }

  get(id: number): PackageRow | undefined {
    const r = this.sql(SQL.getPackage).get<RawRow>(id);
    return r && toRow(r);
  }

  events(id: number): PackageEvent[] {
    return this.sql(SQL.events).all<PackageEvent>(id);
  }

  /**
   * The package this name+bytes already is on this route, if any: the first row that is not
   * itself a duplicate record, so dedup always points at the original.
   */
  findOriginal(
    route: string,
    name: string,
    sha256: string,
    states: PackageState[],
    /** Office in-routes with a folder per station: that station's rows only (null: rows without one). */
    station: string | null = null,
  ): PackageRow | undefined {
    const r = this.sql(SQL.findOriginal(states.length)).get<RawRow>(route, name, sha256, ...states, station);
    return r && toRow(r);
  }

  /**
   * The record of a remote entry refused without taking its bytes (sha256 NULL, `quarantined`):
   * same name, remote ref and size. The first such row.
   */
  findRefusedInPlace(
    route: string,
    entry: { name: string; ref: string; size: number },
    station: string | null = null,
  ): PackageRow | undefined {
    const r = this.sql(SQL.findRefusedInPlace).get<RawRow>(route, entry.ref, entry.name, entry.size, station);
    return r && toRow(r);
  }

  /**
   * What dataDir/quarantine holds by the ledger's account (every route): the files of quarantined
   * packages that were kept. The quarantine budget is checked against this.
   */
  quarantineKept(): { count: number; bytes: number } {
    const r = this.sql(SQL.quarantineKept).get<{ n: number; bytes: number }>();
    return { count: r?.n ?? 0, bytes: r?.bytes ?? 0 };
  }

  /** Quarantined packages of a route whose bytes were not kept (over the budget), not yet acknowledged. */
  quarantineDropped(route: string): number {
    return this.sql(SQL.quarantineDropped).get<{ n: number }>(route)?.n ?? 0;
  }

  /** Rows of one route in the given states (small sets: pending work, waiting, quarantine marks). */
  inState(route: string, states: PackageState[]): PackageRow[] {
    return this.sql(SQL.inState(states.length))
      .all<RawRow>(route, ...states)
      .map(toRow);
  }

  /** Outbound packages of a route that are due to be sent now, oldest first. */
  due(route: string, now: number): PackageRow[] {
    return this.sql(SQL.due).all<RawRow>(route, now).map(toRow);
  }

  /** Inbound rows whose inbox rename may not have happened (crash between ledger and rename). */
  pendingInbound(
    route: string,
    /** One station's rows only (an office route with a folder per station); absent: every row. */
    station?: string,
  ): PackageRow[] {
    return this.sql(SQL.pendingInbound)
      .all<RawRow>(route, station ?? null, station ?? null)
      .map(toRow);
  }

  /** When the newest receipt/heartbeat row of a route was made (ms), or null when there is none. */
  lastControlAt(route: string, kind: Exclude<PackageKind, 'package'>): number | null {
    return this.sql(SQL.lastControlAt).get<{ t: number | null }>(route, kind)?.t ?? null;
  }

  list(filter: ListFilter = {}): PackageRow[] {
    return [...this.iterate(filter)];
  }

  /**
   * The rows of `list`, one at a time (`list --json --all` over a million rows). Its statement is
   * prepared per call: a streaming read holds it until the caller is done, and a cached one would
   * be reset under it by the next listing with the same filter.
   */
  *iterate(filter: ListFilter = {}): IterableIterator<PackageRow> {
    const { sql, params } = listQuery(filter);
    for (const r of this.db.prepare(sql).iterate<RawRow>(...params)) yield toRow(r);
  }

  countsByState(route: string): Partial<Record<PackageState, number>> {
    const rows = this.sql(SQL.countsByState).all<{ state: PackageState; n: number }>(route);
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
        this.sql(SQL.recordInterruptedRun).run(route, outcome.at);
        return;
      }
      const error = outcome.error ?? null;
      this.sql(SQL.recordRun).run({
        route,
        at: outcome.at,
        success: outcome.ok ? outcome.at : null,
        error,
        failing: error === null ? null : outcome.at,
      });
    });
  }

  routeRun(route: string): RouteRun {
    const r = this.sql(SQL.routeRun).get<{
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
    const r = this.sql(SQL.lockHolder).get<{
      route: string;
      pid: number;
      boot: number;
      acquired_at: number;
      renewed_at: number | null;
    }>(route);
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
    return this.sql(SQL.renewLock).run(this.now(), route, me.pid, me.boot).changes === 1;
  }

  /**
   * A person saw these dead/quarantined/refused packages: they stop counting as problems (the
   * rows stay). Returns the rows acknowledged now; ids in other states are left alone.
   */
  acknowledge(ids: number[], event: LedgerEvent = 'ack', detail = 'acknowledged by a person'): PackageRow[] {
    return this.transaction(() => {
      const done: PackageRow[] = [];
      const stmt = this.sql(SQL.acknowledge);
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
    return this.sql(SQL.problems)
      .all<RawRow>(route, ...PERSON_STATES, ...PENDING_STATES, olderThan, Math.floor(limit))
      .map(toRow);
  }

  /** Ids of a route's unacknowledged packages in one person state (dead, quarantined, refused), oldest first. */
  unseenIds(route: string, state: PackageState, limit: number): number[] {
    return this.sql(SQL.unseenIds)
      .all<{ id: number }>(route, state, Math.floor(limit))
      .map((r) => r.id);
  }

  /** Counts behind `problems`, by state, without a limit. */
  problemCounts(route: string, olderThan: number): { state: PackageState; n: number; oldest: number }[] {
    return this.sql(SQL.problemCounts).all<{ state: PackageState; n: number; oldest: number }>(
      ...PENDING_STATES,
      route,
      ...PERSON_STATES,
      ...PENDING_STATES,
      olderThan,
    );
  }

  /** Oldest created_at among a route's rows in these states (how long work has been waiting). */
  oldestIn(route: string, states: readonly PackageState[]): number | null {
    const r = this.sql(SQL.oldestIn(states.length)).get<{ t: number | null }>(route, ...states);
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
      this.sql(SQL.lockRoute).run(route, me.pid, me.boot, t, t);
      return null;
    });
  }

  unlockRoute(route: string, me: LockHolder): void {
    this.transaction(() => {
      this.sql(SQL.unlockRoute).run(route, me.pid, me.boot);
    });
  }

  /** Rows in a final state last touched before `before`; pending work is never purged. */
  purgeable(
    before: number,
    /** This agent answers deliveries with receipts (config `receipts`): one still owed one is kept. */
    owesReceipts = true,
  ): PackageRow[] {
    return this.sql(SQL.purgeable)
      .all<RawRow>(before, owesReceipts ? 1 : 0)
      .map(toRow);
  }

  delete(ids: number[]): void {
    this.transaction(() => {
      const stmt = this.sql(SQL.deletePackage);
      for (const id of ids) stmt.run(id);
    });
  }

  // ---- receipts, heartbeats, stations (issue 12): store/ledger/control.ts says what each does ----
  confirmOut(items: readonly { name: string; sha256: string }[], at: number): ConfirmOutcome[] {
    return this.control.confirmOut(items, at);
  }
  recordControl(row: ControlInRow): number {
    return this.control.recordControl(row);
  }
  controlSeen(route: string, name: string, sha256: string | null): ReturnType<ControlStore['controlSeen']> {
    return this.control.controlSeen(route, name, sha256);
  }
  purgeControl(before: number): number {
    return this.control.purgeControl(before);
  }
  controlIn(route: string): ControlInRow[] {
    return this.control.controlIn(route);
  }
  upsertHeartbeat(station: string, at: number, json: string): void {
    this.control.upsertHeartbeat(station, at, json);
  }
  unreceipted(route: string, limit?: number): PackageRow[] {
    return this.control.unreceipted(route, limit);
  }
  markReceipted(ids: readonly number[], receiptId: number): number {
    return this.control.markReceipted(ids, receiptId);
  }
  deliveries(station: string, sinceMs: number): StationDelivery[] {
    return this.control.deliveries(station, sinceMs);
  }
  stations(): StationRow[] {
    return this.control.stations();
  }
  controlCounts(route: string): ReturnType<ControlStore['controlCounts']> {
    return this.control.controlCounts(route);
  }
  unconfirmedCount(route: string, sentBefore: number): { n: number; oldest: number | null } {
    return this.control.unconfirmedCount(route, sentBefore);
  }
  unconfirmed(route: string, sentBefore: number, limit: number): PackageRow[] {
    return this.control.unconfirmed(route, sentBefore, limit);
  }
}
