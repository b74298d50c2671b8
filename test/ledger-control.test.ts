// The ledger's receipts, heartbeats and stations (issue 12, migration 5): what the receipt
// pipeline will rely on. A receipt confirms exactly the packages it names (name and SHA-256),
// twice is once, an unknown name or a wrong hash changes nothing; an office delivery is owed one
// receipt until marked, and is not purged before.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { HEARTBEAT_JSON_MAX, isLegalMove, Ledger, type PackageRow } from '../store/ledger.js';
import { MIGRATIONS } from '../store/ledger/migrations.js';
import { openSqlite } from '../store/sqlite.js';

const H = (c: string) => c.repeat(64);
let clock = 1_000_000;
const opened: Ledger[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const l of opened.splice(0)) l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(): Ledger {
  const l = Ledger.open(':memory:', { now: () => clock });
  opened.push(l);
  return l;
}

/** An out-package moved to `sent` the way sendGroup does. */
function sentOut(l: Ledger, name: string, sha256: string, route = 'out'): PackageRow {
  const row = l.insert({ route, direction: 'out', name, size: 10, sha256, state: 'queued' }, 'queued');
  return l.transition(row.id, ['queued'], 'sent', {}, 'sent');
}

/** An office delivery from `station` (as the inbound commit will write it). */
function delivered(l: Ledger, name: string, station: string | null, extra: Partial<PackageRow> = {}): PackageRow {
  return l.insert(
    {
      route: 'from-stations',
      direction: 'in',
      name,
      size: 10,
      sha256: H('d'),
      state: 'delivered',
      ...(station === null ? {} : { station }),
      ...(extra.pendingPath ? { pendingPath: extra.pendingPath } : {}),
    },
    'delivered',
  );
}

describe('confirmOut (station: the office receipt)', () => {
  it('confirms a sent package once; the same receipt again changes nothing', () => {
    const l = open();
    const a = sentOut(l, 'a.xml', H('a'));
    const b = sentOut(l, 'b.xml', H('b'));
    clock += 5;
    assert.deepEqual(l.confirmOut([{ name: 'a.xml', sha256: H('a') }], 777), ['confirmed']);
    const after = l.get(a.id)!;
    assert.equal(after.state, 'confirmed');
    assert.equal(after.confirmedAt, 777);
    assert.deepEqual(
      l.events(a.id).map((e) => e.event),
      ['queued', 'sent', 'confirmed'],
    );
    assert.equal(l.get(b.id)!.state, 'sent', 'a package the receipt does not name stays sent');
    clock += 5;
    assert.deepEqual(l.confirmOut([{ name: 'a.xml', sha256: H('a') }], 999), ['already']);
    assert.deepEqual(l.get(a.id), after, 'the second receipt changed nothing (not even updated_at)');
    assert.equal(l.events(a.id).length, 3);
  });

  it('an unknown name, a wrong hash or a package not sent yet changes nothing', () => {
    const l = open();
    const a = sentOut(l, 'a.xml', H('a'));
    const q = l.insert(
      { route: 'out', direction: 'out', name: 'q.xml', size: 1, sha256: H('c'), state: 'queued' },
      'queued',
    );
    const before = l.list();
    const out = l.confirmOut(
      [
        { name: 'nope.xml', sha256: H('a') },
        { name: 'a.xml', sha256: H('f') },
        { name: 'q.xml', sha256: H('c') },
      ],
      500,
    );
    assert.deepEqual(out, ['unknown', 'unknown', 'unknown']);
    assert.deepEqual(l.list(), before);
    assert.equal(l.get(a.id)!.state, 'sent');
    assert.equal(l.get(q.id)!.state, 'queued');
  });

  it('an in-row or a receipt out-row of that name and hash is never confirmed', () => {
    const l = open();
    l.insert({ route: 'in', direction: 'in', name: 'x.xml', size: 1, sha256: H('e'), state: 'delivered' }, 'delivered');
    const r = l.insert(
      { route: 'out', direction: 'out', name: 'x.xml', size: 1, sha256: H('e'), state: 'queued', kind: 'receipt' },
      'queued',
    );
    l.transition(r.id, ['queued'], 'sent', {}, 'sent');
    assert.deepEqual(l.confirmOut([{ name: 'x.xml', sha256: H('e') }], 1), ['unknown']);
    assert.equal(l.get(r.id)!.state, 'sent');
  });

  it('confirmed is reached only from sent, and left only by a resend', () => {
    assert.equal(isLegalMove('out', 'sent', 'confirmed'), true);
    assert.equal(isLegalMove('out', 'confirmed', 'queued'), true);
    for (const from of ['queued', 'failed', 'dead'] as const)
      assert.equal(isLegalMove('out', from, 'confirmed'), false);
    assert.equal(isLegalMove('in', 'delivered', 'confirmed'), false);
    const l = open();
    const a = sentOut(l, 'a.xml', H('a'));
    l.confirmOut([{ name: 'a.xml', sha256: H('a') }], 1);
    const again = l.transition(a.id, ['confirmed'], 'queued', { attempts: 0 }, 'resend');
    assert.equal(again.state, 'queued');
    // sent again and confirmed again by a later receipt
    l.transition(a.id, ['queued'], 'sent', {}, 'sent');
    assert.deepEqual(l.confirmOut([{ name: 'a.xml', sha256: H('a') }], 2), ['confirmed']);
    assert.equal(l.get(a.id)!.confirmedAt, 2);
  });

  it('all items of one receipt are one transaction: a failure midway confirms none', () => {
    const l = open();
    const a = sentOut(l, 'a.xml', H('a'));
    const bad = {
      name: 'b.xml',
      get sha256(): string {
        throw new Error('boom');
      },
    };
    assert.throws(() => l.confirmOut([{ name: 'a.xml', sha256: H('a') }, bad], 1), /boom/);
    assert.equal(l.get(a.id)!.state, 'sent');
  });
});

