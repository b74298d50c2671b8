// Issue 11, group commit and one pass over the bytes (outbound): a cycle takes the outbox in
// batches (one ledger transaction per batch, not several per package), reads each file once (the
// XML check runs on the bytes of the spool copy), records a batch of completed puts in one
// transaction after the sink's flush, and still catches refusals and duplicates per package.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cdsXml, filesIn, makeStation, read, sha256, type Station } from './helpers/station.js';
import type { RouteConfig } from '../agent/config.js';
import type { Ledger } from '../store/ledger.js';
import { createLanTransport } from '../transports/lan/index.js';
import type { LanProfile, Sink, Transport } from '../transports/types.js';

let st: Station | undefined;
afterEach(() => st?.cleanup());

/** Counts the ledger's outermost transactions (each is one commit, one WAL fsync). */
function countCommits(ledger: Ledger): () => number {
  const original = ledger.transaction.bind(ledger);
  let depth = 0;
  let commits = 0;
  ledger.transaction = <T>(fn: () => T): T => {
    if (depth === 0) commits++;
    depth++;
    try {
      return original(fn);
    } finally {
      depth--;
    }
  };
  return () => commits;
}

/**
 * The real lan transport; its sink's calls are recorded in order, each flush with the ledger
 * states of the packages put since the previous flush.
 */
function recordingLan(stateOf: (name: string) => string) {
  const calls: string[] = [];
  let unflushed: string[] = [];
  const transportFor = (route: RouteConfig): Transport => {
    const real = createLanTransport(route.profile as LanProfile);
    return {
      ...real,
      async openSink(endpoint, signal) {
        const sink = await real.openSink(endpoint, signal);
        assert.ok(sink.flush, 'the lan sink defers the folder fsync to flush');
        const recording: Sink = {
          async put(pkg, sig) {
            const r = await sink.put(pkg, sig);
            calls.push(`put ${pkg.name}`);
            unflushed.push(pkg.name);
            return r;
          },
          async flush(sig) {
            const states = [...new Set(unflushed.map(stateOf))].sort().join(',');
            calls.push(`flush (${unflushed.length > 0 ? 'after puts' : 'no put'}; their rows: ${states})`);
            unflushed = [];
            await sink.flush!(sig);
          },
          close: () => sink.close(),
        };
        return recording;
      },
    };
  };
  return { transportFor, calls };
}

describe('outbound in batches', () => {
  it('150 packages: taken and sent whole with a handful of ledger commits, flushed before they count as sent', async () => {
    st = makeStation();
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 150; i++) files.set(`P${String(i).padStart(3, '0')}.XML`, cdsXml(`p${i}`, 1 + (i % 7)));
    for (const [n, b] of files) writeFileSync(join(st.outbox, n), b);
    const ledger: { it?: Ledger } = {};
    const rec = recordingLan((name) => ledger.it!.list({ route: 'export' }).find((r) => r.name === name)!.state);
    const agent = st.agent({ transportFor: rec.transportFor });
    ledger.it = agent.ledger;
    const commits = countCommits(agent.ledger);
    try {
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.error, null);
      assert.equal(r!.taken, 150);
      assert.equal(r!.sent, 150);
      assert.deepEqual(filesIn(st.outbox), []);
      assert.deepEqual(filesIn(st.exchange), [...files.keys()].sort());
      for (const [n, b] of files) assert.equal(sha256(read(st.exchange, n)), sha256(b), n);
      const rows = agent.ledger.list({ route: 'export' });
      assert.equal(rows.length, 150);
      for (const row of rows) {
        assert.equal(row.state, 'sent');
        assert.match(row.storedPath ?? '', /^archive\/export\//);
        assert.equal(sha256(read(st.data, row.storedPath!)), sha256(files.get(row.name)!));
        assert.deepEqual(
          agent.ledger.events(row.id).map((e) => e.event),
          ['queued', 'sent'],
        );
      }
      // before: 3 commits per package (queued, sent, stored path) = 450 and more. Now: 3 intake
      // batches (64 + 64 + 22), 2 per send batch (sent, stored path), the refused-file
      // bookkeeping, and the route's lock and run record.
      assert.ok(commits() <= 20, `${commits()} ledger commits for 150 packages`);
      // each flush comes after its puts and before the ledger says sent: every row still queued
      const flushes = rec.calls.filter((c) => c.startsWith('flush'));
      assert.equal(flushes.length, 3, rec.calls.filter((c) => !c.startsWith('put')).join('; '));
      for (const f of flushes) assert.equal(f, 'flush (after puts; their rows: queued)');
      assert.equal(rec.calls.filter((c) => c.startsWith('put')).length, 150);
      assert.ok(rec.calls.at(-1)!.startsWith('flush'), 'the last puts are flushed too');
      assert.deepEqual(readdirSync(join(st.data, 'spool', 'export', '.tmp')), [], 'no temp copy left');
    } finally {
      agent.close();
    }
  });

  it('a refused XML, a refused zip and a duplicate in one batch with good files: each judged on its own', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      const a = cdsXml('a');
      writeFileSync(join(st.outbox, 'A.XML'), a);
      const [first] = await agent.runOnce(['export']);
      assert.equal(first!.sent, 1);
      const original = agent.ledger.list({ route: 'export' })[0]!;

      const good = new Map<string, Buffer>([
        ['B.XML', cdsXml('b')],
        ['C.XML', cdsXml('c', 40)],
      ]);
      for (const [n, b] of good) writeFileSync(join(st.outbox, n), b);
      writeFileSync(join(st.outbox, 'A.XML'), a); // the same name and bytes again
      writeFileSync(join(st.outbox, 'BAD.XML'), Buffer.from('<?xml version="1.0"?><DATAPACKET><ROWDATA>'));
      writeFileSync(join(st.outbox, 'BAD.ZIP'), Buffer.from('not a zip at all'));
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.error, null);
      assert.equal(r!.taken, 2);
      assert.equal(r!.sent, 2);
      assert.equal(r!.duplicates, 1);
      assert.equal(r!.refused, 2);
      assert.deepEqual(filesIn(st.outbox), ['BAD.XML', 'BAD.ZIP'], 'the refused files stay, untouched');
      assert.deepEqual(filesIn(st.exchange), ['A.XML', 'B.XML', 'C.XML']);
      for (const [n, b] of good) assert.equal(sha256(read(st.exchange, n)), sha256(b), n);
      const rows = agent.ledger.list({ route: 'export' });
      const by = (name: string) => rows.filter((x) => x.name === name).map((x) => x.state);
      assert.deepEqual(by('A.XML'), ['sent', 'duplicate']);
      assert.equal(rows.find((x) => x.state === 'duplicate')!.duplicateOf, original.id);
      assert.deepEqual(by('B.XML'), ['sent']);
      assert.deepEqual(by('C.XML'), ['sent']);
      assert.deepEqual(by('BAD.XML'), ['refused']);
      assert.deepEqual(by('BAD.ZIP'), ['refused']);
      assert.deepEqual(readdirSync(join(st.data, 'spool', 'export', '.tmp')), [], 'refused copies removed');
      // nothing of the refused files reached the spool or the archive
      const spooled = readdirSync(join(st.data, 'spool', 'export')).filter((n) => n !== '.tmp');
      assert.deepEqual(spooled, []);
    } finally {
      agent.close();
    }
  });
});
