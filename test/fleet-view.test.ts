// The office's fleet view (agent/fleet/): the verdict rules on fixed clocks, the JSON shape, and
// the HTML page rendered in a real headless Chromium (Debian package chromium-headless-shell, or
// chromium), driven over the DevTools protocol on a pipe (no client library): every station row
// and verdict cell present and coloured, hostile station text shown as text, no console errors,
// and a screenshot kept in the OS temp folder (its path is printed). Without a Chromium the test
// fails and says what to install.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Heartbeat, HeartbeatRoute } from '../agent/control/format.js';
import {
  fleetExitCode,
  fleetRows,
  olderVersion,
  stationRow,
  type FleetRow,
  type FleetSettings,
  type StationInput,
} from '../agent/fleet/model.js';
import { fleetHtml, fleetJson } from '../agent/fleet/render.js';

const H = 3_600_000;
const NOW = Date.UTC(2026, 11, 2, 6, 0, 0);
const SETTINGS: FleetSettings = { now: NOW, officeVersion: '0.1.0' };
const HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)> & "quoted"';

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

function heartbeat(station: string, ago: number, over: Partial<Heartbeat> = {}): StationInput['heartbeat'] {
  const data: Heartbeat = {
    station,
    sentAt: new Date(NOW - ago).toISOString(),
    agent: { version: '0.1.0', node: 'v20.20.2', os: 'win32-x64', ledgerDriver: 'better-sqlite3' },
    routes: [route()],
    unconfirmed: 0,
    disk: { free: 1e10, total: 1e11 },
    ...over,
  };
  return { data, receivedAt: NOW - ago };
}

/** One package a day at 05:00 UTC for `days` days up to `lastAgo` before NOW. */
function daily(days: number, lastAgo = H, route = 'export'): StationInput['deliveries'] {
  return Array.from({ length: days }, (_, i) => ({
    route,
    name: `GSMARCHIVE_${i} 11_05_2023.XML`,
    deliveredAt: NOW - lastAgo - i * 24 * H,
  }));
}

function fleet(): StationInput[] {
  return [
    { station: 'AZS-001', heartbeat: heartbeat('AZS-001', 0.2 * H), deliveries: daily(30) },
    {
      station: 'AZS-002',
      heartbeat: heartbeat('AZS-002', 0.5 * H, {
        routes: [
          route({ verdict: 'failing', counts: { sent: 3, dead: 2, failed: 1 }, lastError: HOSTILE }),
          route({ name: 'import', direction: 'in', verdict: 'ok', lastError: 'older, lesser error' }),
        ],
      }),
      deliveries: daily(12, 30 * H),
    },
    { station: 'AZS-003', heartbeat: heartbeat('AZS-003', 30 * H), deliveries: daily(5, 31 * H) },
    { station: 'AZS-004', heartbeat: null, deliveries: [] },
    { station: 'AZS-005', heartbeat: heartbeat('AZS-005', H, { unconfirmed: 3 }), deliveries: daily(20) },
    {
      station: 'AZS-006',
      heartbeat: heartbeat('AZS-006', H, {
        agent: { version: '0.0.9', node: 'v20', os: 'win32', ledgerDriver: 'node:sqlite' },
      }),
      deliveries: [{ route: 'export', name: "Z&R 'shift' 7.xml", deliveredAt: NOW - 2 * H }],
    },
    { station: 'AZS-007', heartbeat: null, deliveries: daily(3, 50 * H) },
    { station: 'AZS-000', heartbeat: heartbeat('AZS-000', 2 * H), deliveries: daily(30, 2 * H, 'export') },
  ];
}

