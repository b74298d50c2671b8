// Inbound: source -> temp file in the inbox -> checks (name, size, XML, hash) -> ledger -> rename
// into the inbox -> acknowledge the remote.
//
// Write-ahead makes kill -9 harmless (guarantees 2, 3): the ledger row says `delivered` with the
// temp name (pending_path) BEFORE the rename, so after a crash the next cycle finishes the rename
// or sees it done; the remote is acknowledged only after that, and a package fetched again after
// a crash before the acknowledgement is recognised by name + SHA-256 and only acknowledged.
// The inbox file is never overwritten: the rename refuses an existing name (renameNoReplace).
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { checkName, checkXmlFile, checkZipFile, isXmlName, isZipName } from './inspect.js';
import { isRemotePackage } from '../transports/include.js';
import { crashPoint } from './crash-points.js';
import { errorText } from './secrets.js';
import { emptyResult, endpointOf, settle, type CycleResult, type RouteContext } from './route-context.js';
import { isLocalDiskError } from '../store/durable.js';
import {
  exists,
  hashFile,
  renameNoReplace,
  resumeRenameNoReplace,
  TooLargeError,
  writeDurably,
} from '../store/files.js';
import type { LedgerEvent, NewPackage, PackageRow } from '../store/ledger.js';
import { TransportError } from '../transports/errors.js';
import type { RemoteEntry, Source } from '../transports/types.js';

/** Stops the route for this cycle; the reason goes to the route status. */
class RouteStop extends Error {}

