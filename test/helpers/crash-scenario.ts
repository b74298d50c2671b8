// Guarantees 2 and 3 under kill -9, over any transport: the agent runs as a real child process
// (`node bin/sprelay.js` from dist/) and is SIGKILLed, first at random instants while `sprelay run`
// works a stream of packages the station keeps dropping into the outbox, then at every named crash
// point of agent/crash-points.ts. Afterwards plain `once` cycles must bring every package into the
// inbox exactly once, byte-identical, with a ledger that says so. Between kills a simulated SERVIO
// import takes what arrived out of the inbox, so a second delivery of a package cannot hide behind
// the first copy still being there (the inbox never overwrites).
//
// The station's export route writes into the office folder and its import route reads the same
// folder back: that folder (a LAN share, or the root of an FTP/SFTP server the test runs in this
// process) is the office, and must be empty at the end. A `TransportFixture` says how the office is
// reached; test/crash*.test.ts register the scenario once per transport.
//
// Reproduce a failure with SPRELAY_CRASH_SEED=<seed printed in the diagnostics>.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { cp1251, EMPTY_ZIP, storedZip } from '../../scripts/samples.mjs';
import { openSqlite } from '../../store/sqlite.js';
import { CRASH_POINTS } from '../../agent/crash-points.js';
import { killAll, liveChildren, requireBuild, runAgent, startAgent } from './child.js';

/** Running as Windows' node.exe under Wine: Wine's loader sets WINELOADER in every process it starts. */
const UNDER_WINE = process.platform === 'win32' && process.env.WINELOADER !== undefined;

// ---- how the office is reached --------------------------------------------------------------------

/** The office end of one station, started by a fixture. */
export interface Office {
  /** Body of the `office` profile, each line indented by 4 spaces (`    type: lan`). */
  profileYaml: string;
  /** The routes' `remote` (the same folder for export and import). */
  remote: string;
  /** That folder on this machine's disk, where the test looks at what the office holds. */
  exchange: string;
  /** Environment the agent children need (the `${VAR}`s of the profile). */
  env: Record<string, string>;
  /** One line for the diagnostics (server, port, security). */
  describe: string;
  /** Stops whatever the fixture started. Never throws. */
  close(): Promise<void>;
}

export interface TransportFixture {
  name: string;
  /** Starts the office for a station living in `stationDir` (files the profile needs may go there). */
  start(stationDir: string): Promise<Office>;
}

export interface CrashSizes {
  packages: number;
  randomKills: number;
  /** Fresh packages dropped before each named crash point. */
  perPoint: number;
  /** A random kill comes this long after the agent was started. */
  killMinMs: number;
  killMaxMs: number;
  finishRounds: number;
  /** node:test timeout of the whole scenario. */
  timeoutMs: number;
  /** The import route's `concurrency` (absent: the default); entries fetched at once, committed as a group. */
  importConcurrency?: number;
}

// ---- seeded PRNG --------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Rand {
  next(): number;
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
}

function rand(seed: number): Rand {
  const next = mulberry32(seed);
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
  };
}

function seedFromEnv(): number {
  const envSeed = process.env.SPRELAY_CRASH_SEED;
  return envSeed && /^\d+$/.test(envSeed) ? Number(envSeed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

// ---- packages -------------------------------------------------------------------------------------

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Pkg {
  name: string;
  bytes: Buffer;
  sha: string;
}

const WORDS = ['АИ-95', 'ДТ', 'Смена', 'Колонка', 'Резервуар', 'Оператор Ёлкин', 'Talon', 'Cash', 'Card'];

/** ClientDataSet XML of about `size` bytes (an empty table when size is 0). */
function cdsXml(r: Rand, tag: string, size: number, encoding: 'utf-8' | 'utf-8-bom' | 'windows-1251'): Buffer {
  const head =
    encoding === 'windows-1251'
      ? '<?xml version="1.0" encoding="windows-1251" standalone="yes"?>'
      : '<?xml version="1.0" standalone="yes"?>';
  const meta =
    '<DATAPACKET Version="2.0"><METADATA><FIELDS><FIELD attrname="ID" fieldtype="i4"/>' +
    '<FIELD attrname="NOTE" fieldtype="string" WIDTH="80"/><FIELD attrname="SUMMA" fieldtype="fixed" DECIMALS="2" WIDTH="16"/>' +
    '</FIELDS><PARAMS/></METADATA><ROWDATA>';
  const tail = '</ROWDATA></DATAPACKET>';
  const rows: string[] = [];
  let len = head.length + meta.length + tail.length;
  for (let i = 1; len < size; i++) {
    const row = `<ROW ID="${i}" NOTE="${tag} ${r.pick(WORDS)} ${r.int(0, 99999)}" SUMMA="${r.int(0, 999999) / 100}"/>`;
    rows.push(row);
    len += row.length * 1.6; // Cyrillic takes 2 bytes in UTF-8: a rough size is all that is needed
  }
  const text = head + meta + rows.join('') + tail;
  if (encoding === 'windows-1251') return cp1251(text);
  const utf8 = Buffer.from(text, 'utf8');
  return encoding === 'utf-8-bom' ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8]) : utf8;
}

