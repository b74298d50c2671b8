// kill -9 of the office agent between delivery and receipt (issue 12): the deliveries are committed,
// the receipt not made yet. The next run makes the receipt, exactly one per station, and the
// stations' packages become confirmed: never a second receipt, never a package confirmed twice.
// Also killed inside the delivery of a station's package on the per-station route (the station-scoped
// recovery): the next run finishes it, each package lands once in its station's folder, bytes identical.
// The office runs as `sprelay once` in a child process (the compiled CLI: npm run test:stress builds).
import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killAll, requireBuild, runAgent } from '../helpers/child.js';
import { filesUnder, makeFleet, onceOf, type Fleet, withLedger } from '../helpers/fleet.js';
import { cdsXml, sha256 } from '../helpers/station.js';

for (const kind of ['lan', 'sftp'] as const) {
  describe(`office killed between delivery and receipt (${kind})`, () => {
    let fleet: Fleet;
    before(async () => {
      requireBuild();
      fleet = await makeFleet(4, kind);
    });
    after(async () => {
      await killAll();
      await fleet.close();
    });

    for (const point of ['in:after-ledger-delivered', 'in:after-rename', 'in:before-ack'] as const) {
      it(`killed at ${point} at the third station on the per-station route: each package once in its folder, one receipt each`, async () => {
        const tag = point.replace(/\W/g, '');
        const sent = new Map<string, Buffer>();
        for (const [i, st] of fleet.stations.entries()) {
          const bytes = cdsXml(`${st.name}-${tag}`);
          writeFileSync(join(st.export, `GSMARCHIVE_${i + 1} ${tag}.XML`), bytes);
          sent.set(st.name, bytes);
        }
        for (const st of fleet.stations) await onceOf(st);
        // stations one after the other, in name order: killed at the third station's delivery, the
        // next run meets that station's half-done delivery only after ST01's and ST02's cycles, which
        // must leave it alone (recovery is per station)
        const yaml = readFileSync(fleet.office.configFile, 'utf8');
        if (!yaml.includes('concurrency: 1'))
          writeFileSync(
            fleet.office.configFile,
            yaml.replace(/(remote: \/?from-stations\/\*\n)/, '$1    concurrency: 1\n'),
          );
        const office = { cwd: fleet.office.dir, configFile: fleet.office.configFile, env: fleet.office.env };
        const killed = await runAgent({ ...office, args: ['once'], crashAt: `${point}@3` });
        assert.ok(killed.signal === 'SIGKILL' || /SPRELAY_CRASH_AT/.test(killed.stderr), killed.stderr);
        const again = await runAgent({ ...office, args: ['once'] });
        assert.equal(again.code, 0, again.stdout + again.stderr);
        for (const [i, st] of fleet.stations.entries()) {
          const name = `GSMARCHIVE_${i + 1} ${tag}.XML`;
          const inbox = fleet.office.inOf(st.name);
          assert.deepEqual(
            filesUnder(inbox).filter((f) => f.includes(tag)),
            [name],
            `${st.name}: once in its own folder`,
          );
          assert.equal(sha256(readFileSync(join(inbox, name))), sha256(sent.get(st.name)!));
          assert.deepEqual(
            filesUnder(inbox).filter((f) => f.startsWith('.sprelay-')),
            [],
            'no temp left',
          );
          assert.deepEqual(filesUnder(fleet.remoteDir(`from-stations/${st.name}`)), [], 'acknowledged');
        }
        withLedger(fleet.office, (l) => {
          const rows = l.list({ route: 'from-stations' }).filter((r) => r.name.includes(tag));
          assert.equal(rows.filter((r) => r.state === 'delivered').length, fleet.stations.length, JSON.stringify(rows));
          assert.ok(
            rows.every(
              (r) => r.station !== null && r.name.startsWith(`GSMARCHIVE_${r.station!.slice(2).replace(/^0/, '')} `),
            ),
          );
          assert.equal(l.unreceipted('from-stations').length, 0);
        });
        for (const st of fleet.stations) await onceOf(st);
        for (const [i, st] of fleet.stations.entries())
          withLedger(st, (l) => {
            const row = l.list({ route: 'export' }).find((r) => r.name === `GSMARCHIVE_${i + 1} ${tag}.XML`)!;
            assert.equal(row.state, 'confirmed', st.name);
          });
      });
    }

    for (const nth of [1, 3]) {
      it(`killed at the ${nth === 1 ? 'first' : 'third'} receipt: the next run makes each missing receipt once`, async () => {
        const tag = `k${nth}`;
        for (const [i, st] of fleet.stations.entries())
          writeFileSync(join(st.export, `GSMARCHIVE_${i + 1} ${tag}.XML`), cdsXml(`${st.name}-${tag}`));
        for (const st of fleet.stations) await onceOf(st);
        const receiptsBefore = withLedger(fleet.office, (l) => l.list({ route: 'receipts' }).length);

        const office = { cwd: fleet.office.dir, configFile: fleet.office.configFile, env: fleet.office.env };
        const killed = await runAgent({ ...office, args: ['once'], crashAt: `office:before-receipt@${nth}` });
        assert.equal(
          killed.signal ?? (/SPRELAY_CRASH_AT/.test(killed.stderr) ? 'SIGKILL' : null),
          'SIGKILL',
          killed.stderr,
        );
        withLedger(fleet.office, (l) => {
          const delivered = l.list({ route: 'from-stations' }).filter((r) => r.name.endsWith(` ${tag}.XML`));
          assert.equal(delivered.length, fleet.stations.length, 'every delivery committed before the kill');
          assert.equal(l.unreceipted('from-stations').length, fleet.stations.length - (nth - 1));
        });

        const again = await runAgent({ ...office, args: ['once'] });
        assert.equal(again.code, 0, again.stdout + again.stderr);
        withLedger(fleet.office, (l) => {
          assert.equal(l.unreceipted('from-stations').length, 0);
          const receipts = l.list({ route: 'receipts' }).slice(receiptsBefore);
          assert.equal(receipts.length, fleet.stations.length, 'one receipt per station, never two');
          assert.ok(receipts.every((r) => r.kind === 'receipt' && r.state === 'sent'));
          assert.deepEqual(
            receipts.map((r) => r.station).sort(),
            fleet.stations.map((s) => s.name),
          );
        });
        for (const st of fleet.stations) await onceOf(st);
        for (const [i, st] of fleet.stations.entries()) {
          withLedger(st, (l) => {
            const row = l.list({ route: 'export' }).find((r) => r.name === `GSMARCHIVE_${i + 1} ${tag}.XML`)!;
            assert.equal(row.state, 'confirmed', st.name);
            assert.equal(l.events(row.id).filter((e) => e.event === 'confirmed').length, 1);
            const control = l.controlIn('receipts-in').filter((c) => c.outcome !== 'refused');
            assert.ok(
              control.every((c) => c.outcome === 'applied'),
              JSON.stringify(control),
            );
          });
          assert.deepEqual(filesUnder(st.import), []);
        }
      });
    }
  });
}