export async function runInbound(ctx: RouteContext): Promise<CycleResult> {
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
    const entries = oldestFirst(await stableEntries(ctx, source));
    // A flood (of mail, of files) costs a bounded cycle: at most maxPerCycle entries are worked
    // on; a refusal already recorded costs one index lookup and does not count.
    const max = ctx.route.maxPerCycle;
    let handled = 0;
    let next = 0;
    while (next < entries.length && handled < max && !ctx.stop.requested) {
      if ((await receiveOne(ctx, source, entries[next++]!, result)) !== 'known') handled++;
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
  return result;
}

function tempPrefix(ctx: RouteContext): string {
  return `.sprelay-${ctx.route.name}-`;
}

/** Finishes what a crash interrupted between the ledger's `delivered` and the inbox rename. */
async function recoverPending(ctx: RouteContext): Promise<void> {
  const { ledger, route, log } = ctx;
  for (const row of ledger.pendingInbound(route.name)) {
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
    list.filter((e) => e.refusal !== undefined || isRemotePackage(e.name, ctx.route.include));
  const first = pick(await source.list(ctx.abort));
  if (first.length === 0 || source.atomicEntries) return first;
  // Guarantee 1 for remote files: skip entries still growing between two listings.
  if (!(await settle(ctx.route.settleMs, ctx.stop))) return [];
  const before = new Map(first.map((e) => [e.ref, e]));
  return pick(await source.list(ctx.abort)).filter((e) => {
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

/**
 * What one entry cost the cycle: `known` is a refusal already recorded with nothing left to do (one
 * index lookup; it does not count against maxPerCycle); anything else counts.
 */
type Outcome = 'handled' | 'known';

async function receiveOne(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  result: CycleResult,
): Promise<Outcome | void> {
  const { route, ledger, log } = ctx;
  // Refused up front (sender not allowed, no matching attachment, over the size cap): recorded
  // once; a refusal by the transport is then handed back to it (moved per afterRefuse, or marked
  // so it is not listed again), anything else left in place.
  const upFront = entry.refusal ?? (entry.size > route.maxSize ? overSize(entry.size, route.maxSize) : null);
  if (upFront) return refuseInPlace(ctx, source, entry, upFront, result);

  const tempName = `${tempPrefix(ctx)}${randomBytes(6).toString('hex')}.part`;
  const temp = join(route.local, tempName);
  let got: { size: number; sha256: string };
  try {
    const stream = await source.open(entry, ctx.abort);
    got = await writeDurably(stream, temp, { maxBytes: route.maxSize, signal: ctx.abort });
  } catch (err) {
    await fsp.rm(temp, { force: true });
    if (err instanceof TooLargeError) {
      // downloaded up to maxSize first: work done, whether or not the refusal was known
      await refuseInPlace(ctx, source, entry, overSize(entry.size, route.maxSize, true), result);
      return 'handled';
    }
    if (err instanceof TransportError && err.scope === 'package') {
      log.warn({ route: route.name, file: entry.name }, `skipped this cycle: ${ctx.scrub(err.message)}`);
      return;
    }
    if (err instanceof TransportError || !isLocalDiskError(err)) {
      throw new RouteStop(`download of ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
    }
    throw new RouteStop(`cannot write into the inbox ${route.local}: ${errorText(err)}`);
  }
  crashPoint('in:after-download');
  if (got.size !== entry.size) {
    await fsp.rm(temp, { force: true });
    log.warn(
      { route: route.name, file: entry.name },
      `size changed during download (${entry.size} -> ${got.size}); tried again next cycle`,
    );
    return;
  }

  const rejection = await whyRejected(ctx, entry, temp, got.sha256, source.atomicEntries === true);
  if (rejection) return quarantine(ctx, source, entry, temp, got, rejection, result);

  const original = ledger.findOriginal(route.name, entry.name, got.sha256, ['delivered', 'quarantined']);
  if (original) {
    await fsp.rm(temp, { force: true });
    if (original.ackedAt === null) {
      // fetched again because a crash came before the acknowledgement: only acknowledge now
      await acknowledge(ctx, source, entry, original);
      log.info({ route: route.name, id: original.id, file: entry.name }, 'acknowledged (was already received)');
      return;
    }
    const dup = insertInbound(
      ctx,
      entry,
      { size: got.size, sha256: got.sha256, state: 'duplicate', duplicateOf: original.id },
      'duplicate',
      `same name and bytes as package ${original.id}; not written again`,
    );
    result.duplicates++;
    log.info(
      { route: route.name, id: dup.id, file: entry.name },
      `duplicate of package ${original.id}, not written again`,
    );
    await acknowledge(ctx, source, entry, dup);
    return;
  }

  const final = join(route.local, entry.name);
  const waitingRow = ledger.findOriginal(route.name, entry.name, got.sha256, ['waiting']);
  if (await exists(final)) {
    await fsp.rm(temp, { force: true });
    const there = await hashFile(final);
    if (there.sha256 === got.sha256) {
      const row = insertInbound(
        ctx,
        entry,
        { size: got.size, sha256: got.sha256, state: 'duplicate' },
        'duplicate',
        'an identical file is already in the inbox; not written again',
      );
      result.duplicates++;
      await acknowledge(ctx, source, entry, row);
      return;
    }
    markWaiting(ctx, entry, got, waitingRow);
    result.waiting++;
    return;
  }

  // write-ahead: the ledger knows the temp name before the rename
  const row = waitingRow
    ? ledger.transition(
        waitingRow.id,
        ['waiting'],
        'delivered',
        { pendingPath: tempName, remoteRef: entry.ref },
        'receiving',
      )
    : insertInbound(
        ctx,
        entry,
        { size: got.size, sha256: got.sha256, state: 'delivered', pendingPath: tempName },
        'receiving',
        `from ${entry.ref}`,
      );
  crashPoint('in:after-ledger-delivered');
  if (!(await renameNoReplace(temp, final, () => crashPoint('in:after-link')))) {
    await fsp.rm(temp, { force: true });
    ledger.transition(
      row.id,
      ['delivered'],
      'waiting',
      { pendingPath: null },
      'waiting',
      'a file of that name appeared in the inbox',
    );
    result.waiting++;
    return;
  }
  crashPoint('in:after-rename');
  ledger.update(row.id, { pendingPath: null }, 'delivered', `into ${route.local}`);
  result.delivered++;
  log.info({ route: route.name, id: row.id, file: entry.name, size: got.size }, 'delivered');
  crashPoint('in:before-ack');
  await acknowledge(ctx, source, entry, row);
}

function overSize(size: number, max: number, measured = false): string {
  return `larger than maxSize (${measured ? 'more than ' + max : size} > ${max} bytes); left on the remote`;
}

interface Rejection {
  reason: string;
  /**
   * The content was judged (not well-formed XML, not a zip): it may be a file the office is still
   * writing in place. Such a package is kept in quarantine but left on the remote until a later
   * cycle finds the very same bytes again, so a writer that paused longer than `settle` does not
   * lose its file to our acknowledgement (delete).
   */
  content: boolean;
}

async function whyRejected(
  ctx: RouteContext,
  entry: RemoteEntry,
  temp: string,
  sha256: string,
  /** Entries that only ever appear whole (e-mail): bad content is final at once. */
  atomic: boolean,
): Promise<Rejection | null> {
  const badName = checkName(entry.name);
  if (badName) return { reason: `unsafe file name: ${badName}`, content: false };
  if (entry.expectedSha256 && entry.expectedSha256.toLowerCase() !== sha256) {
    return { reason: `corrupt: SHA-256 ${sha256} differs from the declared ${entry.expectedSha256}`, content: false };
  }
  const bad = isXmlName(entry.name)
    ? await checkXmlFile(temp, ctx.abort, ctx.config.check.xml)
    : isZipName(entry.name)
      ? await checkZipFile(temp, ctx.abort, ctx.config.check)
      : null;
  return bad ? { reason: bad, content: !atomic } : null;
}

function markWaiting(
  ctx: RouteContext,
  entry: RemoteEntry,
  got: { size: number; sha256: string },
  existing: PackageRow | undefined,
): void {
  const { route, ledger, log } = ctx;
  if (existing) {
    ledger.update(existing.id, { remoteRef: entry.ref });
  } else {
    insertInbound(
      ctx,
      entry,
      { size: got.size, sha256: got.sha256, state: 'waiting' },
      'waiting',
      'a not yet imported file of that name is in the inbox; left on the remote',
    );
  }
  log.info({ route: route.name, file: entry.name }, 'waiting: the previous file of that name is not imported yet');
}

/**
 * Rejected without taking the bytes (we do not hold them): recorded once, found again by one
 * index lookup (store/ledger migration 4). The remote is left untouched, except that an entry the
 * transport itself refused (`refusal`: an e-mail message) is handed back to it through acknowledge
 * after the row is written: `afterRefuse: move:<mailbox>` moves it (a move that failed is tried
 * again the next time the entry is listed); `leave` lets the transport mark it so that it is not
 * listed again (the row keeps ackedAt null: the message is still there).
 */
async function refuseInPlace(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  reason: string,
  result: CycleResult,
): Promise<Outcome> {
  const { route, ledger, log } = ctx;
  const byTransport = entry.refusal !== undefined;
  const file = byTransport && route.afterRefuse !== undefined;
  const known = ledger.findRefusedInPlace(route.name, entry);
  if (known) {
    if (file && known.ackedAt === null) {
      await fileRefused(ctx, source, entry, known);
      return 'handled';
    }
    // listed again: its mark was lost, or the mailbox takes none (then this costs nothing remote)
    if (byTransport && !file) await markRefused(ctx, source, entry, known);
    return 'known';
  }
  const row = insertInbound(
    ctx,
    entry,
    { size: entry.size, state: 'quarantined', lastError: reason },
    'quarantined',
    reason,
  );
  result.quarantined++;
  log.warn({ route: route.name, id: row.id, file: entry.name }, `quarantined: ${reason}`);
  if (file) await fileRefused(ctx, source, entry, row);
  else if (byTransport) await markRefused(ctx, source, entry, row);
  return 'handled';
}

/** afterRefuse leave: the transport marks the recorded refusal (IMAP: a keyword); nothing else changes. */
async function markRefused(ctx: RouteContext, source: Source, entry: RemoteEntry, row: PackageRow): Promise<void> {
  try {
    await source.acknowledge(entry, ctx.abort);
  } catch (err) {
    if (err instanceof TransportError && err.scope === 'package') {
      ctx.log.warn(
        { route: ctx.route.name, id: row.id, file: entry.name },
        `could not mark the refused message on the remote: ${ctx.scrub(err.message)}`,
      );
      return;
    }
    throw new RouteStop(`marking the refused message ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
  }
}

/** Moves a refused message out of the way (afterRefuse: move); the ledger row says so. */
async function fileRefused(ctx: RouteContext, source: Source, entry: RemoteEntry, row: PackageRow): Promise<void> {
  const to = ctx.route.afterRefuse!.to;
  try {
    await source.acknowledge(entry, ctx.abort);
  } catch (err) {
    if (err instanceof TransportError && err.scope === 'package') {
      ctx.log.warn(
        { route: ctx.route.name, id: row.id, file: entry.name },
        `could not move the refused message to ${to}: ${ctx.scrub(err.message)}`,
      );
      return;
    }
    throw new RouteStop(`moving the refused message ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
  }
  ctx.ledger.update(row.id, { ackedAt: ctx.now() }, 'acknowledged', `refused message moved to ${to} on the remote`);
}

async function quarantine(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  temp: string,
  got: { size: number; sha256: string },
  rejection: Rejection,
  result: CycleResult,
): Promise<void> {
  const { route, ledger, spool, log } = ctx;
  const { reason } = rejection;
  const known = ledger.findOriginal(route.name, entry.name, got.sha256, ['quarantined']);
  if (known) {
    // seen before with these very bytes: they are final, the remote copy can go
    await fsp.rm(temp, { force: true });
    if (known.ackedAt === null) await acknowledge(ctx, source, entry, known);
    return;
  }
  const full = quarantineFull(ctx, got.size);
  if (full) {
    // over the budget: the row and its reason are kept, the bytes are not (a flood of bad
    // packages must not fill the station's disk); the remote is handled as for any quarantine
    await fsp.rm(temp, { force: true });
    const note = `${reason} — its bytes were not kept: ${full}`;
    const row = insertInbound(
      ctx,
      entry,
      { size: got.size, sha256: got.sha256, state: 'quarantined', lastError: note },
      'quarantined',
      note,
    );
    result.quarantined++;
    log.warn({ route: route.name, id: row.id, file: entry.name }, `quarantined: ${note}`);
    if (!rejection.content) await acknowledge(ctx, source, entry, row);
    return;
  }
  const rel = await spool.quarantine(route.name, temp, entry.name, ctx.now());
  const row = insertInbound(
    ctx,
    entry,
    { size: got.size, sha256: got.sha256, state: 'quarantined', lastError: reason, storedPath: rel },
    'quarantined',
    reason,
  );
  result.quarantined++;
  log.warn({ route: route.name, id: row.id, file: entry.name }, `quarantined: ${reason} (kept as ${rel})`);
  if (!rejection.content) await acknowledge(ctx, source, entry, row);
}

/**
 * Why a rejected file of `size` bytes would not fit the quarantine budget (config `quarantine`),
 * or null. Counted from the ledger over an index: the files of quarantined packages that were kept.
 */
function quarantineFull(ctx: RouteContext, size: number): string | null {
  const budget = ctx.config.quarantine;
  const kept = ctx.ledger.quarantineKept();
  const state = `${kept.count} files, ${mb(kept.bytes)} kept of at most ${budget.maxCount} files, ${mb(budget.maxSize)}`;
  if (kept.count + 1 > budget.maxCount) return `the quarantine is full (${state})`;
  if (kept.bytes + size > budget.maxSize) return `the quarantine has no room for ${mb(size)} (${state})`;
  return null;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;

/** A new row for a remote entry: its route, direction, name, remote ref and origin come from `entry`. */
function insertInbound(
  ctx: RouteContext,
  entry: RemoteEntry,
  fields: Omit<NewPackage, 'route' | 'direction' | 'name' | 'remoteRef' | 'origin'>,
  event: LedgerEvent,
  detail: string,
): PackageRow {
  return ctx.ledger.insert(
    {
      route: ctx.route.name,
      direction: 'in',
      name: entry.name,
      remoteRef: entry.ref,
      origin: entry.origin ?? null,
      ...fields,
    },
    event,
    detail,
  );
}

async function acknowledge(ctx: RouteContext, source: Source, entry: RemoteEntry, row: PackageRow): Promise<void> {
  try {
    await source.acknowledge(entry, ctx.abort);
  } catch (err) {
    if (err instanceof TransportError && err.scope === 'package') {
      ctx.log.warn(
        { route: ctx.route.name, id: row.id, file: entry.name },
        `could not acknowledge on the remote: ${ctx.scrub(err.message)}`,
      );
      return;
    }
    throw new RouteStop(`acknowledging ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
  }
  crashPoint('in:after-ack');
  ctx.ledger.update(row.id, { ackedAt: ctx.now() }, 'acknowledged', describeAck(ctx));
}

function describeAck(ctx: RouteContext): string {
  const a = ctx.route.afterReceive;
  return a.kind === 'delete' ? 'removed from the remote' : `moved to ${a.to} on the remote`;
}
