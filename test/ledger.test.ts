// The ledger's durability settings and migrations: what a crash or power cut relies on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { IllegalTransitionError, isLegalMove, Ledger, LEGAL_MOVES, type PackageState } from '../store/ledger.js';
import { ledgerDriverInfo, openSqlite, type SqlDatabase } from '../store/sqlite.js';

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
      assert.equal(pragma(db, 'user_version'), 3);
    } finally {
      db.close();
    }
    const again = Ledger.open(path);
    try {
      assert.equal(again.schemaVersion, 3);
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
        assert.equal(l.schemaVersion, 3);
        assert.equal(l.integrityCheck(), 'ok');
      } finally {
        l.close();
      }
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
});
