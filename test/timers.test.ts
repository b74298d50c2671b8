// The timing rules, on node:test's fake clock (mock.timers): every test here moves time by
// minutes and takes milliseconds, and proves the boundary exactly (a deadline of 60 s has not
// fired at 59.999 s and has at 60 s). Units: withDeadline, withBudget, IdleWatch and its minimum
// rate (transports/deadline.ts),
// backoffDelay (agent/retry.ts), settle (agent/route-context.ts), RouteLock renewal and staleness
// (store/lock.ts), and the scheduler's skipped ticks (agent/scheduler.ts, node-cron on the fake
// clock and fake Date).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import type { Agent } from '../agent/agent.js';
import type { RetryPolicy, RouteConfig } from '../agent/config.js';
import { backoffDelay, judgeFailure } from '../agent/retry.js';
import { settle, type CycleResult, type StopToken } from '../agent/route-context.js';
import { Scheduler } from '../agent/scheduler.js';
import { Ledger } from '../store/ledger.js';
import { LOCK_RENEW_MS, LOCK_STALE_MS, RouteLock, holderGone } from '../store/lock.js';
import {
  answerWithin,
  formatRate,
  IdleWatch,
  MIN_RATE_WINDOW_MS,
  minRateRule,
  withBudget,
  withDeadline,
  type MinRate,
} from '../transports/deadline.js';
import { TransportError } from '../transports/errors.js';

const MINUTE = 60_000;

/** Lets every promise callback and stream event queued so far run (setImmediate is not faked). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** A promise's state, without waiting for it. */
function track<T>(p: Promise<T>): { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } {
  const s: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' };
  p.then(
    (value) => Object.assign(s, { state: 'resolved', value }),
    (error: unknown) => Object.assign(s, { state: 'rejected', error }),
  );
  return s;
}

function codeOf(err: unknown): string {
  assert.ok(err instanceof TransportError, `a TransportError: ${String(err)}`);
  return err.code;
}

function messageOf(err: unknown): string {
  assert.ok(err instanceof Error, `an Error: ${String(err)}`);
  return err.message;
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

describe('withDeadline (fake clock)', () => {
  it('a 60 s deadline has not fired at 59.999 s and fires at 60 s, aborting the inner signal', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let inner: AbortSignal | undefined;
    const call = track(
      withDeadline('list', MINUTE, new AbortController().signal, (signal) => {
        inner = signal;
        return never<string>();
      }),
    );
    t.mock.timers.tick(MINUTE - 1);
    await flush();
    assert.equal(call.state, 'pending', 'still waiting at 59.999 s');
    assert.equal(inner!.aborted, false);
    t.mock.timers.tick(1);
    await flush();
    assert.equal(call.state, 'rejected', 'given up at 60 s');
    assert.equal(codeOf(call.error), 'timeout');
    assert.equal(messageOf(call.error), 'list: no answer within 1m');
    assert.equal(inner!.aborted, true, 'the library is told to stop');
    assert.equal(inner!.reason, call.error, 'with the same error');
  });

  it('withBudget: a job of many answered requests still ends at its budget, in words that say so', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let requests = 0;
    let inner: AbortSignal | undefined;
    const job = track(
      withBudget('acknowledge /in/a.xml', 3 * MINUTE, new AbortController().signal, async (signal) => {
        inner = signal;
        // every request is answered within a second: no single deadline would ever fire
        while (!signal.aborted) {
          await new Promise((r) => setTimeout(r, 1000));
          requests++;
        }
      }),
    );
    for (let i = 0; i < 179; i++) {
      t.mock.timers.tick(1000);
      await flush();
    }
    t.mock.timers.tick(999);
    await flush();
    assert.equal(job.state, 'pending', 'still working at 2:59.999');
    t.mock.timers.tick(1);
    await flush();
    assert.equal(job.state, 'rejected');
    assert.equal(codeOf(job.error), 'timeout');
    assert.equal(messageOf(job.error), 'acknowledge /in/a.xml: not done within 3m');
    assert.equal(inner!.aborted, true, 'the job is told to stop');
    assert.ok(requests >= 179, `${requests} requests answered meanwhile`);
  });

  it('an answer at 59.999 s wins, and the deadline never fires afterwards', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let inner: AbortSignal | undefined;
    const call = track(
      withDeadline('list', MINUTE, new AbortController().signal, (signal) => {
        inner = signal;
        return new Promise<string>((resolve) => setTimeout(() => resolve('listing'), MINUTE - 1));
      }),
    );
    t.mock.timers.tick(MINUTE - 1);
    await flush();
    assert.deepEqual([call.state, call.value], ['resolved', 'listing']);
    t.mock.timers.tick(10 * MINUTE);
    await flush();
    assert.equal(inner!.aborted, false, 'the cleared deadline never aborted the finished call');
  });

  it('the outer signal rejects at once with aborted, long before the deadline', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const outer = new AbortController();
    let inner: AbortSignal | undefined;
    const call = track(
      withDeadline('put a.xml', MINUTE, outer.signal, (signal) => {
        inner = signal;
        return never<void>();
      }),
    );
    t.mock.timers.tick(10_000);
    await flush();
    assert.equal(call.state, 'pending');
    outer.abort();
    await flush();
    assert.equal(call.state, 'rejected', 'no time passed on the clock');
    assert.equal(codeOf(call.error), 'aborted');
    assert.equal(inner!.aborted, true);
    // an already aborted outer signal: the call is not even started
    let started = false;
    await assert.rejects(
      withDeadline('list', MINUTE, outer.signal, () => {
        started = true;
        return never<void>();
      }),
      (err) => codeOf(err) === 'aborted',
    );
    assert.equal(started, false);
  });
});