function randomSize(r: Rand): number {
  const x = r.next();
  if (x < 0.1) return 0; // empty table: byte-identical across names
  if (x < 0.7) return r.int(200, 20_000);
  if (x < 0.95) return r.int(20_000, 100_000);
  return r.int(100_000, 300_000);
}

function makePackages(r: Rand, n: number): Pkg[] {
  const pkgs: Pkg[] = [];
  const pad = (x: number) => String(x).padStart(2, '0');
  for (let i = 1; i <= n; i++) {
    const kind = i % 25 === 0 ? 'zip' : r.next() < 0.2 ? 'cyrillic' : r.next() < 0.75 ? 'servio' : 'plain';
    let name: string;
    let bytes: Buffer;
    if (kind === 'zip') {
      const empty = r.next() < 0.4;
      name = r.next() < 0.5 ? `bundle ${i}.zip` : `Архив таблиц ${i}.ZIP`;
      bytes = empty ? EMPTY_ZIP : storedZip(`TABLE_${i}.xml`, cdsXml(r, `zip${i}`, randomSize(r), 'utf-8'));
    } else if (kind === 'cyrillic') {
      const stem = r.pick(['Сменный отчёт АЗС-017', 'Реализация топлива', 'Остатки в резервуарах', 'Ёмкость']);
      name = `${stem} ${pad(r.int(1, 28))}_${pad(r.int(1, 12))}_2023 №${i}.${r.pick(['xml', 'XML'])}`;
      bytes = cdsXml(r, `c${i}`, randomSize(r), r.next() < 0.6 ? 'windows-1251' : 'utf-8');
    } else if (kind === 'servio') {
      const d = r.int(1, 28);
      const m = r.int(1, 12);
      const h = r.int(0, 22);
      name = `GSMARCHIVE_${r.int(1, 9)} ${d}_${pad(m)}_2023 ${h}_01_02 - ${d}_${pad(m)}_2023 ${h + 1}_01_02 #${i}.XML`;
      bytes = cdsXml(r, `s${i}`, randomSize(r), r.next() < 0.2 ? 'utf-8-bom' : 'utf-8');
    } else {
      name = `TANKS_${i}.${r.pick(['xml', 'Xml', 'XML'])}`;
      bytes = cdsXml(r, `p${i}`, randomSize(r), r.next() < 0.5 ? 'windows-1251' : 'utf-8');
    }
    pkgs.push({ name, bytes, sha: sha256(bytes) });
  }
  assert.equal(new Set(pkgs.map((p) => p.name)).size, pkgs.length, 'generated names are unique');
  return pkgs;
}

// ---- the station ----------------------------------------------------------------------------------

interface Station {
  dir: string;
  configFile: string;
  env: Record<string, string>;
  outbox: string;
  staging: string;
  /** The office folder both routes use, as seen on this machine's disk. */
  exchange: string;
  inbox: string;
  /** Where the simulated SERVIO import moves what it took from the inbox. */
  imported: string;
  data: string;
  /** Names that arrived in the inbox again after SERVIO had imported them: guarantee 3 broken. */
  deliveredTwice: string[];
}

function makeStation(dir: string, office: Office, importConcurrency?: number): Station {
  const s: Station = {
    dir,
    configFile: join(dir, 'sprelay.yaml'),
    env: office.env,
    outbox: join(dir, 'outbox'),
    staging: join(dir, 'staging'),
    exchange: office.exchange,
    inbox: join(dir, 'inbox'),
    imported: join(dir, 'imported'),
    data: join(dir, 'data'),
    deliveredTwice: [],
  };
  for (const d of [s.outbox, s.staging, s.exchange, s.inbox, s.imported, s.data]) mkdirSync(d, { recursive: true });
  writeFileSync(
    s.configFile,
    `station: CRASH-001
dataDir: ./data
settle: 50ms
log: { level: warn }
profiles:
  office:
${office.profileYaml}
routes:
  - name: export
    direction: out
    profile: office
    local: ./outbox
    remote: ${office.remote}
    schedule: "* * * * * *"
  - name: import
    direction: in
    profile: office
    remote: ${office.remote}
    local: ./inbox
    schedule: "* * * * * *"
${importConcurrency === undefined ? '' : `    concurrency: ${importConcurrency}\n`}`,
  );
  return s;
}

