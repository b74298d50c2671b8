// Both pipelines end to end over the lan transport: what the contract's states and guarantees
// say must hold, checked on the files and on the ledger.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cdsXml, filesIn, makeStation, read, sha256, type Station } from './helpers/station.js';
import { routeVerdict } from '../agent/verdict.js';
import { TransportError } from '../transports/errors.js';
import { createLanTransport } from '../transports/lan/index.js';
import type { LanProfile, Sink, Transport } from '../transports/types.js';
import type { RouteConfig } from '../agent/config.js';

let st: Station | undefined;
afterEach(() => st?.cleanup());

const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC = 'Сменный отчёт 11_05_2023.xml';

describe('outbound then inbound over lan', () => {
  it('moves packages outbox -> office -> inbox with identical bytes and the contract states', async () => {
    st = makeStation();
    const files = new Map<string, Buffer>([
      [SERVIO, cdsXml('servio')],
      [CYRILLIC, cdsXml('cyr')],
      ['bundle.zip', Buffer.from('PK\x05\x06' + '\0'.repeat(18), 'binary')],
    ]);
    for (const [n, b] of files) writeFileSync(join(st.outbox, n), b);
    const agent = st.agent();
    try {
      const [out] = await agent.runOnce(['export']);
      assert.equal(out!.taken, 3);
      assert.equal(out!.sent, 3);
      assert.equal(routeVerdict(agent.ledger, agent.route('export'), Date.now()).verdict, 'ok');
      assert.deepEqual(filesIn(st.outbox), []);
      assert.deepEqual(filesIn(st.exchange), [...files.keys()].sort());
      const [inn] = await agent.runOnce(['import']);
      assert.equal(inn!.delivered, 3);
      assert.deepEqual(filesIn(st.inbox), [...files.keys()].sort());
      for (const [n, b] of files) assert.equal(sha256(read(st.inbox, n)), sha256(b), n);
      assert.deepEqual(filesIn(st.exchange), [], 'acknowledged (deleted) on the office share');
      const rows = agent.ledger.list();
      assert.deepEqual(
        rows.filter((r) => r.direction === 'out').map((r) => r.state),
        ['sent', 'sent', 'sent'],
      );
      assert.deepEqual(
        rows.filter((r) => r.direction === 'in').map((r) => r.state),
        ['delivered', 'delivered', 'delivered'],
      );
      assert.ok(rows.every((r) => r.direction === 'out' || r.ackedAt !== null));
      // afterSend: archive keeps the bytes under data/archive
      const sent = rows.find((r) => r.name === SERVIO && r.direction === 'out')!;
      assert.match(sent.storedPath!, /^archive\/export\/\d{4}-\d\d-\d\d\/\d+_GSMARCHIVE_3/);
      assert.equal(sha256(read(st.data, sent.storedPath!)), sha256(files.get(SERVIO)!));
      assert.deepEqual(
        agent.ledger.events(sent.id).map((e) => e.event),
        ['queued', 'sent'],
      );
    } finally {
      agent.close();
    }
  });

  it('records the same name and bytes seen again in the outbox as a duplicate and does not send it twice', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.outbox, SERVIO), cdsXml('a'));
      await agent.runOnce(['export']);
      rmSync(join(st.exchange, SERVIO)); // the office took it
      writeFileSync(join(st.outbox, SERVIO), cdsXml('a'));
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.duplicates, 1);
      assert.equal(r!.sent, 0);
      assert.deepEqual(filesIn(st.exchange), [], 'not sent again');
      assert.deepEqual(filesIn(st.outbox), [], 'removed from the outbox');
      const rows = agent.ledger.list({ route: 'export' });
      assert.deepEqual(
        rows.map((x) => x.state),
        ['sent', 'duplicate'],
      );
      assert.equal(rows[1]!.duplicateOf, rows[0]!.id);
      // same bytes under another name is another package
      writeFileSync(join(st.outbox, 'other name.xml'), cdsXml('a'));
      const [r2] = await agent.runOnce(['export']);
      assert.equal(r2!.sent, 1);
      assert.deepEqual(filesIn(st.exchange), ['other name.xml']);
    } finally {
      agent.close();
    }
  });

  it('afterSend: delete keeps no copy once sent', async () => {
    st = makeStation({ out: '    afterSend: delete' });
    const agent = st.agent();
    try {
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      await agent.runOnce(['export']);
      assert.equal(agent.ledger.list()[0]!.storedPath, null);
      assert.equal(existsSync(join(st.data, 'archive')), false);
      assert.deepEqual(
        filesIn(join(st.data, 'spool', 'export')).filter((n) => n !== '.tmp'),
        [],
      );
    } finally {
      agent.close();
    }
  });

  it('leaves a not well-formed XML in the outbox, reports it, and takes it once it is whole', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.outbox, 'half.xml'), '<?xml version="1.0"?><DATAPACKET><ROWDATA><ROW ID="1"/>');
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.refused, 1);
      const v = routeVerdict(agent.ledger, agent.route('export'), Date.now());
      assert.equal(v.verdict, 'attention');
      const refused = agent.ledger.list({ states: ['refused'] });
      assert.deepEqual(
        refused.map((x) => [x.name, x.state]),
        [['half.xml', 'refused']],
        'recorded while it stays in the outbox',
      );
      assert.deepEqual(v.reasons, [{ kind: 'refused', n: 1, since: refused[0]!.updatedAt, ids: [refused[0]!.id] }]);
      await agent.runOnce(['export']);
      assert.equal(agent.ledger.list({ states: ['refused'] }).length, 1, 'one row per file, not one per cycle');
      assert.deepEqual(filesIn(st.outbox), ['half.xml']);
      assert.deepEqual(filesIn(st.exchange), []);
      writeFileSync(join(st.outbox, 'half.xml'), cdsXml('whole'));
      const [r2] = await agent.runOnce(['export']);
      assert.equal(r2!.sent, 1);
      assert.equal(sha256(read(st.exchange, 'half.xml')), sha256(cdsXml('whole')));
      assert.deepEqual(agent.ledger.list({ states: ['refused'] }), [], 'taken once whole: no longer refused');
      assert.equal(routeVerdict(agent.ledger, agent.route('export'), Date.now()).verdict, 'ok');
    } finally {
      agent.close();
    }
  });

  it('refuses an outbound file over maxSize and leaves it in the outbox', async () => {
    st = makeStation({ out: '    maxSize: 1KB' });
    const agent = st.agent();
    try {
      writeFileSync(join(st.outbox, 'big.zip'), Buffer.alloc(2048));
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.refused, 1);
      assert.deepEqual(filesIn(st.outbox), ['big.zip']);
      assert.deepEqual(filesIn(st.exchange), []);
    } finally {
      agent.close();
    }
  });
});

