// Issue 12 as it runs at the stations and the office: every agent is a `sprelay run` daemon (the
// compiled CLI, as a station runs it), each route on its own schedule (every second here). The
// office's per-station route, its receipts route and the stations' heartbeats all come from the
// scheduler, not from `once`. What must hold: every package ends `confirmed`, one heartbeat per
// station reaches the office, nothing reaches an import folder, and every daemon exits 0 on SIGTERM.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, requireBuild } from './helpers/child.js';
import { filesUnder, makeFleet, type Fleet, type FleetMember, withLedger } from './helpers/fleet.js';
import { cdsXml } from './helpers/station.js';

async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Daemon {
  name: string;
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startRun(m: FleetMember): Daemon {
  // every second (6 fields, seconds first)
  writeFileSync(
    m.configFile,
    readFileSync(m.configFile, 'utf8').replaceAll('schedule: "* * * * *"', 'schedule: "*/1 * * * * *"'),
  );
  const child = spawn(process.execPath, [BIN, '--config', m.configFile, 'run'], {
    cwd: m.dir,
    env: { ...process.env, ...m.env, SPRELAY_CRASH_AT: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { name: m.name, child, stderr: () => err, exited };
}

describe('a fleet of run daemons: 3 stations and an office, over lan', () => {
  let fleet: Fleet;
  const daemons: Daemon[] = [];
  before(async () => {
    requireBuild();
    fleet = await makeFleet(3, 'lan');
  });
  after(async () => {
    for (const d of daemons) d.child.kill('SIGKILL');
    await fleet.close();
  });

  it(
    'the scheduler carries packages out, receipts back and heartbeats in; every daemon stops cleanly',
    { timeout: 90_000 },
    async () => {
      const names = new Map<string, string>();
      for (const [i, st] of fleet.stations.entries()) {
        const name = `GSMARCHIVE_${i + 1} run.XML`;
        writeFileSync(join(st.export, name), cdsXml(`${st.name}-run`));
        names.set(st.name, name);
      }
      for (const m of [fleet.office, ...fleet.stations]) daemons.push(startRun(m));
      for (const d of daemons)
        await until(`${d.name} to start`, 20_000, () => /sprelay \S+ started for station/.test(d.stderr()));

      const confirmed = (st: Fleet['stations'][number]) =>
        withLedger(st, (l) => l.list({ route: 'export' }).find((r) => r.name === names.get(st.name))?.state) ===
        'confirmed';
      await until('every package confirmed', 60_000, () => fleet.stations.every(confirmed));
      await until('a heartbeat from every station at the office', 30_000, () =>
        withLedger(fleet.office, (l) =>
          fleet.stations.every((st) => l.stations().some((s) => s.station === st.name && s.lastHeartbeatAt !== null)),
        ),
      );

      for (const d of daemons) d.child.kill('SIGTERM');
      for (const d of daemons) assert.equal(await d.exited, 0, `${d.name}: ${d.stderr()}`);

      withLedger(fleet.office, (l) => {
        const receipts = l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt');
        assert.equal(receipts.length, 3, 'one receipt per station');
        assert.ok(receipts.every((r) => r.state === 'sent'));
      });
      for (const st of fleet.stations) {
        assert.deepEqual(filesUnder(st.import), [], `${st.name}: import folder`);
        assert.deepEqual(filesUnder(fleet.office.inOf(st.name)), [names.get(st.name)!]);
        withLedger(st, (l) => {
          const hb = l.list({ route: 'export' }).filter((r) => r.kind === 'heartbeat');
          assert.equal(hb.length, 1, `${st.name}: one heartbeat within its hour`);
        });
      }
    },
  );
});
