// Inbound groups (issue 11): entries fetched several at once (min(route concurrency,
// source.parallel)) and committed together (one ledger transaction for a group's rows, one inbox
// folder fsync, the acknowledgements), over the real lan transport. What must hold: nothing lost,
// nothing delivered twice (two entries of one name and bytes fetched at the same time: one
// delivered, one duplicate), bytes identical, maxPerCycle exact, and the work really grouped and
// concurrent (counted: transactions, opens in flight).
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { RouteConfig } from '../agent/config.js';
import type { Ledger } from '../store/ledger.js';
import { createLanTransport } from '../transports/lan/index.js';
import type { LanProfile, RemoteEntry, Source, Transport } from '../transports/types.js';
import {
  cdsXml,
  cyclesWhileWrittenBehind,
  filesIn,
  makeStation,
  read,
  sha256,
  type Station,
} from './helpers/station.js';

let st: Station | undefined;
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

/**
 * The real lan transport, its source seen through `shape`: `rename` gives an entry another name
 * (its ref, the file on the share, stays), `parallel` what the source declares; opens in flight
 * counted.
 */
function lanWith(shape: { parallel?: number; rename?: (name: string) => string; onOpen?: (n: number) => void }) {
  const seen = { inFlight: 0, maxInFlight: 0, opens: 0, lists: 0 };
  const transportFor = (route: RouteConfig): Transport => {
    const real = createLanTransport(route.profile as LanProfile);
    return {
      kind: 'lan',
      features: real.features,
      openSink: (e, s) => real.openSink(e, s),
      probe: (e, d, s) => real.probe(e, d, s),
      async openSource(endpoint, signal) {
        const source = await real.openSource(endpoint, signal);
        const shaped: Source = {
          ...(shape.parallel !== undefined ? { parallel: shape.parallel } : { parallel: source.parallel }),
          async list(sig) {
            seen.lists++;
            const entries = await source.list(sig);
            return entries.map((e): RemoteEntry => (shape.rename ? { ...e, name: shape.rename(e.name) } : e));
          },
          async open(entry, sig) {
            seen.opens++;
            shape.onOpen?.(seen.opens);
            seen.inFlight++;
            seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
            try {
              const stream = await source.open(entry, sig);
              stream.once('close', () => seen.inFlight--);
              return stream;
            } catch (err) {
              seen.inFlight--;
              throw err;
            }
          },
          acknowledge: (entry, sig) => source.acknowledge(entry, sig),
          close: () => source.close(),
        };
        return shaped;
      },
    };
  };
  return { transportFor, seen };
}

/** Counts the ledger's outer transactions (each one commit, one WAL fsync) from now on. */
function countTransactions(ledger: Ledger): () => number {
  let n = 0;
  let depth = 0;
  const original = ledger.transaction.bind(ledger);
  ledger.transaction = <T>(fn: () => T): T => {
    if (depth === 0) n++;
    depth++;
    try {
      return original(fn);
    } finally {
      depth--;
    }
  };
  return () => n;
}