describe('inbound rules', () => {
  it('never overwrites an unimported inbox file: waits on the remote, delivers after the import', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.inbox, 'PRICES.XML'), cdsXml('old'));
      writeFileSync(join(st.exchange, 'PRICES.XML'), cdsXml('new'));
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.waiting, 1);
      assert.equal(sha256(read(st.inbox, 'PRICES.XML')), sha256(cdsXml('old')), 'inbox file untouched');
      assert.deepEqual(filesIn(st.exchange), ['PRICES.XML'], 'left on the remote');
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.waiting, 1);
      assert.equal(agent.ledger.list({ states: ['waiting'] }).length, 1, 'one waiting row, not one per cycle');
      rmSync(join(st.inbox, 'PRICES.XML')); // SERVIO imported it
      const [r3] = await agent.runOnce(['import']);
      assert.equal(r3!.delivered, 1);
      assert.equal(sha256(read(st.inbox, 'PRICES.XML')), sha256(cdsXml('new')));
      assert.deepEqual(filesIn(st.exchange), []);
      assert.deepEqual(
        agent.ledger.list({ route: 'import' }).map((x) => x.state),
        ['delivered'],
      );
    } finally {
      agent.close();
    }
  });

  it('drops a package delivered before (same name and bytes) as a duplicate and acknowledges it', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.exchange, 'GOODS.XML'), cdsXml('g'));
      await agent.runOnce(['import']);
      rmSync(join(st.inbox, 'GOODS.XML')); // imported
      writeFileSync(join(st.exchange, 'GOODS.XML'), cdsXml('g')); // the office sends it again
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.duplicates, 1);
      assert.deepEqual(filesIn(st.inbox), [], 'nothing written');
      assert.deepEqual(filesIn(st.exchange), [], 'acknowledged');
    } finally {
      agent.close();
    }
  });

  it('skips *.part and files not matching include on the remote', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.exchange, 'x.xml.part'), 'partial');
      writeFileSync(join(st.exchange, 'readme.txt'), 'hello');
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.delivered + r!.quarantined, 0);
      assert.deepEqual(filesIn(st.exchange), ['readme.txt', 'x.xml.part']);
      assert.deepEqual(filesIn(st.inbox), []);
    } finally {
      agent.close();
    }
  });

  it('a remote file caught mid-write (not well-formed) is kept in quarantine but left for its writer to finish', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      const whole = cdsXml('whole', 50);
      writeFileSync(join(st.exchange, 'SLOW.XML'), whole.subarray(0, 120));
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.quarantined, 1);
      assert.deepEqual(filesIn(st.exchange), ['SLOW.XML'], 'not acknowledged: the writer may go on');
      writeFileSync(join(st.exchange, 'SLOW.XML'), whole); // the office's writer finishes
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.delivered, 1);
      assert.equal(sha256(read(st.inbox, 'SLOW.XML')), sha256(whole));
      assert.deepEqual(filesIn(st.exchange), []);
    } finally {
      agent.close();
    }
  });

  it('quarantines hostile names and XML, writing nothing outside the inbox', async () => {
    st = makeStation({ in: '    maxSize: 64KB' });
    const hostile: Record<string, Buffer | string> = {
      '..\\..\\evil.xml': cdsXml('t'), // a legal name on Linux, traversal on Windows
      'CON.xml': cdsXml('d'),
      'nul .XML': cdsXml('d2'),
      'COM1.tar.zip': 'PK\x05\x06' + '\0'.repeat(18),
      'a.xml:Zone.Identifier': cdsXml('ads'),
      'trailing.xml.': cdsXml('dot'),
      'trailing.xml ': cdsXml('space'),
      'ctl\u0001.xml': cdsXml('ctl'),
      'a<b>.xml': cdsXml('lt'),
      'xxe.xml': '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
      'laughs.xml':
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>',
      'broken.xml': '<DATAPACKET><ROWDATA>',
      'fake.zip': 'not a zip at all',
    };
    if (process.platform === 'win32') {
      // Names NTFS cannot hold: on Windows they are refused where they are created, so no lan
      // folder can ever list them (test/inspect.test.ts judges these names on every system).
      for (const n of ['ctl\u0001.xml', 'a<b>.xml']) {
        assert.throws(() => writeFileSync(join(st!.exchange, n), hostile[n]!), { code: 'ENOENT' }, n);
        delete hostile[n];
      }
      // Not file names on Windows but paths: `..\..\` climbs out of the folder (path.join resolves
      // it there), and `a.xml:Zone.Identifier` is the stream Zone.Identifier of a.xml on NTFS (Wine,
      // which has no streams, would make it a plain name). Neither can be listed under that name.
      assert.ok(relative(st.exchange, join(st.exchange, '..\\..\\evil.xml')).startsWith('..'));
      delete hostile['..\\..\\evil.xml'];
      delete hostile['a.xml:Zone.Identifier'];
    }
    for (const [n, b] of Object.entries(hostile)) writeFileSync(join(st.exchange, n), b);
    writeFileSync(join(st.exchange, 'huge.xml'), Buffer.alloc(100 * 1024, 0x20));
    writeFileSync(join(st.exchange, 'good.xml'), cdsXml('good'));
    const agent = st.agent();
    const before = filesIn(st.dir);
    try {
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.delivered, 1);
      assert.equal(r!.quarantined, Object.keys(hostile).length + 1);
      assert.deepEqual(filesIn(st.inbox), ['good.xml']);
      assert.deepEqual(filesIn(st.dir), before, 'nothing new next to the inbox');
      const q = agent.ledger.list({ states: ['quarantined'] });
      assert.equal(q.length, Object.keys(hostile).length + 1);
      for (const row of q) assert.ok(row.lastError && row.lastError.length > 5, `${row.name} has a reason`);
      const reason = (n: string) => q.find((x) => x.name === n)!.lastError!;
      if (process.platform !== 'win32') assert.match(reason('..\\..\\evil.xml'), /separator/);
      assert.match(reason('CON.xml'), /device/i);
      assert.match(reason('xxe.xml'), /DOCTYPE/);
      assert.match(reason('laughs.xml'), /DOCTYPE/);
      assert.match(reason('huge.xml'), /maxSize/);
      // kept bytes (all but the oversize one, which stays on the remote) are in quarantine
      const kept = q.filter((x) => x.storedPath);
      assert.equal(kept.length, Object.keys(hostile).length);
      for (const row of kept) assert.ok(row.storedPath!.startsWith('quarantine/import/'));
      // bad names are acknowledged at once; bad content waits one cycle on the remote (it may be a
      // file still being written in place) and goes when the same bytes are found again
      assert.deepEqual(
        filesIn(st.exchange),
        ['broken.xml', 'fake.zip', 'huge.xml', 'laughs.xml', 'xxe.xml'],
        'oversize and bad content left on the remote, bad names acknowledged',
      );
      // a second cycle records nothing again, and acknowledges the unchanged bad content
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.quarantined, 0);
      assert.deepEqual(filesIn(st.exchange), ['huge.xml'], 'only the oversize file stays on the remote');
      assert.equal(agent.ledger.list({ states: ['quarantined'] }).length, Object.keys(hostile).length + 1);
    } finally {
      agent.close();
    }
  });
});