/**
 * Node 20's fake Timeout has a `refresh()` that does nothing (`return this`: the timer keeps its
 * first due time), and IdleWatch restarts its timer with refresh() on every chunk. This gives the
 * fake setTimeout the real refresh semantics (start again, same delay, from now) for one test.
 */
function withRefreshableFakeTimeouts(t: TestContext): () => void {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const fakeSet = globalThis.setTimeout;
  const fakeClear = globalThis.clearTimeout;
  class Handle {
    private inner: NodeJS.Timeout;
    constructor(
      private readonly cb: () => void,
      private readonly ms: number,
    ) {
      this.inner = fakeSet(cb, ms);
    }
    refresh(): this {
      fakeClear(this.inner);
      this.inner = fakeSet(this.cb, this.ms);
      return this;
    }
    clear(): void {
      fakeClear(this.inner);
    }
    unref(): this {
      return this;
    }
    ref(): this {
      return this;
    }
    hasRef(): boolean {
      return true;
    }
  }
  const g = globalThis as unknown as { setTimeout: unknown; clearTimeout: unknown };
  g.setTimeout = (cb: () => void, ms: number) => new Handle(cb, ms);
  g.clearTimeout = (h: unknown) => (h instanceof Handle ? h.clear() : fakeClear(h as NodeJS.Timeout));
  return () => {
    g.setTimeout = fakeSet;
    g.clearTimeout = fakeClear;
  };
}

/** An IdleWatch fed by hand, with what it let through and how it ended. */
function watched(ms: number, signal = new AbortController().signal) {
  const watch = new IdleWatch('get big.xml', ms, signal);
  const seen = { bytes: 0, error: null as unknown, ended: false };
  watch.on('data', (b: Buffer) => (seen.bytes += b.length));
  watch.on('error', (err) => (seen.error = err));
  watch.on('end', () => (seen.ended = true));
  const input = new PassThrough();
  input.pipe(watch);
  return { watch, input, seen };
}

describe('answerWithin (fake clock): a callback request under the deadline', () => {
  it("fires at the deadline in withDeadline's words, and its cleanup runs once", async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let cleanups = 0;
    let answer: ((err: unknown, value?: string) => void) | undefined;
    const call = track(
      answerWithin<string>('read /in/a.xml', MINUTE, new AbortController().signal, (settle) => {
        answer = settle;
        return () => cleanups++;
      }),
    );
    t.mock.timers.tick(MINUTE - 1);
    await flush();
    assert.equal(call.state, 'pending', 'still waiting at 59.999 s');
    t.mock.timers.tick(1);
    await flush();
    assert.equal(call.state, 'rejected');
    assert.equal(codeOf(call.error), 'timeout');
    assert.equal(messageOf(call.error), 'read /in/a.xml: no answer within 1m');
    answer!(null, 'late'); // a late answer changes nothing
    await flush();
    assert.equal(cleanups, 1);
  });

  it('an answer, an abort and an answer given while sending each settle it once, cleanup included', async () => {
    let cleanups = 0;
    const answered = await answerWithin<string>('stat /in', MINUTE, new AbortController().signal, (settle) => {
      setImmediate(() => settle(null, 'ok'));
      return () => cleanups++;
    });
    assert.equal(answered, 'ok');
    const ctl = new AbortController();
    const aborted = track(
      answerWithin<string>('stat /in', MINUTE, ctl.signal, () => () => {
        cleanups++;
      }),
    );
    ctl.abort();
    await flush();
    assert.equal(codeOf(aborted.error), 'aborted');
    const atOnce = await answerWithin<string>('stat /in', MINUTE, new AbortController().signal, (settle) => {
      settle(null, 'at once');
      return () => cleanups++;
    });
    assert.equal(atOnce, 'at once');
    assert.equal(cleanups, 3, 'each cleanup ran once');
  });
});

