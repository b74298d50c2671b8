// What a station's people are told at 3 a.m.: one verdict per route in `status`, exit codes of
// `once` that a monitor can use, `show`, `ack` and `list` — against real child processes where the
// exit code or a signal is the point, in-process otherwise.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../agent/cli.js';
import { Ledger } from '../store/ledger.js';
import { RouteLock } from '../store/lock.js';
import { cdsXml, filesIn, makeStation, type Station, type StationOptions } from './helpers/station.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'sprelay.js');

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n'), env, cwd: tmpdir() });
  return { code, out, err };
}

let st: Station | undefined;
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

function station(opts: StationOptions = {}): Station {
  st = makeStation(opts);
  return st;
}

const run = (s: Station, ...args: string[]) => cli(['--config', s.configFile, ...args]);
const statusJson = async (s: Station) => JSON.parse((await run(s, 'status', '--json')).out);

describe('status: one verdict per route', () => {
  it('the office share gone: the export route is failing, says since when and how much waits; never "no problems"', async () => {
    const s = station();
    writeFileSync(join(s.outbox, 'a.xml'), cdsXml('a'));
    writeFileSync(join(s.outbox, 'b.xml'), cdsXml('b'));
    renameSync(s.office, `${s.office}.gone`);
    const once = await run(s, 'once', '--route', 'export');
    assert.equal(once.code, 2, once.err);
    assert.match(once.err, /export: NOT SENDING since \d\d:\d\d — 2 packages waiting, oldest <?\d+ min — /);
    const text = (await run(s, 'status')).out;
    assert.match(text, /^export: NOT SENDING since \d\d:\d\d — 2 packages waiting, oldest <1 min — .*office/m);
    assert.match(text, /^import: ok — not run yet$/m);
    assert.doesNotMatch(text, /no problems/);
    const json = await statusJson(s);
    const exp = json.routes.find((r: { name: string }) => r.name === 'export');
    assert.equal(exp.verdict, 'failing');
    assert.ok(Date.parse(exp.since) <= Date.now());
    assert.match(exp.summary, /^export: NOT SENDING/);
    // back again: the next cycle clears it
    renameSync(`${s.office}.gone`, s.office);
    const back = await run(s, 'once', '--route', 'export');
    assert.equal(back.code, 0, back.err);
    const after = (await run(s, 'status')).out;
    assert.match(after, /^export: ok — last success \d\d:\d\d$/m);
    assert.match(after, /^no problems$/m);
  });

  it('a dead package keeps once at exit 2 until it is resent or acknowledged; ack keeps the row', async () => {
    const s = station();
    writeFileSync(join(s.exchange, 'a.xml'), cdsXml('theirs'));
    writeFileSync(join(s.outbox, 'a.xml'), cdsXml('ours'));
    assert.equal((await run(s, 'once', '--route', 'export')).code, 2);
    const quiet = await run(s, 'once', '--route', 'export');
    assert.equal(quiet.code, 2, 'nothing to do this cycle, but a package is still dead');
    assert.match(quiet.err, /export: 1 package NOT SENT \(gave up retrying\): #1 — send them again/);
    const json = await statusJson(s);
    assert.deepEqual(
      json.problems.map((p: { id: number; state: string }) => [p.id, p.state]),
      [[1, 'dead']],
    );
    assert.equal(json.routes[0].verdict, 'failing');
    const ack = await run(s, 'ack', '1');
    assert.equal(ack.code, 0, ack.err);
    assert.match(ack.out, /#1 export dead "a\.xml": acknowledged/);
    assert.equal((await run(s, 'once', '--route', 'export')).code, 0);
    const after = await statusJson(s);
    assert.equal(after.routes[0].verdict, 'ok');
    assert.deepEqual(after.problems, []);
    assert.equal(after.routes[0].counts.dead, 1, 'the row is kept');
    const again = await run(s, 'ack', '1');
    assert.match(again.out, /already acknowledged/);
    const unknown = await run(s, 'ack', '99');
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /#99: no package with this id/);
  });

  it('a refused outbox file is in status (state refused) until it leaves the outbox; ack --all quiets it', async () => {
    const s = station();
    writeFileSync(join(s.outbox, 'half.xml'), '<?xml version="1.0"?><DATAPACKET><ROWDATA>');
    assert.equal((await run(s, 'once', '--route', 'export')).code, 2);
    let json = await statusJson(s);
    assert.deepEqual(
      json.problems.map((p: { name: string; state: string }) => [p.name, p.state]),
      [['half.xml', 'refused']],
    );
    assert.match(json.problems[0].lastError, /well-formed/);
    assert.equal(json.routes[0].verdict, 'attention');
    assert.match(
      (await run(s, 'status')).out,
      /^export: needs attention since \d\d:\d\d — 1 file refused in the outbox/m,
    );
    const ack = await run(s, 'ack', '--all', '--route', 'export');
    assert.match(ack.out, /refused "half\.xml": acknowledged/);
    assert.equal((await run(s, 'once', '--route', 'export')).code, 0, 'acknowledged: no longer a problem');
    rmSync(join(s.outbox, 'half.xml'));
    await run(s, 'once', '--route', 'export');
    json = await statusJson(s);
    assert.equal(json.routes[0].counts.refused, undefined, 'gone from the outbox: gone from the ledger');
  });

  it('a package waiting longer than alertAfter needs attention; younger ones do not', async () => {
    const s = station({ in: '    alertAfter: 1500ms' });
    writeFileSync(join(s.inbox, 'a.xml'), cdsXml('old, not imported yet'));
    writeFileSync(join(s.exchange, 'a.xml'), cdsXml('new'));
    const first = await run(s, 'once', '--route', 'import');
    assert.equal(first.code, 0, `waiting a moment is normal: ${first.err}`);
    await new Promise((r) => setTimeout(r, 1600));
    const later = await run(s, 'once', '--route', 'import');
    assert.equal(later.code, 2);
    assert.match(later.err, /import: needs attention since \d\d:\d\d — 1 package waiting for more than <1 min/);
  });

  it('confirmWithin: a package sent and not confirmed by a receipt within it needs attention until confirmed', async () => {
    const s = station({ out: '    confirmWithin: 1500ms', top: 'lang: uk' });
    writeFileSync(join(s.outbox, 'a.xml'), cdsXml('a'));
    const first = await run(s, 'once', '--route', 'export');
    assert.equal(first.code, 0, `just sent: not a problem yet: ${first.err}`);
    await new Promise((r) => setTimeout(r, 1600));
    const later = await run(s, 'once', '--route', 'export');
    assert.equal(later.code, 2, 'an unconfirmed package counts for once');
    assert.match(later.err, /export: потребує уваги з \d\d:\d\d — 1 пакет надіслано, але офіс не підтвердив/);
    const json = await statusJson(s);
    assert.equal(json.routes[0].verdict, 'attention');
    assert.match(json.routes[0].summary, /1 package sent but not confirmed by the office for more than <1 min/);
    assert.deepEqual(
      json.problems.map((p: { name: string; state: string }) => [p.name, p.state]),
      [['a.xml', 'sent']],
    );
    // the office's receipt arrives (what the station's in-route will do with it), and a heartbeat
    // row of the station's own is queued: neither is a package in the counts
    const l = Ledger.open(join(s.data, 'ledger.sqlite'));
    try {
      const [row] = l.list({ route: 'export' });
      assert.deepEqual(l.confirmOut([{ name: 'a.xml', sha256: row!.sha256! }], Date.now()), ['confirmed']);
      l.insert(
        {
          route: 'export',
          direction: 'out',
          name: 'hb.json',
          size: 2,
          sha256: 'f'.repeat(64),
          state: 'sent',
          kind: 'heartbeat',
        },
        'sent',
      );
    } finally {
      l.close();
    }
    const done = await run(s, 'once', '--route', 'export');
    assert.equal(done.code, 0, done.err);
    const after = await statusJson(s);
    assert.equal(after.routes[0].verdict, 'ok');
    assert.deepEqual(after.routes[0].counts, { confirmed: 1 }, 'the heartbeat row is not a package');
    assert.deepEqual(after.problems, []);
  });

  it('speaks Russian and Ukrainian to the station when the config says lang', async () => {
    for (const [lang, dead, hint] of [
      ['ru', /1 пакет НЕ ОТПРАВЛЕНО \(попытки исчерпаны\)/, /отправьте заново/],
      ['uk', /1 пакет НЕ НАДІСЛАНО \(спроби вичерпано\)/, /надішліть знову/],
    ] as const) {
      const s = station({ top: `lang: ${lang}` });
      writeFileSync(join(s.exchange, 'a.xml'), cdsXml('theirs'));
      writeFileSync(join(s.outbox, 'a.xml'), cdsXml('ours'));
      await run(s, 'once', '--route', 'export');
      const text = (await run(s, 'status')).out;
      assert.match(text, dead, text);
      assert.match(text, hint);
      const json = await statusJson(s);
      assert.match(json.routes[0].summary, /NOT SENT/, 'JSON stays English');
      s.cleanup();
      st = undefined;
    }
  });

  it('names with control characters are shown escaped, never sent to the terminal raw', async (t) => {
    if (process.platform === 'win32') {
      // NTFS cannot hold the name at all: it is refused where it is created
      assert.throws(() => writeFileSync(join(mkdtempSync(join(tmpdir(), 'x-')), 'esc\x1b[2J.xml'), 'x'));
      return;
    }
    const s = station();
    writeFileSync(join(s.outbox, 'esc\x1b[2Jx.xml'), cdsXml('e'));
    await run(s, 'once', '--route', 'export');
    const text = (await run(s, 'status')).out + (await run(s, 'list')).out;
    assert.ok(!text.includes('\x1b'), 'no raw escape character reaches the terminal');
    assert.match(text, /esc\\u001b\[2Jx\.xml/);
    t.diagnostic('escaped in status and list');
  });
});

describe('once: exit codes a monitor can use', () => {
  it('a route another process works is an INFO line and does not change the exit code', async () => {
    const s = station();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      // the other process holds the route (as its RouteLock.acquire would have recorded it)
      const ledger = Ledger.open(join(s.data, 'ledger.sqlite'));
      ledger.lockRoute('export', RouteLock.holder(other.pid!), () => false);
      ledger.close();
      const r = spawnSync(process.execPath, [BIN, '--config', s.configFile, 'once'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /INFO: \[export\] route export is being worked by another sprelay process/);
      assert.doesNotMatch(r.stderr, /ERROR/);
      assert.match(r.stderr, /route export \(out\): skipped — /);
      const text = (await run(s, 'status')).out;
      assert.match(text, new RegExp(`^export: ok — not run yet \\[working now \\(process ${other.pid}, since`, 'm'));
    } finally {
      other.kill('SIGKILL');
    }
  });

  for (const [signal, exit, who] of [
    ['SIGINT', 130, 'Ctrl+C'],
    ['SIGTERM', 143, 'SIGTERM (Task Scheduler ending the task)'],
  ] as const)
    it(`${who} in the middle of once exits ${exit} and is not recorded as a success`, async () => {
      const s = station({ top: 'settle: 20s' });
      writeFileSync(join(s.outbox, 'a.xml'), cdsXml('a'));
      const child = spawn(process.execPath, [BIN, '--config', s.configFile, 'once', '--route', 'export'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      // the cycle is in its settle wait once the ledger exists and the route lock is held
      const lockHeld = async () => {
        for (let i = 0; i < 200; i++) {
          if (existsSync(join(s.data, 'ledger.sqlite'))) {
            const l = Ledger.open(join(s.data, 'ledger.sqlite'));
            const held = l.lockHolder('export');
            l.close();
            if (held) return;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`once never took the route: ${stderr}`);
      };
      await lockHeld();
      child.kill(signal);
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      assert.equal(code, exit, stderr);
      assert.match(stderr, new RegExp(`interrupted \\(${signal}\\)`));
      const l = Ledger.open(join(s.data, 'ledger.sqlite'));
      try {
        const runRow = l.routeRun('export');
        assert.notEqual(runRow.lastRunAt, null, 'the run is recorded');
        assert.equal(runRow.lastSuccessAt, null, 'but not as a success');
        assert.equal(runRow.lastError, null, 'nor as a failure of the route');
      } finally {
        l.close();
      }
      assert.deepEqual(filesIn(s.outbox), ['a.xml'], 'nothing taken');
    });
});

describe('show, list', () => {
  it("show tells one package's whole story; --json has its events; an unknown id exits 1", async () => {
    const s = station();
    writeFileSync(join(s.outbox, 'a.xml'), cdsXml('a'));
    await run(s, 'once', '--route', 'export');
    const text = await run(s, 'show', '1');
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^#1 "a\.xml"$/m);
    assert.match(text.out, /route export \(out\), state sent/);
    assert.match(text.out, /remote exchange\/a\.xml/);
    assert.match(text.out, /our copy .*archive/);
    assert.match(text.out, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d {2}queued/);
    assert.match(text.out, /[+-]\d\d:\d\d {2}sent/);
    const json = JSON.parse((await run(s, 'show', '#1', '--json')).out);
    assert.deepEqual(
      json.events.map((e: { event: string }) => e.event),
      ['queued', 'sent'],
    );
    assert.ok(json.bytesAt.includes('archive'));
    const none = await run(s, 'show', '7');
    assert.equal(none.code, 1);
    assert.match(none.err, /no package with id 7/);
  });

  it('list: newest first, 50 by default, a header, any-case --state, and an unknown route is an error', async () => {
    const s = station();
    const l = Ledger.open(join(s.data, 'ledger.sqlite'));
    l.transaction(() => {
      for (let i = 1; i <= 60; i++)
        l.insert(
          {
            route: 'export',
            direction: 'out',
            name: `p${i}.xml`,
            size: i,
            sha256: String(i),
            state: i % 2 ? 'sent' : 'dead',
          },
          'queued',
        );
    });
    l.close();
    const r = await run(s, 'list');
    const lines = r.out.trim().split('\n');
    assert.match(
      lines[0]!,
      /^#\s+updated \([+-]\d\d:\d\d\)\s+age\s+route\s+dir\s+state\s+tries\s+next try\s+size\s+name/,
    );
    assert.match(lines[1]!, /^#60 /, 'newest first');
    assert.equal(lines.filter((x) => /^#\d/.test(x)).length, 50);
    assert.match(r.out, /the newest 50; more with --limit N or --all/);
    const all = JSON.parse((await run(s, 'list', '--json', '--all')).out);
    assert.equal(all.length, 60);
    assert.equal(all[0].id, 60);
    const dead = JSON.parse((await run(s, 'list', '--json', '--state', 'DEAD', '--limit', '5')).out);
    assert.deepEqual(
      dead.map((x: { id: number }) => x.id),
      [60, 58, 56, 54, 52],
    );
    const bad = await run(s, 'list', '--route', 'exprot');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /no route named "exprot"/);
  });
});
