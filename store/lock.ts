// One holder per route across processes: `sprelay run` and a `sprelay once` started by Task
// Scheduler must never work the same route at the same time. The lock lives in the ledger, so
// taking it is one SQLite transaction (no window in which two processes both see it free, which
// a lock file cannot promise), and a holder that died (kill -9, power loss) is taken over.
import { uptime } from 'node:os';
import type { Ledger, LockHolder } from './ledger.js';

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

/** The holder is gone: its process died, or it ran before this machine last booted. */
export function holderGone(h: LockHolder, boot = bootTime()): boolean {
  return Math.abs(h.boot - boot) > 120_000 || !alive(h.pid);
}

export class RouteLock {
  private constructor(
    private readonly ledger: Ledger,
    private readonly route: string,
    private readonly me: LockHolder,
  ) {}

  static acquire(ledger: Ledger, route: string): RouteLock {
    const me = { pid: process.pid, boot: bootTime() };
    const holder = ledger.lockRoute(route, me, (h) => holderGone(h, me.boot));
    if (holder) throw new RouteBusyError(route, holder.pid);
    return new RouteLock(ledger, route, me);
  }

  release(): void {
    this.ledger.unlockRoute(this.route, this.me);
  }

  /** This process's identity as a lock holder (tests use it to play another process). */
  static holder(pid: number): LockHolder {
    return { pid, boot: bootTime() };
  }
}
