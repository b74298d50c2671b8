// One holder per route across processes: `sprelay run` and a `sprelay once` started by Task
// Scheduler must never work the same route at the same time. The lock lives in the ledger, so
// taking it is one SQLite transaction (no window in which two processes both see it free, which
// a lock file cannot promise), and a holder that died (kill -9, power loss) is taken over. A
// holder renews its row while it works; a row not renewed for LOCK_STALE_MS belongs to nobody even
// when its pid is alive again (Windows reuses process ids quickly: that pid is another program).
import { uptime } from 'node:os';
import type { Ledger, LockHolder, RouteLockRow } from './ledger.js';

/** How often a holder renews its lock row. */
export const LOCK_RENEW_MS = 30_000;
/** A lock row not renewed for this long is a dead holder's (a clock that jumps ahead needs slack). */
export const LOCK_STALE_MS = 10 * 60_000;

export class RouteBusyError extends Error {
  constructor(
    readonly route: string,
    readonly pid: number,
  ) {
    super(`route ${route} is being worked by another sprelay process (pid ${pid})`);
    this.name = 'RouteBusyError';
  }
}

/** Boot time to the minute: uptime drifts by milliseconds between calls. */
function bootTime(): number {
  return Math.round((Date.now() - uptime() * 1000) / 60_000) * 60_000;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The holder is gone: its process died, it ran before this machine last booted, or it stopped
 * renewing the row long ago (its pid now names another process).
 */
export function holderGone(h: LockHolder & Partial<RouteLockRow>, boot = bootTime(), now = Date.now()): boolean {
  if (Math.abs(h.boot - boot) > 120_000 || !alive(h.pid)) return true;
  return h.renewedAt !== undefined && now - h.renewedAt > LOCK_STALE_MS;
}

export class RouteLock {
  private readonly renewer: NodeJS.Timeout;

  private constructor(
    private readonly ledger: Ledger,
    private readonly route: string,
    private readonly me: LockHolder,
  ) {
    this.renewer = setInterval(() => {
      try {
        if (!ledger.renewLock(route, me)) clearInterval(this.renewer);
      } catch {
        // a busy or full ledger: the next tick tries again; the row stays ours meanwhile
      }
    }, LOCK_RENEW_MS);
    this.renewer.unref();
  }

  static acquire(ledger: Ledger, route: string): RouteLock {
    const me = { pid: process.pid, boot: bootTime() };
    const holder = ledger.lockRoute(route, me, (h) => holderGone(h, me.boot, ledger.time()));
    if (holder) throw new RouteBusyError(route, holder.pid);
    return new RouteLock(ledger, route, me);
  }

  release(): void {
    clearInterval(this.renewer);
    this.ledger.unlockRoute(this.route, this.me);
  }

  /** Whether a lock row names a live holder (for `status`: a cycle running elsewhere). */
  static isLive(h: RouteLockRow, now = Date.now()): boolean {
    return !holderGone(h, bootTime(), now);
  }

  /** This process's identity as a lock holder (tests use it to play another process). */
  static holder(pid: number): LockHolder {
    return { pid, boot: bootTime() };
  }
}
