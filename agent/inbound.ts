// Inbound: source -> temp file in the inbox (written, hashed and checked in one pass) -> checks
// (name, size, XML, zip, hash) -> ledger -> rename into the inbox -> acknowledge the remote. This
// module is the cycle: listing, recovery, and the groups of entries, each fetched several at once
// (inbound/fetch.ts: min(route concurrency, source.parallel)) and then committed together
// (inbound/commit.ts: one transaction, one folder fsync, the acknowledgements). Entries that are
// not delivered (refused, quarantined) are filed by inbound/refusals.ts, rows and
// acknowledgements made by inbound/record.ts.
//
// Write-ahead makes kill -9 harmless (guarantees 2, 3): the ledger row says `delivered` with the
// temp name (pending_path) BEFORE the rename, so after a crash the next cycle finishes the rename
// or sees it done; the remote is acknowledged only after the rename is durable, and a package
// fetched again after a crash before the acknowledgement is recognised by name + SHA-256 and only
// acknowledged. The inbox file is never overwritten: the rename refuses an existing name.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isRemotePackage } from '../transports/include.js';
import { errorText } from './secrets.js';
import { emptyResult, endpointOf, settle, type CycleResult, type RouteContext } from './route-context.js';
import { hashFile, resumeRenameNoReplace } from '../store/files.js';
import type { RemoteEntry, Source } from '../transports/types.js';
import { commitGroup } from './inbound/commit.js';
import { fetchEntry, overSize, tempPrefix, type Fetched } from './inbound/fetch.js';
import { inPool } from '../store/at-once.js';
import { refuseInPlace } from './inbound/refusals.js';
import { hasSettled, rememberListing, withRemoteTimes } from './inbound/settled.js';
import { splitControl, takeControlFiles } from './inbound/control.js';
import { runStations } from './inbound/stations.js';
import { controlKind } from './control/names.js';
import { issueReceipts } from './control/receipts.js';

export async function runInbound(ctx: RouteContext): Promise<CycleResult> {
  if (ctx.route.perStation) return runStations(ctx, runInbound);
  const result = emptyResult(ctx.route);
  try {
    await fsp.access(ctx.route.local);
  } catch {
    result.error = `inbox folder ${ctx.route.local} does not exist or cannot be opened`;
    ctx.log.error({ route: ctx.route.name }, result.error);
    return result;
  }
  await recoverPending(ctx);
  await removeStaleTemps(ctx);
  let source: Source;
  try {
    source = await ctx.transport.openSource(endpointOf(ctx.route), ctx.abort);
  } catch (err) {
    result.error = ctx.scrub(`cannot reach ${ctx.route.profileName}: ${errorText(err)}`);
    ctx.log.error({ route: ctx.route.name }, result.error);
    return result;
  }
  try {
    // receipts and heartbeats first, and never as packages (inbound/control.ts)
    const { control, packages } = splitControl(await stableEntries(ctx, source));
    await takeControlFiles(ctx, source, control, result);
    const entries = oldestFirst(packages);
    // A flood (of mail, of files) costs a bounded cycle: at most maxPerCycle entries are worked
    // on; a refusal already recorded costs one index lookup and does not count.
    const max = ctx.route.maxPerCycle;
    const width = Math.max(1, Math.min(ctx.route.concurrency, source.parallel ?? 1));
    const groupEntries = source.acknowledgesTogether ? GROUP_ENTRIES_TOGETHER : GROUP_ENTRIES;
    const mine = new Set<number>();
    let handled = 0;
    let next = 0;
    while (next < entries.length && handled < max && !ctx.stop.requested) {
      // a group: the entries refused up front are recorded on the way (one lookup each), the
      // others fetched `width` at a time, then committed together (inbound/commit.ts)
      const group: RemoteEntry[] = [];
      let bytes = 0;
      while (
        next < entries.length &&
        handled + group.length < max &&
        group.length < groupEntries &&
        bytes < GROUP_BYTES &&
        !ctx.stop.requested
      ) {
        const entry = entries[next++]!;
        const upFront = refusedUpFront(ctx, entry);
        if (upFront === null) {
          group.push(entry);
          bytes += entry.size;
        } else if ((await refuseInPlace(ctx, source, entry, upFront, result)) !== 'known') handled++;
      }
      const { started, fetched, error } = await fetchGroup(ctx, source, group, result, width);
      handled += started;
      // what was fetched is committed even when the route stops (the others' temps are gone)
      await commitGroup(ctx, source, fetched, result, mine, width);
      if (error !== undefined) throw error;
    }
    if (next < entries.length && handled >= max) {
      ctx.log.warn(
        { route: ctx.route.name, left: entries.length - next },
        `${entries.length - next} remote entries left for the next cycle (maxPerCycle ${max})`,
      );
    }
  } catch (err) {
    result.error = ctx.scrub(errorText(err));
    ctx.log.error({ route: ctx.route.name }, result.error);
  } finally {
    await source.close();
  }
  // an office taking packages by e-mail answers them too (the stations' folders do it in stations.ts)
  if (ctx.station === undefined && ctx.config.receipts !== undefined) {
    try {
      await issueReceipts(ctx);
    } catch (err) {
      const message = ctx.scrub(`cannot make the receipts: ${errorText(err)}`);
      ctx.log.error({ route: ctx.route.name }, message);
      result.error ??= message;
    }
  }
  return result;
}

