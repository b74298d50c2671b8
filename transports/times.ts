// An optional capability of a Source: the modification times its listing did not carry, asked
// one entry at a time (FTP: MDTM on a server whose LIST has no usable time and that has no MLSD,
// vsftpd; or the times a Unix LIST printed, once one or two MDTM said the listing's zone:
// ftp/listtimes.ts). The pipeline asks only when those times could spare it the settle interval's second
// listing (agent/inbound/settled.ts decides, and judges the times as it judges listed ones).
// (Kept out of Source in types.ts, as whole.ts is, so that wrappers built field by field stay
// complete: a wrapper without it simply lists twice.)
import type { RemoteEntry, Source } from './types.js';

export interface RemoteTimes {
  /**
   * The modification time of each of `entries` the remote reports, by ref, asked one after the
   * other on each of at most `width` connections at once, within `budgetMs` (withinBudget: it
   * stops once the time spent plus the estimate for the rest would pass the budget). The entries
   * not reached, and those whose answer was refused or not a time, are absent from the map. A
   * remote that cannot say (FTP without MDTM in FEAT) answers an empty map without asking
   * anything. Rejects only as list() does: the connection failed, the deadline passed, `signal`
   * fired.
   */
  times(
    entries: readonly RemoteEntry[],
    budgetMs: number,
    width: number,
    signal: AbortSignal,
  ): Promise<Map<string, Date>>;
}

/** `source` when it can report the times its listing lacks, else null. */
export function remoteTimesOf(source: Source): (Source & RemoteTimes) | null {
  const s = source as Source & Partial<RemoteTimes>;
  return typeof s.times === 'function' ? (s as Source & RemoteTimes) : null;
}

/** withinBudget's estimate: the pace of this many latest answers (with several at once: their throughput). */
const PACE_WINDOW = 32;

/**
 * Runs `ask` for `items` in order, `width` at a time (each of the `width` workers one after the
 * other, `lane` its number), and stops before the next question once the time spent plus the
 * estimate for the items not answered yet would pass `budgetMs` (and in any case once the budget
 * is spent). The estimate is the pace of the latest answers (the time since the answer
 * PACE_WINDOW before, per answer, over all workers: their throughput) times the items left.
 * While workers are still opening their connections (`begin`, each worker's once before its
 * first question) the answers come slower than they will (fewer workers, and the handshakes take
 * the CPU: 3-16 ms an answer then, under 1 ms after, vsftpd on a loaded loopback, 4 lanes):
 * until every worker has begun, only an estimate past `width` times the budget stops (a slow
 * link: each answer a round trip), and none in the first tenth of the budget. Judged on those
 * first answers alone, 1000 entries would never be asked. A failed `ask` (or `begin`) stops
 * every worker after its question in hand, and is thrown once none is in hand. Returns (how many
 * were asked) once no question is in hand and none is to come, without waiting for a worker
 * still in `begin`: a slow link's connections keep opening for what comes next (the downloads).
 */
export async function withinBudget<T>(
  items: readonly T[],
  budgetMs: number,
  ask: (item: T, lane: number) => Promise<void>,
  opts: {
    /** Workers (default 1). */
    width?: number;
    /** Run by each worker before its first question (its connection). */
    begin?: (lane: number) => Promise<void>;
    /**
     * Run by each worker once it has no more to ask (or failed): a worker whose `begin` waits
     * for the connection another one holds gets it then. A worker still in `begin` when the
     * questions are over is not waited for; it runs `end` once its `begin` is done.
     */
    end?: (lane: number) => void;
    /** A monotonic clock in ms (tests give their own). */
    now?: () => number;
  } = {},
): Promise<number> {
  if (!(budgetMs > 0)) return 0;
  const { width = 1, begin, end, now = () => performance.now() } = opts;
  const lanes = Math.max(1, Math.min(width, items.length));
  const start = now();
  /** When each answer came, in the order they came. */
  const answered: number[] = [];
  let begun = 0;
  /** Answers (and when) before every worker had begun: not counted in the pace after. */
  let early = 0;
  let allBegunAt = start;
  let next = 0;
  let stop = false;
  const tooLong = (): boolean => {
    const t = now();
    const spent = t - start;
    if (spent >= budgetMs) return true;
    const all = begun === lanes;
    const first = all ? early : 0;
    const done = answered.length - first;
    if (done === 0 || spent < budgetMs / 10) return false;
    const k = Math.min(done, PACE_WINDOW);
    const from = done > k ? answered[first + done - k - 1]! : all ? allBegunAt : start;
    const estimate = spent + ((t - from) / k) * (items.length - answered.length);
    return estimate > (all ? budgetMs : budgetMs * lanes);
  };
  // Done once no question is in hand and none is to come; a worker still opening its connection
  // then is not waited for (FTP: it goes back to the pool for the downloads when it is open).
  let asking = 0;
  let unfinished = lanes;
  let failure: { err: unknown } | undefined;
  let quiet!: () => void;
  const over = new Promise<void>((resolve) => (quiet = resolve));
  const worker = async (lane: number) => {
    try {
      if (begin && !stop && next < items.length) await begin(lane);
      if (++begun === lanes) {
        early = answered.length;
        allBegunAt = now();
      }
      asking++;
      try {
        while (!stop && next < items.length) {
          if (tooLong()) {
            stop = true;
            break;
          }
          await ask(items[next++]!, lane);
          answered.push(now());
        }
      } finally {
        asking--;
      }
    } catch (err) {
      stop = true;
      failure ??= { err };
    } finally {
      end?.(lane);
      unfinished--;
      if (unfinished === 0 || (asking === 0 && (stop || next >= items.length))) quiet();
    }
  };
  for (let i = 0; i < lanes; i++) void worker(i);
  await over;
  if (failure) throw failure.err;
  return next;
}
