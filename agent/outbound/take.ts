// Taking files from the outbox into the spool, a batch at a time (issue 11, group commit).
//
// The order that makes kill -9 harmless holds per batch: every copy in the batch is fsynced and
// renamed into the spool, then ONE fsync of the spool folder, then ONE ledger transaction with the
// batch's rows (queued, or duplicate), then the outbox files are removed and the outbox folder is
// fsynced once. So a package is always in the outbox, or in spool + ledger, or both (a crash after
// the commit: the next cycle finds it again and records it as a duplicate of the queued row).
//
// Each outbox file is read once: the copy into the spool temp folder hashes the bytes and feeds
// the XML check as it goes (store/copy.ts). A refused file's temp copy is removed and the file
// stays in the outbox (a `refused` row). Zip files are checked on the spool temp copy (their
// central directory is at the end), before it is renamed into the spool.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { checkName, checkZipFile, createXmlCheck, isXmlName, isZipName, matchesInclude } from '../inspect.js';
import { crashPoint } from '../crash-points.js';
import { errorText } from '../secrets.js';
import { settle, type CycleResult, type RouteContext } from '../route-context.js';
import { eachAtOnce } from '../../store/at-once.js';
import { fsyncDir, unlinkRetrying } from '../../store/files.js';
import type { PackageRow } from '../../store/ledger.js';

interface Seen {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

type Refusals = Map<string, { f: Seen; why: string }>;

/** A batch is at most this many files or bytes (the last file may pass the byte bound). */
export const BATCH_FILES = 64;
export const BATCH_BYTES = 64 * 1024 * 1024;
/** Copies in flight at once; together at most COPY_BYTES_IN_FLIGHT unless one file is larger. */
const COPIES_AT_ONCE = 4;
/**
 * Large files are copied one at a time: they gain nothing from a second copy beside them, and on
 * a nearly full data disk concurrent copies would all fail where one after the other some go in.
 */
const COPY_BYTES_IN_FLIGHT = 1024 * 1024;

async function scanOutbox(ctx: RouteContext): Promise<Map<string, Seen>> {
  const dir = ctx.route.local;
  const seen = new Map<string, Seen>();
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isFile() && !/\.part$/i.test(e.name) && !e.name.startsWith('.sprelay-'))
    .map((e) => e.name)
    .filter((name) => matchesInclude(name, ctx.route.include));
  // the stats a few at once (issue 11: one after the other, a thousand files cost a thousand round
  // trips, on a network outbox each a network one); the files in the listing's order all the same
  const stats: (Seen | null)[] = names.map(() => null);
  const errors = await eachAtOnce(names, async (name, i) => {
    const path = join(dir, name);
    const st = await fsp.stat(path);
    stats[i] = { name, path, size: st.size, mtimeMs: st.mtimeMs };
  });
  for (const [i, name] of names.entries()) {
    const err = errors[i];
    if (err !== null) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      continue;
    }
    seen.set(name, stats[i]!);
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

/** What can be said without reading the bytes: the name and the size. */
function refusedUnread(ctx: RouteContext, f: Seen): string | null {
  const bad = checkName(f.name);
  if (bad) return bad;
  if (f.size > ctx.route.maxSize) return `larger than maxSize (${f.size} > ${ctx.route.maxSize} bytes)`;
  return null;
}

export async function takeFromOutbox(ctx: RouteContext, result: CycleResult): Promise<void> {
  const { route, log } = ctx;
  let first: Map<string, Seen>;
  try {
    first = await scanOutbox(ctx);
  } catch (err) {
    result.error = ctx.scrub(`outbox ${route.local} cannot be read: ${errorText(err)}`);
    log.error({ route: route.name }, result.error);
    return;
  }
  const refusedNow: Refusals = new Map();
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
  let batch: Seen[] = [];
  let bytes = 0;
  let goOn = true;
  for (const f of second.values()) {
    if (ctx.stop.requested) break;
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
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // someone removed it meanwhile
      result.error = ctx.scrub(`could not take ${f.name} into the spool: ${errorText(err)}`);
      log.error({ route: route.name, file: f.name }, result.error);
      goOn = false;
      break;
    }
    const refusal = refusedUnread(ctx, f);
    if (refusal) {
      refuse(ctx, result, refusedNow, f, refusal);
      continue;
    }
    batch.push(f);
    bytes += f.size;
    if (batch.length >= BATCH_FILES || bytes >= BATCH_BYTES) {
      goOn = await takeBatch(ctx, batch, result, refusedNow, taken);
      batch = [];
      bytes = 0;
      if (!goOn) break;
    }
  }
  if (goOn && batch.length > 0 && !ctx.stop.requested) await takeBatch(ctx, batch, result, refusedNow, taken);
  recordRefused(ctx, second, refusedNow, taken);
}

