// Issue 12 end to end: 20 station agents and one office agent in one test, each with its own config
// and ledger, over a lan share and over SFTP (an in-process ssh2 server). Packages go out, the office
// takes them from one folder per station, answers each with a receipt, and the stations' packages
// become `confirmed`; heartbeats reach the office's stations table. What must hold: receipts confirm
// exactly what was delivered, never more; a receipt for an unknown package, with a wrong hash or for
// another station changes nothing; the same receipt twice changes nothing; control files never reach
// any import/inbox folder; the office's per-station folders get exactly each station's bytes.
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeHeartbeat, encodeReceipt } from '../agent/control/format.js';
import { heartbeatName, receiptName } from '../agent/control/names.js';
import { main } from '../agent/cli.js';
import { cdsXml, sha256 } from './helpers/station.js';
import { filesUnder, makeFleet, onceOf, type Fleet, withLedger, outStates } from './helpers/fleet.js';

const STATIONS = 20;

/** What each station exports: (i % 3) + 1 packages, named as SERVIO names its archives. */
function exportPackages(fleet: Fleet, tag: string): Map<string, Map<string, Buffer>> {
  const made = new Map<string, Map<string, Buffer>>();
  fleet.stations.forEach((st, i) => {
    const files = new Map<string, Buffer>();
    for (let k = 0; k <= i % 3; k++) {
      const name = `GSMARCHIVE_${i + 1} ${tag}_${k}.XML`;
      const bytes = cdsXml(`${st.name}-${tag}-${k}`, 3 + k);
      writeFileSync(join(st.export, name), bytes);
      files.set(name, bytes);
    }
    made.set(st.name, files);
  });
  return made;
}

function assertNoControlFilesIn(dirs: string[]): void {
  for (const d of dirs) {
    const bad = filesUnder(d).filter((f) => /sprelay-(receipt|heartbeat)_/i.test(f));
    assert.deepEqual(bad, [], `control files in ${d}`);
  }
}

async function allStationsOnce(fleet: Fleet): Promise<void> {
  // a few at a time: 20 agents at once would only measure the machine's two cores
  for (let i = 0; i < fleet.stations.length; i += 5)
    await Promise.all(fleet.stations.slice(i, i + 5).map((st) => onceOf(st)));
}