/** Wraps the real lan transport with a sink that fails its first `failures` puts. */
function flakySink(failures: number, code: 'network' | 'exists' | 'auth' = 'network') {
  let calls = 0;
  const transportFor = (route: RouteConfig): Transport => {
    assert.equal(route.profile.type, 'lan');
    const real = createLanTransport(route.profile as LanProfile);
    return {
      kind: 'lan', // the real lan transport, with a flaky sink
      features: real.features,
      openSource: (endpoint, signal) => real.openSource(endpoint, signal),
      probe: (endpoint, direction, signal) => real.probe(endpoint, direction, signal),
      async openSink(endpoint, signal) {
        const sink = await real.openSink(endpoint, signal);
        const flaky: Sink = {
          async put(pkg, sig) {
            calls++;
            if (calls <= failures) throw new TransportError(code, `injected failure ${calls}`);
            return sink.put(pkg, sig);
          },
          close: () => sink.close(),
        };
        return flaky;
      },
    };
  };
  return { transportFor, calls: () => calls };
}

describe('retry, dead and resend', () => {
  it('backs off after a retryable failure, goes dead after maxAttempts, and resend revives it', async () => {
    st = makeStation({ top: 'retry: { maxAttempts: 3, baseDelay: 1m, maxDelay: 10m }' });
    let now = Date.parse('2026-11-29T10:00:00Z');
    const flaky = flakySink(3);
    const agent = st.agent({ now: () => now, transportFor: flaky.transportFor });
    try {
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      const [r1] = await agent.runOnce(['export']);
      assert.equal(r1!.failed, 1);
      let row = agent.ledger.list()[0]!;
      assert.equal(row.state, 'failed');
      assert.equal(row.attempts, 1);
      const delay1 = row.nextAttemptAt! - now;
      assert.ok(delay1 >= 30_000 && delay1 <= 60_000, `first backoff ${delay1} within [base/2, base]`);
      // not due yet: nothing is tried
      await agent.runOnce(['export']);
      assert.equal(flaky.calls(), 1);
      now += 60_000;
      await agent.runOnce(['export']);
      row = agent.ledger.get(row.id)!;
      assert.equal(row.attempts, 2);
      const delay2 = row.nextAttemptAt! - now;
      assert.ok(delay2 >= 60_000 && delay2 <= 120_000, `second backoff ${delay2} doubled`);
      now += 120_000;
      const [r3] = await agent.runOnce(['export']);
      assert.equal(r3!.dead, 1);
      row = agent.ledger.get(row.id)!;
      assert.equal(row.state, 'dead');
      assert.equal(row.attempts, 3);
      assert.match(row.lastError!, /injected failure 3/);
      now += 86_400_000;
      await agent.runOnce(['export']);
      assert.equal(flaky.calls(), 3, 'dead packages are not tried again');
      assert.deepEqual(filesIn(st.exchange), []);
      // resend revives it; the sink works now
      const { resend } = await import('../agent/maintenance.js');
      const outcome = await resend(agent.ledger, agent.spool, { failed: true });
      assert.deepEqual(
        outcome.requeued.map((x) => x.id),
        [row.id],
      );
      const [r4] = await agent.runOnce(['export']);
      assert.equal(r4!.sent, 1);
      assert.equal(sha256(read(st.exchange, 'a.xml')), sha256(cdsXml('a')));
      assert.deepEqual(
        agent.ledger.events(row.id).map((e) => e.event),
        ['queued', 'failed', 'failed', 'dead', 'resend', 'sent'],
      );
    } finally {
      agent.close();
    }
  });

  it('a permanent package error (a different file of that name exists) is dead at once', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.exchange, 'a.xml'), cdsXml('theirs'));
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('ours'));
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.dead, 1);
      assert.equal(agent.ledger.list()[0]!.state, 'dead');
      assert.equal(sha256(read(st.exchange, 'a.xml')), sha256(cdsXml('theirs')), 'theirs untouched');
    } finally {
      agent.close();
    }
  });

  it('a refused login keeps the package queued without using up attempts and reports the route error', async () => {
    // one put at a time: with more, the puts already started when the login is refused fail too
    st = makeStation({ top: 'concurrency: 1' });
    const flaky = flakySink(2, 'auth');
    const agent = st.agent({ transportFor: flaky.transportFor });
    try {
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      writeFileSync(join(st.outbox, 'b.xml'), cdsXml('b'));
      const [r] = await agent.runOnce(['export']);
      assert.match(r!.error!, /injected failure 1/);
      assert.equal(flaky.calls(), 1, 'the route stops at the first refused login');
      const rows = agent.ledger.list();
      assert.deepEqual(
        rows.map((x) => [x.state, x.attempts]),
        [
          ['queued', 0],
          ['queued', 0],
        ],
      );
      assert.match(agent.ledger.routeRun('export').lastError!, /injected failure 1/);
    } finally {
      agent.close();
    }
  });

  it('a share that is gone is a retryable route error; packages wait and go once it is back', async () => {
    st = makeStation();
    const agent = st.agent();
    try {
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      rmSync(st.office, { recursive: true });
      const [r] = await agent.runOnce(['export']);
      assert.ok(r!.error, 'route error reported');
      assert.equal(agent.ledger.list()[0]!.state, 'queued');
      mkdirSync(st.exchange, { recursive: true });
      const [r2] = await agent.runOnce(['export']);
      assert.equal(r2!.sent, 1);
      assert.deepEqual(readdirSync(st.exchange), ['a.xml']);
    } finally {
      agent.close();
    }
  });
});

