// The ledger's side of receipts and heartbeats (issue 12): a station's out-rows confirmed by the
// office's receipt, the office's deliveries owed a receipt, the control files taken in, and what
// the office last heard from each station. Each method is one statement or one transaction; the
// Ledger hands in its statement cache, transaction and clock (store/ledger.ts delegates here).
import type { SqlStatement } from '../sqlite.js';
import { SQL } from './queries.js';
import {
  toRow,
  type ConfirmOutcome,
  type ControlInRow,
  type PackageKind,
  type PackageRow,
  type PackageState,
  type RawRow,
  type StationDelivery,
  type StationRow,
} from './rows.js';

/** A heartbeat stored for the fleet view is at most this many characters of JSON. */
export const HEARTBEAT_JSON_MAX = 64 * 1024;

export interface LedgerCore {
  sql(text: string): SqlStatement;
  transaction<T>(fn: () => T): T;
  now(): number;
  addEvent(id: number, event: 'confirmed', detail: string | null, at: number): void;
}

export class ControlStore {
  constructor(private readonly core: LedgerCore) {}

  /**
   * A receipt's items against this station's out-packages, in one transaction: a `sent` package
   * of that name and SHA-256 becomes `confirmed` (confirmed_at = at); one already confirmed is
   * 'already'; no sent/confirmed package of that name and hash (unknown name, wrong hash, not sent
   * yet) is 'unknown' and changes nothing. The same receipt twice changes nothing the second time.
   */
  confirmOut(items: readonly { name: string; sha256: string }[], at: number): ConfirmOutcome[] {
    const { sql, transaction, now, addEvent } = this.core;
    return transaction(() =>
      items.map((item) => {
        const rows = sql(SQL.outByKey).all<{ id: number; state: PackageState }>(item.name, item.sha256);
        const sent = rows.filter((r) => r.state === 'sent');
        if (!sent.length) return rows.length ? 'already' : 'unknown';
        const t = now();
        for (const r of sent) {
          if (sql(SQL.confirmOut).run(at, t, r.id).changes === 1)
            addEvent(r.id, 'confirmed', 'receipt from the office', t);
        }
        return 'confirmed';
      }),
    );
  }

  /** One control file taken in, and what became of it. */
  recordControl(row: ControlInRow): number {
    const info = this.core.sql(SQL.recordControl).run({ ...row });
    return Number(info.lastInsertRowid);
  }

  /** What became of a control file of this name and bytes (null: taken in without its bytes) met before, or undefined. */
  controlSeen(
    route: string,
    name: string,
    sha256: string | null,
  ): { outcome: ControlInRow['outcome']; reason: string | null } | undefined {
    return this.core
      .sql(SQL.controlSeen)
      .get<{ outcome: ControlInRow['outcome']; reason: string | null }>(route, name, sha256);
  }

  /** Forgets the control files taken in before `before` (purge); returns how many records went. */
  purgeControl(before: number): number {
    return this.core.sql(SQL.purgeControl).run(before).changes;
  }

  /** The control files a route took in, oldest first (tests, `show`). */
  controlIn(route: string): ControlInRow[] {
    return this.core
      .sql(SQL.controlIn)
      .all<{
        route: string;
        kind: ControlInRow['kind'];
        name: string;
        sha256: string | null;
        from_station: string | null;
        v: number | null;
        received_at: number;
        outcome: ControlInRow['outcome'];
        reason: string | null;
      }>(route)
      .map((r) => ({
        route: r.route,
        kind: r.kind,
        name: r.name,
        sha256: r.sha256,
        fromStation: r.from_station,
        v: r.v,
        receivedAt: r.received_at,
        outcome: r.outcome,
        reason: r.reason,
      }));
  }

  /** A station's heartbeat (decoded, as JSON): kept unless an equal or newer one is already there. */
  upsertHeartbeat(station: string, at: number, json: string): void {
    if (json.length > HEARTBEAT_JSON_MAX)
      throw new RangeError(`ledger: a heartbeat of ${json.length} characters is over ${HEARTBEAT_JSON_MAX}`);
    this.core.sql(SQL.upsertHeartbeat).run(station, at, json);
  }

  /** Office deliveries of an in-route that came with a station and have no receipt yet, oldest first. */
  unreceipted(route: string, limit = 1000): PackageRow[] {
    return this.core.sql(SQL.unreceipted).all<RawRow>(route, Math.floor(limit)).map(toRow);
  }

  /**
   * These deliveries are answered by the receipt out-row `receiptId`, and their stations' last
   * package time moves on; one transaction (the caller's, when it inserts the receipt row in the
   * same one). Returns how many rows were marked: a row already receipted is left alone.
   */
  markReceipted(ids: readonly number[], receiptId: number): number {
    const { sql, transaction, now } = this.core;
    return transaction(() => {
      const t = now();
      let n = 0;
      for (const id of ids) {
        if (sql(SQL.markReceipted).run(receiptId, t, id).changes !== 1) continue;
        n++;
        const row = sql(SQL.getPackage).get<RawRow>(id)!;
        sql(SQL.notePackage).run(row.station, row.created_at);
      }
      return n;
    });
  }

  /** Packages delivered at the office from `station` since `sinceMs`, oldest first (fleet chart). */
  deliveries(station: string, sinceMs: number): StationDelivery[] {
    return this.core.sql(SQL.deliveries).all<StationDelivery>(station, sinceMs);
  }

  /**
   * Every station the office knows (a heartbeat or a delivery), by name: its last heartbeat and
   * its newest delivery (the stations table's, or the newest delivered row's when later).
   */
  stations(): StationRow[] {
    const { sql } = this.core;
    return sql(SQL.stations)
      .all<{
        station: string;
        last_heartbeat_at: number | null;
        heartbeat_json: string | null;
        last_package_at: number | null;
      }>()
      .map((r) => {
        const last = sql(SQL.lastDelivery).get<{ t: number | null }>(r.station)?.t ?? null;
        const kept = r.last_package_at;
        return {
          station: r.station,
          lastHeartbeatAt: r.last_heartbeat_at,
          heartbeatJson: r.heartbeat_json,
          lastPackageAt: kept === null ? last : last === null ? kept : Math.max(kept, last),
        };
      });
  }

  /** A route's receipts and heartbeats by kind and state (status shows packages apart from these). */
  controlCounts(
    route: string,
  ): Partial<Record<Exclude<PackageKind, 'package'>, Partial<Record<PackageState, number>>>> {
    const out: Partial<Record<Exclude<PackageKind, 'package'>, Partial<Record<PackageState, number>>>> = {};
    const rows = this.core
      .sql(SQL.controlCounts)
      .all<{ kind: Exclude<PackageKind, 'package'>; state: PackageState; n: number }>(route);
    for (const r of rows) (out[r.kind] ??= {})[r.state] = r.n;
    return out;
  }

  /** A route's sent packages older than `sentBefore` that no receipt confirmed yet: count and oldest. */
  unconfirmedCount(route: string, sentBefore: number): { n: number; oldest: number | null } {
    const r = this.core.sql(SQL.unconfirmedCount).get<{ n: number; oldest: number | null }>(route, sentBefore);
    return { n: r?.n ?? 0, oldest: r?.oldest ?? null };
  }

  /** Those packages, oldest first, at most `limit`. */
  unconfirmed(route: string, sentBefore: number, limit: number): PackageRow[] {
    return this.core.sql(SQL.unconfirmed).all<RawRow>(route, sentBefore, Math.floor(limit)).map(toRow);
  }
}
