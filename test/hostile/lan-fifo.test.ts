// Blocking share I/O (issue 10, item 5). Node runs file-system calls on a pool of 4 threads (by
// default); a call that never returns holds its thread for good, however soon the deadline gives
// up on it. Before: a FIFO named `NAME.part` in an out-route's folder blocked one thread per cycle
// (open for writing waits for a reader), and after four cycles every route of the agent froze.
// Now: FIFOs (and everything else that is not a regular file) are never opened; `.part` is created
// exclusively; and every call on one share goes through that share's gate (CALLS_PER_SHARE), so a
// share that truly hangs holds at most that many threads while the other routes go on.
//
// The hung share is real: a FUSE mount whose server never answers (the test holds /dev/fuse open
// and reads nothing from it), so every call under it blocks in the kernel like a dead NFS or SMB
// share. Closing the device aborts it (ENOTCONN) and frees the threads. Needs Linux as root with
// /dev/fuse, like the tmpfs cases of test/diskfull.test.ts; anywhere else this FAILS with the
// reason, never skips. Every case has a deadline: a hang fails it instead of stalling the run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Agent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import type { CycleResult } from '../../agent/route-context.js';
import { createLogger } from '../../agent/log.js';
import { CALLS_PER_SHARE } from '../../transports/lan/index.js';
import { cdsXml, sha256 } from '../helpers/station.js';

const CASE_TIMEOUT = 60_000;

/** Rejects when `p` has not settled within `ms`: a hang is a failure with a reason. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms: it hangs`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

interface Site {
  dir: string;
  agent: Agent;
  run(names: string[]): Promise<CycleResult[]>;
}

/** A station with the given profiles (name -> root) and routes (YAML lines, indented 2). */
function site(dir: string, profiles: Record<string, string>, routes: string, timeout = '1s'): Site {
  const yaml = `station: T-1
dataDir: ./data
settle: 50ms
timeout: ${timeout}
profiles:
${Object.entries(profiles)
  .map(([name, root]) => `  ${name}: { type: lan, root: '${root}' }`)
  .join('\n')}
routes:
${routes}
`;
  writeFileSync(join(dir, 'sprelay.yaml'), yaml);
  const config = parseConfig(yaml, join(dir, 'sprelay.yaml'), {});
  const agent = new Agent(config, { log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }) });
  return { dir, agent, run: (names) => agent.runOnce(names) };
}

