// Inbound: source -> temp file in the inbox -> checks (name, size, XML, hash) -> ledger -> rename
// into the inbox -> acknowledge the remote. This module is the pipeline and its delivery path;
// entries that are not delivered (refused, quarantined) are filed by inbound/refusals.ts, rows and
// acknowledgements made by inbound/record.ts.
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
import type { PackageRow } from '../store/ledger.js';
import { TransportError } from '../transports/errors.js';
import type { RemoteEntry, Source } from '../transports/types.js';
import { acknowledge, insertInbound, RouteStop, type Outcome } from './inbound/record.js';
import { quarantine, refuseInPlace, type Rejection } from './inbound/refusals.js';

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