/** What SERVIO does when it exports, minus the half-written phase (guarantee 1 is tested elsewhere). */
function drop(st: Station, pkgs: Pkg[]): void {
  for (const p of pkgs) {
    const staged = join(st.staging, `${sha256(Buffer.from(p.name))}.tmp`);
    writeFileSync(staged, p.bytes);
    renameSync(staged, join(st.outbox, p.name));
  }
}

/**
 * SERVIO PUMP GAS importing: takes every finished file out of the inbox (only while no agent runs).
 * With the inbox drained, a package delivered again cannot hide behind the file still being there:
 * only the ledger's dedup stands between a re-fetch and a second delivery.
 */
function servioImports(st: Station): void {
  for (const name of readdirSync(st.inbox)) {
    if (name.startsWith('.sprelay-')) continue;
    const target = join(st.imported, name);
    if (existsSync(target)) {
      st.deliveredTwice.push(name);
      renameSync(join(st.inbox, name), `${target}.again-${st.deliveredTwice.length}`);
    } else {
      renameSync(join(st.inbox, name), target);
    }
  }
}

/** Routes whose lock a killed agent left in the ledger (the kill came mid-cycle). */
function staleLocks(st: Station): string[] {
  const path = join(st.data, 'ledger.sqlite');
  if (!existsSync(path)) return [];
  const db = openSqlite(path, { readonly: true });
  try {
    return db
      .prepare('SELECT route FROM route_locks')
      .all<{ route: string }>()
      .map((r) => r.route);
  } catch (err) {
    // killed in its very first start, before the migration made the table: no lock either
    if (err instanceof Error && /no such table: route_locks/.test(err.message)) return [];
    throw err;
  } finally {
    db.close();
  }
}

/**
 * Every crash point of a station's pipelines the agent declares (agent/crash-points.ts exports them
 * as data); the office's points (receipts) have their own test (test/fleet-office.test.ts).
 */
function crashPoints(): string[] {
  const points = CRASH_POINTS.filter((p) => p.startsWith('out:') || p.startsWith('in:'));
  assert.ok(points.length > 0, 'no crash points in agent/crash-points.ts');
  return points;
}

function tail(text: string, n = 4000): string {
  return text.length > n ? '...' + text.slice(-n) : text;
}

// ---- the scenario ---------------------------------------------------------------------------------

/** Registers the kill -9 test for one transport. */
export function registerCrashTest(fixture: TransportFixture, sizes: CrashSizes): void {
  test(
    `kill -9 at any instant over ${fixture.name} loses nothing and delivers nothing twice (guarantees 2, 3)`,
    { timeout: sizes.timeoutMs },
    (t) => crashScenario(t, fixture, sizes),
  );
}