const mkfifo = (p: string) => {
  const r = spawnSync('mkfifo', [p], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mkfifo ${p}: ${r.stderr || r.error?.message}`);
};

describe('a FIFO or a hung share does not freeze the other routes', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    while (cleanups.length) cleanups.pop()!();
  });

  it(
    'a FIFO named like a package is refused once and never opened; a FIFO as NAME.part is replaced; the other share delivers',
    { timeout: CASE_TIMEOUT },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sprelay-fifo-'));
      for (const d of ['outbox', 'inbox', 'inbox2', 'data', 'office/out', 'office/in', 'healthy/out']) {
        mkdirSync(join(dir, d), { recursive: true });
      }
      const s = site(
        dir,
        { office: './office', healthy: './healthy' },
        [
          '  - { name: fifo-in, direction: in, profile: office, local: ./inbox, remote: out, schedule: "* * * * *" }',
          '  - { name: fifo-out, direction: out, profile: office, local: ./outbox, remote: in, schedule: "* * * * *" }',
          '  - { name: healthy-in, direction: in, profile: healthy, local: ./inbox2, remote: out, schedule: "* * * * *" }',
        ].join('\n'),
      );
      cleanups.push(() => {
        s.agent.close();
        rmSync(dir, { recursive: true, force: true });
      });
      mkfifo(join(dir, 'office', 'out', 'pipe.xml'));
      const good = cdsXml('good');
      writeFileSync(join(dir, 'office', 'out', 'good.xml'), good);
      mkfifo(join(dir, 'office', 'in', 'pkg.xml.part'));
      const pkg = cdsXml('package');
      writeFileSync(join(dir, 'outbox', 'pkg.xml'), pkg);
      const other = cdsXml('other share');
      writeFileSync(join(dir, 'healthy', 'out', 'other.xml'), other);

      const started = performance.now();
      const [fin, fout, healthy] = await within(
        10_000,
        'one cycle of the three routes',
        s.run(['fifo-in', 'fifo-out', 'healthy-in']),
      );
      const ms = performance.now() - started;

      assert.equal(healthy!.delivered, 1, healthy!.error ?? '');
      assert.equal(sha256(readFileSync(join(dir, 'inbox2', 'other.xml'))), sha256(other));
      assert.equal(fin!.error, null);
      assert.equal(fin!.delivered, 1, 'the regular file beside the FIFO is delivered');
      assert.equal(fin!.quarantined, 1);
      assert.equal(sha256(readFileSync(join(dir, 'inbox', 'good.xml'))), sha256(good));
      assert.deepEqual(
        readdirSync(join(dir, 'inbox')).filter((n) => !n.startsWith('.')),
        ['good.xml'],
      );
      const row = s.agent.ledger.list({ route: 'fifo-in' }).find((r) => r.name === 'pipe.xml')!;
      assert.equal(row.state, 'quarantined');
      assert.match(row.lastError ?? '', /^a named pipe \(FIFO\) on the share, not a regular file: refused, not read/);
      assert.ok(lstatSync(join(dir, 'office', 'out', 'pipe.xml')).isFIFO(), 'the FIFO is left where it is');
      assert.equal(fout!.sent, 1, fout!.error ?? '');
      assert.ok(lstatSync(join(dir, 'office', 'in', 'pkg.xml')).isFile());
      assert.equal(sha256(readFileSync(join(dir, 'office', 'in', 'pkg.xml'))), sha256(pkg));
      assert.deepEqual(readdirSync(join(dir, 'office', 'in')), ['pkg.xml'], 'the FIFO .part is gone');
      assert.ok(ms < 5000, `the cycle took ${Math.round(ms)} ms: nothing waited for the FIFOs`);

      // again: the refusal is not recorded twice, and nothing waits on the FIFO
      const [again] = await within(10_000, 'a second cycle', s.run(['fifo-in']));
      assert.equal(again!.quarantined, 0);
      assert.equal(s.agent.ledger.list({ route: 'fifo-in' }).length, 2);
    },
  );

  it(
    'a share that hangs (a FUSE mount that never answers) holds at most CALLS_PER_SHARE threads: the other routes deliver',
    { timeout: CASE_TIMEOUT },
    async () => {
      assert.equal(process.platform, 'linux', 'the hung share is a FUSE mount: Linux as root only');
      assert.ok(existsSync('/dev/fuse'), 'the hung share is a FUSE mount and this machine has no /dev/fuse');
      const dir = mkdtempSync(join(tmpdir(), 'sprelay-hung-'));
      const mnt = join(dir, 'dead-share');
      for (const d of ['inbox', 'inbox2', 'outbox2', 'data', 'healthy/out', 'healthy/in', 'dead-share']) {
        mkdirSync(join(dir, d), { recursive: true });
      }
      // the FUSE connection: mounted on our open /dev/fuse, never read from, so no call is ever answered
      const fuse = openSync('/dev/fuse', 'r+');
      let fuseOpen = true;
      const abortShare = () => {
        if (fuseOpen) closeSync(fuse); // aborts the connection: every hung call returns ENOTCONN
        fuseOpen = false;
      };
      const m = spawnSync(
        'mount',
        ['-t', 'fuse', '-o', 'fd=3,rootmode=40000,user_id=0,group_id=0', 'sprelay-hung-share', mnt],
        { stdio: ['ignore', 'pipe', 'pipe', fuse], encoding: 'utf8' },
      );
      if (m.status !== 0) {
        abortShare();
        rmSync(dir, { recursive: true, force: true });
        assert.fail(`cannot mount a FUSE file system at ${mnt} (needs Linux as root): ${m.stderr || m.error?.message}`);
      }
      const s = site(
        dir,
        { dead: `${mnt}/share`, healthy: './healthy' },
        [
          '  - { name: dead-in, direction: in, profile: dead, local: ./inbox, remote: out, schedule: "* * * * *" }',
          '  - { name: healthy-in, direction: in, profile: healthy, local: ./inbox2, remote: out, schedule: "* * * * *" }',
          '  - { name: healthy-out, direction: out, profile: healthy, local: ./outbox2, remote: in, schedule: "* * * * *" }',
        ].join('\n'),
        '300ms',
      );
      cleanups.push(() => {
        abortShare();
        s.agent.close();
        const u = spawnSync('umount', ['-l', mnt], { encoding: 'utf8' });
        rmSync(dir, { recursive: true, force: true });
        assert.equal(u.status, 0, `umount ${mnt}: ${u.stderr}`);
      });

      // more cycles of the dead route than the pool has threads: before, each left one thread
      // blocked and the fifth cycle of anything froze
      const deadCycles = 6;
      const errors: string[] = [];
      for (let i = 0; i < deadCycles; i++) {
        const [r] = await within(10_000, `cycle ${i + 1} of the route on the hung share`, s.run(['dead-in']));
        assert.equal(r!.delivered, 0);
        errors.push(r!.error ?? '');
      }
      for (const e of errors) assert.match(e, /reach .*dead-share\/share: no answer within 300ms/);
      assert.match(
        errors.at(-1)!,
        new RegExp(
          `${CALLS_PER_SHARE} call\\(s\\) on the share .* have had no answer .*the share hangs; the other routes go on`,
        ),
      );

      const inPkg = cdsXml('in');
      const outPkg = cdsXml('out');
      writeFileSync(join(dir, 'healthy', 'out', 'in.xml'), inPkg);
      writeFileSync(join(dir, 'outbox2', 'out.xml'), outPkg);
      const started = performance.now();
      const [hin, hout] = await within(10_000, 'the routes on the healthy share', s.run(['healthy-in', 'healthy-out']));
      const ms = performance.now() - started;
      assert.equal(hin!.delivered, 1, hin!.error ?? '');
      assert.equal(hout!.sent, 1, hout!.error ?? '');
      assert.equal(sha256(readFileSync(join(dir, 'inbox2', 'in.xml'))), sha256(inPkg));
      assert.equal(sha256(readFileSync(join(dir, 'healthy', 'in', 'out.xml'))), sha256(outPkg));
      assert.ok(ms < 5000, `the healthy routes took ${Math.round(ms)} ms`);

      // the share comes back (here: its connection is aborted, so calls fail at once): the route
      // reports that, the calls that hung have returned, and nothing of this process is stuck
      abortShare();
      const [back] = await within(10_000, 'a cycle after the hung share was aborted', s.run(['dead-in']));
      assert.ok(back!.error, 'the aborted share is an error of its route');
      assert.doesNotMatch(back!.error, /the share hangs/);
    },
  );
});
