// One verdict per route, from the ledger alone: what `status`, `once`'s exit code (and later the
// office's fleet view) say about a route. A route is
//   failing    when its last cycle could not do its work (the error is still unresolved), or a
//              package is dead (given up, waits for a person);
//   attention  when a package is quarantined or refused in the outbox and nobody acknowledged it
//              yet, or queued/failed/waiting work is older than the route's alertAfter, or (an
//              out-route with confirmWithin) a package was sent longer ago than confirmWithin and
//              the office's receipt has not confirmed it;
//   ok         otherwise, and only then.
// `since` is when the oldest reason behind the verdict began. A route skipped because another
// process works it is none of these: the other process's runs speak for it.
import type { RouteConfig } from './config.js';
import { RouteLock } from '../store/lock.js';
import type { Ledger, PackageState } from '../store/ledger.js';

export type VerdictLevel = 'ok' | 'attention' | 'failing';

export type Reason =
  /** The last cycle ended with a route error (connection, login, disk, outbox unreadable). */
  | { kind: 'route-error'; error: string; since: number; pending: number; oldestPending: number | null }
  | { kind: 'dead' | 'quarantined' | 'refused'; n: number; since: number; ids: number[] }
  /** Queued/failed (out) or waiting (in) work older than alertAfter. */
  | { kind: 'stuck'; n: number; since: number; alertAfterMs: number }
  /** Out-routes with confirmWithin: packages sent longer ago than it with no receipt from the office. */
  | { kind: 'unconfirmed'; n: number; since: number; confirmWithinMs: number };

export interface RouteVerdict {
  route: string;
  direction: 'in' | 'out';
  verdict: VerdictLevel;
  /** When the oldest reason behind a non-ok verdict began (ms), null when ok. */
  since: number | null;
  reasons: Reason[];
  lastSuccessAt: number | null;
  lastRunAt: number | null;
  lastError: string | null;
  /** The route's packages by state (status and run's hourly line show them). */
  counts: Partial<Record<PackageState, number>>;
  /** A cycle of this route running right now in some process. */
  running: { pid: number; since: number } | null;
}

const FAILING: Reason['kind'][] = ['route-error', 'dead'];
/** Ids named in a verdict line at most (the list shows the rest). */
const MAX_IDS = 5;

export function routeVerdict(ledger: Ledger, route: RouteConfig, now: number): RouteVerdict {
  const run = ledger.routeRun(route.name);
  const reasons: Reason[] = [];
  const pendingStates: PackageState[] = route.direction === 'out' ? ['queued', 'failed'] : ['waiting'];
  const byState = ledger.countsByState(route.name);
  if (run.lastError !== null) {
    reasons.push({
      kind: 'route-error',
      error: run.lastError,
      since: run.failingSince ?? run.lastRunAt ?? now,
      pending: pendingStates.reduce((n, s) => n + (byState[s] ?? 0), 0),
      oldestPending: ledger.oldestIn(route.name, pendingStates),
    });
  }
  const olderThan = now - route.alertAfterMs;
  const counts = ledger.problemCounts(route.name, olderThan);
  let stuck: Extract<Reason, { kind: 'stuck' }> | null = null;
  for (const c of counts) {
    if (c.state === 'dead' || c.state === 'quarantined' || c.state === 'refused') {
      const ids = ledger.unseenIds(route.name, c.state, MAX_IDS);
      reasons.push({ kind: c.state, n: c.n, since: c.oldest, ids });
    } else {
      stuck ??= { kind: 'stuck', n: 0, since: c.oldest, alertAfterMs: route.alertAfterMs };
      stuck.n += c.n;
      stuck.since = Math.min(stuck.since, c.oldest);
    }
  }
  if (stuck) reasons.push(stuck);
  if (route.direction === 'out' && route.confirmWithinMs !== undefined) {
    const u = ledger.unconfirmedCount(route.name, now - route.confirmWithinMs);
    if (u.n > 0)
      reasons.push({ kind: 'unconfirmed', n: u.n, since: u.oldest ?? now, confirmWithinMs: route.confirmWithinMs });
  }
  const failing = reasons.filter((r) => FAILING.includes(r.kind));
  const verdict: VerdictLevel = failing.length ? 'failing' : reasons.length ? 'attention' : 'ok';
  const deciding = failing.length ? failing : reasons;
  const holder = ledger.lockHolder(route.name);
  return {
    route: route.name,
    direction: route.direction,
    verdict,
    since: deciding.length ? Math.min(...deciding.map((r) => r.since)) : null,
    reasons,
    lastSuccessAt: run.lastSuccessAt,
    lastRunAt: run.lastRunAt,
    lastError: run.lastError,
    counts: byState,
    running: holder && RouteLock.isLive(holder, now) ? { pid: holder.pid, since: holder.acquiredAt } : null,
  };
}

export const hasProblem = (v: RouteVerdict) => v.verdict !== 'ok';
