// The ledger's schema, as numbered migrations.

// Numbered migrations: index i brings user_version from i to i+1. Never edit a shipped one.
export const MIGRATIONS: string[] = [
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
  // 4: hostile input (issue 10). A refused remote entry is found by its remote ref in one index
  // step (packages_key alone made every lookup scan all refusals of that name: a mail flood was
  // quadratic); the quarantine budget sums the kept files (few: at most quarantine.maxCount) and
  // status counts the rows whose bytes were dropped, each over a partial index.
  `CREATE INDEX packages_refused ON packages(route, remote_ref, name, size)
     WHERE sha256 IS NULL AND state = 'quarantined';
   CREATE INDEX packages_quarantine_kept ON packages(size)
     WHERE state = 'quarantined' AND stored_path IS NOT NULL;
   CREATE INDEX packages_quarantine_dropped ON packages(route, seen_at)
     WHERE state = 'quarantined' AND sha256 IS NOT NULL AND stored_path IS NULL;`,
  // 5: receipts and heartbeats (issue 12). A control file (receipt, heartbeat) is an ordinary
  // out-row of its kind; an office in-row knows its station and the receipt that answered it; a
  // station out-row knows when the office confirmed it. control_in records every control file
  // taken in (applied, ignored or refused); stations holds what the office last heard from each.
  `ALTER TABLE packages ADD COLUMN kind TEXT NOT NULL DEFAULT 'package'
     CHECK (kind IN ('package', 'receipt', 'heartbeat'));
   ALTER TABLE packages ADD COLUMN station TEXT;
   ALTER TABLE packages ADD COLUMN receipt_id INTEGER;
   ALTER TABLE packages ADD COLUMN confirmed_at INTEGER;
   CREATE INDEX packages_out_key ON packages(name, sha256) WHERE direction = 'out';
   CREATE INDEX packages_unreceipted ON packages(route, id)
     WHERE direction = 'in' AND state = 'delivered' AND station IS NOT NULL AND receipt_id IS NULL;
   CREATE INDEX packages_station ON packages(station, created_at) WHERE direction = 'in' AND station IS NOT NULL;
   CREATE TABLE control_in (
     id INTEGER PRIMARY KEY,
     route TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('receipt', 'heartbeat')),
     name TEXT NOT NULL,
     sha256 TEXT,
     from_station TEXT,
     v INTEGER,
     received_at INTEGER NOT NULL,
     outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'ignored', 'refused')),
     reason TEXT
   );
   CREATE INDEX control_in_received ON control_in(received_at);
   CREATE TABLE stations (
     name TEXT PRIMARY KEY,
     last_heartbeat_at INTEGER,
     heartbeat_json TEXT,
     last_package_at INTEGER
   );`,
  // 6: a duplicate at the office (a station sent again what the office already has, e.g. after a
  // crash before it recorded `sent`) is answered by a receipt too: the station's package would
  // otherwise stay unconfirmed. control_in is looked up by route and name (a control file met again).
  `DROP INDEX packages_unreceipted;
   CREATE INDEX packages_unreceipted ON packages(route, id)
     WHERE direction = 'in' AND state IN ('delivered', 'duplicate') AND station IS NOT NULL AND receipt_id IS NULL;
   CREATE INDEX control_in_key ON control_in(route, name);`,
];