describe('unreceipted / markReceipted (office)', () => {
  it('lists deliveries with a station and no receipt; marking is once; purge waits for it', () => {
    const l = open();
    const d1 = delivered(l, 'p1.xml', 'st-01');
    clock += 10;
    const d2 = delivered(l, 'p2.xml', 'st-02');
    delivered(l, 'p3.xml', null); // no station: an ordinary in-route, owed nothing
    delivered(l, 'p4.xml', 'st-01', { pendingPath: 'in/.p4.tmp' }); // rename not done yet
    assert.deepEqual(
      l.unreceipted('from-stations').map((r) => r.id),
      [d1.id, d2.id],
    );
    clock += 1_000;
    assert.deepEqual(
      l.purgeable(clock).map((r) => r.name),
      ['p3.xml'],
      'deliveries owed a receipt are not purged',
    );
    assert.deepEqual(
      l.purgeable(clock, false).map((r) => r.name),
      ['p1.xml', 'p2.xml', 'p3.xml'],
      'an agent without receipts owes none',
    );
    const receipt = l.transaction(() => {
      const r = l.insert(
        {
          route: 'receipts',
          direction: 'out',
          name: 'r.json',
          size: 5,
          sha256: H('9'),
          state: 'queued',
          kind: 'receipt',
          station: 'st-01',
        },
        'queued',
      );
      assert.equal(l.markReceipted([d1.id], r.id), 1);
      return r;
    });
    assert.equal(l.get(d1.id)!.receiptId, receipt.id);
    assert.equal(l.markReceipted([d1.id], 12345), 0, 'a receipted delivery is never receipted again');
    assert.equal(l.get(d1.id)!.receiptId, receipt.id);
    assert.deepEqual(
      l.unreceipted('from-stations').map((r) => r.id),
      [d2.id],
    );
    assert.equal(l.stations().find((s) => s.station === 'st-01')!.lastPackageAt, d1.createdAt);
  });

  it('a crash between the receipt row and the marks leaves neither (one transaction)', () => {
    const l = open();
    const d1 = delivered(l, 'p1.xml', 'st-01');
    assert.throws(() =>
      l.transaction(() => {
        const r = l.insert(
          {
            route: 'receipts',
            direction: 'out',
            name: 'r.json',
            size: 5,
            sha256: H('9'),
            state: 'queued',
            kind: 'receipt',
          },
          'queued',
        );
        l.markReceipted([d1.id], r.id);
        throw new Error('killed');
      }),
    );
    assert.deepEqual(
      l.unreceipted('from-stations').map((r) => r.id),
      [d1.id],
    );
    assert.equal(l.list({ route: 'receipts' }).length, 0);
  });
});

describe('control rows and status counts', () => {
  it('countsByState counts packages only; controlCounts counts receipts and heartbeats', () => {
    const l = open();
    sentOut(l, 'a.xml', H('a'));
    l.insert(
      { route: 'out', direction: 'out', name: 'hb.json', size: 1, sha256: H('1'), state: 'queued', kind: 'heartbeat' },
      'queued',
    );
    const r = l.insert(
      {
        route: 'out',
        direction: 'out',
        name: 'rc.json',
        size: 1,
        sha256: H('2'),
        state: 'queued',
        kind: 'receipt',
        station: 'st-9',
      },
      'queued',
    );
    assert.equal(r.kind, 'receipt');
    assert.equal(r.station, 'st-9');
    assert.deepEqual(l.countsByState('out'), { sent: 1 });
    assert.deepEqual(l.controlCounts('out'), { heartbeat: { queued: 1 }, receipt: { queued: 1 } });
  });

  it('unconfirmedCount: sent before the cut and not confirmed', () => {
    const l = open();
    const a = sentOut(l, 'a.xml', H('a'));
    sentOut(l, 'b.xml', H('b'));
    clock += 100;
    sentOut(l, 'c.xml', H('c')); // sent after the cut
    l.confirmOut([{ name: 'b.xml', sha256: H('b') }], clock);
    assert.deepEqual(l.unconfirmedCount('out', clock - 50), { n: 1, oldest: a.updatedAt });
    assert.deepEqual(
      l.unconfirmed('out', clock - 50, 10).map((r) => r.name),
      ['a.xml'],
    );
  });

  it('a kind outside the three is refused by the schema', () => {
    const l = open();
    assert.throws(() =>
      l.insert(
        // @ts-expect-error: the check constraint is the point
        { route: 'out', direction: 'out', name: 'z', size: 1, state: 'queued', kind: 'other' },
        'queued',
      ),
    );
  });
});

