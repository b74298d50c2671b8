// Settle by age over FTP without MLSD (issue 11): LIST gives no usable time, so the pipeline asks
// the source for the times of the entries that have none (transports/times.ts,
// agent/inbound/settled.ts) and judges those times as it judges MLSD ones. The source reads the
// times a Unix LIST printed once MDTM of one or two entries has said the listing's zone
// (transports/ftp/listtimes.ts), and asks MDTM per entry when it cannot (a DOS listing). Against
// the in-process ftp-srv, which has MDTM and no MLSD, as vsftpd: the commands it receives are
// counted (LIST, MDTM), never timed.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config.js';
import { createLogger } from '../agent/log.js';
import { createFtpTransport } from '../transports/ftp/index.js';
import { Lanes } from '../transports/ftp/lane.js';
import { latestMoment, listClock, zoneOffset } from '../transports/ftp/listtimes.js';
import { FtpSession, mdtmTime, tlsOptionsFor } from '../transports/ftp/session.js';
import { ftpSource } from '../transports/ftp/source.js';
import { wireFor } from '../transports/ftp/wire.js';
import { TransportError } from '../transports/errors.js';
import { testEndpoint } from './helpers/endpoint.js';
import { withinBudget } from '../transports/times.js';
import type { FtpProfile } from '../transports/types.js';
import { startFtpServer, type FtpServerOptions, type TestFtpServer } from './servers/ftp-server.js';
import { cdsXml, cyclesWhileWrittenBehind, filesIn, read, sha256 } from './helpers/station.js';

const MIN = 60_000;
const T = { timeout: 60_000 };