describe('IdleWatch (fake clock)', () => {
  it('no byte at all: alive at 59.999 s, fails with timeout at 60 s', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { watch, seen } = watched(MINUTE);
    t.mock.timers.tick(MINUTE - 1);
    await flush();
    assert.equal(seen.error, null);
    assert.equal(watch.destroyed, false);
    t.mock.timers.tick(1);
    await flush();
    assert.equal(codeOf(seen.error), 'timeout');
    assert.equal(messageOf(seen.error), 'get big.xml: no progress for 1m');
  });

  it('progress restarts the wait: it fires 60 s after the LAST byte, not after the first', async (t) => {
    const restore = withRefreshableFakeTimeouts(t);
    try {
      const { input, seen } = watched(MINUTE);
      const feedAt = [0, 30_000, 59_999, 100_000]; // each gap under 60 s; the last byte at 100 s
      let now = 0;
      for (const at of feedAt) {
        t.mock.timers.tick(at - now);
        now = at;
        await flush();
        assert.equal(seen.error, null, `still alive at ${at} ms`);
        input.write(Buffer.alloc(1000));
        await flush();
      }
      assert.equal(seen.bytes, 4000, 'every byte passed');
      t.mock.timers.tick(MINUTE - 1);
      await flush();
      assert.equal(seen.error, null, 'alive 59.999 s after the last byte (159.999 s in)');
      t.mock.timers.tick(1);
      await flush();
      assert.equal(codeOf(seen.error), 'timeout', 'fails exactly 60 s after the last byte');
    } finally {
      restore();
    }
  });

  it('a stream that ends in time never times out later; an abort fails it at once', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const done = watched(MINUTE);
    done.input.end(Buffer.from('<a/>'));
    await flush();
    assert.equal(done.seen.ended, true);
    t.mock.timers.tick(10 * MINUTE);
    await flush();
    assert.equal(done.seen.error, null, 'the timer went with the stream');

    const ctl = new AbortController();
    const cut = watched(MINUTE, ctl.signal);
    t.mock.timers.tick(1000);
    ctl.abort();
    await flush();
    assert.equal(codeOf(cut.seen.error), 'aborted');
  });
});

/** An IdleWatch with a minimum rate, fed by hand. */
function paced(ms: number, minRate: MinRate | undefined, signal = new AbortController().signal) {
  const watch = new IdleWatch('read /out/azs017/big.xml', ms, signal, minRate);
  const seen = { bytes: 0, error: null as unknown, ended: false };
  watch.on('data', (b: Buffer) => (seen.bytes += b.length));
  watch.on('error', (err) => (seen.error = err));
  watch.on('end', () => (seen.ended = true));
  const input = new PassThrough();
  input.pipe(watch);
  return { watch, input, seen };
}

/** Feeds `bytes` every `everyMs` on the fake clock until `untilMs`, checking the watch is alive before each. */
async function drip(
  t: TestContext,
  feed: { input: PassThrough; seen: { error: unknown } },
  bytes: number,
  everyMs: number,
  untilMs: number,
): Promise<void> {
  for (let at = everyMs; at <= untilMs; at += everyMs) {
    t.mock.timers.tick(everyMs);
    await flush();
    if (feed.seen.error) return;
    feed.input.write(Buffer.alloc(bytes));
    await flush();
  }
}