/** A group ends at this many entries, or once its entries' sizes reach GROUP_BYTES (temps on disk at once). */
const GROUP_ENTRIES = 64;
/**
 * The same for a source that acknowledges a group in one batch (e-mail): a group's end stops the
 * fetching until the group is committed and acknowledged, a round trip or two on a slow link, and
 * the batch costs the same for 64 entries as for 500 (issue 11: W3's 200 messages were 4 groups).
 * maxPerCycle (500 by default) and GROUP_BYTES still bound it.
 */
const GROUP_ENTRIES_TOGETHER = 512;
const GROUP_BYTES = 64 * 1024 * 1024;

/** Refused without taking the bytes: the transport's refusal, or over the size cap. */
function refusedUpFront(ctx: RouteContext, entry: RemoteEntry): string | null {
  return entry.refusal ?? (entry.size > ctx.route.maxSize ? overSize(entry.size, ctx.route.maxSize) : null);
}

/** Fetches `group` at most `width` at once, in order; none is started after a failure or a stop request. */
async function fetchGroup(
  ctx: RouteContext,
  source: Source,
  group: RemoteEntry[],
  result: CycleResult,
  width: number,
): Promise<{ started: number; fetched: Fetched[]; error?: unknown }> {
  const slots: (Fetched | null)[] = group.map(() => null);
  const { started, error } = await inPool(
    group,
    width,
    async (entry, i) => {
      slots[i] = await fetchEntry(ctx, source, entry, result);
    },
    () => ctx.stop.requested,
  );
  const fetched = slots.filter((f): f is Fetched => f !== null);
  return error === undefined ? { started, fetched } : { started, fetched, error };
}

/** Finishes what a crash interrupted between the ledger's `delivered` and the inbox rename. */
async function recoverPending(ctx: RouteContext): Promise<void> {
  const { ledger, route, log } = ctx;
  for (const row of ledger.pendingInbound(route.name, ctx.station)) {
    const temp = join(route.local, row.pendingPath!);
    const final = join(route.local, row.name);
    const outcome = await resumeRenameNoReplace(temp, final);
    if (outcome !== 'taken') {
      const how = {
        done: 'rename into the inbox had completed',
        linked: 'the link into the inbox had been made',
        renamed: 'rename into the inbox completed after restart',
      }[outcome];
      ledger.update(row.id, { pendingPath: null }, 'recovered', how);
      if (outcome === 'renamed')
        log.info({ route: route.name, id: row.id, file: row.name }, 'delivered (completed after restart)');
      continue;
    }
    const there = await hashFile(final);
    await fsp.rm(temp, { force: true });
    if (there.sha256 === row.sha256) {
      ledger.update(row.id, { pendingPath: null }, 'recovered', 'identical file already in the inbox');
    } else {
      ledger.transition(
        row.id,
        ['delivered'],
        'waiting',
        { pendingPath: null, ackedAt: null },
        'waiting',
        'another file of that name is in the inbox; fetched again next cycle',
      );
    }
  }
}

async function removeStaleTemps(ctx: RouteContext): Promise<void> {
  const prefix = tempPrefix(ctx);
  for (const name of await fsp.readdir(ctx.route.local)) {
    if (name.startsWith(prefix) && name.endsWith('.part')) {
      await fsp.rm(join(ctx.route.local, name), { force: true });
    }
  }
}

async function stableEntries(ctx: RouteContext, source: Source): Promise<RemoteEntry[]> {
  const pick = (list: RemoteEntry[]) =>
    list.filter(
      (e) => e.refusal !== undefined || controlKind(e.name) !== null || isRemotePackage(e.name, ctx.route.include),
    );
  const first = pick(await source.list(ctx.abort));
  if (first.length === 0 || source.atomicEntries) return first;
  // Guarantee 1 for remote files: skip entries still growing between two listings, unless every
  // one has settled already: by its time (asked, when the listing has none and the source can
  // tell), or unchanged in the previous cycle's listing (settled.ts)
  const timed = await withRemoteTimes(ctx, source, first);
  const now = Date.now();
  const settled = timed.every((e) => hasSettled(ctx, e, now));
  rememberListing(ctx, first);
  if (settled) return timed;
  if (!(await settle(ctx.route.settleMs, ctx.stop))) return [];
  const before = new Map(first.map((e) => [e.ref, e]));
  const second = pick(await source.list(ctx.abort));
  rememberListing(ctx, second);
  return second.filter((e) => {
    const b = before.get(e.ref);
    const same = b && b.size === e.size && b.modifiedAt?.getTime() === e.modifiedAt?.getTime();
    if (!same) ctx.log.debug({ route: ctx.route.name, file: e.name }, 'still changing on the remote, left there');
    return same;
  });
}

/** Entries with a modification time oldest first (a stable sort: the transport's order otherwise). */
function oldestFirst(entries: RemoteEntry[]): RemoteEntry[] {
  const t = (e: RemoteEntry) => e.modifiedAt?.getTime() ?? Infinity;
  return entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => t(a.e) - t(b.e) || a.i - b.i)
    .map((x) => x.e);
}
