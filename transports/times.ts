// An optional capability of a Source: the modification times its listing did not carry, asked
// one entry at a time (FTP: MDTM on a server whose LIST has no usable time and that has no MLSD,
// vsftpd). The pipeline asks only when those times could spare it the settle interval's second
// listing (agent/inbound/settled.ts decides, and judges the times as it judges listed ones).
// (Kept out of Source in types.ts, as whole.ts is, so that wrappers built field by field stay
// complete: a wrapper without it simply lists twice.)
import type { RemoteEntry, Source } from './types.js';

export interface RemoteTimes {
  /**
   * The modification time of each of `entries` the remote reports, by ref, asked one after the
   * other. Stops before the next question once the time spent plus the estimate for the rest (the
   * average so far times the entries left) would pass `budgetMs`: the entries not reached, and
   * those whose answer was refused or not a time, are absent from the map. A remote that cannot
   * say (FTP without MDTM in FEAT) answers an empty map without asking anything. Rejects only as
   * list() does: the connection failed, the deadline passed, `signal` fired.
   */
  times(entries: readonly RemoteEntry[], budgetMs: number, signal: AbortSignal): Promise<Map<string, Date>>;
}

/** `source` when it can report the times its listing lacks, else null. */
export function remoteTimesOf(source: Source): (Source & RemoteTimes) | null {
  const s = source as Source & Partial<RemoteTimes>;
  return typeof s.times === 'function' ? (s as Source & RemoteTimes) : null;
}

/**
 * Runs `ask` for `items` in order, one at a time, while the time spent plus the average so far
 * times the items left stays within `budgetMs` (the first is asked whenever the budget is above 0:
 * there is no average yet). `now` is a monotonic clock in ms. Returns how many were asked.
 */
export async function withinBudget<T>(
  items: readonly T[],
  budgetMs: number,
  ask: (item: T) => Promise<void>,
  now: () => number = () => performance.now(),
): Promise<number> {
  if (!(budgetMs > 0)) return 0;
  const start = now();
  let done = 0;
  for (const item of items) {
    if (done > 0) {
      const spent = now() - start;
      if (spent + (spent / done) * (items.length - done) > budgetMs) break;
    }
    await ask(item);
    done++;
  }
  return done;
}
