// A station's heartbeat (issue 12, agent/control/heartbeat.ts): what it says is what `status
// --json` says about the same ledger (verdict, since, package counts without receipts and
// heartbeats), no secret travels in it, `unconfirmed` counts only overdue sent packages of routes
// with confirmWithin, it survives its own wire format, and the due rule sends one when none was
// sent, when the last is `every` old, and when the clock went back.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { parseConfig, type Config } from '../agent/config.js';
import { buildHeartbeat, heartbeatDue } from '../agent/control/heartbeat.js';
import { decodeHeartbeat, encodeHeartbeat, MAX_ERROR_CHARS, MAX_HEARTBEAT_ROUTES } from '../agent/control/format.js';
import { status } from '../agent/report.js';
import { makeScrubber } from '../agent/secrets.js';
import { appVersion } from '../agent/version.js';
import { Ledger, type PackageRow } from '../store/ledger.js';

const PASSWORD = 'Pw-zq81-secret';
const T0 = Date.parse('2026-12-02T05:00:00.000Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const H = (c: string) => c.repeat(64);

let clock = T0;
const opened: Ledger[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const l of opened.splice(0)) l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ROUTES = `
  - name: export
    direction: out
    profile: share
    local: ./outbox
    remote: from-stations/AZS-017
    schedule: "*/5 * * * *"
    confirmWithin: 1h
  - name: upload
    direction: out
    profile: office-sftp
    local: ./outbox2
    remote: upload
    schedule: "*/5 * * * *"
  - name: import
    direction: in
    profile: share
    local: ./inbox
    remote: to-stations/AZS-017
    schedule: "*/5 * * * *"`;

/** A station config in a temp dir (its dataDir exists) and a real ledger in that data folder. */
function station(routes = ROUTES): { config: Config; ledger: Ledger } {
  const dir = mkdtempSync(join(tmpdir(), 'sprelay-heartbeat-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'data'));
  const yaml = `station: AZS-017
dataDir: ./data
heartbeat: { route: export, every: 15m }
profiles:
  share:
    type: lan
    root: ./share
  office-sftp:
    type: sftp
    host: sftp.example.com
    user: office
    password: ${PASSWORD}
    hostKey: any
routes:${routes}
`;
  const config = parseConfig(yaml, join(dir, 'sprelay.yaml'), {});
  const ledger = Ledger.open(join(config.dataDir, 'ledger.db'), { now: () => clock });
  opened.push(ledger);
  return { config, ledger };
}

// ---- rows as the pipelines make them ----

function queued(l: Ledger, route: string, name: string, kind: PackageRow['kind'] = 'package'): PackageRow {
  return l.insert({ route, direction: 'out', name, size: 10, sha256: H(name[0]!), state: 'queued', kind }, 'queued');
}
function sent(l: Ledger, route: string, name: string, kind: PackageRow['kind'] = 'package'): PackageRow {
  return l.transition(queued(l, route, name, kind).id, ['queued'], 'sent', {}, 'sent');
}
function failed(l: Ledger, route: string, name: string): PackageRow {
  const row = queued(l, route, name);
  return l.transition(
    row.id,
    ['queued'],
    'failed',
    { attempts: 1, nextAttemptAt: clock + 5 * MIN, lastError: 'connection timed out' },
    'failed',
  );
}

/**
 * Two hours of a station: export has sent, confirmed, queued and failed packages plus a sent
 * heartbeat and receipt row; upload a sent and a dead package and a failed last run whose error
 * names the password; import a delivered and a quarantined package.
 */
function busyStation() {
  clock = T0;
  const s = station();
  const l = s.ledger;
  sent(l, 'export', 'a.xml'); // sent at T0: overdue after confirmWithin 1h
  sent(l, 'export', 'b.xml');
  assert.deepEqual(l.confirmOut([{ name: 'b.xml', sha256: H('b') }], clock), ['confirmed']);
  sent(l, 'export', 'sprelay-heartbeat_AZS-017_20261202T050000Z_0badcafe.json', 'heartbeat');
  sent(l, 'export', 'sprelay-receipt_AZS-017_20261202T050000Z_0badf00d.json', 'receipt');
  sent(l, 'upload', 'u.xml'); // sent at T0, but upload has no confirmWithin
  clock = T0 + 30 * MIN;
  failed(l, 'export', 'e.xml');
  clock = T0 + HOUR;
  const f = failed(l, 'upload', 'f.xml');
  l.transition(f.id, ['failed'], 'dead', { lastError: 'permission denied' }, 'dead');
  l.insert(
    { route: 'import', direction: 'in', name: 'g.xml', size: 5, sha256: H('9'), state: 'delivered' },
    'delivered',
  );
  l.insert(
    { route: 'import', direction: 'in', name: 'h.xml', size: 5, sha256: H('8'), state: 'quarantined' },
    'quarantined',
  );
  l.recordRun('upload', {
    at: clock,
    ok: false,
    error: `sftp.example.com: login refused for office with password ${PASSWORD}`,
  });
  clock = T0 + 2 * HOUR;
  sent(l, 'export', 'c.xml'); // sent just now: in flight, not overdue
  queued(l, 'export', 'd.xml');
  l.recordRun('export', { at: clock, ok: true });
  l.recordRun('import', { at: clock, ok: true });
  return { ...s, now: clock, scrub: makeScrubber(s.config.secrets) };
}

describe('buildHeartbeat: what status says, for the office', () => {
  it('counts per route and state are the package rows (receipt and heartbeat rows left out), as status counts them', async () => {
    const { config, ledger, now, scrub } = busyStation();
    const hb = await buildHeartbeat(config, ledger, { now, scrub });
    const counts = Object.fromEntries(hb.routes.map((r) => [r.name, r.counts]));
    assert.deepEqual(counts, {
      export: { sent: 2, confirmed: 1, queued: 1, failed: 1 },
      upload: { sent: 1, dead: 1 },
      import: { delivered: 1, quarantined: 1 },
    });
    // the control rows are there, and are not counted
    assert.equal(ledger.list({ route: 'export', states: ['sent'] }).length, 4);
    const st = status(config, ledger, now).view.routes;
    assert.deepEqual(
      hb.routes.map((r) => r.counts),
      st.map((r) => r.counts),
    );
  });

  it('verdict, since, last run, last success are status --json’s for the same ledger', async () => {
    const { config, ledger, now, scrub } = busyStation();
    const hb = await buildHeartbeat(config, ledger, { now, scrub });
    const st = status(config, ledger, now).view;
    assert.deepEqual(
      hb.routes.map((r) => [r.name, r.verdict]),
      [
        ['export', 'attention'], // a.xml sent 2 h ago, confirmWithin 1h, no receipt
        ['upload', 'failing'], // dead package, failed last run
        ['import', 'attention'], // quarantined, not acknowledged
      ],
    );
    assert.equal(hb.station, st.station);
    assert.deepEqual(
      hb.routes.map((r) => ({
        name: r.name,
        direction: r.direction,
        profile: r.profile,
        verdict: r.verdict,
        since: r.since,
        lastRunAt: r.lastRunAt,
        lastSuccessAt: r.lastSuccessAt,
      })),
      st.routes.map((r) => ({
        name: r.name,
        direction: r.direction,
        profile: r.profile,
        verdict: r.verdict,
        since: r.since,
        lastRunAt: r.lastRunAt,
        lastSuccessAt: r.lastSuccessAt,
      })),
    );
    const upload = hb.routes[1]!;
    assert.equal(upload.since, new Date(T0 + HOUR).toISOString());
    assert.equal(upload.lastSuccessAt, null);
    assert.equal(hb.routes[0]!.lastSuccessAt, new Date(now).toISOString());
    // oldest work still to send: e.xml (failed, made at T0+30min); in-routes have none
    assert.equal(hb.routes[0]!.oldestUnsentAt, new Date(T0 + 30 * MIN).toISOString());
    assert.equal(upload.oldestUnsentAt, null, 'sent and dead are not unsent');
    assert.equal(hb.routes[2]!.oldestUnsentAt, null);
    assert.equal(hb.sentAt, new Date(now).toISOString());
    assert.deepEqual(hb.agent, {
      version: appVersion(),
      node: process.version,
      os: `${process.platform}-${process.arch}`,
      ledgerDriver: hb.agent.ledgerDriver,
    });
    assert.ok(hb.agent.ledgerDriver.startsWith(`${ledger.driver} `), hb.agent.ledgerDriver);
    assert.ok(hb.agent.ledgerDriver.length <= 200);
  });

  it('a last error that names the profile password leaves without it, and a long one is cut', async () => {
    const { config, ledger, now, scrub } = busyStation();
    assert.ok(config.secrets.includes(PASSWORD));
    // as the ledger has it (this test wrote it unredacted, as a transport that missed it would)
    assert.match(ledger.routeRun('upload').lastError!, new RegExp(PASSWORD));
    const hb = await buildHeartbeat(config, ledger, { now, scrub });
    assert.equal(hb.routes[1]!.lastError, 'sftp.example.com: login refused for office with password ***');
    const bytes = encodeHeartbeat(hb);
    assert.equal(bytes.includes(PASSWORD), false);
    // 10 000 characters with the password at the cut: scrubbed before it is cut, so no part of it
    const long = `${'x'.repeat(MAX_ERROR_CHARS - 5)}${PASSWORD}\n${'y'.repeat(9_000)}`;
    ledger.recordRun('upload', { at: now, ok: false, error: long });
    const hb2 = await buildHeartbeat(config, ledger, { now, scrub });
    const cut = hb2.routes[1]!.lastError!;
    assert.equal(cut.length, MAX_ERROR_CHARS);
    assert.ok(cut.startsWith(`${'x'.repeat(MAX_ERROR_CHARS - 5)}***`), cut.slice(480));
    assert.equal(cut.includes(PASSWORD.slice(0, 4)), false);
    assert.equal(encodeHeartbeat(hb2).includes(PASSWORD.slice(0, 4)), false);
  });

  it('unconfirmed counts only overdue sent packages of routes with confirmWithin', async () => {
    const { config, ledger, now, scrub } = busyStation();
    // export: a.xml (sent 2 h ago) overdue; c.xml in flight; b.xml confirmed; the sent heartbeat
    // and receipt rows are not packages; upload's u.xml is old but upload has no confirmWithin
    const hb = await buildHeartbeat(config, ledger, { now, scrub });
    assert.equal(hb.unconfirmed, 1);
    assert.equal(ledger.unconfirmedCount('upload', now - HOUR).n, 1, 'upload has an old sent package');
    // the office's receipt for a.xml: none left
    ledger.confirmOut([{ name: 'a.xml', sha256: H('a') }], now);
    assert.equal((await buildHeartbeat(config, ledger, { now, scrub })).unconfirmed, 0);
    // an hour later c.xml is overdue too
    const later = now + HOUR + 1;
    clock = later;
    assert.equal((await buildHeartbeat(config, ledger, { now: later, scrub })).unconfirmed, 1);
  });

  it('decodeHeartbeat(encodeHeartbeat(hb)) is the same heartbeat', async () => {
    const { config, ledger, now, scrub } = busyStation();
    const hb = await buildHeartbeat(config, ledger, { now, scrub });
    const back = decodeHeartbeat(encodeHeartbeat(hb));
    assert.ok(back.ok, back.ok ? '' : back.reason);
    assert.deepEqual(back.value, hb);
    // and an empty ledger's (nothing run yet, every time null)
    clock = T0;
    const fresh = station();
    const empty = await buildHeartbeat(fresh.config, fresh.ledger, { now: T0, scrub });
    assert.deepEqual(
      empty.routes.map((r) => [r.verdict, r.since, r.counts, r.oldestUnsentAt, r.lastRunAt, r.lastError]),
      [
        ['ok', null, {}, null, null, null],
        ['ok', null, {}, null, null, null],
        ['ok', null, {}, null, null, null],
      ],
    );
    const back2 = decodeHeartbeat(encodeHeartbeat(empty));
    assert.ok(back2.ok, back2.ok ? '' : back2.reason);
    assert.deepEqual(back2.value, empty);
  });

  it('disk: the data folder’s volume, in bytes, on this machine', async () => {
    const { config, ledger, now, scrub } = busyStation();
    const { disk } = await buildHeartbeat(config, ledger, { now, scrub });
    assert.ok(disk !== null);
    assert.ok(disk.total > 0 && disk.free > 0, JSON.stringify(disk));
    assert.ok(disk.free <= disk.total);
    assert.ok(Number.isSafeInteger(disk.free) && Number.isSafeInteger(disk.total));
  });

  it(`a config with more than ${MAX_HEARTBEAT_ROUTES} routes sends the first ${MAX_HEARTBEAT_ROUTES}; unconfirmed counts them all`, async () => {
    clock = T0;
    const many = Array.from(
      { length: MAX_HEARTBEAT_ROUTES + 1 },
      (_, i) => `
  - name: r${i}
    direction: out
    profile: share
    local: ./out${i}
    remote: r${i}
    schedule: "*/5 * * * *"
    confirmWithin: 1h`,
    ).join('');
    const { config, ledger } = station(ROUTES.replace('confirmWithin: 1h', '') + many);
    assert.equal(config.routes.length, MAX_HEARTBEAT_ROUTES + 4);
    sent(ledger, `r${MAX_HEARTBEAT_ROUTES}`, 'late.xml'); // on the last route, which is cut
    const now = T0 + 2 * HOUR;
    const hb = await buildHeartbeat(config, ledger, { now, scrub: makeScrubber(config.secrets) });
    assert.equal(hb.routes.length, MAX_HEARTBEAT_ROUTES);
    assert.deepEqual(
      hb.routes.map((r) => r.name),
      config.routes.slice(0, MAX_HEARTBEAT_ROUTES).map((r) => r.name),
    );
    assert.equal(hb.unconfirmed, 1);
    const back = decodeHeartbeat(encodeHeartbeat(hb));
    assert.ok(back.ok, back.ok ? '' : back.reason);
  });
});

describe('heartbeatDue', () => {
  const EVERY = 15 * MIN;

  function heartbeatAt(l: Ledger, at: number): void {
    clock = at;
    queued(l, 'export', `sprelay-heartbeat_AZS-017_${at}_0badcafe.json`, 'heartbeat');
  }

  it('none sent yet: due', () => {
    clock = T0;
    const { ledger } = station();
    // a package or a receipt on the route is not a heartbeat
    sent(ledger, 'export', 'a.xml');
    sent(ledger, 'export', 'sprelay-receipt_x.json', 'receipt');
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0), true);
  });

  it('fresh: not due; as old as every, or older: due; only that route’s heartbeats count', () => {
    clock = T0;
    const { ledger } = station();
    heartbeatAt(ledger, T0);
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0), false);
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0 + EVERY - 1), false);
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0 + EVERY), true);
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0 + 3 * EVERY), true);
    assert.equal(heartbeatDue(ledger, 'upload', EVERY, T0), true, 'upload has sent none');
    // the newest one counts
    heartbeatAt(ledger, T0 + EVERY);
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0 + EVERY + 1), false);
  });

  it('the clock went back: a last heartbeat more than every in the future is due', () => {
    clock = T0;
    const { ledger } = station();
    heartbeatAt(ledger, T0 + 2 * HOUR); // made while the clock was 2 h ahead
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0), true);
    // a little in the future (within every): not due, it waits at most one interval
    assert.equal(heartbeatDue(ledger, 'export', EVERY, T0 + 2 * HOUR - 5 * MIN), false);
  });
});
