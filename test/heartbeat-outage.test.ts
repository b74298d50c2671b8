// Heartbeats across an outage (issue 12). A station whose office is unreachable for days queues a
// heartbeat every interval: each new one replaces the one not sent yet (a heartbeat is a snapshot),
// so the outage ends with one heartbeat sent, not one per hour, and the packages are untouched. At
// the office, heartbeats that arrive together keep the newest by the time the station made it,
// whatever order they are read in.
import { strict as assert } from 'node:assert';
import { readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { encodeHeartbeat } from '../agent/control/format.js';
import { heartbeatName } from '../agent/control/names.js';
import { cdsXml, makeStation, type Station } from './helpers/station.js';

const MIN = 60_000;
let st: Station | undefined;
afterEach(() => st?.cleanup());

async function onceAt(s: Station, t: number) {
  const agent = s.agent({ now: () => t });
  try {
    return await agent.runOnce(['export']);
  } finally {
    agent.close();
  }
}

describe('heartbeats across an outage', () => {
  it('one heartbeat waits while the office is unreachable, the newest; packages keep theirs', async () => {
    st = makeStation({ top: 'heartbeat: { route: export, every: 1m }' });
    writeFileSync(join(st.outbox, 'GSMARCHIVE_1 a.XML'), cdsXml('a'));
    const office = st.office;
    renameSync(office, `${office}-away`); // the share is gone
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      const [r] = await onceAt(st, t0 + i * 2 * MIN);
      assert.notEqual(r!.error, null, 'the office is unreachable');
    }
    const agent = st.agent();
    try {
      const rows = agent.ledger.list({ route: 'export' });
      const heartbeats = rows.filter((r) => r.kind === 'heartbeat');
      assert.equal(heartbeats.length, 1, 'one heartbeat waits, not five');
      assert.equal(heartbeats[0]!.state, 'queued');
      assert.equal(heartbeats[0]!.createdAt, t0 + 8 * MIN, 'the newest one');
      assert.deepEqual(
        rows.filter((r) => r.kind === 'package').map((r) => r.state),
        ['queued'],
        'the package is still there to send',
      );
      // its bytes are the only heartbeat left in the spool
      const spooled = readdirSync(join(st.data, 'spool', 'export')).filter((n) => !n.startsWith('.'));
      assert.equal(spooled.length, 2, spooled.join(', '));
    } finally {
      agent.close();
    }
    renameSync(`${office}-away`, office);
    const [r] = await onceAt(st, t0 + 9 * MIN);
    assert.equal(r!.error, null);
    assert.equal(r!.sent, 2, 'the package and one heartbeat');
    const there = readdirSync(st.exchange);
    assert.equal(there.filter((n) => n.startsWith('sprelay-heartbeat_')).length, 1, there.join(', '));
    assert.ok(there.includes('GSMARCHIVE_1 a.XML'));
  });

  it('at the office, heartbeats read in any order leave the newest the station made', async () => {
    st = makeStation();
    const now = Date.now();
    const hb = (minutesAgo: number, version: string) =>
      encodeHeartbeat({
        station: 'AZS-001',
        sentAt: new Date(now - minutesAgo * MIN).toISOString(),
        agent: { version, node: 'v20.0.0', os: 'win32-x64', ledgerDriver: 'better-sqlite3' },
        routes: [],
        unconfirmed: 0,
        disk: null,
      });
    // the newest written first, so a listing in write order reads it first
    writeFileSync(join(st.exchange, heartbeatName('AZS-001', now - 1 * MIN, '00000001')), hb(1, '0.3.0'));
    writeFileSync(join(st.exchange, heartbeatName('AZS-001', now - 90 * MIN, '00000002')), hb(90, '0.1.0'));
    writeFileSync(join(st.exchange, heartbeatName('AZS-001', now - 30 * MIN, '00000003')), hb(30, '0.2.0'));
    const agent = st.agent();
    try {
      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.control, 3);
      assert.equal(r!.delivered, 0);
      const [row] = agent.ledger.stations();
      assert.equal(row!.station, 'AZS-001');
      assert.equal((JSON.parse(row!.heartbeatJson!) as { agent: { version: string } }).agent.version, '0.3.0');
      assert.equal(row!.lastHeartbeatAt, now - 1 * MIN, 'kept by the time the station made it');
    } finally {
      agent.close();
    }
    assert.deepEqual(readdirSync(st.inbox), [], 'never in the inbox');
  });
});