describe('fleet model: verdict rules (fixed clock)', () => {
  const rows = fleetRows(fleet(), SETTINGS);
  const row = (s: string): FleetRow => rows.find((r) => r.station === s)!;

  it('sorts worst first: failing, silent (longest first, never heard first), attention, ok, then by name', () => {
    assert.deepEqual(
      rows.map((r) => [r.station, r.verdict]),
      [
        ['AZS-002', 'failing'],
        ['AZS-004', 'silent'],
        ['AZS-007', 'silent'],
        ['AZS-003', 'silent'],
        ['AZS-005', 'attention'],
        ['AZS-006', 'attention'],
        ['AZS-000', 'ok'],
        ['AZS-001', 'ok'],
      ],
    );
    assert.equal(fleetExitCode(rows), 2);
    assert.equal(fleetExitCode(rows.filter((r) => r.verdict === 'ok')), 0);
    assert.equal(fleetExitCode([]), 0);
  });

  it('failing: a failing route or dead packages; the worst route error is the one shown', () => {
    const r = row('AZS-002');
    assert.equal(r.reason, 'route export is failing; 2 package(s) given up (dead)');
    assert.deepEqual(r.lastError, { route: 'export', text: HOSTILE });
    assert.equal(r.failing, 3, 'failed + dead');
    const deadOnly = stationRow(
      { station: 'X', heartbeat: heartbeat('X', H, { routes: [route({ counts: { dead: 1 } })] }), deliveries: [] },
      SETTINGS,
    );
    assert.equal(deadOnly.verdict, 'failing');
    // failing and silent at once: stays failing, the reason says both
    const both = stationRow(
      { station: 'Y', heartbeat: heartbeat('Y', 40 * H, { routes: [route({ verdict: 'failing' })] }), deliveries: [] },
      SETTINGS,
    );
    assert.deepEqual(
      [both.verdict, both.reason, both.silentForHours],
      ['failing', 'route export is failing; silent for 40 h', 40],
    );
  });

  it('silent: nothing heard for longer than silentAfter (25 h default, 2 x heartbeat every, or set)', () => {
    assert.deepEqual([row('AZS-003').silentForHours, row('AZS-003').reason], [30, 'silent for 30 h']);
    assert.deepEqual(
      [row('AZS-004').silentForHours, row('AZS-004').reason],
      [null, 'nothing ever heard from this station'],
    );
    assert.equal(row('AZS-007').silentForHours, 50);
    const quiet = (ago: number, s: Partial<FleetSettings> = {}, own?: number) =>
      stationRow(
        { station: 'Q', heartbeat: heartbeat('Q', ago), deliveries: [], ...(own ? { silentAfterMs: own } : {}) },
        { ...SETTINGS, ...s },
      ).verdict;
    assert.equal(quiet(24 * H), 'ok');
    assert.equal(quiet(25 * H), 'ok', 'exactly silentAfter is not longer than it');
    assert.equal(quiet(25 * H + 1), 'silent');
    assert.equal(quiet(2 * H, { heartbeatEveryMs: H }), 'ok');
    assert.equal(quiet(2 * H + 1, { heartbeatEveryMs: H }), 'silent');
    assert.equal(quiet(5 * H, { silentAfterMs: 4 * H }), 'silent');
    assert.equal(quiet(5 * H, { silentAfterMs: 4 * H }, 6 * H), 'ok', "the station's own setting wins");
    // a package heard recently keeps a station without heartbeats from being silent
    const pkgOnly = stationRow({ station: 'P', heartbeat: null, deliveries: daily(1, 3 * H) }, SETTINGS);
    assert.deepEqual([pkgOnly.verdict, pkgOnly.unconfirmed, pkgOnly.failing], ['ok', null, null]);
  });

  it('attention: unconfirmed, a route needing attention, an older agent, heartbeats expected but missing', () => {
    assert.equal(row('AZS-005').reason, '3 package(s) sent but not confirmed in time');
    assert.equal(row('AZS-006').reason, "agent 0.0.9 is older than the office's 0.1.0");
    const att = stationRow(
      { station: 'A', heartbeat: heartbeat('A', H, { routes: [route({ verdict: 'attention' })] }), deliveries: [] },
      SETTINGS,
    );
    assert.deepEqual([att.verdict, att.reason], ['attention', 'route export needs attention']);
    const every = { ...SETTINGS, heartbeatEveryMs: H };
    const noHb = stationRow({ station: 'N', heartbeat: null, deliveries: daily(1, H) }, every);
    assert.deepEqual([noHb.verdict, noHb.reason], ['attention', 'no heartbeat received yet']);
    const staleHb = stationRow({ station: 'S', heartbeat: heartbeat('S', 5 * H), deliveries: daily(1, H) }, every);
    assert.deepEqual([staleHb.verdict, staleHb.reason], ['attention', 'no heartbeat for 5 h']);
    assert.deepEqual([row('AZS-001').verdict, row('AZS-001').reason], ['ok', 'all routes ok']);
  });

  it('versions compare by their numbers; anything unparsable is not called older', () => {
    assert.equal(olderVersion('0.1.9', '0.1.10'), true);
    assert.equal(olderVersion('0.2.0', '0.1.10'), false);
    assert.equal(olderVersion('1.0.0-rc.1', '1.0.0'), false);
    assert.equal(olderVersion('v0.9', '1.0.0'), true);
    assert.equal(olderVersion('unknown', '1.0.0'), false);
    assert.equal(olderVersion('1.0.0', '1.0.0'), false);
  });

  it('packages per office-local day, 30 days, oldest first; last package per route', () => {
    const at = (iso: string) => Date.parse(iso);
    const deliveries = [
      { route: 'export', name: 'a.xml', deliveredAt: at('2026-12-01T23:30:00Z') }, // 01:30 on Dec 2 at UTC+2
      { route: 'export', name: 'b.xml', deliveredAt: at('2026-12-01T21:30:00Z') }, // 23:30 on Dec 1 at UTC+2
      { route: 'shifts', name: 'c.xml', deliveredAt: at('2026-11-03T12:00:00Z') }, // 30th day back: first bar
      { route: 'shifts', name: 'old.xml', deliveredAt: at('2026-11-02T12:00:00Z') }, // out of the window
    ];
    const r = stationRow({ station: 'D', heartbeat: null, deliveries }, { ...SETTINGS, utcOffsetMinutes: 120 });
    assert.equal(r.perDay.length, 30);
    assert.equal(r.perDayFrom, '2026-11-03');
    assert.deepEqual([r.perDay[0], r.perDay[28], r.perDay[29]], [1, 1, 1]);
    assert.equal(
      r.perDay.reduce((a, b) => a + b, 0),
      3,
    );
    assert.deepEqual(r.lastPackagePerRoute, [
      { route: 'export', name: 'a.xml', at: at('2026-12-01T23:30:00Z') },
      { route: 'shifts', name: 'c.xml', at: at('2026-11-03T12:00:00Z') },
    ]);
  });

  it('JSON: the documented field names, ISO times', () => {
    const json = fleetJson(rows);
    assert.equal(json.length, 8);
    for (const r of json)
      assert.deepEqual(Object.keys(r), [
        'station',
        'verdict',
        'reason',
        'silentForHours',
        'lastHeardAt',
        'lastHeartbeatAt',
        'agentVersion',
        'lastPackagePerRoute',
        'unconfirmed',
        'failing',
        'lastError',
        'perDayFrom',
        'perDay',
      ]);
    const one = json.find((r) => r.station === 'AZS-003')!;
    assert.deepEqual(one, {
      station: 'AZS-003',
      verdict: 'silent',
      reason: 'silent for 30 h',
      silentForHours: 30,
      lastHeardAt: '2026-12-01T00:00:00.000Z',
      lastHeartbeatAt: '2026-12-01T00:00:00.000Z',
      agentVersion: '0.1.0',
      lastPackagePerRoute: [{ route: 'export', name: 'GSMARCHIVE_0 11_05_2023.XML', at: '2026-11-30T23:00:00.000Z' }],
      unconfirmed: 0,
      failing: 0,
      lastError: null,
      perDayFrom: '2026-11-03',
      perDay: [...Array<number>(25).fill(0), 1, 1, 1, 1, 1, 0, 0].slice(2),
    });
    assert.equal(JSON.parse(JSON.stringify(json)).length, 8);
  });

  it('HTML: every text from a station is escaped; the column titles speak the chosen language', () => {
    for (const lang of ['en', 'ru', 'uk'] as const) {
      const html = fleetHtml(rows, { office: 'OFFICE<b>', generatedAt: NOW, lang });
      assert.equal(html.includes('<script'), false);
      assert.equal(html.includes('<img'), false);
      assert.equal(html.includes('OFFICE<b>'), false);
      assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
      assert.ok(html.includes('Z&amp;R &#39;shift&#39; 7.xml'));
      assert.ok(html.includes({ en: 'Last error', ru: 'Последняя ошибка', uk: 'Остання помилка' }[lang]));
      assert.ok(html.includes({ en: 'Silent 50 h', ru: 'Нет связи 50 ч', uk: 'Немає зв’язку 50 год' }[lang]));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Headless Chromium over the DevTools protocol (--remote-debugging-pipe: JSON messages ending in
// NUL, we write on fd 3 and read on fd 4).

const CHROMIUMS = ['chromium-headless-shell', 'chromium', 'chromium-browser'];

function findChromium(): string | null {
  const fromEnv = process.env.SPRELAY_CHROMIUM;
  for (const bin of fromEnv ? [fromEnv] : CHROMIUMS) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 0) return bin;
  }
  return null;
}

type CdpEvent = { method: string; params: Record<string, unknown>; sessionId?: string };

class Cdp {
  private next = 1;
  private buffer = '';
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly events: CdpEvent[] = [];
  private readonly waiters: { method: string; resolve: (e: CdpEvent) => void }[] = [];

  constructor(
    private readonly child: ChildProcess,
    private readonly out: Writable,
    input: Readable,
  ) {
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => {
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf('\0')) !== -1) {
        const msg = JSON.parse(this.buffer.slice(0, end)) as {
          id?: number;
          result?: unknown;
          error?: { message: string };
        } & Partial<CdpEvent>;
        this.buffer = this.buffer.slice(end + 1);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (msg.error) p?.reject(new Error(`${msg.error.message}`));
          else p?.resolve(msg.result);
        } else if (msg.method) {
          const ev = msg as CdpEvent;
          this.events.push(ev);
          for (const w of this.waiters.filter((x) => x.method === ev.method)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(ev);
          }
        }
      }
    });
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('Chromium exited'));
      this.pending.clear();
    });
  }

  /** One command, with a deadline. */
  send<T>(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer from Chromium within 30 s`));
      }, 30_000);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.out.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  }

  waitFor(method: string): Promise<CdpEvent> {
    const seen = this.events.find((e) => e.method === method);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: not within 30 s`)), 30_000);
      this.waiters.push({
        method,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /**
   * Asks the browser to close and waits for it to exit (its helpers go with it, and the profile
   * folder is no longer written); killed after 15 s.
   */
  async close(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await this.send('Browser.close').catch(() => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

interface PageFacts {
  rows: {
    station: string;
    verdictAttr: string;
    verdictText: string;
    verdictBg: string;
    charts: number;
    bars: number;
  }[];
  scripts: number;
  foreign: string[];
  errorCells: string[];
  title: string;
  summary: string;
}

const FACTS = `JSON.stringify((() => {
  const rows = [...document.querySelectorAll('#fleet tbody tr')].map((tr) => {
    const v = tr.querySelector('td.verdict');
    return {
      station: tr.querySelector('th.station')?.textContent ?? '',
      verdictAttr: tr.getAttribute('data-verdict') ?? '',
      verdictText: v?.textContent ?? '',
      verdictBg: v ? getComputedStyle(v).backgroundColor : '',
      charts: tr.querySelectorAll('td.chart svg').length,
      bars: tr.querySelectorAll('td.chart svg rect').length,
    };
  });
  const allowed = new Set(['TR', 'TH', 'TD', 'SPAN', 'DIV', 'BR', 'svg', 'rect', 'title']);
  const foreign = [...document.querySelectorAll('#fleet tbody *')].map((e) => e.tagName).filter((t) => !allowed.has(t));
  return {
    rows,
    scripts: document.querySelectorAll('script, img, iframe, object, embed, link').length,
    foreign,
    errorCells: [...document.querySelectorAll('td.err')].map((e) => e.textContent),
    title: document.title,
    summary: document.getElementById('summary')?.textContent ?? '',
  };
})())`;

describe('fleet page in headless Chromium', () => {
  it('shows every station and verdict, hostile text as text, no console errors; screenshot kept', async (t) => {
    const bin = findChromium();
    assert.ok(
      bin,
      `no Chromium here (tried ${process.env.SPRELAY_CHROMIUM ?? CHROMIUMS.join(', ')}): install the Debian package chromium-headless-shell (or set SPRELAY_CHROMIUM)`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-fleet-'));
    const page = join(dir, 'fleet.html');
    const rows = fleetRows(fleet(), SETTINGS);
    writeFileSync(page, fleetHtml(rows, { office: 'OFFICE', generatedAt: NOW, lang: 'en', utcOffsetMinutes: 120 }));
    const args = ['--headless', '--remote-debugging-pipe', '--disable-gpu', `--user-data-dir=${join(dir, 'profile')}`];
    if (process.getuid?.() === 0) args.push('--no-sandbox'); // Chromium refuses to run as root with its sandbox
    const child = spawn(bin, [...args, 'about:blank'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
    const cdp = new Cdp(child, child.stdio[3] as Writable, child.stdio[4] as Readable);
    try {
      const { targetId } = await cdp.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
      const s = <T>(m: string, p: Record<string, unknown> = {}) => cdp.send<T>(m, p, sessionId);
      await s('Runtime.enable');
      await s('Log.enable');
      await s('Page.enable');
      await s('Emulation.setDeviceMetricsOverride', { width: 1500, height: 900, deviceScaleFactor: 1, mobile: false });
      const loaded = cdp.waitFor('Page.loadEventFired');
      await s('Page.navigate', { url: pathToFileURL(page).href });
      await loaded;
      const facts = JSON.parse(
        (await s<{ result: { value: string } }>('Runtime.evaluate', { expression: FACTS, returnByValue: true })).result
          .value,
      ) as PageFacts;

      assert.equal(facts.title, 'Stations — OFFICE');
      assert.equal(facts.summary, '8 stations: 1 failing, 3 silent, 2 need attention, 2 OK');
      assert.deepEqual(
        facts.rows.map((r) => [r.station, r.verdictAttr, r.verdictText]),
        [
          ['AZS-002', 'failing', 'Failing'],
          ['AZS-004', 'silent', 'Silent'],
          ['AZS-007', 'silent', 'Silent 50 h'],
          ['AZS-003', 'silent', 'Silent 30 h'],
          ['AZS-005', 'attention', 'Needs attention'],
          ['AZS-006', 'attention', 'Needs attention'],
          ['AZS-000', 'ok', 'OK'],
          ['AZS-001', 'ok', 'OK'],
        ],
      );
      const colour: Record<string, string> = {
        failing: 'rgb(198, 40, 40)',
        silent: 'rgb(220, 220, 220)',
        attention: 'rgb(255, 232, 163)',
        ok: 'rgb(227, 244, 228)',
      };
      for (const r of facts.rows) {
        assert.equal(r.verdictBg, colour[r.verdictAttr], `${r.station} verdict colour`);
        assert.deepEqual([r.charts, r.bars], [1, 30], `${r.station}: one chart of 30 days`);
      }
      assert.equal(facts.scripts, 0, 'no script, image, frame or link element on the page');
      assert.deepEqual(facts.foreign, [], 'only the elements the renderer writes');
      assert.equal(facts.errorCells[0], `export: ${HOSTILE}`, 'hostile text shown as text');

      const errors = cdp.events.filter(
        (e) =>
          e.method === 'Runtime.exceptionThrown' ||
          (e.method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(String(e.params.type))) ||
          (e.method === 'Log.entryAdded' && (e.params.entry as { level?: string } | undefined)?.level === 'error'),
      );
      assert.deepEqual(errors, [], 'no console errors');

      const metrics = await s<{ cssContentSize: { width: number; height: number } }>('Page.getLayoutMetrics');
      const shot = await s<{ data: string }>('Page.captureScreenshot', {
        format: 'png',
        captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: metrics.cssContentSize.width, height: metrics.cssContentSize.height, scale: 1 },
      });
      const png = join(tmpdir(), 'sprelay-fleet-view.png');
      writeFileSync(png, Buffer.from(shot.data, 'base64'));
      assert.equal(Buffer.from(shot.data, 'base64').subarray(1, 4).toString('latin1'), 'PNG');
      t.diagnostic(`screenshot: ${png}`);
      console.log(`fleet page screenshot: ${png}`);
    } finally {
      await cdp.close();
      rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    }
  });
});
