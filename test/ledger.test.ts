// The ledger's durability settings and migrations: what a crash or power cut relies on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { IllegalTransitionError, isLegalMove, Ledger, LEGAL_MOVES, type PackageState } from '../store/ledger.js';
import { isBusy, ledgerDriverInfo, openSqlite, retryBusy, type SqlDatabase } from '../store/sqlite.js';
import { MIGRATIONS } from '../store/ledger/migrations.js';
import { SQL } from '../store/ledger/queries.js';

/** Opens the ledger file directly (as a second connection) with the process's driver. */
function pragma(db: SqlDatabase, name: string): unknown {
  return Object.values(db.prepare(`PRAGMA ${name}`).get() ?? {})[0];
}

/** Whether this process still has `file` open (a leaked handle keeps the file locked on Windows). */
function holdsOpen(file: string): boolean {
  if (process.platform === 'linux') {
    return readdirSync('/proc/self/fd').some((fd) => {
      try {
        return readlinkSync(join('/proc/self/fd', fd)) === file;
      } catch {
        return false;
      }
    });
  }
  // Windows (and Wine): an open SQLite handle refuses the rename with EBUSY/EPERM
  try {
    renameSync(file, file + '.moved');
    renameSync(file + '.moved', file);
    return false;
  } catch {
    return true;
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempLedgerPath(): string {
  const d = mkdtempSync(join(tmpdir(), 'sprelay-ledger-'));
  dirs.push(d);
  return join(d, 'data', 'ledger.sqlite');
}

describe('ledger', () => {
  it('is WAL with synchronous=FULL and migrates to the current schema once', () => {
    const path = tempLedgerPath();
    const l = Ledger.open(path);
    l.close();
    const db = openSqlite(path);
    try {
      assert.equal(pragma(db, 'journal_mode'), 'wal');
      assert.equal(pragma(db, 'user_version'), MIGRATIONS.length);
    } finally {
      db.close();
    }
    const again = Ledger.open(path);
    try {
      assert.equal(again.schemaVersion, MIGRATIONS.length);
      assert.equal(again.integrityCheck(), 'ok');
      // synchronous is per connection: check the ledger's own
      assert.equal(pragma((again as unknown as { db: SqlDatabase }).db, 'synchronous'), 2);
      assert.equal(pragma((again as unknown as { db: SqlDatabase }).db, 'busy_timeout'), 10_000);
    } finally {
      again.close();
    }
  });

  it('runs on the driver the process chose (SPRELAY_LEDGER_DRIVER when set)', (t) => {
    const l = Ledger.open(tempLedgerPath());
    try {
      const info = ledgerDriverInfo();
      assert.equal(l.driver, info.name);
      if (process.env.SPRELAY_LEDGER_DRIVER) assert.equal(l.driver, process.env.SPRELAY_LEDGER_DRIVER);
      assert.match(info.sqliteVersion, /^3\.\d+\.\d+$/);
      t.diagnostic(`ledger driver ${info.name} ${info.version}, SQLite ${info.sqliteVersion}`);
    } finally {
      l.close();
    }
  });

  it('closes the file when opening fails (no handle left to lock it on Windows)', () => {
    const path = tempLedgerPath();
    Ledger.open(path).close();
    const db = openSqlite(path);
    db.exec('PRAGMA user_version = 99');
    db.close();
    assert.equal(holdsOpen(path), false, 'nothing holds the file before');
    assert.throws(() => Ledger.open(path), /schema version 99 is newer/);
    assert.equal(holdsOpen(path), false, 'the failed open left no handle on the ledger file');
    assert.ok(existsSync(path));
  });

  it('rolls back a failed transaction whole, and a failed nested one alone', () => {
    const l = Ledger.open(tempLedgerPath());
    try {
      const base = { route: 'r', direction: 'out' as const, size: 1, sha256: 'h', state: 'queued' as const };
      assert.throws(() =>
        l.transaction(() => {
          l.insert({ ...base, name: 'a.xml' }, 'queued');
          throw new Error('boom');
        }),
      );
      assert.equal(l.list().length, 0, 'the outer failure took the insert back');
      l.transaction(() => {
        l.insert({ ...base, name: 'b.xml' }, 'queued');
        assert.throws(() =>
          l.transaction(() => {
            l.insert({ ...base, name: 'c.xml' }, 'queued');
            throw new Error('inner');
          }),
        );
      });
      assert.deepEqual(
        l.list().map((r) => r.name),
        ['b.xml'],
        'the inner failure took back only its own insert',
      );
      assert.equal(l.events(l.list()[0]!.id).length, 1);
      assert.throws(() => l.transaction(() => Promise.resolve(1)), /must not be async/);
      assert.equal(l.list().length, 1);
    } finally {
      l.close();
    }
  });

  it('several processes opening a new ledger at once all succeed: the schema is migrated once', async () => {
    // a Task Scheduler `once` and a person's `status` on the station's first run
    const ledgerJs = new URL('../dist/store/ledger.js', import.meta.url).href;
    assert.ok(existsSync(new URL(ledgerJs)), 'dist/ is missing: run npm run build (npm test does)');
    const script = `import(${JSON.stringify(ledgerJs)}).then(({ Ledger }) => { Ledger.open(process.argv[1]).close(); })`;
    for (let round = 0; round < 5; round++) {
      const path = tempLedgerPath();
      const results = await Promise.all(
        Array.from({ length: 4 }, () => {
          const child = spawn(process.execPath, ['-e', script, path], { stdio: ['ignore', 'ignore', 'pipe'] });
          let err = '';
          child.stderr.on('data', (d: Buffer) => (err += d.toString()));
          return new Promise<{ code: number | null; err: string }>((r) => child.on('exit', (code) => r({ code, err })));
        }),
      );
      for (const r of results) assert.equal(r.code, 0, r.err);
      const l = Ledger.open(path);
      try {
        assert.equal(l.schemaVersion, MIGRATIONS.length);
        assert.equal(l.integrityCheck(), 'ok');
      } finally {
        l.close();
      }
    }
  });

  it('retryBusy waits out a lock SQLite would not wait for, and gives up with "database is locked" at its deadline', async () => {
    const path = tempLedgerPath();
    Ledger.open(path).close();
    const sqliteJs = new URL('../dist/store/sqlite.js', import.meta.url).href;
    assert.ok(existsSync(new URL(sqliteJs)), 'dist/ is missing: run npm run build (npm test does)');
    // another process holds the write lock for 600 ms (the same driver: SPRELAY_LEDGER_DRIVER is inherited)
    const holder = `import(${JSON.stringify(sqliteJs)}).then(({ openSqlite }) => { const db = openSqlite(process.argv[1]); db.exec('BEGIN EXCLUSIVE'); process.stdout.write('locked'); setTimeout(() => { db.exec('COMMIT'); db.close(); }, 600); })`;
    // resolves once the lock is held, with the holder's exit (an object: an async function would
    // flatten a returned promise and wait for the exit)
    const hold = async (): Promise<{ exited: Promise<number | null> }> => {
      const child = spawn(process.execPath, ['-e', holder, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`the lock holder exited (${code}) before locking`)));
      });
      return { exited };
    };
    const db = openSqlite(path, { busyTimeoutMs: 0 });
    try {
      let { exited } = await hold();
      const started = Date.now();
      assert.throws(
        () => retryBusy(() => db.exec('BEGIN IMMEDIATE'), 100),
        (err: unknown) => isBusy(err) && /locked/.test(String(err)),
      );
      assert.ok(Date.now() - started >= 90, 'it tried again until its deadline');
      assert.equal(await exited, 0);
      ({ exited } = await hold());
      let tries = 0;
      retryBusy(() => {
        tries++;
        db.exec('BEGIN IMMEDIATE');
      }, 10_000);
      db.exec('COMMIT');
      assert.ok(tries > 1, `it waited for the holder (${tries} tries)`);
      assert.equal(await exited, 0);
      assert.throws(
        () => retryBusy(() => db.exec('NOT SQL'), 10_000),
        (err: unknown) => !isBusy(err),
        'other errors are not retried',
      );
    } finally {
      db.close();
    }
  });

  it('refuses a ledger written by a newer sprelay', () => {
    const path = tempLedgerPath();
    Ledger.open(path).close();
    const db = openSqlite(path);
    db.exec('PRAGMA user_version = 99');
    db.close();
    assert.throws(() => Ledger.open(path), /schema version 99 is newer/);
  });

  it('keeps an event history per package and finds the original of a duplicate', () => {
    let now = 1000;
    const l = Ledger.open(tempLedgerPath(), { now: () => now });
    try {
      const a = l.insert(
        { route: 'r', direction: 'out', name: 'a.xml', size: 3, sha256: 'h1', state: 'queued' },
        'queued',
      );
      now = 2000;
      l.transition(a.id, ['queued'], 'sent', { attempts: 1, remoteRef: 'x/a.xml' }, 'sent', 'to x/a.xml');
      assert.deepEqual(l.events(a.id), [
        { at: 1000, event: 'queued', detail: null },
        { at: 2000, event: 'sent', detail: 'to x/a.xml' },
      ]);
      assert.equal(l.findOriginal('r', 'a.xml', 'h1', ['sent'])?.id, a.id);
      assert.equal(l.findOriginal('r', 'a.xml', 'h2', ['sent']), undefined, 'other bytes: another package');
      assert.equal(l.findOriginal('other', 'a.xml', 'h1', ['sent']), undefined, 'dedup is per route');
      assert.deepEqual(l.countsByState('r'), { sent: 1 });
      assert.throws(() => l.update(999, { attempts: 1 }), /no package with id 999/);
    } finally {
      l.close();
    }
  });

  it('transition refuses a move its package may not make, and writes nothing', () => {
    const l = Ledger.open(tempLedgerPath());
    try {
      const out = l.insert(
        { route: 'r', direction: 'out', name: 'a.xml', size: 3, sha256: 'h', state: 'queued' },
        'queued',
      );
      const inb = l.insert(
        { route: 'i', direction: 'in', name: 'b.xml', size: 3, sha256: 'h', state: 'waiting' },
        'waiting',
      );
      // not in the state the caller believes
      assert.throws(() => l.transition(out.id, ['failed'], 'sent', {}, 'sent'), IllegalTransitionError);
      // not a move of its direction's table
      assert.throws(
        () => l.transition(out.id, ['queued'], 'delivered', {}, 'delivered'),
        /cannot go from queued to delivered/,
      );
      assert.throws(() => l.transition(inb.id, ['waiting'], 'sent', {}, 'sent'), IllegalTransitionError);
      const dup = l.insert(
        { route: 'r', direction: 'out', name: 'c.xml', size: 3, sha256: 'h', state: 'duplicate' },
        'duplicate',
      );
      assert.throws(() => l.transition(dup.id, ['duplicate'], 'queued', {}, 'resend'), IllegalTransitionError);
      assert.throws(() => l.transition(999, ['queued'], 'sent', {}, 'sent'), /no package with id 999/);
      assert.equal(l.get(out.id)!.state, 'queued');
      assert.deepEqual(
        l.events(out.id).map((e) => e.event),
        ['queued'],
      );
      assert.throws(() => l.update(out.id, { state: 'sent' } as never), /transition/);
      // the legal ones, in both directions
      const sent = l.transition(out.id, ['queued', 'failed'], 'sent', { attempts: 1 }, 'sent', 'to x');
      assert.equal(sent.state, 'sent');
      assert.equal(l.transition(out.id, ['sent'], 'queued', { attempts: 0 }, 'resend').state, 'queued');
      assert.equal(
        l.transition(inb.id, ['waiting'], 'delivered', { pendingPath: 't' }, 'receiving').state,
        'delivered',
      );
      assert.equal(l.transition(inb.id, ['delivered'], 'waiting', { pendingPath: null }, 'waiting').state, 'waiting');
      for (const [dir, moves] of Object.entries(LEGAL_MOVES))
        for (const [from, tos] of Object.entries(moves))
          for (const to of tos!) assert.ok(isLegalMove(dir as 'in' | 'out', from as PackageState, to));
    } finally {
      l.close();
    }
  });

  it('finds by query what the pipelines used to filter: refused-in-place records, unseen ids per state', () => {
    const l = Ledger.open(tempLedgerPath());
    try {
      const base = { route: 'i', direction: 'in' as const, size: 5, state: 'quarantined' as const };
      l.insert({ ...base, name: 'm.xml', sha256: 'h', remoteRef: 'uid:1' }, 'quarantined');
      const q = l.insert({ ...base, name: 'm.xml', remoteRef: 'uid:1' }, 'quarantined');
      l.insert({ ...base, name: 'm.xml', remoteRef: 'uid:1' }, 'quarantined');
      assert.equal(
        l.findRefusedInPlace('i', { name: 'm.xml', ref: 'uid:1', size: 5 })?.id,
        q.id,
        'the first, bytes-less',
      );
      assert.equal(l.findRefusedInPlace('i', { name: 'm.xml', ref: 'uid:2', size: 5 }), undefined);
      assert.equal(l.findRefusedInPlace('i', { name: 'm.xml', ref: 'uid:1', size: 6 }), undefined);
      assert.equal(l.findRefusedInPlace('other', { name: 'm.xml', ref: 'uid:1', size: 5 }), undefined);
      const ids = l.list({ route: 'i' }).map((r) => r.id);
      assert.deepEqual(l.unseenIds('i', 'quarantined', 2), ids.slice(0, 2));
      l.acknowledge([ids[0]!]);
      assert.deepEqual(l.unseenIds('i', 'quarantined', 5), ids.slice(1));
      assert.deepEqual(l.unseenIds('i', 'dead', 5), []);
    } finally {
      l.close();
    }
  });

  it('a refused entry and the quarantine budget are each one index step, not a scan (migration 4)', () => {
    const path = tempLedgerPath();
    const l = Ledger.open(path);
    try {
      // the lookup a mail flood makes once per message: over thousands of refusals of one name
      l.transaction(() => {
        for (let uid = 1; uid <= 3000; uid++) {
          l.insert(
            {
              route: 'i',
              direction: 'in',
              name: 'prices.xml',
              size: 0,
              state: 'quarantined',
              remoteRef: `INBOX/7/${uid}/*`,
            },
            'quarantined',
          );
        }
      });
      assert.equal(
        l.findRefusedInPlace('i', { name: 'prices.xml', ref: 'INBOX/7/2999/*', size: 0 })?.remoteRef,
        'INBOX/7/2999/*',
      );
      const db = openSqlite(path);
      try {
        const plan = (sql: string) =>
          db
            .prepare(`EXPLAIN QUERY PLAN ${sql}`)
            .all<{ detail: string }>(...Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => 'x'))
            .map((r) => r.detail)
            .join('; ');
        assert.match(
          plan(SQL.findRefusedInPlace),
          /SEARCH packages USING INDEX packages_refused \(route=\? AND remote_ref=\? AND name=\? AND size=\?\)/,
        );
        assert.match(plan(SQL.quarantineKept), /USING (COVERING )?INDEX packages_quarantine_kept/);
        assert.match(
          plan(SQL.quarantineDropped),
          /SEARCH packages USING (COVERING )?INDEX packages_quarantine_dropped/,
        );
      } finally {
        db.close();
      }
    } finally {
      l.close();
    }
  });

  it('counts the kept quarantine (all routes) and the unacknowledged dropped ones (per route)', () => {
    const l = Ledger.open(tempLedgerPath());
    try {
      const base = { direction: 'in' as const, state: 'quarantined' as const };
      assert.deepEqual(l.quarantineKept(), { count: 0, bytes: 0 });
      l.insert(
        { ...base, route: 'a', name: 'k1.xml', size: 100, sha256: 'h1', storedPath: 'quarantine/a/k1' },
        'quarantined',
      );
      l.insert(
        { ...base, route: 'b', name: 'k2.xml', size: 50, sha256: 'h2', storedPath: 'quarantine/b/k2' },
        'quarantined',
      );
      const dropped = l.insert({ ...base, route: 'a', name: 'd.xml', size: 70, sha256: 'h3' }, 'quarantined');
      l.insert({ ...base, route: 'a', name: 'refused-in-place.xml', size: 9 }, 'quarantined'); // never had bytes
      l.insert({ route: 'a', direction: 'in', name: 'ok.xml', size: 5, sha256: 'h4', state: 'delivered' }, 'delivered');
      assert.deepEqual(l.quarantineKept(), { count: 2, bytes: 150 });
      assert.equal(l.quarantineDropped('a'), 1);
      assert.equal(l.quarantineDropped('b'), 0);
      l.acknowledge([dropped.id]);
      assert.equal(l.quarantineDropped('a'), 0, 'a person saw it');
    } finally {
      l.close();
    }
  });

  it('a ledger of schema 3 gets the indexes of migration 4 and keeps its rows', () => {
    const path = tempLedgerPath();
    // a ledger written by a sprelay of schema 3: its migrations, then a row
    mkdirSync(dirname(path), { recursive: true });
    const db = openSqlite(path);
    try {
      for (const m of MIGRATIONS.slice(0, 3)) db.exec(m);
      db.exec('PRAGMA user_version = 3');
      db.exec(`INSERT INTO packages (route, direction, name, size, state, remote_ref, created_at, updated_at)
               VALUES ('i', 'in', 'm.xml', 1, 'quarantined', 'r', 1, 1)`);
    } finally {
      db.close();
    }
    const again = Ledger.open(path);
    try {
      assert.equal(again.schemaVersion, MIGRATIONS.length);
      assert.equal(again.findRefusedInPlace('i', { name: 'm.xml', ref: 'r', size: 1 })?.name, 'm.xml');
      assert.equal(again.integrityCheck(), 'ok');
    } finally {
      again.close();
    }
    const check = openSqlite(path);
    try {
      const names = check
        .prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'packages_%' ORDER BY name`)
        .all<{ name: string }>()
        .map((r) => r.name);
      for (const n of ['packages_quarantine_dropped', 'packages_quarantine_kept', 'packages_refused']) {
        assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
      }
    } finally {
      check.close();
    }
  });
});
