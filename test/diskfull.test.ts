// Full disks, for real: small tmpfs filesystems mounted over the data folder, the office share and
// the inbox. What must hold when a write hits ENOSPC: nothing lost, nothing half-written taken for a
// whole file, a clear error that says the disk is full, and everything goes once space is back.
// Needs root on Linux (mount -t tmpfs); anywhere else these tests FAIL with the reason, never skip.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { filesIn, makeStation, read, sha256, type Station } from './helpers/station.js';
import type { Agent } from '../agent/agent.js';

const NO_SPACE = /ENOSPC|no space|disk is full/i;

// ---- tmpfs -------------------------------------------------------------------------------------

function run(cmd: string, args: string[]): { ok: boolean; why: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return { ok: false, why: r.error.message };
  if (r.status !== 0) return { ok: false, why: (r.stderr || r.stdout).trim() || `exit status ${r.status}` };
  return { ok: true, why: '' };
}

/** Mounts a tmpfs of `kb` KiB over `dir`; throws (the test fails) with the reason when it cannot. */
function mountTmpfs(mounts: string[], dir: string, kb: number): void {
  if (process.platform !== 'linux') {
    throw new Error(`disk-full tests mount tmpfs and need Linux as root; this is ${process.platform}`);
  }
  const r = run('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir]);
  if (!r.ok) {
    throw new Error(
      `cannot mount a ${kb}k tmpfs on ${dir} (running as uid ${process.getuid?.()}; this needs root on Linux): ${r.why}`,
    );
  }
  mounts.push(dir);
}

function resizeTmpfs(dir: string, kb: number): void {
  const r = run('mount', ['-o', `remount,size=${kb}k`, dir]);
  if (!r.ok) throw new Error(`cannot resize the tmpfs on ${dir} to ${kb}k: ${r.why}`);
}

/** Unmounts everything mounted (lazily when busy); a failure to unmount fails the test. */
function unmountAll(mounts: string[]): void {
  const problems: string[] = [];
  for (const dir of mounts.reverse()) {
    if (run('umount', [dir]).ok) continue;
    const lazy = run('umount', ['-l', dir]);
    if (!lazy.ok) problems.push(`${dir}: ${lazy.why}`);
  }
  mounts.length = 0;
  if (problems.length) throw new Error(`could not unmount: ${problems.join('; ')}`);
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Fills the filesystem of `dir` until about `leave` bytes are free; returns the filler's path. */
function fillUpTo(dir: string, leave: number, name = 'filler.bin'): string {
  const path = join(dir, name);
  const size = freeBytes(dir) - leave;
  assert.ok(size > 0, `the tmpfs has less than ${leave} bytes free to begin with`);
  writeFileSync(path, Buffer.alloc(size, 0x5a));
  const left = freeBytes(dir);
  assert.ok(left <= leave + 8192 && left >= leave - 8192, `about ${leave} bytes left free, got ${left}`);
  return path;
}

// ---- packages ----------------------------------------------------------------------------------

/** A well-formed ClientDataSet-style XML of at least `bytes` bytes, distinct per tag. */
function bigXml(tag: string, bytes: number): Buffer {
  const head = `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS><FIELD attrname="ID" fieldtype="i4"/></FIELDS></METADATA><ROWDATA>`;
  const tail = '</ROWDATA></DATAPACKET>';
  const rows: string[] = [];
  let len = head.length + tail.length;
  for (let i = 1; len < bytes; i++) {
    const row = `<ROW ID="${i}" NOTE="${tag} ${i} ${'x'.repeat(80)}"/>`;
    rows.push(row);
    len += row.length;
  }
  return Buffer.from(head + rows.join('') + tail);
}

interface World {
  st: Station;
  mounts: string[];
  agent?: Agent;
}

/** Runs `body` on a fresh station; closes the agent, unmounts every tmpfs and removes the station. */
async function withStation(opts: Parameters<typeof makeStation>[0], body: (w: World) => Promise<void>) {
  const w: World = { st: makeStation(opts), mounts: [] };
  try {
    await body(w);
  } finally {
    try {
      w.agent?.close();
    } finally {
      try {
        unmountAll(w.mounts);
      } finally {
        w.st.cleanup();
      }
    }
  }
}

// ---- the cases ---------------------------------------------------------------------------------

describe('disk full', () => {
  it('data folder fills up during the copy into the spool: ENOSPC reported, nothing lost, all sent once space is back', async () => {
    await withStation({}, async (w) => {
      const { st } = w;
      mountTmpfs(w.mounts, st.data, 8192);
      const agent = (w.agent = st.agent());
      // One empty cycle first: ledger, WAL and spool folders exist before the disk fills up.
      const [warm] = await agent.runOnce(['export']);
      assert.equal(warm!.error, null);
      // Packages much larger than what the ledger writes, so that the spool copy is what hits the
      // wall, and the space its removed partial copy frees is plenty for the ledger afterwards.
      const pkgs = packages('EXPORT', 3, 1536 * 1024);
      for (const [n, b] of pkgs) writeFileSync(join(st.outbox, n), b);
      const filler = fillUpTo(st.data, 2300 * 1024); // room for one copy and a half

      const [r1] = await agent.runOnce(['export']);
      assert.match(r1!.error ?? '(no route error)', /could not take EXPORT_\d\.XML into the spool: ENOSPC/);
      assert.equal(r1!.taken, 1);
      assert.equal(r1!.sent, 1, 'what is in the spool still goes out');
      assertNothingLost(w, pkgs);
      assert.equal(filesIn(st.outbox).length, 2, 'the rest waits in the outbox (readdir order decides which)');
      const tmp = join(st.data, 'spool', 'export', '.tmp');
      assert.deepEqual(readdirSync(tmp), [], 'no half-copied file left in the spool temp folder');
      assert.deepEqual(spoolOrphans(w), [], 'every spool file belongs to a ledger row');
      assert.match(agent.ledger.routeRun('export').lastError ?? '', NO_SPACE, 'status shows the reason');

      rmSync(filler); // space is back
      await drainAndCheck(w, pkgs);
    });
  });

  it('data folder without a byte free (not even the route lock can be written): reported, nothing moves, nothing lost', async () => {
    await withStation({}, async (w) => {
      const { st } = w;
      mountTmpfs(w.mounts, st.data, 2048);
      const agent = (w.agent = st.agent());
      await agent.runOnce(['export']);
      const pkgs = packages('FULL', 3, 100 * 1024);
      for (const [n, b] of pkgs) writeFileSync(join(st.outbox, n), b);
      const filler = fillUpTo(st.data, 0);

      const [r1] = await agent.runOnce(['export']); // resolves: a full disk is no crash
      assert.match(r1!.error ?? '(no route error)', NO_SPACE);
      assert.equal(r1!.taken, 0);
      assertNothingLost(w, pkgs);
      assert.deepEqual(filesIn(st.outbox), [...pkgs.keys()].sort(), 'everything still in the outbox');
      assert.deepEqual(filesIn(st.exchange), []);

      rmSync(filler);
      await drainAndCheck(w, pkgs);
    });
  });

  it('data folder tight, spool and ledger compete for the last bytes: nothing lost, nothing sent twice', async () => {
    // Whichever write hits the wall first (a spool copy, a WAL frame of the ledger, the route lock),
    // the files must tell the same story: each package whole in exactly one place.
    await withStation({}, async (w) => {
      const { st } = w;
      mountTmpfs(w.mounts, st.data, 4096);
      const agent = (w.agent = st.agent());
      await agent.runOnce(['export']);
      const pkgs = packages('TIGHT', 6, 200 * 1024);
      for (const [n, b] of pkgs) writeFileSync(join(st.outbox, n), b);
      const filler = fillUpTo(st.data, 700 * 1024);

      const [r1] = await agent.runOnce(['export']);
      assert.match(r1!.error ?? '(no route error)', new RegExp(`${NO_SPACE.source}|disk is full`, 'i'));
      assertNothingLost(w, pkgs);
      assert.deepEqual(readdirSync(join(st.data, 'spool', 'export', '.tmp')), [], 'no half-copied file left');

      rmSync(filler);
      await drainAndCheck(w, pkgs);
    });
  });

  it('data folder completely full: no file handle is left open in it', {}, async () => {
    await withStation({}, async (w) => {
      const { st } = w;
      mountTmpfs(w.mounts, st.data, 2048);
      const agent = (w.agent = st.agent());
      await agent.runOnce(['export']);
      writeFileSync(join(st.outbox, 'a.xml'), bigXml('a', 1024));
      fillUpTo(st.data, 0);
      await agent.runOnce(['export']);
      agent.close();
      w.agent = undefined;
      assert.deepEqual(openFilesUnder(st.data), [], 'open file descriptors under the data folder');
    });
  });

  it('office share full: the put fails retryably with no partial file there, and goes once space is back', async () => {
    await withStation({}, async (w) => {
      const { st } = w;
      mountTmpfs(w.mounts, st.office, 512);
      mkdirSync(st.exchange);
      let now = Date.parse('2026-11-29T10:00:00Z');
      const agent = (w.agent = st.agent({ now: () => now }));
      const pkg = bigXml('office', 200 * 1024);
      writeFileSync(join(st.outbox, 'PRICES.XML'), pkg);
      const filler = fillUpTo(st.office, 64 * 1024);

      const [r1] = await agent.runOnce(['export']);
      assert.equal(r1!.taken, 1);
      assert.equal(r1!.sent, 0);
      assert.equal(r1!.failed, 1);
      assert.match(r1!.error ?? '(no route error)', NO_SPACE);
      let row = agent.ledger.list({ route: 'export' })[0]!;
      assert.equal(row.state, 'failed');
      assert.equal(row.attempts, 1);
      assert.ok(row.nextAttemptAt !== null && row.nextAttemptAt > now, 'a next attempt is planned');
      assert.match(row.lastError ?? '', NO_SPACE);
      assert.deepEqual(filesIn(st.exchange), [], 'neither PRICES.XML nor PRICES.XML.part on the share');
      assert.deepEqual(filesIn(st.office), ['exchange', 'filler.bin']);
      assert.equal(sha256(read(st.data, row.storedPath!)), sha256(pkg), 'the bytes wait in the spool');

      rmSync(filler);
      const [r2] = await agent.runOnce(['export']);
      assert.equal(r2!.sent, 0, 'not due yet');
      assert.deepEqual(filesIn(st.exchange), []);

      now = row.nextAttemptAt! + 1000;
      const [r3] = await agent.runOnce(['export']);
      assert.equal(r3!.sent, 1);
      assert.equal(r3!.error, null);
      assert.deepEqual(filesIn(st.exchange), ['PRICES.XML']);
      assert.equal(sha256(read(st.exchange, 'PRICES.XML')), sha256(pkg));
      row = agent.ledger.get(row.id)!;
      assert.equal(row.state, 'sent');
      assert.equal(row.attempts, 2);
    });
  });

  it('inbox full: the download fails cleanly, stays on the remote, and is delivered once space is back', async () => {
    await withStation({}, async (w) => {
      const { st } = w;
      mountTmpfs(w.mounts, st.inbox, 512);
      const agent = (w.agent = st.agent());
      const pkg = bigXml('inbox', 200 * 1024);
      writeFileSync(join(st.exchange, 'GOODS.XML'), pkg);
      fillUpTo(st.inbox, 64 * 1024);

      const [r1] = await agent.runOnce(['import']);
      assert.equal(r1!.delivered, 0);
      assert.match(r1!.error ?? '(no route error)', NO_SPACE);
      assert.deepEqual(filesIn(st.exchange), ['GOODS.XML'], 'not acknowledged: still on the remote');
      assert.equal(sha256(read(st.exchange, 'GOODS.XML')), sha256(pkg));
      assert.deepEqual(filesIn(st.inbox), ['filler.bin'], 'no partial or temporary file in the inbox');
      assert.deepEqual(
        agent.ledger.list({ route: 'import' }).map((r) => r.state),
        [],
        'nothing recorded as delivered or quarantined',
      );

      resizeTmpfs(st.inbox, 2048); // space is back
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.error, null);
      assert.equal(r2!.delivered, 1);
      assert.deepEqual(filesIn(st.inbox), ['GOODS.XML', 'filler.bin']);
      assert.equal(sha256(read(st.inbox, 'GOODS.XML')), sha256(pkg));
      assert.deepEqual(filesIn(st.exchange), [], 'acknowledged');
      const rows = agent.ledger.list({ route: 'import' });
      assert.deepEqual(
        rows.map((r) => r.state),
        ['delivered'],
      );
      assert.notEqual(rows[0]!.ackedAt, null);
    });
  });
});

function packages(prefix: string, n: number, bytes: number): Map<string, Buffer> {
  const pkgs = new Map<string, Buffer>();
  for (let i = 1; i <= n; i++) pkgs.set(`${prefix}_${i}.XML`, bigXml(`${prefix} ${i}`, bytes));
  return pkgs;
}

/** Spool files no ledger row points at (bytes nobody will ever send or clean up). */
function spoolOrphans(w: World): string[] {
  const dir = join(w.st.data, 'spool', 'export');
  const referenced = new Set(
    w
      .agent!.ledger.list({ route: 'export' })
      .map((r) => r.storedPath)
      .filter((p): p is string => !!p),
  );
  return readdirSync(dir)
    .filter((n) => n !== '.tmp')
    .filter((n) => !referenced.has(`spool/export/${n}`));
}

/** Runs export cycles with space back until the outbox is empty; then all must be sent, once, whole. */
async function drainAndCheck(w: World, pkgs: Map<string, Buffer>): Promise<void> {
  const { st } = w;
  const agent = w.agent!;
  for (let i = 0; i < 3 && filesIn(st.outbox).length > 0; i++) await agent.runOnce(['export']);
  const [last] = await agent.runOnce(['export']);
  assert.equal(last!.error, null, 'no error once space is back');
  assert.deepEqual(filesIn(st.outbox), [], 'outbox drained');
  assert.deepEqual(filesIn(st.exchange), [...pkgs.keys()].sort(), 'every package at the office, no .part');
  for (const [n, b] of pkgs) assert.equal(sha256(read(st.exchange, n)), sha256(b), `${n} identical at the office`);
  const rows = agent.ledger.list({ route: 'export' });
  assert.deepEqual(rows.map((r) => r.name).sort(), [...pkgs.keys()].sort(), 'one ledger row per package');
  for (const r of rows) assert.equal(r.state, 'sent', `${r.name} sent`);
  assert.deepEqual(readdirSync(join(st.data, 'spool', 'export')), ['.tmp'], 'spool empty: all archived');
}

/** Files this process holds open under `dir` (Linux /proc). */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + '/')) out.push(target);
    } catch {
      // closed meanwhile (the readdir's own descriptor)
    }
  }
  return out;
}