describe('IdleWatch minimum rate (fake clock)', () => {
  const KBPS: MinRate = { bytesPerSecond: 1024, windowMs: MINUTE };

  it('a peer sending 1 byte every 2 s: the idle deadline never fires, the rate fails it at exactly 60 s', async (t) => {
    const restore = withRefreshableFakeTimeouts(t);
    try {
      const { input, seen } = paced(MINUTE, KBPS);
      await drip(t, { input, seen }, 1, 2000, MINUTE - 2000);
      t.mock.timers.tick(1999);
      await flush();
      assert.equal(seen.error, null, 'alive at 59.999 s: 29 bytes came, each within the idle deadline');
      t.mock.timers.tick(1);
      await flush();
      assert.equal(codeOf(seen.error), 'timeout', 'retryable: the package is tried again later');
      assert.equal(
        messageOf(seen.error),
        "read /out/azs017/big.xml: slower than 1 KB/s for 1m (29 bytes in that time, 61440 needed; the route's " +
          'minRate): the transfer was cut and will be tried again',
      );
      assert.equal(seen.bytes, 29);
    } finally {
      restore();
    }
  });

  it('without a minimum rate the same drip is alive after 10 minutes (what the rate closes)', async (t) => {
    const restore = withRefreshableFakeTimeouts(t);
    try {
      for (const rule of [undefined, { bytesPerSecond: 0, windowMs: MINUTE }]) {
        const { input, seen, watch } = paced(MINUTE, rule);
        await drip(t, { input, seen }, 1, 2000, 10 * MINUTE);
        assert.equal(seen.error, null, `alive at 10 min with ${JSON.stringify(rule)}`);
        assert.equal(seen.bytes, 300);
        watch.destroy();
      }
    } finally {
      restore();
    }
  });

  it("exactly the rate passes window after window; falling below it in a later window fails at that window's end", async (t) => {
    const restore = withRefreshableFakeTimeouts(t);
    try {
      const { input, seen } = paced(MINUTE, KBPS);
      // 1024 bytes a second (at 0 s, 1 s, ... 2:59) for 3 windows: 61440 bytes each, exactly enough
      input.write(Buffer.alloc(1024));
      await drip(t, { input, seen }, 1024, 1000, 3 * MINUTE - 1000);
      assert.equal(seen.error, null, 'alive after 2:59 at exactly 1 KB/s');
      // then 1023 bytes a second (3:00 ... 3:59): 61380 in the fourth window, 60 short; the third
      // window is judged (and passes) at 3:00, before the first slow chunk
      await drip(t, { input, seen }, 1023, 1000, MINUTE);
      assert.equal(seen.error, null, 'alive at 3:59');
      t.mock.timers.tick(999);
      await flush();
      assert.equal(seen.error, null, 'alive at 3:59.999');
      t.mock.timers.tick(1);
      await flush();
      assert.equal(codeOf(seen.error), 'timeout', 'failed at 4:00, the end of the slow window');
      assert.match(messageOf(seen.error), /\(61380 bytes in that time, 61440 needed/);
    } finally {
      restore();
    }
  });

  it('a transfer that ends within its first window is never judged; an abort still ends it at once', async (t) => {
    const restore = withRefreshableFakeTimeouts(t);
    try {
      const short = paced(MINUTE, KBPS);
      await drip(t, short, 10, 1000, 30_000);
      short.input.end();
      await flush();
      assert.equal(short.seen.ended, true);
      t.mock.timers.tick(10 * MINUTE);
      await flush();
      assert.equal(short.seen.error, null, 'its timers went with it');

      const ctl = new AbortController();
      const cut = paced(MINUTE, KBPS, ctl.signal);
      t.mock.timers.tick(1000);
      ctl.abort();
      await flush();
      assert.equal(codeOf(cut.seen.error), 'aborted');
    } finally {
      restore();
    }
  });

  it('the rule of a route: none for 0, measured over 60 s or the route timeout, whichever is longer', () => {
    assert.equal(minRateRule(0, MINUTE), undefined);
    assert.deepEqual(minRateRule(1024, 30_000), { bytesPerSecond: 1024, windowMs: MIN_RATE_WINDOW_MS });
    assert.deepEqual(minRateRule(1024, 5 * MINUTE), { bytesPerSecond: 1024, windowMs: 5 * MINUTE });
    assert.deepEqual(
      [formatRate(1024), formatRate(512), formatRate(1536), formatRate(2 * 1024 * 1024)],
      ['1 KB/s', '512 B/s', '1.5 KB/s', '2 MB/s'],
    );
  });
});

describe('backoffDelay', () => {
  const policy: RetryPolicy = { maxAttempts: 10, baseDelayMs: MINUTE, maxDelayMs: 60 * MINUTE };
  const LOWEST = () => 0;
  const HIGHEST = () => 1 - Number.EPSILON;

  it('attempt n waits between half and all of base * 2^(n-1), capped at maxDelay', () => {
    for (let n = 1; n <= 12; n++) {
      const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      assert.equal(backoffDelay(policy, n, LOWEST), exp / 2, `attempt ${n}: the fixed half`);
      assert.equal(backoffDelay(policy, n, HIGHEST), exp, `attempt ${n}: at most the full delay`);
      assert.equal(
        backoffDelay(policy, n, () => 0.5),
        Math.round(exp * 0.75),
        `attempt ${n}: jitter is linear`,
      );
    }
    assert.equal(backoffDelay(policy, 1, LOWEST), 30_000, 'after the first failure: 30 s to 1 min');
    assert.equal(backoffDelay(policy, 7, HIGHEST), 60 * MINUTE, 'attempt 7 reaches the cap (64 min > 60)');
    assert.equal(backoffDelay(policy, 7, LOWEST), 30 * MINUTE);
    assert.equal(backoffDelay(policy, 0, LOWEST), 30_000, 'attempts below 1 count as the first');
  });

  it('with Math.random: every delay within its bounds, whole milliseconds', () => {
    for (let n = 1; n <= 10; n++) {
      const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(policy, n);
        assert.ok(d >= exp / 2 && d <= exp, `attempt ${n}: ${d} outside [${exp / 2}, ${exp}]`);
        assert.equal(d, Math.round(d));
      }
    }
  });

  it('judgeFailure schedules the next attempt at now + delay, until maxAttempts', () => {
    const now = Date.UTC(2025, 0, 6, 8, 0, 0);
    assert.deepEqual(judgeFailure(policy, 3, true, now, LOWEST), { kind: 'retry', nextAttemptAt: now + 2 * MINUTE });
    assert.deepEqual(judgeFailure(policy, 9, true, now, HIGHEST), { kind: 'retry', nextAttemptAt: now + 60 * MINUTE });
    assert.deepEqual(judgeFailure(policy, 10, true, now), { kind: 'dead', why: 'gave up after 10 attempts' });
    assert.deepEqual(judgeFailure(policy, 1, false, now), { kind: 'dead', why: 'permanent error' });
  });
});

