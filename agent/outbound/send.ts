// Sending the due packages of a route, with the ledger commits grouped (issue 11): the puts of a
// batch run (route.concurrency at once), then ONE transaction records every completed put as
// `sent`, then the spool copies are archived (or removed) and ONE transaction records where they
// went. A sink with `flush` (lan) makes the batch's puts durable before that commit. A crash
// between a put and its commit resends the package: the sink finds the identical file and writes
// nothing (PutResult.alreadyPresent). A failed put is recorded at once, per
// package (retry later, dead, or the route stops).
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { crashPoint } from '../crash-points.js';
import { judgeFailure } from '../retry.js';
import { errorText } from '../secrets.js';
import { endpointOf, type CycleResult, type RouteContext } from '../route-context.js';
import type { PackageRow } from '../../store/ledger.js';
import { TransportError } from '../../transports/errors.js';
import type { Endpoint, OutgoingPackage, PutResult, Sink } from '../../transports/types.js';
import { STATION_MARK } from '../config/routes.js';
import { isSafeStation } from '../control/names.js';

/** Completed puts recorded in one transaction: at most this many packages or bytes per batch. */
export const SEND_BATCH_PACKAGES = 64;
export const SEND_BATCH_BYTES = 64 * 1024 * 1024;

/**
 * The spool copy is read in chunks of this size for a lan put (issue 11: each chunk is one write
 * on the share, through its gate and under a deadline; the stream's default 64 KB costs 4 times as
 * many; 1 MB chunks, each a fresh buffer, cost more in page faults than they save); the other
 * transports keep the default (their own protocols cut the bytes up anyway).
 */
const LAN_READ_CHUNK = 256 * 1024;

/**
 * A package no larger than one chunk, read from the spool at once with synchronous calls: the
 * spool is the local data folder, never a share, and a read there through the thread pool costs
 * three round trips (open, read, close) per package (issue 11). Up to `size` bytes and no further,
 * as the stream it stands for; a shorter file gives what it has (the put's size check refuses it),
 * and a failure is thrown for openPackage to report as the local disk's.
 */
