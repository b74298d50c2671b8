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
];
