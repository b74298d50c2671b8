// The ledger's durability settings and migrations: what a crash or power cut relies on.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Ledger } from '../store/ledger.js';

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
    const db = new Database(path);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), 2);
    } finally {
      db.close();
    }
    const again = Ledger.open(path);
    try {
      assert.equal(again.schemaVersion, 2);
      assert.equal(again.integrityCheck(), 'ok');
      // synchronous is per connection: check the ledger's own
      assert.equal((again as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true }), 2);
    } finally {
      again.close();
    }
  });

  it('refuses a ledger written by a newer sprelay', () => {
    const path = tempLedgerPath();
    Ledger.open(path).close();
    const db = new Database(path);
    db.pragma('user_version = 99');
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
      l.update(a.id, { state: 'sent', attempts: 1, remoteRef: 'x/a.xml' }, 'sent', 'to x/a.xml');
      assert.deepEqual(l.events(a.id), [
        { at: 1000, event: 'queued', detail: null },
        { at: 2000, event: 'sent', detail: 'to x/a.xml' },
      ]);
      assert.equal(l.findOriginal('r', 'a.xml', 'h1', ['sent'])?.id, a.id);
      assert.equal(l.findOriginal('r', 'a.xml', 'h2', ['sent']), undefined, 'other bytes: another package');
      assert.equal(l.findOriginal('other', 'a.xml', 'h1', ['sent']), undefined, 'dedup is per route');
      assert.deepEqual(l.countsByState('r'), { sent: 1 });
      assert.throws(() => l.update(999, { state: 'sent' }), /no package with id 999/);
    } finally {
      l.close();
    }
  });
});