function refuse(ctx: RouteContext, result: CycleResult, refusedNow: Refusals, f: Seen, why: string): void {
  result.refused++;
  refusedNow.set(f.name, { f, why });
  ctx.log.warn({ route: ctx.route.name, file: f.name }, `not taken, left in the outbox: ${why}`);
}

interface Copied {
  f: Seen;
  temp: string;
  size: number;
  sha256: string;
  /** Renamed into the spool: its temp name is gone, nothing to remove. */
  placed?: boolean;
}

/**
 * Copies the batch's files into the spool temp folder (a few at a time), checks them, and commits
 * the good ones as one group. False when taking should stop (a full or broken data disk, a
 * ledger that cannot write): what is not committed stays in the outbox.
 */
async function takeBatch(
  ctx: RouteContext,
  batch: Seen[],
  result: CycleResult,
  refusedNow: Refusals,
  taken: Set<string>,
): Promise<boolean> {
  const { route, log } = ctx;
  const copied: Copied[] = [];
  let failure: { f: Seen; err: unknown } | null = null;
  let next = 0;
  let inFlight = 0;
  const waiting: (() => void)[] = [];
  const room = (size: number) => inFlight === 0 || inFlight + size <= COPY_BYTES_IN_FLIGHT;
  const worker = async () => {
    for (;;) {
      if (failure || ctx.stop.requested || next >= batch.length) return;
      const f = batch[next]!;
      while (!room(f.size)) await new Promise<void>((resolve) => waiting.push(resolve));
      if (failure || ctx.stop.requested || batch[next] !== f) continue; // another worker took it meanwhile
      next++;
      inFlight += f.size;
      try {
        const c = await copyOne(ctx, f);
        if (c === 'changed')
          log.info({ route: route.name, file: f.name }, 'changed while being copied, left in the outbox');
        else if (typeof c === 'string') refuse(ctx, result, refusedNow, f, c);
        else if (c) copied.push(c);
      } catch (err) {
        failure ??= { f, err };
      } finally {
        inFlight -= f.size;
        for (const wake of waiting.splice(0)) wake();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(COPIES_AT_ONCE, batch.length) }, worker));
  // the outbox order (readdir), whatever order the copies finished in
  const order = new Map(batch.map((f, i) => [f.name, i]));
  copied.sort((a, b) => order.get(a.f.name)! - order.get(b.f.name)!);
  let goOn = true;
  try {
    if (copied.length > 0) await commitBatch(ctx, copied, result, taken);
  } catch (err) {
    failure ??= { f: copied[0]!.f, err };
    goOn = false;
  } finally {
    // the temps not renamed into the spool (duplicates, a batch that failed before its rename)
    const left = copied.filter((c) => !c.placed);
    await Promise.all(left.map((c) => fsp.rm(c.temp, { force: true }).catch(() => undefined)));
  }
  if (failure) {
    result.error = ctx.scrub(`could not take ${failure.f.name} into the spool: ${errorText(failure.err)}`);
    log.error({ route: route.name, file: failure.f.name }, result.error);
    return false; // a full or broken data disk: stop taking, everything else stays in the outbox
  }
  return goOn;
}

/**
 * One file into the spool temp folder, read once (hash + XML check), fsynced: its copy, or the
 * reason it is refused, or 'changed' (size or mtime moved, or the copy differs in length), or
 * null when it went away meanwhile.
 */
async function copyOne(ctx: RouteContext, f: Seen): Promise<Copied | string | 'changed' | null> {
  const { route, spool, config } = ctx;
  const check = isXmlName(f.name) ? createXmlCheck(config.check.xml, { size: f.size }) : null;
  let copy;
  try {
    copy = await spool.copyIn(route.name, f.path, { signal: ctx.abort, check, maxBytes: f.size });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // someone removed it meanwhile
    throw err;
  }
  const dropTemp = () => fsp.rm(copy.temp, { force: true });
  try {
    const after = await fsp.stat(f.path).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    });
    if (!after) {
      await dropTemp();
      return null;
    }
    // a file that changed meanwhile is judged again next cycle, whatever its torn copy looked like;
    // a refused copy stops at the refusal, so only a complete copy must match the listed size
    const short = copy.refused === null && copy.size !== f.size;
    if (after.size !== f.size || after.mtimeMs !== f.mtimeMs || copy.tooLong || short) {
      await dropTemp();
      return 'changed';
    }
    if (copy.refused !== null) return copy.refused; // copyIn removed its copy
    if (isZipName(f.name)) {
      const why = await checkZipFile(copy.temp, ctx.abort, config.check);
      if (why) {
        await dropTemp();
        return why;
      }
    }
    return { f, temp: copy.temp, size: copy.size, sha256: copy.sha256 };
  } catch (err) {
    await dropTemp().catch(() => undefined);
    throw err;
  }
}