function stopToken(): { token: StopToken; stop: () => void } {
  const ctl = new AbortController();
  return {
    token: {
      get requested() {
        return ctl.signal.aborted;
      },
      signal: ctl.signal,
    },
    stop: () => ctl.abort(),
  };
}

describe('settle (fake clock)', () => {
  it('resolves true at exactly ms, not 1 ms before', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { token } = stopToken();
    const wait = track(settle(5000, token));
    t.mock.timers.tick(4999);
    await flush();
    assert.equal(wait.state, 'pending');
    t.mock.timers.tick(1);
    await flush();
    assert.deepEqual([wait.state, wait.value], ['resolved', true]);
  });

  it('resolves false as soon as the stop token fires, and at once when it already has', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { token, stop } = stopToken();
    const wait = track(settle(5000, token));
    t.mock.timers.tick(1000);
    stop();
    await flush();
    assert.deepEqual([wait.state, wait.value], ['resolved', false], 'no clock time needed');
    assert.equal(await settle(5000, token), false);
  });
});

describe('RouteLock renewal (fake clock and Date)', () => {
  it('renews its row every LOCK_RENEW_MS; the row is stale only LOCK_STALE_MS after the last renewal', async (t) => {
    const start = Math.floor(Date.now() / 1000) * 1000;
    t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: start });
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-timers-'));
    const ledger = Ledger.open(join(dir, 'ledger.sqlite')); // its clock is Date.now: the fake one
    try {
      const lock = RouteLock.acquire(ledger, 'export');
      const renewedAt = () => ledger.lockHolder('export')?.renewedAt;
      assert.equal(renewedAt(), start);
      t.mock.timers.tick(LOCK_RENEW_MS - 1);
      assert.equal(renewedAt(), start, 'not renewed before LOCK_RENEW_MS');
      t.mock.timers.tick(1);
      assert.equal(renewedAt(), start + LOCK_RENEW_MS, 'renewed at LOCK_RENEW_MS');
      t.mock.timers.tick(LOCK_RENEW_MS);
      assert.equal(renewedAt(), start + 2 * LOCK_RENEW_MS);

      // a holder that renews never looks gone to another process, however long it works
      t.mock.timers.tick(3 * LOCK_STALE_MS);
      // (boot time is the row's own: the fake Date moves while os.uptime() does not)
      const row = ledger.lockHolder('export')!;
      assert.ok(Date.now() - row.renewedAt <= LOCK_RENEW_MS);
      assert.equal(holderGone(row, row.boot, Date.now()), false);
      // once it stops renewing (frozen, or killed and its pid reused), stale after exactly LOCK_STALE_MS
      assert.equal(holderGone(row, row.boot, row.renewedAt + LOCK_STALE_MS), false);
      assert.equal(holderGone(row, row.boot, row.renewedAt + LOCK_STALE_MS + 1), true);

      lock.release();
      assert.equal(ledger.lockHolder('export'), undefined);
      t.mock.timers.tick(10 * LOCK_RENEW_MS);
      assert.equal(ledger.lockHolder('export'), undefined, 'a released lock is never renewed back');
    } finally {
      ledger.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops renewing once another holder took the row over', (t) => {
    const start = Math.floor(Date.now() / 1000) * 1000;
    t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: start });
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-timers-'));
    const ledger = Ledger.open(join(dir, 'ledger.sqlite'));
    try {
      RouteLock.acquire(ledger, 'export');
      const other = RouteLock.holder(process.pid + 1);
      assert.equal(
        ledger.lockRoute('export', other, () => true),
        null,
      );
      t.mock.timers.tick(LOCK_RENEW_MS);
      t.mock.timers.tick(LOCK_RENEW_MS);
      const row = ledger.lockHolder('export')!;
      assert.equal(row.pid, other.pid, 'the row stays the new holder’s');
      assert.equal(row.renewedAt, start, 'and the old holder never touches it again');
    } finally {
      ledger.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Scheduler ticks (fake clock and Date, node-cron)', () => {
  it('a tick while the route’s cycle still runs is skipped, never queued', async (t) => {
    // 08:00:00.000 local: node-cron's every-second schedule is due at each whole second
    const start = new Date(2025, 0, 6, 8, 0, 0, 0).getTime();
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: start });
    const route = {
      name: 'export',
      schedule: '* * * * * *',
      direction: 'out',
      profileName: 'office',
    } as RouteConfig;
    const skipped: number[] = [];
    const started: number[] = [];
    const finishers: Array<() => void> = [];
    const running = new Set<string>();
    const msgOf = (a: unknown[]) => String(a.find((x) => typeof x === 'string'));
    const agent = {
      config: { routes: [route] },
      log: {
        info: (...a: unknown[]) => {
          if (msgOf(a).includes('this tick skipped')) skipped.push(Date.now() - start);
        },
        debug: () => undefined,
        error: (...a: unknown[]) => assert.fail(msgOf(a)),
      },
      get busyRoutes() {
        return [...running];
      },
      route: () => route,
      runRoute: (r: RouteConfig) => {
        started.push(Date.now() - start);
        running.add(r.name);
        return new Promise<CycleResult>((resolve) =>
          finishers.push(() => {
            running.delete(r.name);
            resolve({ route: r.name, error: null } as CycleResult);
          }),
        );
      },
      requestStop: () => undefined,
      idle: async () => undefined,
    } as unknown as Agent;
    const scheduler = new Scheduler(agent);
    try {
      scheduler.start();
      assert.deepEqual(started, [0], 'one cycle at start');
      for (let s = 1; s <= 3; s++) {
        t.mock.timers.tick(1000);
        await flush();
      }
      assert.deepEqual(skipped, [1000, 2000, 3000], 'each tick during the cycle skipped');
      assert.deepEqual(started, [0], 'and none started');
      t.mock.timers.tick(500);
      finishers.shift()!();
      await flush();
      assert.deepEqual(started, [0], 'the end of the cycle starts nothing: no tick was queued');
      t.mock.timers.tick(499);
      await flush();
      assert.deepEqual(started, [0]);
      t.mock.timers.tick(1);
      await flush();
      assert.deepEqual(started, [0, 4000], 'the next cycle comes with the next tick');
      assert.deepEqual(skipped, [1000, 2000, 3000]);
      finishers.shift()!();
      await flush();
    } finally {
      await scheduler.stop();
    }
  });
});