describe('inbound groups: concurrency and group commit', () => {
  it('two entries of one name and the same bytes fetched at the same time: one delivered, one duplicate', async () => {
    st = makeStation({ in: '    concurrency: 4' });
    const bytes = cdsXml('same');
    // two files on the share, both listed as "a.xml" (as two e-mails with the same attachment are)
    writeFileSync(join(st.exchange, 'one__a.xml'), bytes);
    writeFileSync(join(st.exchange, 'two__a.xml'), bytes);
    const lan = lanWith({ parallel: 4, rename: (n) => n.replace(/^.*__/, '') });
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.error, null);
      assert.equal(r!.delivered, 1);
      assert.equal(r!.duplicates, 1);
      assert.equal(lan.seen.maxInFlight, 2, 'both were being read at the same time');
      assert.deepEqual(filesIn(st.inbox), ['a.xml'], 'one file, no temp left');
      assert.equal(sha256(read(st.inbox, 'a.xml')), sha256(bytes));
      assert.deepEqual(readdirSync(st.exchange), [], 'both remote entries acknowledged');
      const rows = agent.ledger.list().sort((a, b) => a.id - b.id);
      assert.deepEqual(
        rows.map((row) => [row.state, row.pendingPath, row.ackedAt !== null]),
        [
          ['delivered', null, true],
          ['duplicate', null, true],
        ],
      );
      assert.equal(rows[1]!.duplicateOf, rows[0]!.id);
    } finally {
      agent.close();
    }
  });

  it('two entries of one name and different bytes at the same time: one delivered, the other waits on the remote', async () => {
    st = makeStation({ in: '    concurrency: 4' });
    writeFileSync(join(st.exchange, 'one__a.xml'), cdsXml('first'));
    writeFileSync(join(st.exchange, 'two__a.xml'), cdsXml('second'));
    const lan = lanWith({ parallel: 4, rename: (n) => n.replace(/^.*__/, '') });
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.error, null);
      assert.equal(r!.delivered, 1);
      assert.equal(r!.waiting, 1);
      assert.deepEqual(filesIn(st.inbox), ['a.xml']);
      const delivered = agent.ledger.list().find((row) => row.state === 'delivered')!;
      assert.equal(sha256(read(st.inbox, 'a.xml')), delivered.sha256);
      // the one delivered is acknowledged, the waiting one is still on the share
      assert.deepEqual(readdirSync(st.exchange), [delivered.remoteRef === 'one__a.xml' ? 'two__a.xml' : 'one__a.xml']);
    } finally {
      agent.close();
    }
  });

  it('30 packages with concurrency 4: all delivered byte for byte, read 4 at once, in far fewer transactions than packages', async () => {
    st = makeStation({ in: '    concurrency: 4' });
    const sent = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const bytes = cdsXml(`package ${i}`, 50 + i);
      writeFileSync(join(st.exchange, `p${i}.xml`), bytes);
      sent.set(`p${i}.xml`, sha256(bytes));
    }
    const lan = lanWith({});
    const agent = st.agent({ transportFor: lan.transportFor });
    const transactions = countTransactions(agent.ledger);
    try {
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.error, null);
      assert.equal(r!.delivered, 30);
      assert.deepEqual(filesIn(st.inbox), [...sent.keys()].sort());
      for (const [name, hash] of sent) assert.equal(sha256(read(st.inbox, name)), hash, name);
      assert.deepEqual(readdirSync(st.exchange), []);
      assert.equal(lan.seen.opens, 30);
      assert.equal(lan.seen.maxInFlight, 4, 'the lan source lets 4 entries be read at once');
      // one at a time, each package took 3 transactions (write-ahead row, rename done, acknowledged)
      assert.ok(transactions() < 30, `${transactions()} transactions for 30 packages`);
      for (const row of agent.ledger.list()) {
        assert.equal(row.state, 'delivered');
        assert.equal(row.pendingPath, null);
        assert.notEqual(row.ackedAt, null);
      }
    } finally {
      agent.close();
    }
  });

  it('maxPerCycle stays exact with several entries in flight', async () => {
    st = makeStation({ in: '    concurrency: 4\n    maxPerCycle: 3' });
    for (let i = 0; i < 10; i++) writeFileSync(join(st.exchange, `m${i}.xml`), cdsXml(`m${i}`));
    const lan = lanWith({});
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      const [r1] = await agent.runOnce(['import']);
      assert.equal(r1!.delivered, 3);
      assert.equal(lan.seen.opens, 3, 'no entry over maxPerCycle was read');
      assert.equal(filesIn(st.inbox).length, 3);
      assert.equal(readdirSync(st.exchange).length, 7);
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.delivered, 3);
      for (let i = 0; i < 2; i++) await agent.runOnce(['import']);
      assert.equal(filesIn(st.inbox).length, 10);
      assert.deepEqual(readdirSync(st.exchange), []);
    } finally {
      agent.close();
    }
  });

  it('a bad package among good ones fetched together is quarantined as before; the good ones are delivered', async () => {
    st = makeStation({ in: '    concurrency: 4' });
    writeFileSync(join(st.exchange, 'good1.xml'), cdsXml('g1'));
    writeFileSync(join(st.exchange, 'bad.xml'), Buffer.from('<?xml version="1.0"?><A><B></A>'));
    writeFileSync(join(st.exchange, 'good2.xml'), cdsXml('g2'));
    const lan = lanWith({});
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.delivered, 2);
      assert.equal(r!.quarantined, 1);
      assert.deepEqual(filesIn(st.inbox), ['good1.xml', 'good2.xml']);
      // judged on its content: kept in quarantine, left on the remote until seen again unchanged
      assert.deepEqual(readdirSync(st.exchange), ['bad.xml']);
      const bad = agent.ledger.list().find((row) => row.name === 'bad.xml')!;
      assert.equal(bad.state, 'quarantined');
      assert.match(bad.lastError ?? '', /not well-formed/);
    } finally {
      agent.close();
    }
  });

  it('an entry the previous cycle listed unchanged at least settle ago is not listed twice again; a new one is', async () => {
    st = makeStation({ top: 'settle: 200ms', in: '    maxPerCycle: 1' });
    writeFileSync(join(st.exchange, 'a.xml'), cdsXml('a'));
    writeFileSync(join(st.exchange, 'b.xml'), cdsXml('b'));
    const lan = lanWith({});
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      const [r1] = await agent.runOnce(['import']);
      assert.equal(r1!.delivered, 1);
      assert.equal(lan.seen.lists, 2, 'first cycle: the double listing');
      // the entry left over was listed unchanged twice, `settle` apart: that evidence is kept
      await new Promise((resolve) => setTimeout(resolve, 250));
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.delivered, 1);
      assert.equal(lan.seen.lists, 3, 'second cycle: one listing, nothing new or changed');
      // a new file and a changed one each need the second look again
      writeFileSync(join(st.exchange, 'c.xml'), cdsXml('c'));
      const [r3] = await agent.runOnce(['import']);
      assert.equal(r3!.delivered, 1);
      assert.equal(lan.seen.lists, 5, 'a new entry: the double listing again');
      assert.deepEqual(filesIn(st.inbox), ['a.xml', 'b.xml', 'c.xml']);
      assert.deepEqual(readdirSync(st.exchange), []);
    } finally {
      agent.close();
    }
  });

  /** Writes `name` into the exchange with its modification time `ageMs` before now (or at `at`). */
  function writeAged(name: string, bytes: Buffer, ageMs: number): void {
    const p = join(st!.exchange, name);
    writeFileSync(p, bytes);
    const t = new Date(Date.now() - ageMs);
    utimesSync(p, t, t);
  }
  const MIN = 60_000;

  it('settle by age: a remote file older than settle + clockSkew is taken from one listing; younger, implausible or untrusted times are listed twice', async () => {
    st = makeStation({ top: 'settle: 200ms' }); // clockSkew: its default, 15m
    const lan = lanWith({});
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      writeAged('old1.xml', cdsXml('old1'), 20 * MIN);
      writeAged('old2.xml', cdsXml('old2'), 16 * MIN);
      const [r1] = await agent.runOnce(['import']);
      assert.equal(r1!.delivered, 2);
      assert.equal(lan.seen.lists, 1, 'every entry older than settle + 15m: no second listing');
      // within the margin a server's clock may be behind: looked at twice
      writeAged('mid.xml', cdsXml('mid'), 10 * MIN);
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.delivered, 1);
      assert.equal(lan.seen.lists, 3, 'ten minutes old: the double listing');
      // a server whose clock was never set (1980) proves nothing
      const p = join(st.exchange, 'y1980.xml');
      writeFileSync(p, cdsXml('y1980'));
      utimesSync(p, new Date('1980-01-01T00:00:00Z'), new Date('1980-01-01T00:00:00Z'));
      const [r3] = await agent.runOnce(['import']);
      assert.equal(r3!.delivered, 1);
      assert.equal(lan.seen.lists, 5, 'a time before 2000: the double listing');
      // one young entry among old ones: the whole cycle looks twice, and takes all of them
      writeAged('old3.xml', cdsXml('old3'), 60 * MIN);
      writeAged('young.xml', cdsXml('young'), 0);
      const [r4] = await agent.runOnce(['import']);
      assert.equal(r4!.delivered, 2);
      assert.equal(lan.seen.lists, 7);
      assert.deepEqual(filesIn(st.inbox), ['mid.xml', 'old1.xml', 'old2.xml', 'old3.xml', 'y1980.xml', 'young.xml']);
      for (const n of filesIn(st.inbox)) assert.equal(sha256(read(st.inbox, n)), sha256(cdsXml(n.replace('.xml', ''))));
    } finally {
      agent.close();
    }
  });

  it('settle by age: "clockSkew: off" trusts no remote time; a route\'s own clockSkew wins', async () => {
    st = makeStation({ top: 'settle: 200ms\nclockSkew: "off"' });
    const lan = lanWith({});
    let agent = st.agent({ transportFor: lan.transportFor });
    try {
      writeAged('day.xml', cdsXml('day'), 24 * 60 * MIN);
      const [r1] = await agent.runOnce(['import']);
      assert.equal(r1!.delivered, 1);
      assert.equal(lan.seen.lists, 2, 'a day old, but remote times are not trusted: listed twice');
    } finally {
      agent.close();
    }
    st.cleanup();
    st = makeStation({ top: 'settle: 200ms\nclockSkew: "off"', in: '    clockSkew: 1m' });
    const lan2 = lanWith({});
    agent = st.agent({ transportFor: lan2.transportFor });
    try {
      writeAged('five.xml', cdsXml('five'), 5 * MIN);
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.delivered, 1);
      assert.equal(lan2.seen.lists, 1, 'five minutes old, the route allows one minute of skew: one listing');
      assert.equal(sha256(read(st.inbox, 'five.xml')), sha256(cdsXml('five')));
    } finally {
      agent.close();
    }
  });

  it('settle by age: a file still being written on a server whose clock is 10 minutes behind is never taken part-written', async () => {
    const station = makeStation({ top: 'settle: 150ms' });
    st = station;
    const lan = lanWith({});
    const agent = station.agent({ transportFor: lan.transportFor });
    try {
      await cyclesWhileWrittenBehind({
        path: join(station.exchange, 'slow.xml'),
        whole: cdsXml('slow', 60),
        behindMs: 10 * MIN,
        cycle: async () => (await agent.runOnce(['import']))[0]!,
        delivered: () => read(station.inbox, 'slow.xml'),
      });
      assert.deepEqual(filesIn(station.exchange), []);
    } finally {
      agent.close();
    }
  });

  it(
    'settle by age on a per-station office route: station folders whose files are all old cost no settle sleep',
    { timeout: 30_000 },
    async () => {
      // settle 1h: a cycle that slept would not end within the test's timeout
      st = makeStation({ top: 'settle: 1h', inRemote: 'from-stations/*', inLocal: './inbox/{station}' });
      const sent = new Map<string, Buffer>();
      for (const station of ['ST01', 'ST02', 'ST03']) {
        mkdirSync(join(st.office, 'from-stations', station), { recursive: true });
        for (let i = 0; i < 2; i++) {
          const bytes = cdsXml(`${station}-${i}`);
          const p = join(st.office, 'from-stations', station, `p${i}.xml`);
          writeFileSync(p, bytes);
          const t = new Date(Date.now() - (120 + i) * MIN); // older than settle (1h) + clockSkew (15m)
          utimesSync(p, t, t);
          sent.set(`${station}/p${i}.xml`, bytes);
        }
      }
      const agent = st.agent();
      // a cycle that sleeps the settle is stopped after 10 s (and fails below), not left hanging
      const guard = setTimeout(() => agent.requestStop(), 10_000);
      try {
        const [r] = await agent.runOnce(['import']);
        assert.equal(r!.interrupted, false, 'the cycle slept the settle (stopped by the guard)');
        assert.equal(r!.delivered, 6);
        for (const [rel, bytes] of sent) assert.equal(sha256(read(join(st.dir, 'inbox'), rel)), sha256(bytes), rel);
        for (const station of ['ST01', 'ST02', 'ST03']) {
          assert.deepEqual(filesIn(join(st.office, 'from-stations', station)), [], `${station} acknowledged`);
        }
      } finally {
        clearTimeout(guard);
        agent.close();
      }
    },
  );

  it('an entry still growing between cycles is not taken on the memory of an earlier listing', async () => {
    st = makeStation({ top: 'settle: 200ms', in: '    maxPerCycle: 1' });
    writeFileSync(join(st.exchange, 'a.xml'), cdsXml('a'));
    writeFileSync(join(st.exchange, 'b.xml'), cdsXml('b'));
    const lan = lanWith({});
    const agent = st.agent({ transportFor: lan.transportFor });
    try {
      await agent.runOnce(['import']);
      const left = readdirSync(st.exchange);
      assert.equal(left.length, 1);
      await new Promise((resolve) => setTimeout(resolve, 250));
      // the writer goes on with the file left over: other size, other time
      writeFileSync(join(st.exchange, left[0]!), cdsXml('grown', 40));
      const [r2] = await agent.runOnce(['import']);
      assert.equal(lan.seen.lists, 4, 'changed since the last listing: looked at twice');
      assert.equal(r2!.delivered, 1);
      assert.equal(sha256(read(st.inbox, left[0]!)), sha256(cdsXml('grown', 40)));
    } finally {
      agent.close();
    }
  });

  it('a stop request with entries in flight: no new one is started, those in hand are delivered, nothing lost or doubled', async () => {
    st = makeStation({ in: '    concurrency: 4' });
    const sent = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const bytes = cdsXml(`s${i}`, 20 + i);
      writeFileSync(join(st.exchange, `s${i}.xml`), bytes);
      sent.set(`s${i}.xml`, sha256(bytes));
    }
    let stop = () => {};
    // SIGTERM arrives as the third entry is opened: the fourth worker must not start
    const lan = lanWith({ onOpen: (n) => n === 3 && stop() });
    const first = st.agent({ transportFor: lan.transportFor });
    stop = () => first.requestStop();
    try {
      const [r] = await first.runOnce(['import']);
      assert.equal(r!.error, null);
      assert.equal(lan.seen.opens, 3, 'no entry started after the stop request');
      assert.equal(r!.delivered, 3);
      const inbox = filesIn(st.inbox);
      assert.equal(inbox.length, 3, `the three in hand, no temp left: ${inbox.join(', ')}`);
      for (const name of inbox) assert.equal(sha256(read(st.inbox, name)), sent.get(name), name);
      // their acknowledgements end on the stop request: still on the remote, found again next cycle
      assert.equal(readdirSync(st.exchange).length, 12);
      for (const row of first.ledger.list()) {
        assert.equal(row.state, 'delivered');
        assert.equal(row.pendingPath, null);
        assert.equal(row.ackedAt, null);
      }
    } finally {
      first.close();
    }
    const second = st.agent({ transportFor: lanWith({}).transportFor });
    try {
      const [r] = await second.runOnce(['import']);
      assert.equal(r!.error, null);
      assert.equal(r!.delivered, 9);
      assert.equal(r!.duplicates, 0, 'the three delivered before are only acknowledged');
      assert.deepEqual(filesIn(st.inbox), [...sent.keys()].sort());
      for (const [name, hash] of sent) assert.equal(sha256(read(st.inbox, name)), hash, name);
      assert.deepEqual(readdirSync(st.exchange), []);
      const rows = second.ledger.list();
      assert.equal(rows.length, 12);
      for (const row of rows) {
        assert.equal(row.state, 'delivered');
        assert.notEqual(row.ackedAt, null);
      }
    } finally {
      second.close();
    }
  });
});
