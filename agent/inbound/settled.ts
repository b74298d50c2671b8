// Guarantee 1 for remote files (skip what is still being written) without the second listing when
// the evidence is already there. Two kinds of evidence count:
// - Its time, within what we allow a remote's clock (issue 11, settle by age): an entry whose
//   modification time is older than settle + `clockSkew` (15 minutes by default) by our clock was
//   last written at least `settle` ago even if the server's clock is that far behind ours (a clock
//   ahead only makes files look younger). A time before 2000 (a server whose clock was never set)
//   or none at all (FTP LIST) is no evidence; `clockSkew: off` trusts no remote time.
// - Our own earlier look: two listings at least `settle` apart that show an entry with the same
//   size and modification time are exactly what the double listing checks, whether they were taken
//   in one cycle or in two. So each route remembers its last listing (in this process, on our
//   monotonic clock): an entry listed unchanged by the previous cycle at least `settle` ago needs no
//   new look.
// A cycle where every entry is settled by one or the other does not sleep; anything new or changed
// waits for the second listing.
// A listing without times (FTP LIST, vsftpd has no MLSD) gets them asked entry by entry where the
// source can (transports/times.ts: MDTM), within half the settle, when that could spare the sleep:
// those times are judged exactly as listed ones (MDTM is UTC by RFC 3659; a server answering its
// local time ahead of UTC only makes files look younger, behind UTC is what clockSkew covers).
// The listing is remembered as listed, without the times asked, so that the next listing (which
// has none either) compares like with like.
// The copy still checks the size it was listed with, and the content check still judges the bytes.
import type { RouteContext } from '../route-context.js';
import { remoteTimesOf } from '../../transports/times.js';
import type { RemoteEntry, Source } from '../../transports/types.js';

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

/** Before this, a remote's time says nothing (a server whose clock was never set shows 1970 or 1980). */
const PLAUSIBLE_SINCE = Date.UTC(2000, 0, 1);

/**
 * True when `entry`'s modification time is older than settle + the route's clockSkew by our
 * clock `now`: it was last written at least `settle` ago even on a server whose clock is that far
 * behind. False without a (plausible) time, or when the route trusts no remote time.
 */
export function settledByAge(ctx: RouteContext, entry: RemoteEntry, now = Date.now()): boolean {
  const skew = ctx.route.clockSkewMs;
  const t = entry.modifiedAt?.getTime();
  if (skew === null || t === undefined || Number.isNaN(t) || t < PLAUSIBLE_SINCE) return false;
  return t <= now - ctx.route.settleMs - skew;
}

/** Settled without a new look: by its time, or by this process's earlier listing. Call before rememberListing. */
export function hasSettled(ctx: RouteContext, entry: RemoteEntry, now = Date.now()): boolean {
  return settledByAge(ctx, entry, now) || settledBefore(ctx, entry);
}

/**
 * `entries` (one listing), with the modification times the source can tell for those that have
 * none and are not settled by this process's earlier listing: asked only when the route trusts
 * remote times, the source can tell them (remoteTimesOf), and every entry that has a time is
 * settled by it (else the cycle lists twice whatever the answers), within half the settle (what
 * asking must cost less than: the sleep it spares). Entries not reached keep no time. Call before
 * rememberListing, and remember the listing as listed (`entries`), not this.
 */
export async function withRemoteTimes(
  ctx: RouteContext,
  source: Source,
  entries: RemoteEntry[],
  now = Date.now(),
): Promise<RemoteEntry[]> {
  const timed = remoteTimesOf(source);
  const budgetMs = ctx.route.settleMs / 2;
  if (timed === null || ctx.route.clockSkewMs === null || budgetMs <= 0) return entries;
  const ask: RemoteEntry[] = [];
  for (const e of entries) {
    if (e.modifiedAt !== undefined) {
      if (!hasSettled(ctx, e, now)) return entries;
    } else if (!settledBefore(ctx, e)) ask.push(e);
  }
  if (ask.length === 0) return entries;
  // as many connections as the fetches will use (FTP: lanes opened now serve the downloads)
  const width = Math.max(1, Math.min(ctx.route.concurrency, source.parallel ?? 1));
  const times = await timed.times(ask, budgetMs, width, ctx.abort);
  if (times.size === 0) return entries;
  return entries.map((e) => {
    const t = e.modifiedAt === undefined ? times.get(e.ref) : undefined;
    return t === undefined ? e : { ...e, modifiedAt: t };
  });
}
