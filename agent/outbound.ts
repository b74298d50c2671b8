// Outbound: outbox -> (stable? well-formed?) -> spool + ledger -> sink -> sent / failed / dead.
//
// Order is what makes kill -9 harmless (guarantee 2): the bytes are in the spool (fsynced, renamed)
// before the ledger row exists, and the ledger row exists before the outbox copy is removed. So a
// package is always in the outbox, or in spool + ledger, or sent. A crash after the sink wrote but
// before the ledger said `sent` resends it; the sink then finds the identical file and writes
// nothing (PutResult.alreadyPresent), and an inbound sprelay would drop it as a duplicate anyway.
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { checkName, checkXmlFile, checkZipFile, isXmlName, isZipName, matchesInclude } from './inspect.js';
import { crashPoint } from './crash-points.js';
import { judgeFailure } from './retry.js';
import { errorText } from './secrets.js';
import { emptyResult, endpointOf, settle, type CycleResult, type RouteContext } from './route-context.js';
import { fsyncDir, unlinkRetrying } from '../store/files.js';
import type { PackageRow } from '../store/ledger.js';
import { TransportError } from '../transports/errors.js';
import type { OutgoingPackage, PutResult, Sink } from '../transports/types.js';

interface Seen {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

export async function runOutbound(ctx: RouteContext): Promise<CycleResult> {
  const result = emptyResult(ctx.route);
  try {
    await ctx.spool.prepare(ctx.route.name);
    await takeFromOutbox(ctx, result);
    if (!ctx.stop.requested) await sendDue(ctx, result);
  } catch (err) {
    // keep what this cycle did (counts) and say what stopped it
    const message = ctx.scrub(errorText(err));
    result.error = result.error ? `${result.error}; ${message}` : message;
    ctx.log.error({ route: ctx.route.name }, `cycle stopped: ${message}`);
  }
  return result;
}

// ---- taking files from the outbox -----------------------------------------------------------

async function scanOutbox(ctx: RouteContext): Promise<Map<string, Seen>> {
  const dir = ctx.route.local;
  const seen = new Map<string, Seen>();
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    if (/\.part$/i.test(e.name) || e.name.startsWith('.sprelay-')) continue;
    if (!matchesInclude(e.name, ctx.route.include)) continue;
    const path = join(dir, e.name);
    try {
      const st = await fsp.stat(path);
      seen.set(e.name, { name: e.name, path, size: st.size, mtimeMs: st.mtimeMs });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return seen;
}

/** Windows: a file the writer still holds without FILE_SHARE_WRITE cannot be opened for writing. */
async function heldByAnotherProgram(path: string): Promise<boolean> {
  if (process.platform !== 'win32') return false;
  try {
    const fh = await fsp.open(path, 'r+');
    await fh.close();
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') return true;
    if (code === 'EPERM' || code === 'EACCES') {
      // a read-only file also refuses 'r+': that is not a writer holding it
      const st = await fsp.stat(path);
      return (st.mode & 0o200) !== 0;
    }
    throw err;
  }
}

async function whyRefused(ctx: RouteContext, f: Seen): Promise<string | null> {
  const bad = checkName(f.name);
  if (bad) return bad;
  if (f.size > ctx.route.maxSize) return `larger than maxSize (${f.size} > ${ctx.route.maxSize} bytes)`;
  if (isXmlName(f.name)) return checkXmlFile(f.path, ctx.abort, ctx.config.check.xml);
  if (isZipName(f.name)) return checkZipFile(f.path, ctx.abort, ctx.config.check);
  return null;
}

async function takeFromOutbox(ctx: RouteContext, result: CycleResult): Promise<void> {
  const { route, log } = ctx;
  let first: Map<string, Seen>;
  try {
    first = await scanOutbox(ctx);
  } catch (err) {
    result.error = ctx.scrub(`outbox ${route.local} cannot be read: ${errorText(err)}`);
    log.error({ route: route.name }, result.error);
    return;
  }
  const refusedNow = new Map<string, { f: Seen; why: string }>();
  const taken = new Set<string>();
  if (first.size === 0) return recordRefused(ctx, first, refusedNow, taken);
  // Guarantee 1: only files whose size and mtime stay put across the settle interval. A file
  // last written at least that long ago has already shown it (its mtime moves with every write):
  // when every file is that old, nothing is waited for (issue 11: `once` on a settled outbox
  // never sleeps); otherwise all are looked at again after the interval. Either way the size and
  // mtime are checked again after the copy, and the Windows open check and the content checks apply.
  const now = ctx.now();
  const settled = (f: Seen) => f.mtimeMs <= now - route.settleMs;
  let second = first;
  if (![...first.values()].every(settled)) {
    if (!(await settle(route.settleMs, ctx.stop))) return;
    second = await scanOutbox(ctx);
  }
  for (const f of second.values()) {
    if (ctx.stop.requested) return;
    const before = first.get(f.name);
    if (!before || before.size !== f.size || before.mtimeMs !== f.mtimeMs) {
      log.debug({ route: route.name, file: f.name }, 'not settled yet, left in the outbox');
      continue;
    }
    try {
      if (await heldByAnotherProgram(f.path)) {
        log.info({ route: route.name, file: f.name }, 'still open in another program, left in the outbox');
        continue;
      }
      const refusal = await whyRefused(ctx, f);
      if (refusal) {
        result.refused++;
        refusedNow.set(f.name, { f, why: refusal });
        log.warn({ route: route.name, file: f.name }, `not taken, left in the outbox: ${refusal}`);
        continue;
      }
      await takeOne(ctx, f, result);
      taken.add(f.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // someone removed it meanwhile
      result.error = ctx.scrub(`could not take ${f.name} into the spool: ${errorText(err)}`);
      log.error({ route: route.name, file: f.name }, result.error);
      return; // a full or broken data disk: stop taking, everything stays in the outbox
    }
  }
  recordRefused(ctx, second, refusedNow, taken);
}

/**
 * Refused outbox files are ledger rows in state `refused` while they stay in the outbox, so that
 * `status` shows them and a person can acknowledge them. A row goes when its file leaves the
 * outbox or is taken (fixed); a file that changed is news again. Files not looked at this cycle
 * (not settled, held open) keep their row.
 */
function recordRefused(
  ctx: RouteContext,
  present: Map<string, Seen>,
  refusedNow: Map<string, { f: Seen; why: string }>,
  taken: Set<string>,
): void {
  const { ledger, route, log } = ctx;
  try {
    ledger.transaction(() => {
      const rows = new Map(ledger.inState(route.name, ['refused']).map((r) => [r.name, r]));
      for (const [name, { f, why }] of refusedNow) {
        const row = rows.get(name);
        if (!row) {
          ledger.insert(
            { route: route.name, direction: 'out', name, size: f.size, state: 'refused', lastError: why },
            'refused',
            why,
          );
        } else if (row.size !== f.size || row.lastError !== why) {
          ledger.update(row.id, { size: f.size, lastError: why, seenAt: null }, 'refused', why);
        }
      }
      const gone = [...rows.values()].filter((r) => !present.has(r.name) || taken.has(r.name));
      if (gone.length) ledger.delete(gone.map((r) => r.id));
    });
  } catch (err) {
    // only bookkeeping for status: the files stay in the outbox and are looked at again next cycle
    log.error({ route: route.name }, `could not record the refused outbox files: ${ctx.scrub(errorText(err))}`);
  }
}

async function takeOne(ctx: RouteContext, f: Seen, result: CycleResult): Promise<void> {
  const { route, ledger, spool, log } = ctx;
  const copy = await spool.copyIn(route.name, f.path, ctx.abort);
  const after = await fsp.stat(f.path);
  if (after.size !== f.size || after.mtimeMs !== f.mtimeMs || copy.size !== f.size) {
    await fsp.rm(copy.temp, { force: true });
    log.info({ route: route.name, file: f.name }, 'changed while being copied, left in the outbox');
    return;
  }
  const original = ledger.findOriginal(route.name, f.name, copy.sha256, ['queued', 'failed', 'dead', 'sent']);
  if (original) {
    await fsp.rm(copy.temp, { force: true });
    const dup = ledger.insert(
      {
        route: route.name,
        direction: 'out',
        name: f.name,
        size: copy.size,
        sha256: copy.sha256,
        state: 'duplicate',
        duplicateOf: original.id,
      },
      'duplicate',
      `same name and bytes as package ${original.id} (${original.state}); not sent again`,
    );
    await removeFromOutbox(ctx, f);
    result.duplicates++;
    log.info({ route: route.name, id: dup.id, file: f.name }, `duplicate of package ${original.id}, not sent again`);
    return;
  }
  const rel = spool.spoolPath(route.name, f.name, copy.sha256);
  await spool.commit(copy.temp, rel);
  crashPoint('out:after-spool-rename');
  let row: PackageRow;
  try {
    row = ledger.insert(
      {
        route: route.name,
        direction: 'out',
        name: f.name,
        size: copy.size,
        sha256: copy.sha256,
        state: 'queued',
        storedPath: rel,
      },
      'queued',
      `taken from ${route.local}`,
    );
  } catch (err) {
    // the ledger refused (disk full): the outbox copy is still there, drop the spool copy
    await spool.remove(rel).catch(() => undefined);
    throw err;
  }
  crashPoint('out:after-ledger-queued');
  await removeFromOutbox(ctx, f);
  result.taken++;
  log.info({ route: route.name, id: row.id, file: f.name, size: row.size }, 'queued');
}

async function removeFromOutbox(ctx: RouteContext, f: Seen): Promise<void> {
  await unlinkRetrying(f.path);
  await fsyncDir(ctx.route.local);
}

// ---- sending ------------------------------------------------------------------------------------

async function sendDue(ctx: RouteContext, result: CycleResult): Promise<void> {
  const { route, ledger, log } = ctx;
  const due = ledger.due(route.name, ctx.now());
  if (due.length === 0) return;
  let sink: Sink;
  try {
    sink = await ctx.transport.openSink(endpointOf(route), ctx.abort);
  } catch (err) {
    result.error = ctx.scrub(`cannot reach ${route.profileName}: ${errorText(err)}`);
    log.error({ route: route.name }, `${result.error}; ${due.length} package(s) wait for the next cycle`);
    return;
  }
  try {
    const queue = groupsFor(sink, due);
    let stopRoute = false;
    const worker = async () => {
      while (!stopRoute && !ctx.stop.requested) {
        const group = queue.shift();
        if (!group) return;
        if (!(await sendGroup(ctx, sink, group, result))) stopRoute = true;
      }
    };
    await Promise.all(Array.from({ length: Math.min(route.concurrency, queue.length) }, worker));
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

/**
 * Sends one package, or one bundle all or nothing; false when the route should stop this cycle
 * (the connection is gone).
 */
async function sendGroup(ctx: RouteContext, sink: Sink, group: PackageRow[], result: CycleResult): Promise<boolean> {
  const { route, ledger, spool, log } = ctx;
  const ready: { row: PackageRow; stored: string; pkg: OutgoingPackage }[] = [];
  for (const row of group) {
    const stored = await findBytes(ctx, row);
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
      open: () => createReadStream(spool.abs(stored)),
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
  // Outside the try above: a ledger that cannot write (disk full) must not be taken for a failed
  // put. It aborts the cycle; the rows stay queued and the next put finds the identical file.
  crashPoint('out:after-put');
  const bundle = ready.length > 1 ? ` (one transfer with ${ready.length - 1} other package(s))` : '';
  ledger.transaction(() => {
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
  });
  crashPoint('out:after-sent-commit');
  for (const { row, stored } of ready) {
    result.sent++;
    log.info(
      { route: route.name, id: row.id, file: row.name, remote: put.remoteRef },
      put.alreadyPresent ? 'sent (identical file was already there)' : `sent${bundle}`,
    );
    await afterSend(ctx, row, stored);
  }
  return true;
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

/** Where the bytes of an outbound package are now: its stored path, or its archive path. */
async function findBytes(ctx: RouteContext, row: PackageRow): Promise<string | null> {
  const candidates = [row.storedPath, ctx.spool.archivePath(row.route, row.id, row.name, row.createdAt)];
  for (const rel of candidates) if (rel && (await ctx.spool.has(rel))) return rel;
  return null;
}

async function afterSend(ctx: RouteContext, row: PackageRow, stored: string): Promise<void> {
  const { route, ledger, spool, log } = ctx;
  try {
    if (route.afterSend === 'archive') {
      const dest = spool.archivePath(route.name, row.id, row.name, row.createdAt);
      if (stored !== dest) {
        await spool.archive(stored, dest);
        ledger.update(row.id, { storedPath: dest });
      }
    } else {
      await spool.remove(stored);
      ledger.update(row.id, { storedPath: null });
    }
  } catch (err) {
    // The package is sent; a spool file left behind costs disk, not correctness.
    log.warn(
      { route: route.name, id: row.id, file: row.name },
      `sent, but could not ${route.afterSend} the spool copy: ${errorText(err)}`,
    );
  }
}