describe('control_in, heartbeats, stations', () => {
  it('records control files taken in', () => {
    const l = open();
    const row = {
      route: 'in',
      kind: 'receipt' as const,
      name: 'sprelay-receipt.json',
      sha256: H('7'),
      fromStation: 'office',
      v: 1,
      receivedAt: 42,
      outcome: 'ignored' as const,
      reason: 'unknown package a.xml',
    };
    l.recordControl(row);
    assert.deepEqual(l.controlIn('in'), [row]);
    assert.throws(() => l.recordControl({ ...row, outcome: 'maybe' as 'applied' }));
    // met again: by name and bytes (null: refused without its bytes)
    assert.deepEqual(l.controlSeen('in', row.name, H('7')), { outcome: 'ignored', reason: row.reason });
    assert.equal(l.controlSeen('in', row.name, null), undefined);
    assert.equal(l.controlSeen('other', row.name, H('7')), undefined);
    // purge forgets the records older than its limit, and only those
    const later = { ...row, name: 'sprelay-receipt-2.json', receivedAt: 100 };
    l.recordControl(later);
    assert.equal(l.purgeControl(50), 1);
    assert.deepEqual(l.controlIn('in'), [later]);
  });

  it('keeps the newest heartbeat per station, capped; stations() joins deliveries', () => {
    const l = open();
    l.upsertHeartbeat('st-01', 100, '{"n":1}');
    l.upsertHeartbeat('st-01', 50, '{"n":0}'); // older, arrived late
    l.upsertHeartbeat('st-02', 70, '{"n":2}');
    assert.throws(() => l.upsertHeartbeat('st-03', 1, 'x'.repeat(HEARTBEAT_JSON_MAX + 1)), RangeError);
    clock = 2_000_000;
    delivered(l, 'p.xml', 'st-04');
    assert.deepEqual(l.stations(), [
      { station: 'st-01', lastHeartbeatAt: 100, heartbeatJson: '{"n":1}', lastPackageAt: null },
      { station: 'st-02', lastHeartbeatAt: 70, heartbeatJson: '{"n":2}', lastPackageAt: null },
      { station: 'st-04', lastHeartbeatAt: null, heartbeatJson: null, lastPackageAt: 2_000_000 },
    ]);
  });

  it('deliveries(station, since): that station, packages only, from since on, oldest first', () => {
    const l = open();
    clock = 10;
    delivered(l, 'old.xml', 'st-01');
    clock = 20;
    delivered(l, 'a.xml', 'st-01');
    delivered(l, 'b.xml', 'st-02');
    clock = 30;
    delivered(l, 'c.xml', 'st-01');
    l.insert(
      { route: 'from-stations', direction: 'in', name: 'q.xml', size: 1, state: 'quarantined', station: 'st-01' },
      'quarantined',
    );
    assert.deepEqual(l.deliveries('st-01', 15), [
      { route: 'from-stations', name: 'a.xml', deliveredAt: 20 },
      { route: 'from-stations', name: 'c.xml', deliveredAt: 30 },
    ]);
  });
});

describe('migration 5', () => {
  it('a version-4 ledger with rows opens: its rows are packages, nothing else changes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-mig5-'));
    dirs.push(dir);
    const path = join(dir, 'ledger.db');
    const db = openSqlite(path);
    try {
      for (const m of MIGRATIONS.slice(0, 4)) db.exec(m);
      db.exec('PRAGMA user_version = 4');
      db.exec(`INSERT INTO packages (route, direction, name, size, sha256, state, created_at, updated_at)
               VALUES ('out', 'out', 'a.xml', 3, '${H('a')}', 'sent', 1, 1)`);
    } finally {
      db.close();
    }
    const l = Ledger.open(path);
    opened.push(l);
    assert.equal(l.schemaVersion, MIGRATIONS.length);
    assert.equal(MIGRATIONS.length, 6);
    const [row] = l.list();
    assert.equal(row!.kind, 'package');
    assert.equal(row!.station, null);
    assert.equal(row!.state, 'sent');
    assert.deepEqual(l.confirmOut([{ name: 'a.xml', sha256: H('a') }], 9), ['confirmed']);
    assert.equal(l.integrityCheck(), 'ok');
  });
});