/** Rename into the spool, one folder fsync, one ledger transaction, then the outbox removals. */
async function commitBatch(ctx: RouteContext, copied: Copied[], result: CycleResult, taken: Set<string>) {
  const { route, ledger, spool, log } = ctx;
  // Duplicates: of a package the ledger knows, or of an earlier file of this batch (same name and
  // bytes twice cannot happen within one folder listing, but is checked all the same).
  const inBatch = new Set<string>();
  const plan = copied.map((c) => {
    const rel = spool.spoolPath(route.name, c.f.name, c.sha256);
    const original = ledger.findOriginal(route.name, c.f.name, c.sha256, [
      'queued',
      'failed',
      'dead',
      'sent',
      'confirmed',
    ]);
    const dupInBatch = !original && inBatch.has(rel);
    inBatch.add(rel);
    return { c, rel, original, dupInBatch };
  });
  const placed: string[] = [];
  try {
    // the renames a few at a time (they are independent); all of them before the folder's fsync
    const renames = await eachAtOnce(
      plan.filter((p) => !p.original && !p.dupInBatch),
      async (p) => {
        await spool.place(p.c.temp, p.rel);
        p.c.placed = true;
        placed.push(p.rel);
        crashPoint('out:after-spool-rename');
      },
    );
    const failed = renames.find((e) => e !== null);
    if (failed !== undefined) throw failed;
    await spool.syncDirsOf(placed);
  } catch (err) {
    await Promise.all(placed.map((rel) => spool.remove(rel).catch(() => undefined)));
    throw err;
  }
  let rows: { p: (typeof plan)[number]; row: PackageRow }[];
  try {
    rows = ledger.transaction(() =>
      plan.map((p) => {
        const { c } = p;
        const original =
          p.original ?? (p.dupInBatch ? ledger.findOriginal(route.name, c.f.name, c.sha256, ['queued']) : undefined);
        if (original) {
          const row = ledger.insert(
            {
              route: route.name,
              direction: 'out',
              name: c.f.name,
              size: c.size,
              sha256: c.sha256,
              state: 'duplicate',
              duplicateOf: original.id,
            },
            'duplicate',
            `same name and bytes as package ${original.id} (${original.state}); not sent again`,
          );
          return { p: { ...p, original }, row };
        }
        const row = ledger.insert(
          {
            route: route.name,
            direction: 'out',
            name: c.f.name,
            size: c.size,
            sha256: c.sha256,
            state: 'queued',
            storedPath: p.rel,
          },
          'queued',
          `taken from ${route.local}`,
        );
        return { p, row };
      }),
    );
  } catch (err) {
    // the ledger refused (disk full): the outbox copies are still there, drop the spool copies
    await Promise.all(placed.map((rel) => spool.remove(rel).catch(() => undefined)));
    throw err;
  }
  // the ledger has them: the outbox copies go (a failure here leaves a file that the next cycle
  // records as a duplicate of its queued row)
  // the removals a few at a time (independent), reported in the outbox order once they are done
  const unlinks = await eachAtOnce(rows, async ({ p }) => {
    crashPoint('out:after-ledger-queued');
    await unlinkRetrying(p.c.f.path);
  });
  let unlinkError: unknown = null;
  for (const [i, { p, row }] of rows.entries()) {
    if (unlinks[i] !== null) {
      unlinkError ??= unlinks[i];
      continue;
    }
    taken.add(p.c.f.name);
    if (p.original) {
      result.duplicates++;
      log.info(
        { route: route.name, id: row.id, file: p.c.f.name },
        `duplicate of package ${p.original.id}, not sent again`,
      );
    } else {
      result.taken++;
      log.info({ route: route.name, id: row.id, file: p.c.f.name, size: row.size }, 'queued');
    }
  }
  await fsyncDir(route.local);
  if (unlinkError) throw unlinkError;
}

/**
 * Refused outbox files are ledger rows in state `refused` while they stay in the outbox, so that
 * `status` shows them and a person can acknowledge them. A row goes when its file leaves the
 * outbox or is taken (fixed); a file that changed is news again. Files not looked at this cycle
 * (not settled, held open) keep their row.
 */
function recordRefused(ctx: RouteContext, present: Map<string, Seen>, refusedNow: Refusals, taken: Set<string>): void {
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
