// A group of fetched entries (inbound/fetch.ts: bytes in fsynced temp files of the inbox) decided
// on and committed together, every guarantee of the one-at-a-time path kept (group commit):
//
//   1. checks; a rejected one is quarantined (inbound/refusals.ts), one at a time as before;
//   2. ONE ledger transaction decides the rest in order: acknowledge only (fetched again after a
//      crash before its acknowledgement), duplicate, waiting, or delivered with the temp name as
//      pending_path (write-ahead: the row says `delivered` BEFORE the rename);
//   3. the renames into the inbox (never replacing a file), then ONE fsync of the inbox folder;
//   4. ONE transaction clearing pending_path (or sending a name taken meanwhile back to waiting);
//   5. the acknowledgements, several at once, only now that the renames are durable, and ONE
//      transaction recording them.
//
// A kill -9 anywhere leaves what the one-at-a-time path left, only for several entries: rows
// `delivered` with pending_path finished by recoverPending, temps removed, entries fetched again
// and only acknowledged.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { checkName, checkZipFile, isZipName } from '../inspect.js';
import { crashPoint } from '../crash-points.js';
import type { CycleResult, RouteContext } from '../route-context.js';
import { exists, fsyncDir, hashFile, renameNoReplaceUnsynced } from '../../store/files.js';
import type { PackageRow } from '../../store/ledger.js';
import type { RemoteEntry, Source } from '../../transports/types.js';
import type { Fetched } from './fetch.js';
import { inPool } from '../../store/at-once.js';
import { acknowledgeAll, insertInbound, stationOf, type AckItem } from './record.js';
import { quarantine, type Rejection } from './refusals.js';

/** What a fetched entry comes to, decided in the ledger transaction of step 2. */
type Decision =
  | { kind: 'ack'; f: Fetched; row: PackageRow }
  | { kind: 'duplicate'; f: Fetched; row: PackageRow }
  | { kind: 'waiting'; f: Fetched }
  | { kind: 'deliver'; f: Fetched; row: PackageRow };

/** A fetched entry that passed the checks, with what is in the inbox under its name now. */
interface Checked {
  f: Fetched;
  /** SHA-256 of the file already in the inbox under this name, or null when there is none. */
  there: string | null;
}

/**
 * Commits `fetched` (in the order listed) as described above. `mine` holds the ids of the rows
 * this cycle created: a row of this cycle found by name + bytes makes a duplicate, never an
 * "already received, only acknowledge" (that is for rows of an earlier, interrupted cycle).
 */
export async function commitGroup(
  ctx: RouteContext,
  source: Source,
  fetched: Fetched[],
  result: CycleResult,
  mine: Set<number>,
  width: number,
): Promise<void> {
  const { route, ledger, log } = ctx;
  const checked: Checked[] = [];
  // what the inbox holds: one listing for the group, not a look per entry; a name that may be
  // there is looked at (and hashed) as before; one that appears after the listing is met by the
  // rename, which never replaces a file (the entry then goes back to waiting)
  const inInbox = fetched.length > 0 ? await inboxNames(route.local) : new Set<string>();
  for (const f of fetched) {
    const rejection = await whyRejected(ctx, f, source.atomicEntries === true);
    if (rejection) {
      await quarantine(ctx, source, f.entry, f.temp, f.got, rejection, result);
      continue;
    }
    const final = join(route.local, f.entry.name);
    const maybe = mayBeIn(inInbox, f.entry.name);
    checked.push({ f, there: maybe && (await exists(final)) ? (await hashFile(final)).sha256 : null });
  }

  const decisions = ledger.transaction(() => decide(ctx, checked, result, mine));
  const deliver = decisions.filter((d) => d.kind === 'deliver');
  for (let i = 0; i < deliver.length; i++) crashPoint('in:after-ledger-delivered');
  // temps of entries not delivered (acknowledge only, duplicate, waiting) are not needed
  for (const d of decisions) if (d.kind !== 'deliver') await fsp.rm(d.f.temp, { force: true });

  // the renames, `width` at once (each of its own name: the decisions claimed every name once)
  const into = await renameAll(deliver, route.local, width);
  const renamed = deliver.filter((_, i) => into[i] === true);
  const taken = deliver.filter((_, i) => into[i] === false);
  if (renamed.length > 0) await fsyncDir(route.local);
  for (let i = 0; i < renamed.length; i++) crashPoint('in:after-rename');
  if (deliver.length > 0) {
    ledger.transaction(() => {
      for (const d of renamed) {
        if (d.kind !== 'deliver') continue;
        ledger.update(d.row.id, { pendingPath: null }, 'delivered', `into ${route.local}`);
      }
      for (const d of taken) {
        if (d.kind !== 'deliver') continue;
        ledger.transition(
          d.row.id,
          ['delivered'],
          'waiting',
          { pendingPath: null },
          'waiting',
          'a file of that name appeared in the inbox',
        );
      }
    });
  }
  result.delivered += renamed.length;
  result.waiting += taken.length;
  for (const d of renamed) {
    if (d.kind !== 'deliver') continue;
    log.info({ route: route.name, id: d.row.id, file: d.f.entry.name, size: d.f.got.size }, 'delivered');
  }

  const acks: AckItem[] = [];
  for (const d of decisions) {
    if (d.kind === 'ack' || d.kind === 'duplicate') acks.push({ entry: d.f.entry, row: d.row });
    else if (d.kind === 'deliver' && renamed.includes(d)) {
      crashPoint('in:before-ack');
      acks.push({ entry: d.f.entry, row: d.row });
    }
  }
  // a source that batches acknowledgements (e-mail) gets the whole group's at once: one batch
  await acknowledgeAll(ctx, source, acks, source.acknowledgesTogether ? Math.max(width, acks.length) : width);
}