/**
 * Guarantee 2 on the files: each package is in the outbox (whole), or in spool + ledger with the
 * same bytes, or sent (whole at the office) — exactly one of these.
 */
function assertNothingLost(w: World, pkgs: Map<string, Buffer>): void {
  const { st, agent } = w;
  const rows = agent!.ledger.list({ route: 'export' });
  for (const [name, bytes] of pkgs) {
    const mine = rows.filter((r) => r.name === name);
    const inOutbox = existsSync(join(st.outbox, name));
    if (inOutbox) {
      assert.equal(sha256(read(st.outbox, name)), sha256(bytes), `${name} whole in the outbox`);
      assert.deepEqual(mine, [], `${name} is in the outbox and so not in the ledger`);
      assert.equal(existsSync(join(st.exchange, name)), false, `${name} not at the office`);
      continue;
    }
    assert.equal(mine.length, 1, `${name} is not in the outbox, so the ledger has it (once)`);
    const row = mine[0]!;
    assert.equal(row.sha256, sha256(bytes), `${name}: the ledger has the right hash`);
    assert.equal(row.size, bytes.length);
    assert.ok(['queued', 'failed', 'sent'].includes(row.state), `${name} is ${row.state}`);
    if (row.state === 'sent') {
      assert.equal(sha256(read(st.exchange, name)), sha256(bytes), `${name} sent whole`);
    } else {
      assert.ok(row.storedPath, `${name} has spool bytes`);
      assert.equal(sha256(read(st.data, row.storedPath)), sha256(bytes), `${name} whole in the spool`);
    }
  }
}