async function crashScenario(t: TestContext, fixture: TransportFixture, sizes: CrashSizes): Promise<void> {
  requireBuild();
  const seed = seedFromEnv();
  const r = rand(seed);
  const what = `${fixture.name}, seed ${seed}`;
  t.diagnostic(`transport ${fixture.name}, seed ${seed} (rerun with SPRELAY_CRASH_SEED=${seed})`);
  const points = crashPoints();
  const all = makePackages(r, sizes.packages);
  const forPoints = all.slice(all.length - points.length * sizes.perPoint);
  const forRandom = all.slice(0, all.length - forPoints.length);
  const dir = mkdtempSync(join(tmpdir(), `sprelay-crash-${fixture.name}-`));
  const stats = { kills: 0, midCycle: 0, partsSeen: 0, namedKills: 0 };
  const started = Date.now();
  const phases: string[] = [];
  const phase = (name: string, since: number) => phases.push(`${name} ${((Date.now() - since) / 1000).toFixed(1)} s`);
  let office: Office | undefined;
  try {
    office = await fixture.start(dir);
    t.diagnostic(`office: ${office.describe}`);
    const st = makeStation(dir, office, sizes.importConcurrency);
    const agent = (args: string[], crashAt?: string) => ({
      cwd: st.dir,
      configFile: st.configFile,
      env: st.env,
      args,
      ...(crashAt ? { crashAt } : {}),
    });
    const onRemote = () => readdirSync(st.exchange);

    await t.test('random SIGKILLs while `sprelay run` works and the station keeps exporting', async (tt) => {
      const since = Date.now();
      // the batches the station exports, dropped while the agent runs
      const batches: Pkg[][] = [];
      for (let at = 0; at < forRandom.length;) {
        const n = r.int(10, 40);
        batches.push(forRandom.slice(at, at + n));
        at += n;
      }
      drop(st, batches.shift()!);
      let lastOutput = '';
      const dropEvery = Math.max(1, Math.floor((sizes.randomKills - 4) / Math.max(1, batches.length)));
      for (let i = 0; i < sizes.randomKills; i++) {
        const killAfter = r.int(sizes.killMinMs, sizes.killMaxMs);
        const a = startAgent(agent(['run']));
        let early: Awaited<typeof a.exited> | null = null;
        void a.exited.then((e) => (early = e));
        if (batches.length > 0 && i % dropEvery === 0) {
          const dropAt = r.int(0, killAfter);
          await sleep(dropAt);
          drop(st, batches.shift()!);
          await sleep(killAfter - dropAt);
        } else {
          await sleep(killAfter);
        }
        assert.equal(early, null, `sprelay run exited by itself before kill ${i + 1} (${what}):\n${tail(a.stderr())}`);
        const e = await a.kill();
        lastOutput = `stdout:\n${tail(a.stdout(), 3000)}\nstderr:\n${tail(a.stderr(), 3000)}`;
        assert.equal(e.signal, 'SIGKILL', `kill ${i + 1}: ${JSON.stringify(e)}\n${tail(a.stderr())}`);
        stats.kills++;
        if (staleLocks(st).length > 0) stats.midCycle++;
        if (onRemote().some((n) => n.endsWith('.part'))) stats.partsSeen++;
        if (r.next() < 0.5) servioImports(st);
      }
      while (batches.length > 0) drop(st, batches.shift()!);
      tt.diagnostic(
        `random kills: ${stats.kills}, of which mid-cycle (a route lock left behind): ${stats.midCycle}, ` +
          `with a .part on the remote: ${stats.partsSeen}`,
      );
      const where = {
        outbox: readdirSync(st.outbox).length,
        exchange: onRemote().length,
        inbox: readdirSync(st.inbox).length,
        imported: readdirSync(st.imported).length,
      };
      tt.diagnostic(`after the random kills: ${JSON.stringify(where)} of ${forRandom.length} packages`);
      assert.ok(
        where.inbox + where.imported > 0,
        `the agent delivered nothing between ${stats.kills} kills: the kills come too early to test anything ` +
          `(${what}); the last agent's output:\n${lastOutput}`,
      );
      phase('random kills', since);
    });

    await t.test('SIGKILL at every named crash point', async (tt) => {
      const since = Date.now();
      let next = 0;
      for (const point of points) {
        const k = r.int(1, 3);
        const fresh = forPoints.slice(next, next + sizes.perPoint);
        next += sizes.perPoint;
        drop(st, fresh);
        if (point.startsWith('in:')) {
          // the import route needs files on the remote: send without crashing first
          const pre = await runAgent(agent(['once', '--route', 'export']));
          assert.equal(pre.code, 0, `once --route export before ${point}: ${JSON.stringify(pre)}`);
          const finished = onRemote().filter((n) => !n.endsWith('.part'));
          assert.ok(finished.length >= k, `${point}: only ${finished.length} file(s) on the remote for @${k}`);
        }
        const res = await runAgent(agent(['once'], `${point}@${k}`));
        const crashLine = `SPRELAY_CRASH_AT ${point}@${k}:`;
        // Under Wine, a process that kills itself (TerminateProcess on its own handle, with thread-pool
        // calls in flight) has been seen to hang inside that call: CI of sessions 8 and 9, once in
        // about ten runs, at in:after-download. It wrote the crash line and nothing after it (no
        // cycle summary on stdout): it stopped at the point, and the test's kill ends it there. Taken
        // as the kill under Wine only (UNDER_WINE), and said; on a real Windows the hang fails the
        // test; what must hold afterwards is checked the same way.
        const hungInOwnKill = UNDER_WINE && res.timedOut && res.stderr.includes(crashLine) && res.stdout.trim() === '';
        if (hungInOwnKill)
          tt.diagnostic(`${point}@${k}: hung in its own kill after the crash line; killed by the test`);
        assert.equal(
          res.timedOut && !hungInOwnKill,
          false,
          `sprelay once with ${point}@${k} hung and was killed by the test (${what})\n` +
            `stdout:\n${tail(res.stdout)}\nstderr:\n${tail(res.stderr)}`,
        );
        // Windows reports a process that killed itself (TerminateProcess) as exit code 1 with no
        // signal, like a fatal error: there the agent's last stderr line names the crash point.
        const killedItself =
          hungInOwnKill ||
          (process.platform === 'win32'
            ? res.code === 1 && res.signal === null && res.stderr.includes(crashLine)
            : res.signal === 'SIGKILL');
        assert.ok(
          killedItself,
          `crash point ${point}@${k} was never reached: sprelay once exited with code ${res.code} ` +
            `(signal ${res.signal}, ${what})\nstderr:\n${tail(res.stderr)}`,
        );
        stats.namedKills++;
        tt.diagnostic(`${point}@${k}: killed${staleLocks(st).length ? ' (lock left behind)' : ''}`);
        servioImports(st);
      }
      assert.equal(stats.namedKills, points.length, 'every named crash point was hit');
      phase('named points', since);
    });

    await t.test('afterwards: every package delivered exactly once, byte-identical; ledger consistent', async (tt) => {
      const since = Date.now();
      let rounds = 0;
      const logs: string[] = [];
      for (; rounds < sizes.finishRounds; rounds++) {
        const out = await runAgent(agent(['once', '--route', 'export']));
        const inn = await runAgent(agent(['once', '--route', 'import']));
        logs.push(`round ${rounds + 1}:\n${out.stderr}${inn.stderr}`);
        for (const [route, res] of [
          ['export', out],
          ['import', inn],
        ] as const) {
          assert.equal(
            res.code,
            0,
            `finish round ${rounds + 1}, once --route ${route}: exit ${res.code}/${res.signal} (${what})\n${tail(res.stderr)}`,
          );
        }
        const idle = /nothing to do/.test(out.stderr) && /nothing to do/.test(inn.stderr);
        if (idle && readdirSync(st.outbox).length === 0 && onRemote().length === 0) break;
      }
      tt.diagnostic(`finished in ${rounds + 1} round(s) of once --route export / once --route import`);
      const history = tail(logs.join('\n'), 6000);

      // the files
      assert.deepEqual(readdirSync(st.outbox), [], `outbox is empty\n${history}`);
      assert.deepEqual(onRemote(), [], `office exchange is empty (all acknowledged, no .part)\n${history}`);
      const inbox = readdirSync(st.inbox);
      assert.deepEqual(
        inbox.filter((n) => n.startsWith('.sprelay-')),
        [],
        'no sprelay temp files left in the inbox',
      );
      // guarantee 3: nothing arrived again after the (simulated) SERVIO import had taken it
      assert.deepEqual(st.deliveredTwice, [], `delivered into the inbox twice (${what})`);
      const imported = readdirSync(st.imported);
      const both = inbox.filter((n) => imported.includes(n));
      assert.deepEqual(both, [], 'in the inbox again although already imported');
      // the inbox (plus what the simulated import took out of it) holds exactly the generated set
      const want = new Map(all.map((p) => [p.name, p]));
      const delivered = new Map<string, string>([
        ...imported.map((n): [string, string] => [n, join(st.imported, n)]),
        ...inbox.map((n): [string, string] => [n, join(st.inbox, n)]),
      ]);
      const missing = all.filter((p) => !delivered.has(p.name)).map((p) => p.name);
      const extra = [...delivered.keys()].filter((n) => !want.has(n));
      assert.deepEqual(
        { missing, extra },
        { missing: [], extra: [] },
        `inbox holds exactly the generated set (${what})\n${history}`,
      );
      for (const [name, file] of delivered) {
        assert.equal(sha256(readFileSync(file)), want.get(name)!.sha, `delivered ${name} is byte-identical`);
      }
      tt.diagnostic(
        `delivered: ${imported.length} taken by the simulated import between kills, ${inbox.length} in the inbox`,
      );

      // the ledger, as the child left it
      const db = openSqlite(join(st.data, 'ledger.sqlite'), { readonly: true });
      let rows: {
        id: number;
        direction: string;
        route: string;
        name: string;
        state: string;
        sha256: string | null;
        pending_path: string | null;
      }[];
      let events: { event: string; n: number }[];
      try {
        assert.equal(db.prepare('PRAGMA integrity_check').get()?.integrity_check, 'ok', 'PRAGMA integrity_check');
        rows = db
          .prepare('SELECT id, direction, route, name, state, sha256, pending_path FROM packages ORDER BY id')
          .all() as typeof rows;
        events = db
          .prepare('SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY event')
          .all() as typeof events;
      } finally {
        db.close();
      }
      const bad = rows.filter((row) => ['queued', 'failed', 'dead', 'waiting', 'quarantined'].includes(row.state));
      assert.deepEqual(bad, [], 'no package left queued, failed, dead, waiting or quarantined');
      const unknown = rows.filter((row) => !want.has(row.name));
      assert.deepEqual(unknown, [], 'no ledger row for a package that was never generated');
      const problems: string[] = [];
      for (const p of all) {
        const sent = rows.filter((row) => row.name === p.name && row.direction === 'out' && row.state === 'sent');
        const got = rows.filter((row) => row.name === p.name && row.direction === 'in' && row.state === 'delivered');
        if (sent.length !== 1) problems.push(`${p.name}: ${sent.length} out rows in state sent`);
        else if (sent[0]!.sha256 !== p.sha) problems.push(`${p.name}: sent row has SHA-256 ${sent[0]!.sha256}`);
        if (got.length !== 1) problems.push(`${p.name}: ${got.length} in rows in state delivered`);
        else if (got[0]!.sha256 !== p.sha) problems.push(`${p.name}: delivered row has SHA-256 ${got[0]!.sha256}`);
        else if (got[0]!.pending_path !== null) problems.push(`${p.name}: delivered row still has a pending rename`);
      }
      assert.deepEqual(problems, [], `ledger rows per package (${what})`);
      const dupOut = rows.filter((row) => row.state === 'duplicate' && row.direction === 'out').length;
      const dupIn = rows.filter((row) => row.state === 'duplicate' && row.direction === 'in').length;

      // status --json agrees
      const status = await runAgent(agent(['status', '--json']));
      assert.equal(status.code, 0, `status --json: ${status.stderr}`);
      const view = JSON.parse(status.stdout) as {
        problems: unknown[];
        routes: { name: string; counts: Record<string, number> }[];
      };
      assert.deepEqual(view.problems, [], 'status --json lists no problem package');

      const spoolLeft = existsSync(join(st.data, 'spool', 'export'))
        ? readdirSync(join(st.data, 'spool', 'export')).filter((n) => n !== '.tmp').length
        : 0;
      phase('finish and checks', since);
      tt.diagnostic(`transport ${fixture.name}: packages: ${all.length}; ledger rows: ${rows.length}`);
      tt.diagnostic(
        `kills: ${stats.kills} random (${stats.midCycle} mid-cycle, ${stats.partsSeen} with a .part on the remote) ` +
          `+ ${stats.namedKills} at named points`,
      );
      tt.diagnostic(`duplicate rows: ${dupOut} out, ${dupIn} in`);
      tt.diagnostic(`events: ${events.map((e) => `${e.event}=${e.n}`).join(', ')}`);
      tt.diagnostic(`recovered events: ${events.find((e) => e.event === 'recovered')?.n ?? 0}`);
      tt.diagnostic(`spool files left behind after send (not archived): ${spoolLeft}`);
      tt.diagnostic(`status counts: ${JSON.stringify(view.routes.map((route) => [route.name, route.counts]))}`);
    });
  } finally {
    await killAll();
    const left = liveChildren();
    await office?.close();
    t.diagnostic(
      `transport ${fixture.name}: ${phases.join(', ')}; total ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    if (process.env.SPRELAY_KEEP_CRASH_DIR) t.diagnostic(`station kept at ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    assert.equal(left, 0, 'no agent child outlives the test');
  }
}

/** The office as a folder of the station (./office): the `lan` fixture, on Linux and Windows alike. */
export const LAN_FIXTURE: TransportFixture = {
  name: 'lan',
  start: async (stationDir) => ({
    profileYaml: `    type: lan
    root: ./office`,
    remote: 'exchange',
    exchange: join(stationDir, 'office', 'exchange'),
    env: {},
    describe: 'a folder of the station (./office)',
    close: async () => undefined,
  }),
};