/** Step 2, inside one transaction: each entry's row, in order (a later entry sees an earlier one's). */
function decide(ctx: RouteContext, checked: Checked[], result: CycleResult, mine: Set<number>): Decision[] {
  const { route, ledger, log } = ctx;
  /** Names this group delivers: a second entry of that name waits as if the file were there. */
  const claimed = new Map<string, string>();
  const out: Decision[] = [];
  for (const { f, there } of checked) {
    const { entry, got } = f;
    const original = ledger.findOriginal(
      route.name,
      entry.name,
      got.sha256,
      ['delivered', 'quarantined'],
      stationOf(ctx, entry),
    );
    if (original) {
      if (original.ackedAt === null && !mine.has(original.id)) {
        // fetched again because a crash came before the acknowledgement: only acknowledge now
        log.info({ route: route.name, id: original.id, file: entry.name }, 'acknowledged (was already received)');
        out.push({ kind: 'ack', f, row: original });
        continue;
      }
      const dup = insertInbound(
        ctx,
        entry,
        { size: got.size, sha256: got.sha256, state: 'duplicate', duplicateOf: original.id },
        'duplicate',
        `same name and bytes as package ${original.id}; not written again`,
      );
      mine.add(dup.id);
      result.duplicates++;
      log.info(
        { route: route.name, id: dup.id, file: entry.name },
        `duplicate of package ${original.id}, not written again`,
      );
      out.push({ kind: 'duplicate', f, row: dup });
      continue;
    }
    const waitingRow = ledger.findOriginal(route.name, entry.name, got.sha256, ['waiting'], stationOf(ctx, entry));
    const inInbox = there ?? claimed.get(entry.name) ?? null;
    if (inInbox !== null) {
      if (inInbox === got.sha256) {
        const row = insertInbound(
          ctx,
          entry,
          { size: got.size, sha256: got.sha256, state: 'duplicate' },
          'duplicate',
          'an identical file is already in the inbox; not written again',
        );
        mine.add(row.id);
        result.duplicates++;
        out.push({ kind: 'duplicate', f, row });
        continue;
      }
      markWaiting(ctx, entry, got, waitingRow);
      result.waiting++;
      out.push({ kind: 'waiting', f });
      continue;
    }
    // write-ahead: the ledger knows the temp name before the rename
    const row = waitingRow
      ? ledger.transition(
          waitingRow.id,
          ['waiting'],
          'delivered',
          { pendingPath: f.tempName, remoteRef: entry.ref },
          'receiving',
        )
      : insertInbound(
          ctx,
          entry,
          { size: got.size, sha256: got.sha256, state: 'delivered', pendingPath: f.tempName },
          'receiving',
          `from ${entry.ref}`,
        );
    mine.add(row.id);
    claimed.set(entry.name, got.sha256);
    out.push({ kind: 'deliver', f, row });
  }
  return out;
}

/**
 * Each decision's temp renamed to its name in `inbox` (never replacing a file), `width` at once,
 * unsynced (the caller fsyncs the folder once): true where it was renamed, false where the name was
 * taken (that temp removed). A failure is thrown once every started rename has settled.
 */
async function renameAll(deliver: readonly Decision[], inbox: string, width: number): Promise<(boolean | null)[]> {
  const into: (boolean | null)[] = deliver.map(() => null);
  const { error } = await inPool(
    deliver,
    width,
    async (d, i) => {
      const ok = await renameNoReplaceUnsynced(d.f.temp, join(inbox, d.f.entry.name), () =>
        crashPoint('in:after-link'),
      );
      if (!ok) await fsp.rm(d.f.temp, { force: true });
      into[i] = ok;
    },
    () => false,
  );
  if (error !== undefined) throw error;
  return into;
}

/**
 * The inbox's names as mayBeIn compares them: Unicode NFC, lower case (a Windows or macOS folder
 * finds a file under any case of its name, and macOS under either normalisation).
 */
async function inboxNames(inbox: string): Promise<Set<string>> {
  return new Set((await fsp.readdir(inbox)).map(foldName));
}

const foldName = (name: string) => name.normalize('NFC').toLowerCase();

/**
 * Whether a file of `name` may be in the inbox listed as `names`: its folded name is there, or it
 * holds a "~", which Windows may find as another file's short (8.3) name, absent from listings.
 */
function mayBeIn(names: ReadonlySet<string>, name: string): boolean {
  return name.includes('~') || names.has(foldName(name));
}

async function whyRejected(
  ctx: RouteContext,
  f: Fetched,
  /** Entries that only ever appear whole (e-mail): bad content is final at once. */
  atomic: boolean,
): Promise<Rejection | null> {
  const { entry, got } = f;
  const badName = checkName(entry.name);
  if (badName) return { reason: `unsafe file name: ${badName}`, content: false };
  if (entry.expectedSha256 && entry.expectedSha256.toLowerCase() !== got.sha256) {
    return {
      reason: `corrupt: SHA-256 ${got.sha256} differs from the declared ${entry.expectedSha256}`,
      content: false,
    };
  }
  // the XML verdict came from the pass that wrote the temp file (inbound/fetch.ts)
  const bad =
    f.xml !== undefined
      ? f.xml
      : isZipName(entry.name)
        ? await checkZipFile(f.temp, ctx.abort, ctx.config.check)
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
