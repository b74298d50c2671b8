// `sprelay fleet` on an office: a real office ledger in a temp data folder, filled the way the
// office pipelines fill it (delivered in-rows with their station, heartbeats stored decoded as
// JSON), read back through the CLI (main() in-process, a real config file): the JSON's rows and
// numbers equal what went into the ledger, worst first; exit codes 2 / 0; the page written whole
// with no external reference; a missing folder for --html refused; the table in Russian without
// English verdict words.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { main } from '../agent/cli.js';
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat, type HeartbeatRoute } from '../agent/control/format.js';
import type { FleetRowJson } from '../agent/fleet/render.js';
import { appVersion } from '../agent/version.js';
import { Ledger } from '../store/ledger.js';

const MIN = 60_000;
const H = 60 * MIN;
const DAY = 24 * H;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Office {
  dir: string;
  configFile: string;
  ledger: Ledger;
  /** A delivered in-row from `station`, created at `at` (the ledger's clock). */
  deliver(station: string, route: string, name: string, at: number): void;
  /** A heartbeat as the office pipeline stores it: decoded, as JSON. */
  heartbeat(station: string, at: number, over?: Partial<Heartbeat>): void;
}

function office(lang: 'en' | 'ru' = 'en'): Office {
  const dir = mkdtempSync(join(tmpdir(), 'sprelay-fleet-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'share', 'from-stations'), { recursive: true });
  mkdirSync(join(dir, 'in'));
  mkdirSync(join(dir, 'in-ftp'));
  const configFile = join(dir, 'sprelay.yaml');
  writeFileSync(
    configFile,
    `station: OFFICE
lang: ${lang}
dataDir: ./data
profiles:
  share:
    type: lan
    root: ./share
  office-ftp: { type: ftp, host: 127.0.0.1, port: 2121, security: none, user: office, password: \${FTP_PASSWORD} }
routes:
  - { name: from-ftp, direction: in, profile: office-ftp, remote: in, local: ./in-ftp, schedule: "* * * * *" }
  - name: from-stations
    direction: in
    profile: share
    remote: from-stations
    local: ./in
    schedule: "* * * * *"
`,
  );
  let clock = 0;
  const ledger = Ledger.open(join(dir, 'data', 'ledger.sqlite'), { now: () => clock });
  return {
    dir,
    configFile,
    ledger,
    deliver(station, route, name, at) {
      clock = at;
      ledger.insert(
        {
          route,
          direction: 'in',
          name,
          size: 100,
          sha256: randomBytes(32).toString('hex'),
          state: 'delivered',
          station,
          kind: 'package',
        },
        'delivered',
      );
    },
    heartbeat(station, at, over = {}) {
      const wire = encodeHeartbeat({
        station,
        sentAt: new Date(at - MIN).toISOString(),
        agent: { version: appVersion(), node: 'v20.20.2', os: 'win32-x64', ledgerDriver: 'better-sqlite3' },
        routes: [route(), route({ name: 'import', direction: 'in' })],
        unconfirmed: 0,
        disk: { free: 1e10, total: 1e11 },
        ...over,
      });
      const decoded = decodeHeartbeat(wire);
      assert.ok(decoded.ok);
      ledger.upsertHeartbeat(station, at, JSON.stringify(decoded.value));
    },
  };
}

function route(over: Partial<HeartbeatRoute> = {}): HeartbeatRoute {
  return {
    name: 'export',
    direction: 'out',
    profile: 'office',
    verdict: 'ok',
    since: null,
    counts: { sent: 10 },
    oldestUnsentAt: null,
    lastRunAt: null,
    lastSuccessAt: null,
    lastError: null,
    ...over,
  };
}

async function fleet(o: Office, ...args: string[]) {
  let out = '';
  let err = '';
  const code = await main(['--config', o.configFile, 'fleet', ...args], {
    out: (t) => (out += t + '\n'),
    err: (t) => (err += t + '\n'),
    env: {}, // the config's FTP_PASSWORD is not set: a reading command never needs it
    cwd: o.dir,
  });
  return { code, out, err };
}

/** The office-local calendar date of `ms` (the oracle: JavaScript's own local time, not the model's). */
function localDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** Local noon `k` days before today. */
function noonDaysAgo(k: number, from: number): number {
  const d = new Date(from);
  d.setHours(12, 0, 0, 0);
  d.setDate(d.getDate() - k);
  return d.getTime();
}

/** What perDay must be for these delivery times, counted by calendar date from `from`. */
function expectedPerDay(times: number[], from: string): number[] {
  const days = new Array<number>(30).fill(0);
  const first = Date.parse(`${from}T00:00:00Z`);
  for (const t of times) {
    const i = Math.round((Date.parse(`${localDate(t)}T00:00:00Z`) - first) / DAY);
    if (i >= 0 && i < 30) days[i]! += 1;
  }
  return days;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Six stations: ST01 ok, ST02 a failing route, ST03 unconfirmed packages, ST04 silent 30 h, ST05 a
 * broken stored heartbeat (but packages arrive), ST07 last heard 40 days ago (out of the window).
 */
function mixedOffice(lang: 'en' | 'ru' = 'en') {
  const o = office(lang);
  const t0 = Date.now();
  const st01 = [
    noonDaysAgo(1, t0),
    noonDaysAgo(1, t0) + H,
    noonDaysAgo(2, t0),
    noonDaysAgo(5, t0),
    noonDaysAgo(29, t0),
  ];
  st01.forEach((t, i) => o.deliver('ST01', 'from-stations', `GSMARCHIVE_${i}.XML`, t));
  o.deliver('ST01', 'from-stations', 'OLD_35_DAYS.XML', t0 - 35 * DAY);
  o.deliver('ST01', 'cards', 'CARDS_1.XML', t0 - 2 * H);
  o.heartbeat('ST01', t0 - 10 * MIN);

  o.deliver('ST02', 'from-stations', 'ST02_A.XML', t0 - 2 * H);
  o.heartbeat('ST02', t0 - 20 * MIN, {
    routes: [
      route({ verdict: 'failing', counts: { sent: 5, failed: 2, dead: 1 }, lastError: 'ECONNREFUSED 10.0.0.5:21' }),
      route({ name: 'import', direction: 'in' }),
    ],
  });

  o.deliver('ST03', 'from-stations', 'ST03_A.XML', t0 - 3 * H);
  o.heartbeat('ST03', t0 - 5 * MIN, { unconfirmed: 4 });

  o.deliver('ST04', 'from-stations', 'ST04_A.XML', t0 - 31 * H);
  o.heartbeat('ST04', t0 - 30 * H);

  o.deliver('ST05', 'from-stations', 'ST05_A.XML', t0 - H);
  o.ledger.upsertHeartbeat('ST05', t0 - H, '{"station":"ST05","sentAt":"not a time"}');

  o.deliver('ST07', 'from-stations', 'ST07_A.XML', t0 - 40 * DAY);
  o.ledger.close();
  return { o, t0, st01 };
}

describe('sprelay fleet', () => {
  it('--json: one row per station, worst first, with the numbers the ledger holds; exit 2', async () => {
    const { o, t0, st01 } = mixedOffice();
    const r = await fleet(o, '--json');
    assert.equal(r.code, 2, r.err);
    const rows = JSON.parse(r.out) as FleetRowJson[];
    assert.deepEqual(
      rows.map((x) => [x.station, x.verdict]),
      [
        ['ST02', 'failing'],
        ['ST07', 'silent'],
        ['ST04', 'silent'],
        ['ST03', 'attention'],
        ['ST01', 'ok'],
        ['ST05', 'ok'],
      ],
    );
    const by = new Map(rows.map((x) => [x.station, x]));
    const from = rows[0]!.perDayFrom;
    // the window starts 29 local days before today (today read again: the test may cross midnight)
    assert.ok([localDate(noonDaysAgo(29, t0)), localDate(noonDaysAgo(29, Date.now()))].includes(from), from);
    for (const x of rows) assert.equal(x.perDayFrom, from);

    const s1 = by.get('ST01')!;
    assert.deepEqual(s1.perDay, expectedPerDay([...st01, t0 - 2 * H], from));
    assert.equal(
      s1.perDay.reduce((a, b) => a + b, 0),
      6,
      'the package 35 days old is not in the chart',
    );
    assert.deepEqual(s1.lastPackagePerRoute, [
      { route: 'cards', name: 'CARDS_1.XML', at: iso(t0 - 2 * H) },
      { route: 'from-stations', name: 'GSMARCHIVE_1.XML', at: iso(st01[1]!) },
    ]);
    assert.equal(s1.lastHeartbeatAt, iso(t0 - 10 * MIN));
    assert.equal(s1.agentVersion, appVersion());
    assert.deepEqual([s1.unconfirmed, s1.failing, s1.lastError, s1.reason], [0, 0, null, 'all routes ok']);

    const s2 = by.get('ST02')!;
    assert.equal(s2.failing, 3, 'failed 2 + dead 1');
    assert.deepEqual(s2.lastError, { route: 'export', text: 'ECONNREFUSED 10.0.0.5:21' });
    assert.match(s2.reason, /route export is failing/);
    assert.deepEqual(s2.lastPackagePerRoute, [{ route: 'from-stations', name: 'ST02_A.XML', at: iso(t0 - 2 * H) }]);
    assert.equal(
      s2.perDay.reduce((a, b) => a + b, 0),
      1,
    );

    const s3 = by.get('ST03')!;
    assert.equal(s3.unconfirmed, 4);
    assert.equal(s3.failing, 0);

    const s4 = by.get('ST04')!;
    assert.equal(s4.silentForHours, 30);
    assert.equal(s4.lastHeardAt, iso(t0 - 30 * H));
    assert.deepEqual(s4.lastPackagePerRoute, [{ route: 'from-stations', name: 'ST04_A.XML', at: iso(t0 - 31 * H) }]);

    // a broken stored heartbeat counts as none, and stderr says so
    const s5 = by.get('ST05')!;
    assert.deepEqual([s5.lastHeartbeatAt, s5.unconfirmed, s5.failing, s5.agentVersion], [null, null, null, null]);
    assert.equal(s5.lastHeardAt, iso(t0 - H));
    assert.match(r.err, /warning: station ST05: its stored heartbeat is not valid \(heartbeat: sentAt is not an ISO/);
    assert.doesNotMatch(r.err, /ST0[1-47]/);

    // 40 days without a word: silent that long, not "never heard"; nothing in the chart
    const s7 = by.get('ST07')!;
    assert.equal(s7.silentForHours, 40 * 24);
    assert.deepEqual(s7.lastPackagePerRoute, [{ route: 'from-stations', name: 'ST07_A.XML', at: iso(t0 - 40 * DAY) }]);
    assert.deepEqual(s7.perDay, new Array(30).fill(0));
  });

  it('exit 0 when every station is ok; an office that heard from none: 0 and a line saying so', async () => {
    const o = office();
    const t0 = Date.now();
    for (const st of ['ST01', 'ST02']) {
      o.deliver(st, 'from-stations', `${st}.XML`, t0 - H);
      o.heartbeat(st, t0 - 5 * MIN);
    }
    o.ledger.close();
    const ok = await fleet(o, '--json');
    assert.equal(ok.code, 0, ok.err);
    assert.deepEqual(
      (JSON.parse(ok.out) as FleetRowJson[]).map((x) => [x.station, x.verdict]),
      [
        ['ST01', 'ok'],
        ['ST02', 'ok'],
      ],
    );
    const text = await fleet(o);
    assert.equal(text.code, 0);
    assert.match(text.out, /^ST01 +OK +\d{4}-\d\d-\d\d \d\d:\d\d +\d{4}-\d\d-\d\d \d\d:\d\d +0 +0 +—$/m);

    const empty = office();
    empty.ledger.close();
    const none = await fleet(empty);
    assert.deepEqual([none.code, none.out, none.err], [0, 'No station has been heard from yet.\n', '']);
    const noneJson = await fleet(empty, '--json');
    assert.deepEqual([noneJson.code, JSON.parse(noneJson.out)], [0, []]);
  });

  it('--html FILE: one self-contained page with every station, replaced whole; a missing folder is refused', async () => {
    const { o } = mixedOffice();
    const folder = join(o.dir, 'www');
    mkdirSync(folder);
    const file = join(folder, 'fleet.html');
    writeFileSync(file, 'the old page');
    const r = await fleet(o, '--html', 'www/fleet.html');
    assert.equal(r.code, 2, r.err);
    assert.equal(r.out, `Page written: ${file}\n`);
    assert.deepEqual(readdirSync(folder), ['fleet.html'], 'no temp file left beside it');
    const page = readFileSync(file, 'utf8');
    assert.match(page, /^<!DOCTYPE html>/);
    assert.match(page, /<\/html>\n$/);
    for (const st of ['ST01', 'ST02', 'ST03', 'ST04', 'ST05', 'ST07'])
      assert.equal(page.split(`data-station="${st}"`).length, 2, st);
    // the inline SVG's namespace is a name, not a reference; nothing else may point anywhere
    const refs = page.replaceAll('xmlns="http://www.w3.org/2000/svg"', '');
    assert.doesNotMatch(refs, /https?:|\bsrc\s*=|\bhref\s*=|url\(|@import|<script|<link/i);

    // with --json too: the JSON on stdout, the line about the page on stderr
    const both = await fleet(o, '--json', '--html', file);
    assert.equal(both.code, 2);
    assert.equal((JSON.parse(both.out) as FleetRowJson[]).length, 6);
    assert.match(both.err, /Page written: /);

    const missing = join(o.dir, 'nope');
    const bad = await fleet(o, '--html', join(missing, 'fleet.html'));
    assert.equal(bad.code, 1);
    assert.equal(bad.out, '');
    assert.ok(bad.err.includes(`the folder ${missing} does not exist`), bad.err);
    assert.equal(existsSync(missing), false);
  });

  it('the table in Russian: every station, Russian verdicts, no English verdict word', async () => {
    const { o } = mixedOffice('ru');
    const r = await fleet(o);
    assert.equal(r.code, 2, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^Станций: 6\. Сбой: 1, нет связи: 2, требуют внимания: 1, в порядке: 2$/);
    assert.match(lines[2]!, /^Станция +Состояние +Последняя сводка/);
    assert.deepEqual(
      lines.slice(3).map((l) => l.split(/\s{2,}/)[0]),
      ['ST02', 'ST07', 'ST04', 'ST03', 'ST01', 'ST05'],
    );
    assert.match(r.out, /^ST02 +Сбой .* 3 +export: ECONNREFUSED 10\.0\.0\.5:21$/m);
    assert.match(r.out, /^ST04 +Нет связи 30 ч /m);
    assert.match(r.out, /^ST03 +Требует внимания .* 4 +0 +—$/m);
    assert.match(r.out, /^ST05 +В порядке +никогда /m);
    assert.doesNotMatch(r.out, /\b(ok|failing|silent|attention|needs|never|station|none)\b/i);
  });
});
