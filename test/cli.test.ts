// The CLI as a station's IT support uses it: commands, exit codes and the JSON shapes of the
// contract. Most cases call main() in-process; the bin is also run as a real child process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../agent/cli.js';
import { Agent } from '../agent/agent.js';
import { createLogger } from '../agent/log.js';
import { cdsXml, filesIn, makeStation, type Station } from './helpers/station.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'sprelay.js');

async function cli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmpdir()) {
  let out = '';
  let err = '';
  const code = await main(args, {
    out: (t) => (out += t + '\n'),
    err: (t) => (err += t + '\n'),
    env,
    cwd,
  });
  return { code, out, err };
}

let st: Station | undefined;
const dirs: string[] = [];
afterEach(() => {
  st?.cleanup();
  st = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const PACKAGE_KEYS = [
  'attempts',
  'createdAt',
  'direction',
  'id',
  'lastError',
  'name',
  'remoteRef',
  'route',
  'sha256',
  'size',
  'state',
  'updatedAt',
];

describe('sprelay CLI', () => {
  it('--help names every command, and each command explains itself', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['init', 'check', 'run', 'once', 'status', 'list', 'resend', 'purge', 'fleet'])
      assert.match(r.out, new RegExp(`\\b${c}\\b`));
    const once = await cli(['once', '--help']);
    assert.equal(once.code, 0);
    assert.match(once.out, /Task Scheduler/);
    assert.match(once.out, /exit 0 all ok,\s+2 some route has a problem, 1 fatal/);
  });

  it('an unknown command or option exits 1 with a usage message', async () => {
    const r = await cli(['frobnicate']);
    assert.equal(r.code, 1);
    assert.match(r.err, /unknown command/);
  });

  it('--version names the version, Node and the ledger driver, even with no config at all', async () => {
    const want = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    const r = await cli(['--version'], {}, mkdtempSync(join(tmpdir(), 'sprelay-noconfig-')));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^sprelay ${want.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(r.out, new RegExp(`^node ${process.version} ${process.platform}-${process.arch}$`, 'm'));
    const driver = process.env.SPRELAY_LEDGER_DRIVER ?? '(better-sqlite3|node:sqlite)';
    assert.match(r.out, new RegExp(`^ledger driver: ${driver} \\S+, SQLite 3\\.\\d+`, 'm'));
    const short = await cli(['-V']);
    assert.equal(short.out, r.out);
    // the driver is chosen once per process: a wrong choice is seen in a process of its own
    const bad = spawnSync(process.execPath, [BIN, '--version'], {
      encoding: 'utf8',
      env: { ...process.env, SPRELAY_LEDGER_DRIVER: 'sqlite9' },
    });
    assert.equal(bad.status, 0);
    assert.match(
      bad.stdout,
      /^ledger driver: NONE — SPRELAY_LEDGER_DRIVER must be one of better-sqlite3, node:sqlite/m,
    );
  });

  it('init writes a working config and its folders; check and once then succeed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-init-'));
    dirs.push(dir);
    const r = await cli(['init', dir]);
    assert.equal(r.code, 0, r.err);
    const file = join(dir, 'sprelay.yaml');
    assert.ok(existsSync(file));
    for (const d of [
      'outbox',
      'inbox',
      'data',
      join('office-share', 'from-station'),
      join('office-share', 'to-station'),
    ]) {
      assert.ok(existsSync(join(dir, d)), `${d} created`);
    }
    const again = await cli(['init', dir]);
    assert.equal(again.code, 1);
    assert.match(again.err, /already exists/);
    const check = await cli(['--config', file, 'check']);
    assert.equal(check.code, 0, check.out + check.err);
    assert.match(check.out, /^ledger driver: (better-sqlite3|node:sqlite) /m);
    assert.match(check.out, /route export: ok/);
    assert.match(check.out, /route import: ok/);
    writeFileSync(join(dir, 'outbox', 'a.xml'), cdsXml('a'));
    const once = await cli(['--config', file, 'once']);
    assert.equal(once.code, 0, once.err);
    assert.deepEqual(filesIn(join(dir, 'office-share', 'from-station')), ['a.xml']);
  });

  it('check exits 1 and names the failing step when the share is not there', async () => {
    st = makeStation();
    rmSync(st.office, { recursive: true });
    const r = await cli(['--config', st.configFile, 'check', '--route', 'export']);
    assert.equal(r.code, 1);
    assert.match(r.out, /route export: FAILED/);
    assert.match(r.out, /FAIL .*root/i);
  });

  it('check: a missing outbox is said plainly; an in-route whose remote folder is missing fails (a typo is not polled forever)', async () => {
    st = makeStation({ inRemote: 'to-station-typo' });
    rmSync(st.outbox, { recursive: true });
    const r = await cli(['--config', st.configFile, 'check']);
    assert.equal(r.code, 1);
    assert.match(r.out, new RegExp(`FAIL outbox .*outbox writable — the folder does not exist`));
    assert.match(
      r.out,
      /route import: FAILED\n(.*\n)*.*FAIL list remote — .*to-station-typo does not exist; an in-route does not create it/,
    );
    assert.ok(!existsSync(join(st.office, 'to-station-typo')), 'check created nothing');
  });

  it('once exits 0 when all went well, 2 when a package needs attention, 1 on a config error', async () => {
    st = makeStation();
    writeFileSync(join(st.outbox, 'good.xml'), cdsXml('g'));
    const ok = await cli(['--config', st.configFile, 'once']);
    assert.equal(ok.code, 0, ok.err);
    writeFileSync(join(st.outbox, 'bad.xml'), '<unclosed>');
    const problems = await cli(['--config', st.configFile, 'once', '--route', 'export']);
    assert.equal(problems.code, 2);
    assert.match(problems.err, /refused in outbox 1/);
    writeFileSync(
      st.configFile,
      readFileSync(st.configFile, 'utf8').replace('schedule: "* * * * *"', 'schedule: "every minute"'),
    );
    const fatal = await cli(['--config', st.configFile, 'once']);
    assert.equal(fatal.code, 1);
    assert.match(fatal.err, /routes\[0\]\.schedule/);
    assert.deepEqual(filesIn(st.outbox), ['bad.xml'], 'a config error moves nothing');
  });

  it('the config comes from --config, else $SPRELAY_CONFIG, else ./sprelay.yaml', async () => {
    st = makeStation();
    const viaEnv = await cli(['status', '--json'], { SPRELAY_CONFIG: st.configFile });
    assert.equal(viaEnv.code, 0, viaEnv.err);
    const viaCwd = await cli(['status', '--json'], {}, st.dir);
    assert.equal(viaCwd.code, 0, viaCwd.err);
    const none = await cli(['status'], {}, tmpdir());
    assert.equal(none.code, 1);
    assert.match(none.err, /sprelay\.yaml/);
  });

  it('status --json and list --json have the shapes of the contract', async () => {
    st = makeStation();
    writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
    writeFileSync(join(st.exchange, 'evil<.xml'), cdsXml('e'));
    await cli(['--config', st.configFile, 'once', '--route', 'export']);
    await cli(['--config', st.configFile, 'once', '--route', 'import']);
    const s = await cli(['--config', st.configFile, 'status', '--json']);
    assert.equal(s.code, 0);
    const status = JSON.parse(s.out);
    assert.deepEqual(Object.keys(status).sort(), ['problems', 'routes', 'station']);
    assert.equal(status.station, 'TEST-001');
    assert.deepEqual(
      status.routes.map((r: Record<string, unknown>) => Object.keys(r).sort()),
      [0, 1].map(() =>
        [
          'counts',
          'direction',
          'lastError',
          'lastRunAt',
          'lastSuccessAt',
          'name',
          'profile',
          'running',
          'since',
          'summary',
          'verdict',
        ].sort(),
      ),
    );
    const exp = status.routes.find((r: { name: string }) => r.name === 'export');
    assert.equal(exp.counts.sent, 1);
    assert.equal(exp.direction, 'out');
    assert.equal(exp.profile, 'office');
    assert.ok(!Number.isNaN(Date.parse(exp.lastRunAt)));
    assert.equal(status.problems.length, 1);
    assert.deepEqual(Object.keys(status.problems[0]).sort(), PACKAGE_KEYS);
    assert.equal(status.problems[0].state, 'quarantined');

    const l = await cli(['--config', st.configFile, 'list', '--json']);
    const rows = JSON.parse(l.out);
    assert.equal(rows.length, 3);
    for (const row of rows) assert.deepEqual(Object.keys(row).sort(), PACKAGE_KEYS);
    const sent = JSON.parse((await cli(['--config', st.configFile, 'list', '--json', '--state', 'sent'])).out);
    assert.deepEqual(
      sent.map((x: { name: string }) => x.name),
      ['a.xml'],
    );
    const byRoute = JSON.parse((await cli(['--config', st.configFile, 'list', '--json', '--route', 'import'])).out);
    assert.equal(byRoute.length, 2);
    const future = JSON.parse((await cli(['--config', st.configFile, 'list', '--json', '--since', '2999-01-01'])).out);
    assert.deepEqual(future, []);
    const badState = await cli(['--config', st.configFile, 'list', '--state', 'lost']);
    assert.equal(badState.code, 1);
    const text = await cli(['--config', st.configFile, 'status']);
    assert.match(text.out, /problems \(1\)/);
  });

  it('resend requeues by id or --failed, and exits 1 for an unknown id', async () => {
    st = makeStation();
    writeFileSync(join(st.exchange, 'a.xml'), cdsXml('theirs')); // makes our a.xml dead at once
    writeFileSync(join(st.outbox, 'a.xml'), cdsXml('ours'));
    await cli(['--config', st.configFile, 'once', '--route', 'export']);
    const dead = JSON.parse((await cli(['--config', st.configFile, 'list', '--json', '--state', 'dead'])).out);
    assert.equal(dead.length, 1);
    const unknown = await cli(['--config', st.configFile, 'resend', '999']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /#999.*no package/);
    rmSync(join(st.exchange, 'a.xml')); // the office cleared the conflict
    const r = await cli(['--config', st.configFile, 'resend', '--failed']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /queued for the next cycle/);
    const once = await cli(['--config', st.configFile, 'once', '--route', 'export']);
    assert.equal(once.code, 0, once.err);
    const byId = await cli(['--config', st.configFile, 'resend', String(dead[0].id)]);
    assert.equal(byId.code, 0, 'a sent package with its archive copy can be resent');
    const none = await cli(['--config', st.configFile, 'resend']);
    assert.equal(none.code, 1);
  });

  it('purge --older-than removes finished rows and their archive files, and keeps pending work', async () => {
    st = makeStation();
    const old = Date.now() - 40 * 86_400_000;
    const agent = new Agent(st.config, { now: () => old, log: createLogger({ level: 'silent', quiet: true }) });
    writeFileSync(join(st.outbox, 'old.xml'), cdsXml('old'));
    await agent.runOnce(['export']);
    const archived = agent.ledger.list()[0]!.storedPath!;
    agent.ledger.insert(
      { route: 'export', direction: 'out', name: 'pending.xml', size: 1, sha256: 'x', state: 'failed' },
      'queued',
    );
    agent.close();
    assert.ok(existsSync(join(st.data, archived)));
    const r = await cli(['--config', st.configFile, 'purge', '--older-than', '30d']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /purged 1 ledger rows and 1 files/);
    assert.equal(existsSync(join(st.data, archived)), false);
    const left = JSON.parse((await cli(['--config', st.configFile, 'list', '--json'])).out);
    assert.deepEqual(
      left.map((x: { name: string }) => x.name),
      ['pending.xml'],
    );
    const bad = await cli(['--config', st.configFile, 'purge', '--older-than', 'forever']);
    assert.equal(bad.code, 1);
  });

  it('runs as the installed bin (npx sprelay) with the same exit codes', () => {
    assert.ok(existsSync(join(ROOT, 'dist', 'agent', 'cli.js')), 'dist/ is missing: run npm run build (npm test does)');
    st = makeStation();
    writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
    const once = spawnSync(process.execPath, [BIN, '--config', st.configFile, 'once'], { encoding: 'utf8' });
    assert.equal(once.status, 0, once.stderr);
    assert.match(once.stderr, /route export \(out\): taken 1, sent 1/);
    const status = spawnSync(process.execPath, [BIN, '--config', st.configFile, 'status', '--json'], {
      encoding: 'utf8',
    });
    assert.equal(status.status, 0);
    assert.equal(JSON.parse(status.stdout).routes.length, 2, 'stdout is pure JSON; logs go to stderr');
  });

  it('scripts/resend-failed.sh resends dead packages, sends them, and prints the status', () => {
    assert.ok(existsSync(join(ROOT, 'dist', 'agent', 'cli.js')), 'dist/ is missing: run npm run build (npm test does)');
    st = makeStation();
    writeFileSync(join(st.exchange, 'a.xml'), cdsXml('theirs'));
    writeFileSync(join(st.outbox, 'a.xml'), cdsXml('ours'));
    const first = spawnSync(process.execPath, [BIN, '--config', st.configFile, 'once', '--route', 'export'], {
      encoding: 'utf8',
    });
    assert.equal(first.status, 2, 'dead: a different a.xml is at the office');
    rmSync(join(st.exchange, 'a.xml'));
    const r = spawnSync('sh', [join(ROOT, 'scripts', 'resend-failed.sh'), st.configFile], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /queued for the next cycle/);
    assert.match(r.stdout, /no problems/);
    assert.match(r.stdout, /All sent and received\.\n$/, 'ends with a verdict in plain words');

    assert.equal(readFileSync(join(st.exchange, 'a.xml'), 'utf8'), cdsXml('ours').toString());

    // still not sendable: it ends by naming the package for IT, and exits 2
    writeFileSync(join(st.exchange, 'b.xml'), cdsXml('theirs'));
    writeFileSync(join(st.outbox, 'b.xml'), cdsXml('ours'));
    const bad = spawnSync('sh', [join(ROOT, 'scripts', 'resend-failed.sh'), st.configFile], { encoding: 'utf8' });
    assert.equal(bad.status, 2, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /1 package not sent: call IT and say #\d+\.\n$/);

    // the README's layout: <dir>/sprelay.yaml beside <dir>/app; no argument, no SPRELAY_CONFIG
    const layout = mkdtempSync(join(tmpdir(), 'sprelay-layout-'));
    dirs.push(layout);
    symlinkSync(ROOT, join(layout, 'app'), 'dir');
    for (const d of ['outbox', 'share']) mkdirSync(join(layout, d));
    writeFileSync(
      join(layout, 'sprelay.yaml'),
      `station: LAYOUT-1\nlang: ru\nsettle: 100ms\nprofiles:\n  s: { type: lan, root: ./share }\nroutes:\n` +
        `  - { name: export, direction: out, profile: s, local: ./outbox, remote: x, schedule: "* * * * *" }\n`,
    );
    writeFileSync(join(layout, 'outbox', 'c.xml'), cdsXml('c'));
    const env = { ...process.env };
    delete env.SPRELAY_CONFIG;
    const r2 = spawnSync('sh', [join(layout, 'app', 'scripts', 'resend-failed.sh')], { encoding: 'utf8', env });
    assert.equal(r2.status, 0, r2.stdout + r2.stderr);
    assert.match(r2.stdout, /Всё отправлено и получено\.\n$/, 'found <dir>/sprelay.yaml; speaks its lang');
    assert.deepEqual(readdirSync(join(layout, 'share', 'x')), ['c.xml']);
  });
});
