// A `sprelay once` whose share hangs must still end: Task Scheduler starts no new run while the
// old one is "running" (IgnoreNew), so a process that never exits stops the station's exchange for
// good. Node cannot exit while an I/O thread is blocked (process.exit waits for the pool): proven
// here first, then that the command's way out ends such a process, and only such a process, the hard way.
// Linux (a FIFO with no writer blocks open(2)); the Windows tier does not run test/hostile/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./hung-exit-child.ts', import.meta.url));
let dir: string;
let fifo: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sprelay-hung-exit-'));
  fifo = join(dir, 'share', 'pkg.xml');
  spawnSync('mkdir', ['-p', join(dir, 'share')]);
  const r = spawnSync('mkfifo', [fifo], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mkfifo: ${r.stderr}`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const run = (how: string, timeout: number) =>
  spawnSync(process.execPath, ['--import', 'tsx', CHILD, fifo, how], {
    encoding: 'utf8',
    timeout,
    killSignal: 'SIGKILL',
  });

describe('a process with a hung share call still ends', () => {
  it('process.exit alone does not return while a thread is blocked (why endProcess exists)', () => {
    const r = run('exit', 4000);
    assert.equal(r.signal, 'SIGKILL', `the child ended by itself (status ${r.status}): then this premise is wrong`);
    assert.match(String(r.error), /ETIMEDOUT/);
  });

  it('endProcess ends it within its grace time and says why', () => {
    const started = Date.now();
    const r = run('endProcess', 20_000);
    assert.doesNotMatch(String(r.error ?? ''), /ETIMEDOUT/, 'still running after 20 s');
    assert.equal(r.signal, 'SIGKILL');
    assert.match(
      r.stderr,
      /sprelay: 1 file operation\(s\) on a share have not returned \(the share hangs\); ending the process/,
    );
    assert.ok(Date.now() - started < 15_000);
  });

  it('with nothing hung, endProcess keeps the exit code and says nothing', () => {
    const r = run('endProcess-nothing-hung', 20_000);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.signal, null);
    assert.doesNotMatch(r.stderr, /have not returned/);
  });
});
