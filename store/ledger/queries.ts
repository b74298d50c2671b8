// The ledger's SQL, by name. Each text is prepared once per open ledger (Ledger caches statements
// by their text); a query over a list of states has one text per list length.
import { PENDING_STATES, PERSON_STATES, type ListFilter } from './rows.js';
import type { SqlValue } from '../sqlite.js';

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');
const person = marks(PERSON_STATES.length);
const pending = marks(PENDING_STATES.length);

export const SQL = {
  insertPackage: `INSERT INTO packages (route, direction, name, size, sha256, state, last_error, remote_ref, stored_path,
       pending_path, acked_at, duplicate_of, origin, kind, station, created_at, updated_at)
     VALUES (@route, @direction, @name, @size, @sha256, @state, @lastError, @remoteRef, @storedPath,
       @pendingPath, @ackedAt, @duplicateOf, @origin, @kind, @station, @t, @t)`,
  insertEvent: 'INSERT INTO events (package_id, at, event, detail) VALUES (?, ?, ?, ?)',
  getPackage: 'SELECT * FROM packages WHERE id = ?',
  events: 'SELECT at, event, detail FROM events WHERE package_id = ? ORDER BY id',
  findOriginal: (states: number) =>
    `SELECT * FROM packages WHERE route = ? AND name = ? AND sha256 = ? AND state IN (${marks(states)})
       AND station IS ? ORDER BY id LIMIT 1`,
  /**
   * A package refused without its bytes (sha256 NULL), known by its remote entry: one step in the
   * partial index packages_refused (its WHERE terms are repeated here word for word, which is
   * what lets SQLite use it).
   */
  findRefusedInPlace: `SELECT * FROM packages WHERE route = ? AND remote_ref = ? AND name = ? AND size = ?
       AND sha256 IS NULL AND state = 'quarantined' AND station IS ? ORDER BY id LIMIT 1`,
  /** Files kept in dataDir/quarantine, over the partial index packages_quarantine_kept. */
  quarantineKept: `SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM packages
       WHERE state = 'quarantined' AND stored_path IS NOT NULL`,
  /** Quarantined packages whose bytes were dropped (budget), nobody acknowledged yet. */
  quarantineDropped: `SELECT COUNT(*) AS n FROM packages WHERE route = ? AND seen_at IS NULL
       AND state = 'quarantined' AND sha256 IS NOT NULL AND stored_path IS NULL`,
  inState: (states: number) => `SELECT * FROM packages WHERE route = ? AND state IN (${marks(states)}) ORDER BY id`,
  due: `SELECT * FROM packages WHERE route = ? AND direction = 'out'
       AND (state = 'queued' OR (state = 'failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)))
     ORDER BY id`,
  pendingInbound: `SELECT * FROM packages WHERE route = ? AND pending_path IS NOT NULL AND (? IS NULL OR station = ?)
     ORDER BY id`,
  /** The newest control row of a kind on a route (heartbeats: is the next one due). */
  lastControlAt: 'SELECT MAX(created_at) AS t FROM packages WHERE route = ? AND kind = ?',
  /** Packages only: receipts and heartbeats are counted apart (controlCounts). */
  countsByState: `SELECT state, COUNT(*) AS n FROM packages WHERE route = ? AND kind = 'package' GROUP BY state`,
  controlCounts: `SELECT kind, state, COUNT(*) AS n FROM packages WHERE route = ? AND kind <> 'package'
     GROUP BY kind, state`,
  recordInterruptedRun: `INSERT INTO route_runs (route, last_run_at) VALUES (?, ?)
     ON CONFLICT(route) DO UPDATE SET last_run_at = excluded.last_run_at`,
  recordRun: `INSERT INTO route_runs (route, last_run_at, last_success_at, last_error, failing_since)
       VALUES (@route, @at, @success, @error, @failing)
     ON CONFLICT(route) DO UPDATE SET last_run_at = @at,
       last_success_at = COALESCE(@success, last_success_at),
       last_error = @error,
       failing_since = CASE WHEN @error IS NULL THEN NULL ELSE COALESCE(failing_since, @at) END`,
  routeRun: 'SELECT last_run_at, last_success_at, last_error, failing_since FROM route_runs WHERE route = ?',
  lockHolder: 'SELECT route, pid, boot, acquired_at, renewed_at FROM route_locks WHERE route = ?',
  renewLock: 'UPDATE route_locks SET renewed_at = ? WHERE route = ? AND pid = ? AND boot = ?',
  lockRoute: 'INSERT OR REPLACE INTO route_locks (route, pid, boot, acquired_at, renewed_at) VALUES (?, ?, ?, ?, ?)',
  unlockRoute: 'DELETE FROM route_locks WHERE route = ? AND pid = ? AND boot = ?',
  acknowledge: `UPDATE packages SET seen_at = ?, updated_at = ? WHERE id = ? AND seen_at IS NULL AND state IN (${person})`,
  problems: `SELECT * FROM packages WHERE route = ?
       AND ((state IN (${person}) AND seen_at IS NULL) OR (state IN (${pending}) AND created_at < ?))
     ORDER BY id LIMIT ?`,
  /** The unacknowledged packages of one person state (ids a verdict names), oldest first. */
  unseenIds: 'SELECT id FROM packages WHERE route = ? AND state = ? AND seen_at IS NULL ORDER BY id LIMIT ?',
  problemCounts: `SELECT state, COUNT(*) AS n, MIN(CASE WHEN state IN (${pending}) THEN created_at ELSE updated_at END) AS oldest
       FROM packages WHERE route = ?
       AND ((state IN (${person}) AND seen_at IS NULL) OR (state IN (${pending}) AND created_at < ?))
     GROUP BY state`,
  oldestIn: (states: number) =>
    `SELECT MIN(created_at) AS t FROM packages WHERE route = ? AND state IN (${marks(states)})`,
  /** Final rows; an office delivery still owed its receipt is kept until the receipt is made. */
  purgeable: `SELECT * FROM packages WHERE updated_at < ? AND pending_path IS NULL
       AND state IN ('sent', 'confirmed', 'duplicate', 'delivered', 'quarantined')
       AND NOT (? AND direction = 'in' AND state IN ('delivered', 'duplicate') AND station IS NOT NULL AND receipt_id IS NULL)
     ORDER BY id`,
  deletePackage: 'DELETE FROM packages WHERE id = ?',
  // ---- receipts and heartbeats (issue 12) ----
  /** The sent or confirmed out-packages a receipt item names (over packages_out_key). */
  outByKey: `SELECT id, state FROM packages WHERE name = ? AND sha256 = ? AND direction = 'out'
       AND kind = 'package' AND state IN ('sent', 'confirmed') ORDER BY id`,
  confirmOut: `UPDATE packages SET state = 'confirmed', confirmed_at = ?, updated_at = ?
     WHERE id = ? AND state = 'sent'`,
  recordControl: `INSERT INTO control_in (route, kind, name, sha256, from_station, v, received_at, outcome, reason)
     VALUES (@route, @kind, @name, @sha256, @fromStation, @v, @receivedAt, @outcome, @reason)`,
  controlIn: 'SELECT * FROM control_in WHERE route = ? ORDER BY id',
  upsertHeartbeat: `INSERT INTO stations (name, last_heartbeat_at, heartbeat_json) VALUES (?, ?, ?)
     ON CONFLICT(name) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at,
       heartbeat_json = excluded.heartbeat_json
     WHERE stations.last_heartbeat_at IS NULL OR excluded.last_heartbeat_at >= stations.last_heartbeat_at`,
  /** Office deliveries owed a receipt (over the partial index packages_unreceipted, terms word for word). */
  unreceipted: `SELECT * FROM packages WHERE route = ? AND direction = 'in' AND state IN ('delivered', 'duplicate')
       AND station IS NOT NULL AND receipt_id IS NULL AND pending_path IS NULL AND kind = 'package'
     ORDER BY id LIMIT ?`,
  markReceipted: `UPDATE packages SET receipt_id = ?, updated_at = ? WHERE id = ? AND direction = 'in'
       AND state IN ('delivered', 'duplicate') AND station IS NOT NULL AND receipt_id IS NULL`,
  purgeControl: 'DELETE FROM control_in WHERE received_at < ?',
  /** A control file of this name and bytes (NULL: refused without its bytes) already taken in on the route. */
  controlSeen: `SELECT outcome, reason FROM control_in WHERE route = ? AND name = ? AND sha256 IS ? ORDER BY id DESC LIMIT 1`,
  notePackage: `INSERT INTO stations (name, last_package_at) VALUES (?, ?)
     ON CONFLICT(name) DO UPDATE SET last_package_at = MAX(COALESCE(last_package_at, 0), excluded.last_package_at)`,
  deliveries: `SELECT route, name, created_at AS deliveredAt FROM packages
     WHERE station = ? AND created_at >= ? AND direction = 'in' AND station IS NOT NULL
       AND kind = 'package' AND state = 'delivered' AND pending_path IS NULL
     ORDER BY created_at, id`,
  stations: `SELECT s.name AS station, st.last_heartbeat_at, st.heartbeat_json, st.last_package_at
     FROM (SELECT name FROM stations
           UNION SELECT DISTINCT station FROM packages WHERE direction = 'in' AND station IS NOT NULL) s
     LEFT JOIN stations st ON st.name = s.name ORDER BY s.name`,
  lastDelivery: `SELECT MAX(created_at) AS t FROM packages WHERE station = ? AND direction = 'in'
       AND station IS NOT NULL AND kind = 'package' AND state = 'delivered' AND pending_path IS NULL`,
  /** Out-packages sent before ? that no receipt confirmed yet (confirmWithin). */
  unconfirmedCount: `SELECT COUNT(*) AS n, MIN(updated_at) AS oldest FROM packages WHERE route = ?
       AND direction = 'out' AND kind = 'package' AND state = 'sent' AND updated_at < ?`,
  unconfirmed: `SELECT * FROM packages WHERE route = ? AND direction = 'out' AND kind = 'package'
       AND state = 'sent' AND updated_at < ? ORDER BY id LIMIT ?`,
} as const;

/** `list`'s query for a filter, with its parameters. */
export function listQuery(filter: ListFilter): { sql: string; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (filter.states?.length) {
    where.push(`state IN (${marks(filter.states.length)})`);
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
  return { sql, params };
}
