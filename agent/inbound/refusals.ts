// Inbound entries that are not delivered: refused in place without taking the bytes (recorded
// once, then handed back to the transport to be marked or moved), and quarantined after the
// download, within the quarantine budget (over it the row is kept and the bytes dropped).
import { promises as fsp } from 'node:fs';
import type { CycleResult, RouteContext } from '../route-context.js';
import { errorText } from '../secrets.js';
import type { PackageRow } from '../../store/ledger.js';
import { TransportError } from '../../transports/errors.js';
import type { RemoteEntry, Source } from '../../transports/types.js';
import { acknowledge, acknowledgeRemote, insertInbound, RouteStop, stationOf, type Outcome } from './record.js';

export interface Rejection {
  reason: string;
  /**
   * The content was judged (not well-formed XML, not a zip): it may be a file the office is still
   * writing in place. Such a package is kept in quarantine but left on the remote until a later
   * cycle finds the very same bytes again, so a writer that paused longer than `settle` does not
   * lose its file to our acknowledgement (delete).
   */
  content: boolean;
}

/**
 * Rejected without taking the bytes (we do not hold them): recorded once, found again by one
 * index lookup (store/ledger migration 4). The remote is left untouched, except that an entry the
 * transport itself refused (`refusal`: an e-mail message) is handed back to it through acknowledge
 * after the row is written: `afterRefuse: move:<mailbox>` moves it (a move that failed is tried
 * again the next time the entry is listed); `leave` lets the transport mark it so that it is not
 * listed again (the row keeps ackedAt null: the message is still there).
 */
export async function refuseInPlace(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  reason: string,
  result: CycleResult,
): Promise<Outcome> {
  const { route, ledger, log } = ctx;
  const byTransport = entry.refusal !== undefined;
  const file = byTransport && route.afterRefuse !== undefined;
  const known = ledger.findRefusedInPlace(route.name, entry, stationOf(ctx, entry));
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
    await acknowledgeRemote(ctx, source, entry);
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
    if (!(await acknowledgeRemote(ctx, source, entry))) return;
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

/** A downloaded package that failed a check: kept in the quarantine (within its budget), the row says why. */
export async function quarantine(
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
  const known = ledger.findOriginal(route.name, entry.name, got.sha256, ['quarantined'], stationOf(ctx, entry));
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
