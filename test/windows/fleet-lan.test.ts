// Windows only (issue 12 where stations live): three station agents and an office agent over a lan
// folder, Windows paths, the office's `local: ./in/{station}` made per station on demand. Packages
// out, one receipt per station back, every package confirmed; no control file in any import folder
// or office inbox;
// `fleet --json` says every station is ok and exits 0.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { main } from '../../agent/cli.js';
import { Ledger } from '../../store/ledger.js';
import { filesUnder, makeFleet, onceOf, type Fleet } from '../helpers/fleet.js';
import { cdsXml, sha256 } from '../helpers/station.js';
import { requireWindows } from './win.js';

let fleet: Fleet;
before(async () => {
  requireWindows();
  fleet = await makeFleet(3, 'lan');
});
after(async () => {
  await fleet.close();
});

it('packages go to the office, receipts come back, every package ends confirmed (Windows paths)', async () => {
  const sent = new Map<string, string>();
  for (const [i, st] of fleet.stations.entries()) {
    const name = `GSMARCHIVE_${i + 1} 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML`;
    const bytes = cdsXml(`${st.name}-win`);
    writeFileSync(join(st.export, name), bytes);
    sent.set(st.name, name);
    await onceOf(st);
  }
  const office = await onceOf(fleet.office);
  assert.equal(office.find((r) => r.route === 'from-stations')!.delivered, 3, JSON.stringify(office));
  assert.equal(office.find((r) => r.route === 'receipts')!.sent, 3, JSON.stringify(office));
  for (const st of fleet.stations) {
    assert.deepEqual(filesUnder(fleet.office.inOf(st.name)), [sent.get(st.name)!]);
    assert.ok(fleet.office.inOf(st.name).includes('\\'), 'a Windows path');
  }
  for (const st of fleet.stations) await onceOf(st);
  for (const st of fleet.stations) {
    const l = Ledger.open(join(st.dir, 'data', 'ledger.sqlite'));
    try {
      const row = l.list({ route: 'export' }).find((r) => r.name === sent.get(st.name))!;
      assert.equal(row.state, 'confirmed', st.name);
      const receipt = l.controlIn('receipts-in')[0]!;
      assert.equal(receipt.outcome, 'applied');
      assert.match(receipt.sha256!, /^[0-9a-f]{64}$/);
      assert.notEqual(receipt.sha256, sha256(''));
    } finally {
      l.close();
    }
    assert.deepEqual(filesUnder(st.import), [], `${st.name}: nothing in the import folder`);
  }
  const lines: string[] = [];
  const io = { out: (t: string) => lines.push(t), err: () => undefined, env: {}, cwd: fleet.office.dir };
  assert.equal(await main(['--config', fleet.office.configFile, 'fleet', '--json'], io), 0, lines.join('\n'));
  const rows = JSON.parse(lines.join('\n')) as { station: string; verdict: string }[];
  assert.deepEqual(
    rows.map((r) => `${r.station} ${r.verdict}`),
    ['ST01 ok', 'ST02 ok', 'ST03 ok'],
  );
});
