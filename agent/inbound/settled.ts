// Guarantee 1 for remote files (skip what is still being written) without the second listing when
// the evidence is already there. A remote's clock is not trusted (its mtimes say nothing about our
// time), so remote files are never settled by age as outbox files are; but two listings at least
// `settle` apart that show an entry with the same size and modification time are exactly what the
// double listing checks, whether they were taken in one cycle or in two. So each route remembers
// its last listing (in this process, on our monotonic clock): an entry listed unchanged by the
// previous cycle at least `settle` ago needs no new look, and a cycle where every entry is such an
// entry does not sleep. Anything new or changed still waits for the second listing.
import type { RouteContext } from '../route-context.js';
import type { RemoteEntry } from '../../transports/types.js';

interface Seen {
  size: number;
  mtime: number | undefined;
  /** performance.now() when it was first listed with this size and time. */
  since: number;
}

/** Per agent (its ledger), per route and remote: the entries of the last listing. */
const memory = new WeakMap<object, Map<string, Map<string, Seen>>>();

function routeKey(ctx: RouteContext): string {
  const r = ctx.route;
  return `${r.name}\u0000${r.profileName}\u0000${r.remote}`;
}

function listingOf(ctx: RouteContext): Map<string, Seen> | undefined {
  return memory.get(ctx.ledger)?.get(routeKey(ctx));
}

/** Remembers `entries` as the route's latest listing (an unchanged entry keeps when it was first seen). */
export function rememberListing(ctx: RouteContext, entries: readonly RemoteEntry[]): void {
  const before = listingOf(ctx);
  const now = performance.now();
  const next = new Map<string, Seen>();
  for (const e of entries) {
    const mtime = e.modifiedAt?.getTime();
    const was = before?.get(e.ref);
    const same = was !== undefined && was.size === e.size && was.mtime === mtime;
    next.set(e.ref, { size: e.size, mtime, since: same ? was.since : now });
  }
  let routes = memory.get(ctx.ledger);
  if (!routes) {
    routes = new Map();
    memory.set(ctx.ledger, routes);
  }
  routes.set(routeKey(ctx), next);
}

/**
 * True when `entry` was listed with this very size and modification time at least `settle` ago
 * (and in every listing since): it has settled. Call before rememberListing of the new listing.
 */
export function settledBefore(ctx: RouteContext, entry: RemoteEntry): boolean {
  const was = listingOf(ctx)?.get(entry.ref);
  if (!was) return false;
  return (
    was.size === entry.size &&
    was.mtime === entry.modifiedAt?.getTime() &&
    performance.now() - was.since >= ctx.route.settleMs
  );
}
