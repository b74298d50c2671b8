// Schedules and single-flight: a route never runs twice at once (in this process or across
// processes), and `sprelay run` works its routes on cron and stops cleanly on SIGTERM/SIGINT.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cdsXml, filesIn, makeStation, read, sha256, type Station } from './helpers/station.js';
import { createLanTransport } from '../transports/lan/index.js';
import type { LanProfile, Transport } from '../transports/types.js';
import type { RouteConfig } from '../agent/config.js';
import { LOCK_STALE_MS, RouteLock, holderGone } from '../store/lock.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'sprelay.js');

let st: Station | undefined;
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

async function until(what: string, ms: number, cond: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('single flight', () => {
  it('a second trigger while a cycle runs joins it instead of starting another', async () => {
    st = makeStation();
    let opened = 0;
    const transportFor = (route: RouteConfig): Transport => {
      const real = createLanTransport(route.profile as LanProfile);
      return {
        ...real,
        kind: real.kind,
        probe: real.probe.bind(real),
        openSource: real.openSource.bind(real),
        openSink: (e, s) => {
          opened++;
          return real.openSink(e, s);
        },
      };
    };
    const agent = st.agent({ transportFor });
    try {
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      const route = agent.route('export');
      const [a, b] = await Promise.all([agent.runRoute(route), agent.runRoute(route)]);
      assert.equal(a, b, 'the same cycle result');
      assert.equal(opened, 1, 'one sink, one cycle');
      assert.equal(a.sent, 1);
    } finally {
      agent.close();
    }
  });

  it('a route locked by another live process is skipped; a lock left by a dead one is taken over', async () => {
    st = makeStation();
    const agent = st.agent();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      // the other process holds the route (as its RouteLock.acquire would have recorded it)
      assert.equal(
        agent.ledger.lockRoute('export', RouteLock.holder(other.pid!), () => false),
        null,
      );
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      const [busy] = await agent.runOnce(['export']);
      assert.match(busy!.skipped!, /another sprelay process \(pid \d+\)/);
      assert.equal(busy!.error, null, 'a route another process works is not an error of the route');
      assert.equal(agent.ledger.routeRun('export').lastRunAt, null, 'nothing recorded for a skipped route');
      assert.deepEqual(filesIn(st.outbox), ['a.xml'], 'nothing touched');
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
      const [taken] = await agent.runOnce(['export']);
      assert.equal(taken!.error, null);
      assert.equal(taken!.sent, 1);
      assert.equal(
        agent.ledger.lockRoute('export', RouteLock.holder(999_999_999), () => false),
        null,
        'lock released after the cycle: anyone can take it',
      );
    } finally {
      other.kill('SIGKILL');
      agent.close();
    }
  });
});

describe('route lock holders', () => {
  it('a holder is gone when its process died or it ran before the last boot', () => {
    assert.equal(holderGone(RouteLock.holder(process.pid)), false);
    assert.equal(holderGone({ pid: process.pid, boot: RouteLock.holder(1).boot - 3_600_000 }), true, 'before reboot');
    assert.equal(holderGone(RouteLock.holder(2 ** 22 + 12345)), true, 'no such process');
  });

  it('a live pid that stopped renewing the lock long ago is another program now (pid reuse)', () => {
    const now = Date.now();
    const me = RouteLock.holder(process.pid);
    assert.equal(holderGone({ ...me, renewedAt: now - 60_000 }, me.boot, now), false, 'renewed a minute ago');
    assert.equal(holderGone({ ...me, renewedAt: now - LOCK_STALE_MS - 1000 }, me.boot, now), true, 'stale');
  });

  it('a lock row whose pid was reused by a live process blocks the route only until it goes stale', async () => {
    st = makeStation();
    let now = Date.now();
    const agent = st.agent({ now: () => now });
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      // a killed holder's row, its pid now another live program's, never renewed since
      agent.ledger.lockRoute('export', RouteLock.holder(other.pid!), () => false);
      writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
      const [busy] = await agent.runOnce(['export']);
      assert.ok(busy!.skipped, 'a fresh row of a live pid is respected');
      now += LOCK_STALE_MS + 60_000;
      const [taken] = await agent.runOnce(['export']);
      assert.equal(taken!.skipped, null, 'taken over once stale');
      assert.equal(taken!.sent, 1);
    } finally {
      other.kill('SIGKILL');
      agent.close();
    }
  });
});

describe('sprelay run', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`works both routes on their schedules and exits 0 on ${sig}`, { timeout: 60_000 }, async () => {
      assert.ok(
        existsSync(join(ROOT, 'dist', 'agent', 'cli.js')),
        'dist/ is missing: run npm run build (npm test does)',
      );
      st = makeStation();
      // every second (6 fields, seconds first)
      const { readFileSync } = await import('node:fs');
      writeFileSync(
        st.configFile,
        readFileSync(st.configFile, 'utf8').replaceAll('schedule: "* * * * *"', 'schedule: "*/1 * * * * *"'),
      );
      const child = spawn(process.execPath, [BIN, '--config', st.configFile, 'run'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      try {
        await until('the daemon to start', 15_000, () => /sprelay \S+ started for station/.test(stderr));
        const files = ['one.xml', 'two.xml', 'Отчёт смены.XML'];
        for (const f of files) writeFileSync(join(st.outbox, f), cdsXml(f));
        const s = st;
        await until('all packages in the inbox', 30_000, () => files.every((f) => filesIn(s.inbox).includes(f)));
        for (const f of files) assert.equal(sha256(read(st.inbox, f)), sha256(cdsXml(f)));
        child.kill(sig);
        const code = await exited;
        assert.equal(code, 0, stderr);
        assert.match(stderr, new RegExp(`${sig}: finishing`));
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