for (const kind of ['lan', 'sftp'] as const) {
  describe(`a fleet of ${STATIONS} stations and one office over ${kind}`, () => {
    let fleet: Fleet;
    let first: Map<string, Map<string, Buffer>>;
    before(async () => {
      fleet = await makeFleet(STATIONS, kind);
    });
    after(async () => {
      await fleet.close();
    });

    it('packages go out with a heartbeat; the office delivers each into its station folder and queues one receipt per station', async () => {
      first = exportPackages(fleet, 'A');
      await allStationsOnce(fleet);
      for (const st of fleet.stations) {
        const states = outStates(st);
        assert.deepEqual(
          [...states.values()].sort(),
          [...first.get(st.name)!.keys()].map(() => 'sent'),
          st.name,
        );
        const heartbeats = withLedger(st, (l) => l.list({ route: 'export' }).filter((r) => r.kind === 'heartbeat'));
        assert.equal(heartbeats.length, 1, `${st.name}: one heartbeat`);
        assert.equal(heartbeats[0]!.state, 'sent');
      }

      const results = await onceOf(fleet.office);
      const inRoute = results.find((r) => r.route === 'from-stations')!;
      const total = [...first.values()].reduce((n, m) => n + m.size, 0);
      assert.equal(inRoute.error, null);
      assert.equal(inRoute.delivered, total);
      assert.equal(inRoute.control, STATIONS, 'one heartbeat per station taken in');
      const receipts = results.find((r) => r.route === 'receipts')!;
      assert.equal(receipts.error, null);
      assert.equal(receipts.sent, STATIONS, 'one receipt per station, sent in the same once');

      for (const st of fleet.stations) {
        // exactly this station's packages, byte for byte, in its own folder
        const inbox = fleet.office.inOf(st.name);
        const want = first.get(st.name)!;
        assert.deepEqual(filesUnder(inbox), [...want.keys()].sort(), st.name);
        for (const [name, bytes] of want) assert.equal(sha256(readFileSync(join(inbox, name))), sha256(bytes));
        // one receipt file in the station's folder, nothing left in its from-folder
        const back = filesUnder(fleet.remoteDir(`to-stations/${st.name}`));
        assert.equal(back.length, 1, `${st.name}: ${back.join(', ')}`);
        assert.match(back[0]!, /^sprelay-receipt_OFFICE_\d{8}T\d{6}Z_[0-9a-f]{8}\.json$/);
      }
      withLedger(fleet.office, (l) => {
        const stations = l.stations();
        assert.deepEqual(
          stations.map((s) => s.station),
          fleet.stations.map((s) => s.name),
        );
        for (const s of stations) {
          assert.ok(s.lastHeartbeatAt !== null, `${s.station}: heartbeat kept`);
          const hb = JSON.parse(s.heartbeatJson!) as { station: string; routes: { name: string }[] };
          assert.equal(hb.station, s.station);
          assert.deepEqual(hb.routes.map((r) => r.name).sort(), ['export', 'receipts-in']);
        }
        const rows = l.list({ route: 'from-stations' });
        assert.equal(rows.length, total);
        assert.ok(rows.every((r) => r.state === 'delivered' && r.station !== null && r.receiptId !== null));
        assert.equal(l.unreceipted('from-stations').length, 0);
        assert.equal(l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt').length, STATIONS);
      });
      assertNoControlFilesIn(fleet.stations.map((st) => fleet.office.inOf(st.name)));
    });

    it('the stations take their receipts: exactly the delivered packages become confirmed, nothing reaches an import folder', async () => {
      // one station exports again before the receipts come back: that package is sent, not delivered yet
      const late = fleet.stations[0]!;
      writeFileSync(join(late.export, 'GSMARCHIVE_1 late.XML'), cdsXml('late'));
      await allStationsOnce(fleet);
      for (const st of fleet.stations) {
        const states = outStates(st);
        for (const name of first.get(st.name)!.keys())
          assert.equal(states.get(name), 'confirmed', `${st.name} ${name}`);
        const control = withLedger(st, (l) => l.controlIn('receipts-in'));
        assert.equal(control.length, 1);
        assert.equal(control[0]!.outcome, 'applied');
        assert.equal(control[0]!.fromStation, 'OFFICE');
        assert.deepEqual(filesUnder(fleet.remoteDir(`to-stations/${st.name}`)), [], 'receipt taken off the remote');
      }
      assert.equal(outStates(late).get('GSMARCHIVE_1 late.XML'), 'sent', 'not delivered yet: not confirmed');
      assertNoControlFilesIn(fleet.stations.map((st) => st.import));
      for (const st of fleet.stations) assert.deepEqual(filesUnder(st.import), [], `${st.name}: import folder`);

      // the office takes the late one (and the second heartbeats are not due: none sent)
      const again = await onceOf(fleet.office);
      assert.equal(again.find((r) => r.route === 'from-stations')!.delivered, 1);
      assert.equal(again.find((r) => r.route === 'receipts')!.sent, 1, 'one receipt, for the one delivery');
      await onceOf(late);
      assert.equal(outStates(late).get('GSMARCHIVE_1 late.XML'), 'confirmed');
      withLedger(fleet.office, (l) => {
        assert.equal(l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt').length, STATIONS + 1);
      });
    });

    it('a receipt for an unknown package, with a wrong hash or for another station changes nothing; the same receipt twice changes nothing', async () => {
      const st = fleet.stations[1]!;
      const name = 'GSMARCHIVE_2 hostile.XML';
      const bytes = cdsXml('hostile');
      writeFileSync(join(st.export, name), bytes);
      await onceOf(st);
      assert.equal(outStates(st).get(name), 'sent');
      const folder = fleet.remoteDir(`to-stations/${st.name}`);
      const at = new Date('2026-12-02T05:00:00Z').toISOString();
      const forged = [
        // right name, wrong hash
        { to: st.name, items: [{ name, sha256: sha256('something else'), size: bytes.length, deliveredAt: at }] },
        // a package this station never sent
        { to: st.name, items: [{ name: 'GSMARCHIVE_2 never.XML', sha256: sha256(bytes), size: 1, deliveredAt: at }] },
        // right package, addressed to another station
        { to: 'ST03', items: [{ name, sha256: sha256(bytes), size: bytes.length, deliveredAt: at }] },
      ];
      forged.forEach((r, i) => {
        writeFileSync(
          join(folder, receiptName('OFFICE', Date.parse(at) + i * 1000, `0000000${i}`)),
          encodeReceipt({ from: 'OFFICE', ...r }),
        );
      });
      // and a control file that is not JSON at all
      writeFileSync(join(folder, 'sprelay-receipt_OFFICE_garbage.json'), '<?xml version="1.0"?><not-a-receipt/>');
      await onceOf(st);
      assert.equal(outStates(st).get(name), 'sent', 'nothing confirmed by a forged receipt');
      // by name: the remote lists them in its own order
      const seen = new Map(
        withLedger(st, (l) => l.controlIn('receipts-in'))
          .slice(1)
          .map((c) => [c.name.replace(/^sprelay-receipt_OFFICE_/, ''), `${c.outcome}: ${c.reason}`]),
      );
      assert.equal(seen.size, 4);
      assert.match(seen.get('20261202T050000Z_00000000.json')!, /^ignored: .*1 unknown/);
      assert.match(seen.get('20261202T050001Z_00000001.json')!, /^ignored: .*1 unknown/);
      assert.match(seen.get('20261202T050002Z_00000002.json')!, /^ignored: addressed to station ST03/);
      assert.match(seen.get('garbage.json')!, /^refused: .*not valid JSON/);
      assert.deepEqual(filesUnder(st.import), [], 'nothing reached the import folder');

      // the office delivers it; its real receipt confirms it; the same receipt again changes nothing
      await onceOf(fleet.office);
      const [real] = filesUnder(folder);
      assert.ok(real, 'the real receipt is there');
      const copy = join(fleet.office.dir, 'receipt-copy.json');
      copyFileSync(join(folder, real), copy);
      await onceOf(st);
      assert.equal(outStates(st).get(name), 'confirmed');
      const before = withLedger(st, (l) => l.list({ route: 'export' }).map((r) => [r.id, r.state, r.updatedAt]));
      copyFileSync(copy, join(folder, real));
      await onceOf(st);
      const afterIt = withLedger(st, (l) => l.list({ route: 'export' }).map((r) => [r.id, r.state, r.updatedAt]));
      // the heartbeat is not due again within the hour: the rows are exactly as they were
      assert.deepEqual(afterIt, before);
      const last = withLedger(st, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.equal(last.outcome, 'ignored');
      assert.match(last.reason!, /1 already confirmed/);
    });

    it('a receipt one format version newer (v2, with fields this agent does not know) confirms as v1 does', async () => {
      const st = fleet.stations[2]!;
      const name = 'GSMARCHIVE_3 newer.XML';
      const bytes = cdsXml('newer');
      writeFileSync(join(st.export, name), bytes);
      await onceOf(st);
      const v1 = JSON.parse(
        encodeReceipt({
          from: 'OFFICE',
          to: st.name,
          items: [{ name, sha256: sha256(bytes), size: bytes.length, deliveredAt: new Date().toISOString() }],
        }).toString('utf8'),
      ) as Record<string, unknown>;
      const v2 = { ...v1, v: 2, office: { timezone: 'Europe/Kyiv' }, signature: null };
      writeFileSync(
        join(fleet.remoteDir(`to-stations/${st.name}`), receiptName('OFFICE', Date.now(), 'abcdef01')),
        JSON.stringify(v2),
      );
      await onceOf(st);
      assert.equal(outStates(st).get(name), 'confirmed');
      const last = withLedger(st, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.equal(last.v, 2);
      assert.equal(last.outcome, 'applied');
    });

    it('at the office, a station cannot speak for another: a heartbeat or receipt naming another station is refused', async () => {
      const folder = fleet.remoteDir('from-stations/ST05');
      const now = Date.now();
      writeFileSync(
        join(folder, heartbeatName('ST06', now, '0000abcd')),
        encodeHeartbeat({
          station: 'ST06',
          sentAt: new Date(now).toISOString(),
          agent: { version: '9.9.9', node: 'v20.0.0', os: 'linux-x64', ledgerDriver: 'forged' },
          routes: [],
          unconfirmed: 0,
          disk: null,
        }),
      );
      writeFileSync(
        join(folder, receiptName('ST06', now, '0000abce')),
        encodeReceipt({
          from: 'ST06',
          to: 'OFFICE',
          items: [{ name: 'x.XML', sha256: sha256('x'), size: 1, deliveredAt: new Date(now).toISOString() }],
        }),
      );
      const before = withLedger(fleet.office, (l) => l.stations().find((x) => x.station === 'ST06')!.heartbeatJson);
      await onceOf(fleet.office);
      withLedger(fleet.office, (l) => {
        const refused = l.controlIn('from-stations').filter((c) => c.outcome === 'refused');
        assert.equal(refused.length, 2);
        for (const c of refused) assert.match(c.reason!, /station mismatch: .* ST06, it came in the folder of ST05/);
        assert.equal(l.stations().find((x) => x.station === 'ST06')!.heartbeatJson, before, 'ST06 unchanged');
      });
      assert.deepEqual(filesUnder(folder), [], 'taken off the remote');
      assertNoControlFilesIn([fleet.office.inOf('ST05'), fleet.office.inOf('ST06')]);
    });

    it('check probes the per-station routes at their parent folders and makes no folder named * or {station}', async () => {
      const lines: string[] = [];
      const io = {
        out: (t: string) => lines.push(t),
        err: (t: string) => lines.push(t),
        env: fleet.office.env,
        cwd: fleet.office.dir,
      };
      assert.equal(await main(['--config', fleet.office.configFile, 'check'], io), 0, lines.join('\n'));
      const st = fleet.stations[0]!;
      assert.equal(await main(['--config', st.configFile, 'check'], { ...io, cwd: st.dir }), 0, lines.join('\n'));
      // files and folders, at any depth
      for (const d of [
        fleet.remoteDir('from-stations'),
        fleet.remoteDir('to-stations'),
        join(fleet.office.dir, 'in'),
      ]) {
        const all = readdirSync(d, { recursive: true }).map(String);
        assert.ok(all.length > 0, d);
        assert.deepEqual(
          all.filter((f) => f.includes('*') || f.includes('{station}')),
          [],
          d,
        );
      }
    });

    it('a station folder that could not be a Windows folder (CON, a trailing dot) is left alone', async () => {
      for (const name of ['CON', 'ST99.']) {
        mkdirSync(fleet.remoteDir(`from-stations/${name}`), { recursive: true });
        writeFileSync(join(fleet.remoteDir(`from-stations/${name}`), 'GSMARCHIVE_9 x.XML'), cdsXml(name));
      }
      const r = await onceOf(fleet.office);
      assert.equal(r.find((x) => x.route === 'from-stations')!.delivered, 0);
      assert.deepEqual(
        readdirSync(join(fleet.office.dir, 'in')).filter((n) => n === 'CON' || n.startsWith('ST99')),
        [],
      );
      for (const name of ['CON', 'ST99.'])
        assert.deepEqual(filesUnder(fleet.remoteDir(`from-stations/${name}`)), ['GSMARCHIVE_9 x.XML'], 'left there');
      withLedger(fleet.office, (l) =>
        assert.deepEqual(
          l.stations().filter((x) => x.station === 'CON' || x.station === 'ST99.'),
          [],
        ),
      );
      for (const name of ['CON', 'ST99.']) rmSync(fleet.remoteDir(`from-stations/${name}`), { recursive: true });
    });

    it('fleet --json on the office says what the ledgers hold', async () => {
      // the office takes what is still on the remote (the last test's package) and answers it
      await onceOf(fleet.office);
      const lines: string[] = [];
      const io = {
        out: (t: string) => lines.push(t),
        err: () => undefined,
        env: fleet.office.env,
        cwd: fleet.office.dir,
      };
      const code = await main(['--config', fleet.office.configFile, 'fleet', '--json'], io);
      const rows = JSON.parse(lines.join('\n')) as {
        station: string;
        verdict: string;
        perDay: number[];
        unconfirmed: number | null;
        failing: number | null;
        lastHeartbeatAt: string | null;
        lastPackagePerRoute: { route: string; name: string }[];
      }[];
      assert.deepEqual(
        rows.map((r) => r.station).sort(),
        fleet.stations.map((s) => s.name),
      );
      const office = withLedger(fleet.office, (l) => ({
        rows: l.list({ route: 'from-stations' }).filter((r) => r.state === 'delivered'),
        stations: new Map(l.stations().map((s) => [s.station, s])),
      }));
      for (const st of fleet.stations) {
        const row = rows.find((r) => r.station === st.name)!;
        // every package this station sent is delivered at the office today, and counted there
        const sent = withLedger(st, (l) =>
          l.list({ route: 'export' }).filter((r) => r.kind === 'package' && r.state !== 'queued'),
        );
        const delivered = office.rows.filter((r) => r.station === st.name);
        assert.equal(delivered.length, sent.length, st.name);
        assert.equal(row.perDay.at(-1), delivered.length, `${st.name}: packages today`);
        assert.equal(
          row.perDay.reduce((a, b) => a + b, 0),
          delivered.length,
        );
        assert.equal(row.lastHeartbeatAt, new Date(office.stations.get(st.name)!.lastHeartbeatAt!).toISOString());
        // the heartbeat was sent before any receipt came back: nothing overdue, nothing failing
        assert.equal(row.unconfirmed, 0);
        assert.equal(row.failing, 0);
        assert.equal(row.verdict, 'ok', JSON.stringify(row));
        assert.deepEqual(
          row.lastPackagePerRoute.map((p) => p.route),
          ['from-stations'],
        );
      }
      assert.equal(code, 0);

      // status shows the control files apart from the packages
      const text: string[] = [];
      const sio = { ...io, out: (t: string) => text.push(t) };
      assert.equal(await main(['--config', fleet.office.configFile, 'status'], sio), 0);
      const receipts = withLedger(fleet.office, (l) => l.list({ route: 'receipts' }).length);
      assert.match(
        text.join('\n'),
        new RegExp(`route receipts \\(out, office\\): no packages yet\n.*\n  receipts: sent ${receipts}\n`),
      );
      text.length = 0;
      const st = fleet.stations[0]!;
      assert.equal(await main(['--config', st.configFile, 'status'], { ...sio, cwd: st.dir }), 0);
      assert.match(text.join('\n'), /\n {2}heartbeats: sent 1\n/);
    });
  });
}
