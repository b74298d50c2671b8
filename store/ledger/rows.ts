// The ledger's rows as the agent sees them (PackageRow, its states, filters, patches) and their
// mapping from SQLite's snake_case columns.

export type Direction = 'in' | 'out';
export type PackageState =
  // out
  | 'queued'
  | 'sent'
  | 'failed'
  | 'dead'
  /** Sent, and the office's receipt says it got there (name and SHA-256). */
  | 'confirmed'
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
  'confirmed',
  'refused',
  'duplicate',
  'delivered',
  'waiting',
  'quarantined',
];

/** What a row carries: a package, or a control file the agent writes (agent/control/). */
export type PackageKind = 'package' | 'receipt' | 'heartbeat';
export const PACKAGE_KINDS: readonly PackageKind[] = ['package', 'receipt', 'heartbeat'];

export interface PackageRow {
  id: number;
  kind: PackageKind;
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
  /** Office in-rows: the station it came from; control out-rows: the station it goes to. */
  station: string | null;
  /** Office in-rows: the receipt out-row that answers it (null: no receipt made yet). */
  receiptId: number | null;
  /** Station out-rows: when the office's receipt confirmed it. */
  confirmedAt: number | null;
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

export type NewPackage = Pick<PackageRow, 'route' | 'direction' | 'name' | 'size' | 'state'> &
  Partial<
    Pick<
      PackageRow,
      | 'sha256'
      | 'lastError'
      | 'remoteRef'
      | 'storedPath'
      | 'pendingPath'
      | 'duplicateOf'
      | 'origin'
      | 'ackedAt'
      | 'kind'
      | 'station'
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

export interface LockHolder {
  pid: number;
  /** When the holder's machine booted (ms): a pid from before a reboot is nobody. */
  boot: number;
}

export const COLUMNS: Record<keyof PackagePatch, string> = {
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

export interface RawRow {
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
  kind: PackageKind | null;
  station: string | null;
  receipt_id: number | null;
  confirmed_at: number | null;
  created_at: number;
  updated_at: number;
}

export function toRow(r: RawRow): PackageRow {
  return {
    id: r.id,
    kind: r.kind ?? 'package',
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
    station: r.station ?? null,
    receiptId: r.receipt_id ?? null,
    confirmedAt: r.confirmed_at ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** A control file taken in by an in-route, and what became of it (table control_in). */
export interface ControlInRow {
  route: string;
  kind: 'receipt' | 'heartbeat';
  name: string;
  sha256: string | null;
  fromStation: string | null;
  /** The control format's version the file said (null: unreadable). */
  v: number | null;
  receivedAt: number;
  outcome: 'applied' | 'ignored' | 'refused';
  reason: string | null;
}

/** What the office knows of one station (table stations, plus its delivered in-rows). */
export interface StationRow {
  station: string;
  lastHeartbeatAt: number | null;
  /** The last heartbeat, decoded and stored as JSON by the caller (at most HEARTBEAT_JSON_MAX chars). */
  heartbeatJson: string | null;
  /** The newest delivery from it the office recorded (kept after its rows are purged). */
  lastPackageAt: number | null;
}

/** A package delivered at the office from a station (the fleet view's per-day chart). */
export interface StationDelivery {
  route: string;
  name: string;
  deliveredAt: number;
}

/** A receipt item's match against the out-rows: confirmed now, confirmed before, or nothing sent. */
export type ConfirmOutcome = 'confirmed' | 'already' | 'unknown';