function readSmall(file: string, size: number): Readable {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  const fd = openSync(file, 'r');
  try {
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  const source = new Readable({ read: () => undefined });
  if (got > 0) source.push(got === size ? buf : buf.subarray(0, got));
  source.push(null);
  return source;
}

/** The cycle's listing of the route's spool folder (null: it could not be listed). */
type Spooled = () => Promise<ReadonlySet<string> | null>;

interface Ready {
  row: PackageRow;
  stored: string;
  pkg: OutgoingPackage;
}

/** A put that completed: its packages (one, or a bundle) and what the sink said. */
interface Done {
  ready: Ready[];
  put: PutResult;
}

export async function sendDue(ctx: RouteContext, result: CycleResult): Promise<void> {
  const { route, ledger, log } = ctx;
  const due = ledger.due(route.name, ctx.now());
  if (due.length === 0) return;
  // what the spool holds, listed once (when the first package is looked for: not while the
  // remote cannot be reached): a package found there needs no look of its own
  let listing: Promise<ReadonlySet<string> | null> | undefined;
  const spooled: Spooled = () => (listing ??= ctx.spool.listed(route.name));
  // the office's receipts go to each station's own place (`{station}` in the route's remote or
  // e-mail addresses): one sink per destination; everything else to the route's remote
  const byStation = new Map<string | null, PackageRow[]>();
  for (const row of due) {
    const key = row.kind === 'package' ? null : row.station;
    const list = byStation.get(key) ?? [];
    list.push(row);
    byStation.set(key, list);
  }
  for (const [station, rows] of byStation) {
    if (ctx.stop.requested) return;
    const endpoint = endpointFor(route, station);
    if (typeof endpoint === 'string') {
      log.warn({ route: route.name }, `${rows.length} package(s) not sent: ${endpoint}`);
      continue;
    }
    if (!(await sendTo(ctx, endpoint, rows, result, spooled))) return;
  }
}

/** Where a package for `station` (null: none) goes; a string says why it cannot go anywhere. */
function endpointFor(route: RouteContext['route'], station: string | null): Endpoint | string {
  const endpoint = endpointOf(route);
  const marked = endpoint.remote.includes(STATION_MARK) || !!endpoint.mail?.to?.some((a) => a.includes(STATION_MARK));
  if (!marked) return endpoint;
  if (station === null) return `the route's remote is per station (${STATION_MARK}) and these have no station`;
  if (!isSafeStation(station)) return `${JSON.stringify(station)} is not a station name that can stand in a path`;
  const put = (s: string) => s.split(STATION_MARK).join(station);
  return {
    ...endpoint,
    remote: put(endpoint.remote),
    ...(endpoint.mail
      ? { mail: { ...endpoint.mail, ...(endpoint.mail.to ? { to: endpoint.mail.to.map(put) } : {}) } }
      : {}),
  };
}

/** Sends `due` through one sink; false when the sink could not be opened (the route stops). */
async function sendTo(
  ctx: RouteContext,
  endpoint: Endpoint,
  due: PackageRow[],
  result: CycleResult,
  spooled: Spooled,
): Promise<boolean> {
  const { route, log } = ctx;
  let sink: Sink;
  try {
    sink = await ctx.transport.openSink(endpoint, ctx.abort);
  } catch (err) {
    result.error = ctx.scrub(`cannot reach ${route.profileName}: ${errorText(err)}`);
    log.error({ route: route.name }, `${result.error}; ${due.length} package(s) wait for the next cycle`);
    return false;
  }
  try {
    const queue = groupsFor(sink, due);
    let stopRoute = false;
    while (queue.length > 0 && !stopRoute && !ctx.stop.requested) {
      const batch = nextBatch(queue);
      const done: Done[] = [];
      const worker = async () => {
        while (!stopRoute && !ctx.stop.requested) {
          const group = batch.shift();
          if (!group) return;
          const outcome = await sendGroup(ctx, sink, group, result, spooled);
          if (outcome === false) stopRoute = true;
          else if (outcome !== true) done.push(outcome);
        }
      };
      const ends = await Promise.allSettled(Array.from({ length: Math.min(route.concurrency, batch.length) }, worker));
      // what was put is recorded even when a worker failed (a ledger that cannot write: this
      // commit fails too, and the packages stay queued: resent harmlessly), once the sink says
      // the puts are durable (a flush that fails stops the cycle: none of them counts as sent)
      if (done.length > 0) {
        if (sink.flush) await sink.flush(ctx.abort);
        await recordSent(ctx, done, result);
      }
      for (const end of ends) if (end.status === 'rejected') throw end.reason;
    }
    return !stopRoute;
  } finally {
    await sink.close();
  }
}

/** One package per transfer, or bundles where the sink bundles (e-mail maxPerMessage), oldest first. */
function groupsFor(sink: Sink, due: PackageRow[]): PackageRow[][] {
  const batch = sink.bundle && sink.bundle.maxCount > 1 ? sink.bundle : null;
  if (!batch) return due.map((row) => [row]);
  const groups: PackageRow[][] = [];
  let current: PackageRow[] = [];
  let bytes = 0;
  for (const row of due) {
    if (current.length > 0 && (current.length >= batch.maxCount || bytes + row.size > batch.maxBytes)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(row);
    bytes += row.size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** Takes the groups of the next commit batch off the queue. */
function nextBatch(queue: PackageRow[][]): PackageRow[][] {
  const batch: PackageRow[][] = [];
  let count = 0;
  let bytes = 0;
  while (queue.length > 0 && count < SEND_BATCH_PACKAGES && bytes < SEND_BATCH_BYTES) {
    const group = queue.shift()!;
    batch.push(group);
    count += group.length;
    bytes += group.reduce((n, r) => n + r.size, 0);
  }
  return batch;
}

/**
 * Puts one package, or one bundle all or nothing: the completed put (recorded by the caller), true
 * when there was nothing to put or the put failed and is recorded, false when the route should
 * stop this cycle (the connection is gone).
 */
async function sendGroup(
  ctx: RouteContext,
  sink: Sink,
  group: PackageRow[],
  result: CycleResult,
  spooled: Spooled,
): Promise<Done | boolean> {
  const { route, ledger, spool, log } = ctx;
  const readChunk = ctx.transport.kind === 'lan' ? LAN_READ_CHUNK : undefined;
  const ready: Ready[] = [];
  for (const row of group) {
    const stored = await findBytes(ctx, row, spooled);
    if (!stored) {
      ledger.transition(
        row.id,
        ['queued', 'failed'],
        'dead',
        { lastError: 'bytes are no longer in the spool or archive' },
        'dead',
      );
      result.dead++;
      log.error({ route: route.name, id: row.id, file: row.name }, 'dead: bytes are no longer in the spool or archive');
      continue;
    }
    const pkg = {
      name: row.name,
      size: row.size,
      sha256: row.sha256!,
      // read up to the package's size and no further: no read past the end (issue 11); a file
      // that is not the package's bytes fails the put's size and SHA-256 check as before
      open: () =>
        readChunk !== undefined && row.size > 0 && row.size <= readChunk
          ? readSmall(spool.abs(stored), row.size)
          : createReadStream(spool.abs(stored), {
              highWaterMark: readChunk,
              ...(row.size > 0 ? { end: row.size - 1 } : {}),
            }),
    };
    ready.push({ row, stored, pkg });
  }
  if (ready.length === 0) return true;
  let put: PutResult;
  try {
    put =
      ready.length > 1 && sink.bundle
        ? await sink.bundle.put(
            ready.map((r) => r.pkg),
            ctx.abort,
          )
        : await sink.put(ready[0]!.pkg, ctx.abort);
  } catch (err) {
    let goOn = true;
    for (const { row } of ready) goOn = recordFailure(ctx, row, row.attempts + 1, err, result) && goOn;
    return goOn;
  }
  crashPoint('out:after-put');
  return { ready, put };
}

/**
 * The completed puts of a batch: `sent` in one transaction, then the spool copies archived (or
 * removed) and their new place in one more. Outside the puts' error handling: a ledger that cannot
 * write (disk full) must not be taken for a failed put. It aborts the cycle; the rows stay queued
 * and the next put finds the identical file.
 */
async function recordSent(ctx: RouteContext, done: Done[], result: CycleResult): Promise<void> {
  const { route, ledger, log } = ctx;
  ledger.transaction(() => {
    for (const { ready, put } of done) {
      const bundle = ready.length > 1 ? ` (one transfer with ${ready.length - 1} other package(s))` : '';
      for (const { row, stored } of ready) {
        ledger.transition(
          row.id,
          ['queued', 'failed'],
          'sent',
          {
            attempts: row.attempts + 1,
            remoteRef: put.remoteRef,
            lastError: null,
            nextAttemptAt: null,
            storedPath: stored,
          },
          'sent',
          (put.alreadyPresent ? `identical file already at ${put.remoteRef}; nothing written` : `to ${put.remoteRef}`) +
            bundle,
        );
      }
    }
  });
  const sent: { row: PackageRow; stored: string }[] = [];
  for (const { ready, put } of done) {
    const bundle = ready.length > 1 ? ` (one transfer with ${ready.length - 1} other package(s))` : '';
    for (const { row, stored } of ready) {
      crashPoint('out:after-sent-commit');
      result.sent++;
      log.info(
        { route: route.name, id: row.id, file: row.name, remote: put.remoteRef },
        put.alreadyPresent ? 'sent (identical file was already there)' : `sent${bundle}`,
      );
      sent.push({ row, stored });
    }
  }
  await afterSend(ctx, sent);
}

/** A failed put: retry later, dead, or stop the route (false) when the connection is the problem. */
function recordFailure(
  ctx: RouteContext,
  row: PackageRow,
  attempts: number,
  err: unknown,
  result: CycleResult,
): boolean {
  const { route, ledger, log } = ctx;
  const te = err instanceof TransportError ? err : null;
  const message = ctx.scrub(errorText(err));
  // A refused login or certificate is nobody's fault but the config's: the package keeps its
  // place and its attempt count, and the route reports the error until someone fixes it.
  if (te && te.scope === 'connection' && !te.retryable) {
    ledger.update(row.id, { lastError: message }, 'error', message);
    result.error = message;
    log.error({ route: route.name, id: row.id, file: row.name }, `not sent: ${message}`);
    return false;
  }
  const verdict = judgeFailure(route.retry, attempts, te ? te.retryable : true, ctx.now());
  if (verdict.kind === 'dead') {
    ledger.transition(
      row.id,
      ['queued', 'failed'],
      'dead',
      { attempts, lastError: message, nextAttemptAt: null },
      'dead',
      `${verdict.why}: ${message}`,
    );
    result.dead++;
    log.error({ route: route.name, id: row.id, file: row.name }, `dead (${verdict.why}): ${message}`);
  } else {
    ledger.transition(
      row.id,
      ['queued', 'failed'],
      'failed',
      { attempts, lastError: message, nextAttemptAt: verdict.nextAttemptAt },
      'failed',
      `${message}; next attempt at ${new Date(verdict.nextAttemptAt).toISOString()}`,
    );
    result.failed++;
    log.warn(
      { route: route.name, id: row.id, file: row.name, attempts },
      `failed: ${message}; next attempt ${new Date(verdict.nextAttemptAt).toISOString()}`,
    );
  }
  if (te?.scope === 'connection') result.error = message;
  return te?.scope !== 'connection';
}

/**
 * Where the bytes of an outbound package are now: its stored path, or its archive path. A stored
 * path in the cycle's listing of the spool (`spooled`) is taken without a look of its own.
 */
async function findBytes(ctx: RouteContext, row: PackageRow, spooled: Spooled): Promise<string | null> {
  if (row.storedPath && (await spooled())?.has(row.storedPath)) return row.storedPath;
  const candidates = [row.storedPath, ctx.spool.archivePath(row.route, row.id, row.name, row.createdAt)];
  for (const rel of candidates) if (rel && (await ctx.spool.has(rel))) return rel;
  return null;
}

/**
 * The sent packages' spool copies: archived (each archive folder made and fsynced once) or removed,
 * and their stored paths updated in one transaction. The packages are sent; a spool file left
 * behind costs disk, not correctness.
 */
async function afterSend(ctx: RouteContext, sent: { row: PackageRow; stored: string }[]): Promise<void> {
  const { route, ledger, spool, log } = ctx;
  const warn = (row: PackageRow, err: unknown) =>
    log.warn(
      { route: route.name, id: row.id, file: row.name },
      `sent, but could not ${route.afterSend} the spool copy: ${errorText(err)}`,
    );
  const moved: { id: number; storedPath: string | null }[] = [];
  if (route.afterSend === 'archive') {
    const moves = sent
      .map(({ row, stored }) => ({
        row,
        from: stored,
        to: spool.archivePath(route.name, row.id, row.name, row.createdAt),
      }))
      .filter((m) => m.from !== m.to);
    const errors = await spool.archiveMany(moves);
    moves.forEach((m, i) => {
      if (errors[i] === null) moved.push({ id: m.row.id, storedPath: m.to });
      else warn(m.row, errors[i]);
    });
  } else {
    for (const { row, stored } of sent) {
      try {
        await spool.remove(stored);
        moved.push({ id: row.id, storedPath: null });
      } catch (err) {
        warn(row, err);
      }
    }
  }
  if (moved.length === 0) return;
  try {
    ledger.transaction(() => {
      for (const m of moved) ledger.update(m.id, { storedPath: m.storedPath });
    });
  } catch (err) {
    // the rows keep the spool path; the bytes are found at their archive path (findBytes, whereIs)
    for (const { row } of sent) if (moved.some((m) => m.id === row.id)) warn(row, err);
  }
}