describe('bundling (sinks that carry several packages per transfer)', () => {
  /** lan underneath, but the sink bundles up to 2 packages / 1 KB per bundle.put, failing the first `fail` batches. */
  function bundlingTransport(fail: number) {
    const batches: string[][] = [];
    let calls = 0;
    const transportFor = (route: RouteConfig): Transport => {
      const real = createLanTransport(route.profile as LanProfile);
      return {
        kind: 'lan', // the real lan transport, with a bundling sink
        features: { ...real.features, bundle: true },
        openSource: (e, s) => real.openSource(e, s),
        probe: (e, d, s) => real.probe(e, d, s),
        async openSink(endpoint, signal) {
          const sink = await real.openSink(endpoint, signal);
          return {
            put: (pkg, sig) => {
              batches.push([pkg.name]);
              return sink.put(pkg, sig);
            },
            bundle: {
              maxCount: 2,
              maxBytes: 1024,
              async put(pkgs, sig) {
                calls++;
                if (calls <= fail) throw new TransportError('network', `injected batch failure ${calls}`);
                batches.push(pkgs.map((p) => p.name));
                for (const p of pkgs) await sink.put(p, sig);
                return { remoteRef: `batch-${calls}`, alreadyPresent: false };
              },
            },
            close: () => sink.close(),
          } satisfies Sink;
        },
      };
    };
    return { transportFor, batches };
  }

  it('sends due packages in bundles within the count and size limits, oldest first', async () => {
    // one transfer at a time, so that the order the sink sees is the order they were sent in
    st = makeStation({ top: 'concurrency: 1' });
    const { transportFor, batches } = bundlingTransport(0);
    const agent = st.agent({ transportFor });
    try {
      const small = (n: string) => cdsXml(n, 1); // ~200 bytes
      for (const n of ['a.xml', 'b.xml', 'c.xml']) writeFileSync(join(st.outbox, n), small(n));
      writeFileSync(join(st.outbox, 'd.xml'), cdsXml('d', 30)); // over 1 KB alone
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.sent, 4);
      assert.deepEqual(batches, [['a.xml', 'b.xml'], ['c.xml'], ['d.xml']]);
      const rows = agent.ledger.list({ route: 'export' });
      assert.equal(rows[0]!.remoteRef, 'batch-1');
      assert.equal(rows[1]!.remoteRef, 'batch-1');
      assert.match(agent.ledger.events(rows[0]!.id).at(-1)!.detail!, /one transfer with 1 other package/);
      assert.deepEqual(filesIn(st.exchange), ['a.xml', 'b.xml', 'c.xml', 'd.xml']);
    } finally {
      agent.close();
    }
  });

  it('a failed bundle fails every package in it (all or nothing)', async () => {
    st = makeStation();
    const { transportFor } = bundlingTransport(1);
    const agent = st.agent({ transportFor });
    try {
      for (const n of ['a.xml', 'b.xml']) writeFileSync(join(st.outbox, n), cdsXml(n, 1));
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.failed, 2);
      assert.deepEqual(
        agent.ledger.list({ route: 'export' }).map((x) => [x.state, x.attempts]),
        [
          ['failed', 1],
          ['failed', 1],
        ],
      );
      assert.deepEqual(filesIn(st.exchange), []);
    } finally {
      agent.close();
    }
  });
});