interface FtpStation {
  server: TestFtpServer;
  /** The remote folder on the server's disk. */
  exchange: string;
  inbox: string;
  agent: Agent;
  /** How many of `directive` the server received since the station was made. */
  count(directive: string): number;
  cycle(): Promise<{ delivered: number; quarantined: number; error?: string | null }>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A station whose in-route takes /exchange from an ftp-srv (or, `perStation`, every folder of
 * /from-stations into ./inbox/{station}); `top` is extra top-level YAML.
 */
async function ftpStation(
  top: string,
  perStation = false,
  listTimes?: FtpServerOptions['listTimes'],
): Promise<FtpStation> {
  const seen: string[] = [];
  const server = await startFtpServer({ onCommand: (d) => seen.push(d), ...(listTimes ? { listTimes } : {}) });
  cleanups.push(() => server.close());
  const dir = mkdtempSync(join(tmpdir(), 'sprelay-mdtm-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const inbox = join(dir, 'inbox');
  mkdirSync(inbox);
  mkdirSync(join(dir, 'data'));
  const exchange = join(server.root, perStation ? 'from-stations' : 'exchange');
  mkdirSync(exchange);
  const yaml = `station: TEST-001
dataDir: ./data
${top}
profiles:
  office:
    type: ftp
    host: ${server.host}
    port: ${server.port}
    security: none
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
routes:
  - name: import
    direction: in
    profile: office
    remote: ${perStation ? '/from-stations/*' : '/exchange'}
    local: ${perStation ? './inbox/{station}' : './inbox'}
    schedule: "* * * * *"
`;
  const configFile = join(dir, 'sprelay.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml, configFile, { OFFICE_PASSWORD: server.password });
  const agent = new Agent(config, {
    log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
    transportFor: (route) => createFtpTransport(route.profile as FtpProfile),
  });
  cleanups.push(() => agent.close());
  return {
    server,
    exchange,
    inbox,
    agent,
    count: (d) => seen.filter((s) => s === d).length,
    cycle: async () => {
      const [r] = await agent.runOnce(['import']);
      return r!;
    },
  };
}

function writeAged(dir: string, name: string, bytes: Buffer, ageMs: number): void {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  const t = new Date(Date.now() - ageMs);
  utimesSync(p, t, t);
}

describe('ftp settle by age from MDTM (no MLSD)', () => {
  it('files older than settle + clockSkew are taken from one listing, its times read with two MDTM', T, async () => {
    // settle 10 s: a cycle that slept it would list twice (counted)
    const s = await ftpStation('settle: 10s');
    const n = 6;
    for (let i = 0; i < n; i++) writeAged(s.exchange, `old${i}.xml`, cdsXml(`old${i}`), (20 + i) * MIN);
    const r = await s.cycle();
    assert.equal(r.error ?? null, null);
    assert.equal(r.delivered, n);
    assert.equal(s.count('LIST') + s.count('MLSD'), 1, 'one listing: every time said the file has settled');
    assert.equal(s.count('MDTM'), 2, "the listing's zone from its first and last entry, not one MDTM per entry");
    assert.deepEqual(readdirSync(s.exchange), [], 'all acknowledged');
  });

  it('a listing printed 3 hours ahead of UTC (local time): old files read from it, recent ones asked', T, async () => {
    // read as UTC, these times would be hours in the future: not settled, a second listing
    const s = await ftpStation('settle: 10s', false, { aheadMinutes: 180 });
    for (let i = 0; i < 3; i++) writeAged(s.exchange, `recent${i}.xml`, cdsXml(`recent${i}`), (20 + i) * MIN);
    for (let i = 0; i < 2; i++) writeAged(s.exchange, `day${i}.xml`, cdsXml(`day${i}`), 24 * 60 * MIN);
    const r = await s.cycle();
    assert.equal(r.delivered, 5);
    assert.equal(s.count('LIST'), 1, 'settled by the times the listing printed and the MDTM asked');
    // the two newest say the zone; the third recent one (within 2 hours: a daylight-saving change
    // could put its printed time an hour off) is asked; the day-old ones are read from the listing
    assert.equal(s.count('MDTM'), 3);
  });

  it('a listing printed 3 hours behind UTC: a file 5 minutes old is not taken for 3 hours old', T, async () => {
    // read as UTC, the recent file would look settled; its zone says it is within clockSkew
    const s = await ftpStation('settle: 300ms', false, { aheadMinutes: -180 });
    writeAged(s.exchange, 'old.xml', cdsXml('old'), 30 * MIN);
    writeAged(s.exchange, 'recent.xml', cdsXml('recent'), 5 * MIN);
    const r = await s.cycle();
    assert.equal(r.delivered, 2);
    assert.equal(s.count('LIST'), 2, 'the recent file waited for the second listing');
  });

  it(
    'daylight saving ended (UK: +1 to 0): a file 5 minutes old printed an hour behind the older ones is not taken',
    T,
    async () => {
      // the older files print +1 h, the new one UTC: read with the older files' offset, the new one
      // would look 65 minutes old; a listing in local time is read an hour later, recent files asked
      const s = await ftpStation('settle: 300ms', false, {
        aheadMinutes: 0,
        before: { ms: 30 * MIN, aheadMinutes: 60 },
      });
      writeAged(s.exchange, 'a-old.xml', cdsXml('a'), 40 * MIN);
      writeAged(s.exchange, 'm-new.xml', cdsXml('m'), 5 * MIN);
      writeAged(s.exchange, 'z-old.xml', cdsXml('z'), 45 * MIN);
      const r = await s.cycle();
      assert.equal(r.delivered, 3);
      assert.equal(s.count('LIST'), 2, 'the new file waited for the second listing');
    },
  );

  it('a DOS listing (no time to read): MDTM per entry, as many as there are entries', T, async () => {
    // settle 10 s: a cycle that slept it would list twice (counted), and asking has 5 s
    const s = await ftpStation('settle: 10s', false, 'dos');
    const n = 6;
    for (let i = 0; i < n; i++) writeAged(s.exchange, `old${i}.xml`, cdsXml(`old${i}`), (20 + i) * MIN);
    const r = await s.cycle();
    assert.equal(r.error ?? null, null);
    assert.equal(r.delivered, n);
    assert.equal(s.count('LIST') + s.count('MLSD'), 1, 'one listing: every time said the file has settled');
    assert.equal(s.count('MLSD'), 0, 'ftp-srv has no MLSD: the listing is LIST, without times');
    assert.equal(s.count('MDTM'), n, 'one MDTM per entry');
    for (let i = 0; i < n; i++) assert.equal(sha256(read(s.inbox, `old${i}.xml`)), sha256(cdsXml(`old${i}`)));
    assert.deepEqual(readdirSync(s.exchange), [], 'all acknowledged');
  });

  it('one recent file among old ones: the cycle lists twice and takes all of them', T, async () => {
    const s = await ftpStation('settle: 300ms');
    writeAged(s.exchange, 'old.xml', cdsXml('old'), 30 * MIN);
    writeAged(s.exchange, 'recent.xml', cdsXml('recent'), 10 * MIN); // within clockSkew (15m)
    const r = await s.cycle();
    assert.equal(r.delivered, 2);
    assert.equal(s.count('LIST'), 2, 'a time within settle + clockSkew: the double listing');
    assert.deepEqual(filesIn(s.inbox), ['old.xml', 'recent.xml']);
  });

  it('a file still being written (its MDTM 10 minutes behind our clock) is never taken part-written', T, async () => {
    const s = await ftpStation('settle: 150ms');
    const cycles = await cyclesWhileWrittenBehind({
      path: join(s.exchange, 'slow.xml'),
      whole: cdsXml('slow', 60),
      behindMs: 10 * MIN,
      cycle: () => s.cycle(),
      delivered: () => read(s.inbox, 'slow.xml'),
    });
    assert.ok(s.count('MDTM') >= 1, 'its time was asked');
    assert.ok(s.count('LIST') >= 2 * cycles, 'and every cycle listed twice all the same');
  });

  it('"clockSkew: off" sends no MDTM and lists twice', T, async () => {
    const s = await ftpStation('settle: 200ms\nclockSkew: "off"');
    writeAged(s.exchange, 'day.xml', cdsXml('day'), 24 * 60 * MIN);
    const r = await s.cycle();
    assert.equal(r.delivered, 1);
    assert.equal(s.count('MDTM'), 0);
    assert.equal(s.count('LIST'), 2);
  });

  it('a budget too small for the entries: MDTM stops early, the rest waits for the second listing', T, async () => {
    // settle 2 ms: half of it is far less than one MDTM round trip per entry for 40 entries
    const s = await ftpStation('settle: 2ms', false, 'dos');
    const n = 40;
    for (let i = 0; i < n; i++) writeAged(s.exchange, `f${i}.xml`, cdsXml(`f${i}`), 30 * MIN);
    const r = await s.cycle();
    assert.equal(r.delivered, n);
    assert.ok(s.count('MDTM') < n, `asked ${s.count('MDTM')} of ${n} times`);
    assert.equal(s.count('LIST'), 2, 'not every entry got a time: the double listing');
  });
});

describe('ftp settle by age from MDTM on a per-station office route', () => {
  it(
    'old files in every station folder: no settle sleep, each station listed once more by its own cycle',
    T,
    async () => {
      const s = await ftpStation('settle: 10s', true);
      for (const st of ['ST01', 'ST02']) {
        mkdirSync(join(s.exchange, st));
        for (let i = 0; i < 2; i++) writeAged(join(s.exchange, st), `p${i}.xml`, cdsXml(`${st}-${i}`), 30 * MIN);
      }
      const r = await s.cycle();
      assert.equal(r.delivered, 4);
      // the folders, then each station's pre-listing and its own cycle's one listing
      assert.equal(s.count('LIST'), 1 + 2 * 2, 'no station listed twice');
      // the own cycle's listing has no times either, and is not `settle` after the pre-listing
      assert.equal(s.count('MDTM'), 2 * 4, 'each time asked by the pre-listing and by the own cycle');
      for (const st of ['ST01', 'ST02'])
        for (let i = 0; i < 2; i++)
          assert.equal(sha256(read(join(s.inbox, st), `p${i}.xml`)), sha256(cdsXml(`${st}-${i}`)));
    },
  );

  it('a recent file in one station folder: one sleep for all, after which no time is asked again', T, async () => {
    const s = await ftpStation('settle: 300ms', true);
    mkdirSync(join(s.exchange, 'ST01'));
    mkdirSync(join(s.exchange, 'ST02'));
    writeAged(join(s.exchange, 'ST01'), 'old.xml', cdsXml('old'), 30 * MIN);
    writeAged(join(s.exchange, 'ST02'), 'recent.xml', cdsXml('recent'), 5 * MIN);
    const r = await s.cycle();
    assert.equal(r.delivered, 2);
    // the pre-listing is remembered as listed (no times): after the one sleep every entry is
    // settled by that listing, so neither station's own cycle asks MDTM or lists twice
    assert.equal(s.count('MDTM'), 2, 'asked by the pre-listings only');
    assert.equal(s.count('LIST'), 1 + 2 * 2, 'no station listed twice');
  });
});

describe('ftp times on a server that takes one connection only', () => {
  it('the workers waiting for a connection get the one there is: every time asked, none left waiting', T, async () => {
    const seen: number[] = [];
    const server = await startFtpServer({
      onCommand: (d, _a, conn) => d === 'MDTM' && seen.push(conn),
      listTimes: 'dos', // no times to read: one MDTM per entry
    });
    cleanups.push(() => server.close());
    const profile: FtpProfile = {
      type: 'ftp',
      host: server.host,
      port: server.port,
      security: 'none',
      user: server.user,
      password: server.password,
      tls: { rejectUnauthorized: true },
      encoding: 'utf8',
    };
    mkdirSync(join(server.root, 'in'));
    for (let i = 0; i < 6; i++) writeAged(join(server.root, 'in'), `f${i}.xml`, cdsXml(`f${i}`), 30 * MIN);
    let refused = 0;
    const lanes = new Lanes(new FtpSession(profile, wireFor('utf8'), 5000, tlsOptionsFor(profile)), 4, () => {
      refused++;
      return Promise.reject(new TransportError('unavailable', '421 too many connections'));
    });
    cleanups.push(() => lanes.close());
    const src = ftpSource(lanes, testEndpoint('mdtm', '/in'), '/in', null);
    const entries = await src.list(AbortSignal.timeout(10_000));
    // a worker left waiting for the one connection would hold this until the signal fires
    const times = await src.times(entries, 60_000, 4, AbortSignal.timeout(10_000));
    assert.equal(times.size, 6);
    assert.ok(refused >= 1 && refused <= 3, `each of the other workers tried once at most: ${refused}`);
    assert.deepEqual(new Set(seen), new Set([1]), 'all on the one connection');
    for (const e of entries) assert.ok(Date.now() - times.get(e.ref)!.getTime() >= 30 * MIN - 2000, e.name);
  });
});

describe('MDTM replies and the budget', () => {
  it('an MDTM reply is read as UTC, with or without a fraction; anything else is no time', () => {
    assert.equal(mdtmTime('213 20261202131800')?.toISOString(), '2026-12-02T13:18:00.000Z');
    assert.equal(mdtmTime('213 20261202131800.5')?.toISOString(), '2026-12-02T13:18:00.500Z');
    assert.equal(mdtmTime('213 20261202131800.123456')?.toISOString(), '2026-12-02T13:18:00.123Z');
    for (const bad of [
      '213 2026120213180', // a digit short
      '213 20261302131800', // month 13
      '213 20260231120000', // 31 February
      '213 20261202131800Z',
      '213 File status',
      '550 No such file',
      '213 00501202131800', // year 50 (Date.UTC would take it for 1950)
    ])
      assert.equal(mdtmTime(bad), null, bad);
  });

  it('withinBudget stops once spent + average x left would pass the budget', async () => {
    let clock = 0;
    const asked: number[] = [];
    // each question costs 10 ms: eight would take 80 ms, more than the 50 there are
    const done = await withinBudget(
      [0, 1, 2, 3, 4, 5, 6, 7],
      50,
      async (i) => {
        asked.push(i);
        clock += 10;
      },
      { now: () => clock },
    );
    // after the first (10 ms spent, 7 left: 80 ms estimated) the whole would not fit: stop
    assert.equal(done, 1);
    assert.deepEqual(asked, [0]);
    const all = await withinBudget([0, 1, 2], 50, async () => void (clock += 10), { now: () => clock });
    assert.equal(all, 3, '30 ms for three fits in 50');
    assert.equal(
      await withinBudget([0], 0, async () => void (clock += 10), { now: () => clock }),
      0,
      'no budget, no question',
    );
    // a connection of 30 ms first, then 5 ms a question: 70 ms for eight, within 80; were the 30
    // ms taken for part of the first question's time, the estimate would stop after one
    const eight = await withinBudget([0, 1, 2, 3, 4, 5, 6, 7], 80, async () => void (clock += 5), {
      begin: async () => void (clock += 30),
      now: () => clock,
    });
    assert.equal(eight, 8);
  });

  it('withinBudget does not wait for a worker still opening its connection once the questions are over', async () => {
    let ended = 0;
    const asked = await withinBudget([0, 1, 2, 3, 4], 1e9, async () => undefined, {
      width: 2,
      // lane 1's connection never opens (a slow link); lane 0 asks all five meanwhile
      begin: (lane) => (lane === 1 ? new Promise<void>(() => undefined) : Promise.resolve()),
      end: () => void ended++,
    });
    assert.equal(asked, 5);
    assert.equal(ended, 1, 'the worker that asked has ended; the other has not begun');
  });

  it('withinBudget: the slow answers while connections open are neither judged alone nor kept in the pace', async () => {
    let clock = 0;
    let lane0Answers = 0;
    let bothBegun = false;
    let opened!: () => void;
    const secondLane = new Promise<void>((resolve) => (opened = resolve));
    // lane 0 answers in 10 ms while lane 1 opens (the handshakes take the CPU), then both in 1 ms
    const asked = await withinBudget(
      Array.from({ length: 200 }, (_, i) => i),
      400,
      async (_i, lane) => {
        clock += bothBegun ? 1 : 10;
        if (lane === 0 && ++lane0Answers === 3) opened();
      },
      {
        width: 2,
        begin: async (lane) => {
          if (lane === 1) {
            await secondLane;
            bothBegun = true;
          }
        },
        now: () => clock,
      },
    );
    // judged on the first answers (10 ms each, 200 left: 2 s) it would stop; at 1 ms a question
    // the 200 take about 230 ms
    assert.equal(asked, 200);
  });

  it('withinBudget with width 3: at most three in flight, each lane one after the other; a failure stops all', async () => {
    let inFlight = 0;
    let most = 0;
    const lanesSeen = new Set<number>();
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    const asked = await withinBudget(
      Array.from({ length: 12 }, (_, i) => i),
      1e9,
      async (_i, lane) => {
        lanesSeen.add(lane);
        most = Math.max(most, ++inFlight);
        await tick();
        inFlight--;
      },
      { width: 3 },
    );
    assert.equal(asked, 12);
    assert.equal(most, 3);
    assert.deepEqual([...lanesSeen].sort(), [0, 1, 2]);
    const started: number[] = [];
    await assert.rejects(
      withinBudget(
        Array.from({ length: 12 }, (_, i) => i),
        1e9,
        async (i) => {
          started.push(i);
          await tick();
          if (i === 1) throw new Error('lost');
        },
        { width: 3 },
      ),
      /lost/,
    );
    assert.ok(started.length <= 5, `no question started after the failure: ${started.join(',')}`);
  });
});

describe('LIST times made usable by an MDTM (listtimes.ts)', () => {
  const at = (iso: string) => new Date(iso);

  it('reads `Mon DD HH:MM` and `Mon DD  YYYY`; anything else is no time', () => {
    assert.deepEqual(listClock('Dec 02 16:13'), { month: 11, day: 2, hour: 16, minute: 13 });
    assert.deepEqual(listClock('Jun  2  2025'), { month: 5, day: 2, year: 2025 });
    for (const raw of ['12-02-26 04:13PM', 'Dec 02 25:13', 'Foo 02 16:13', 'Dec 32 16:13', '', undefined])
      assert.equal(listClock(raw), null, String(raw));
  });

  it("the listing's zone is whole quarter hours between its minute and the MDTM's; else none", () => {
    const c = listClock('Dec 02 19:43')!;
    assert.equal(zoneOffset(c, at('2026-12-02T16:13:59.900Z')), 3.5 * 3_600_000);
    assert.equal(zoneOffset(listClock('Dec 02 16:13')!, at('2026-12-02T16:13:00Z')), 0);
    // the file changed between the LIST and the MDTM: not a zone
    assert.equal(zoneOffset(listClock('Dec 02 16:13')!, at('2026-12-02T16:20:00Z')), null);
    // more than any zone apart, or only a date printed
    assert.equal(zoneOffset(listClock('Dec 03 16:13')!, at('2026-12-02T16:13:00Z')), null);
    assert.equal(zoneOffset(listClock('Dec 02  2026')!, at('2026-12-02T16:13:00Z')), null);
    // across New Year: the printed date is in the MDTM's next year
    assert.equal(zoneOffset(listClock('Jan 01 02:00')!, at('2026-12-31T23:00:00Z')), 3 * 3_600_000);
  });

  it('each time is the latest moment it can stand for: the end of its minute, or of its day', () => {
    const now = at('2026-12-02T17:00:00Z').getTime();
    assert.equal(latestMoment(listClock('Dec 02 16:13')!, 0, now)!.toISOString(), '2026-12-02T16:13:59.999Z');
    assert.equal(
      latestMoment(listClock('Dec 02 19:13')!, 3 * 3_600_000, now)!.toISOString(),
      '2026-12-02T16:13:59.999Z',
    );
    assert.equal(latestMoment(listClock('Jun 02  2025')!, 0, now)!.toISOString(), '2025-06-02T23:59:59.999Z');
    // the year nearest our clock: last December seen in January, a server a day ahead in this year
    const jan = at('2027-01-01T00:30:00Z').getTime();
    assert.equal(latestMoment(listClock('Dec 31 23:50')!, 0, jan)!.getUTCFullYear(), 2026);
    assert.equal(latestMoment(listClock('Dec 03 16:13')!, 0, now)!.getUTCFullYear(), 2026);
    // no year near ours has that date: no time (and no evidence)
    assert.equal(latestMoment(listClock('Feb 29 10:00')!, 0, now), undefined);
  });
});
