// The FTP source: one listing per cycle, and up to `parallel` downloads and acknowledgements at
// once, each on its own lane (control connection), opened as the pipeline asks for them.
import type { Readable } from 'node:stream';
import { FTPError, type FileInfo } from 'basic-ftp';
import { isFolderName, sortedNames } from '../common/folders.js';
import { plainName } from '../common/names.js';
import { ackBudgetMs, withBudget } from '../deadline.js';
import { TransportError } from '../errors.js';
import { withinBudget, type RemoteTimes } from '../times.js';
import type { Endpoint, RemoteEntry, Source } from '../types.js';
import { KeyedQueue, MAX_LANES, type Held, type Lanes } from './lane.js';
import { latestMoment, listClock, zoneOffset, type ListClock } from './listtimes.js';
import { inDir, type FtpSession } from './session.js';
import { download } from './transfer.js';

/**
 * A source over `lanes`, whose first session is in `dir`. `open` sends RETR straight away: the
 * listing said the size, and the download fails ('busy') unless exactly that many bytes come, so
 * a SIZE before it would only repeat the listing. Moves into `moveTo` go one at a time (two
 * free-name searches at once could pick the same name); deletes and downloads do not wait.
 */
export function ftpSource(lanes: Lanes, ep: Endpoint, dir: string, moveTo: string | null): Source & RemoteTimes {
  const moves = new KeyedQueue();
  let moveDirReady = false;
  /** The times the latest listing printed, by ref (LIST's, which times() can make usable). */
  let printed: ReadonlyMap<string, string> = new Map();

  return {
    parallel: MAX_LANES,

    async list(sig: AbortSignal): Promise<RemoteEntry[]> {
      const what = `list ${dir}`;
      const { session, release } = await lanes.acquire(sig, what);
      try {
        await session.ready(sig);
        await session.enterDir(dir, true, sig);
        const times = new Map<string, string>();
        const entries = await session.listHere(dir, what, sig, false, times);
        printed = times;
        return entries;
      } catch (err) {
        throw session.classify(err, what, { missing: 'unavailable' });
      } finally {
        release();
      }
    },

    /**
     * The times LIST does not give (vsftpd, no MLSD): those the listing printed, once MDTM of one
     * or two of them has said the listing's zone (timesFromListing); else, for the entries left,
     * MDTM for each, one after the other on each of up to `width` lanes (the ones the downloads
     * then use), within `budgetMs` (times.ts). Nothing is asked when FEAT did not list MDTM.
     */
    async times(
      entries: readonly RemoteEntry[],
      budgetMs: number,
      width: number,
      sig: AbortSignal,
    ): Promise<Map<string, Date>> {
      const found = new Map<string, Date>();
      if (entries.length === 0) return found;
      const what = `ask the times of the files in ${dir}`;
      const held: (Held | undefined)[] = [];
      try {
        const first = await lanes.acquire(sig, what);
        held.push(first);
        await first.session.ready(sig);
        if (!first.session.hasMdtm) return found;
        for (const [ref, t] of await timesFromListing(first.session, dir, entries, printed, sig)) found.set(ref, t);
        const rest = entries.filter((e) => !found.has(e.ref));
        if (rest.length === 0) return found;
        await withinBudget(
          rest,
          budgetMs,
          async (entry, lane) => {
            let file: string;
            try {
              file = inDir(dir, plainName(entry.ref, 'entry'));
              first.session.wire.out(file, 'name');
            } catch {
              return; // a name we could not ask about has no time (the pipeline judges the name itself)
            }
            const { session } = held[lane]!;
            try {
              await session.ready(sig);
              const t = await session.modifiedAt(file, `time of ${file}`, sig);
              if (t) found.set(entry.ref, t);
            } catch (err) {
              throw session.classify(err, what, { missing: 'unavailable' });
            }
          },
          {
            width: Math.min(width, MAX_LANES),
            // each worker its own lane, to the end (one opened now serves the downloads next)
            begin: async (lane) => {
              held[lane] ??= await lanes.acquire(sig, what);
            },
            // a server that takes no more connections: the worker waiting for one gets this one
            end: (lane) => held[lane]?.release(),
          },
        );
        return found;
      } catch (err) {
        throw held[0] && !(err instanceof TransportError) ? held[0].session.classify(err, what, {}) : err;
      } finally {
        for (const h of held) h?.release();
      }
    },

    async folders(sig: AbortSignal): Promise<string[]> {
      const what = `list the folders of ${dir}`;
      const { session, release } = await lanes.acquire(sig, what);
      try {
        await session.ready(sig);
        return await foldersIn(session, dir, what, sig);
      } catch (err) {
        throw session.classify(err, what, { missing: 'unavailable' });
      } finally {
        release();
      }
    },

    async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
      const name = plainName(entry.ref, 'entry');
      const file = inDir(dir, name);
      const what = `read ${file}`;
      const { session, release } = await lanes.acquire(sig, what);
      let handedOver = false;
      try {
        await session.ready(sig);
        const { stream, started } = download(session, file, entry.size, what, sig, release);
        handedOver = true;
        // The reader gets errors through its pipeline / for-await; this only keeps a reader that
        // has not attached its handler yet from turning a broken transfer into a crash.
        stream.on('error', () => undefined);
        // a file that is gone, or grew since the listing, fails here, not in the reader's hands
        await started;
        return stream;
      } catch (err) {
        throw session.classify(err, what, { missing: 'not-found' });
      } finally {
        if (!handedOver) release();
      }
    },

    async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
      const name = plainName(entry.ref, 'entry');
      const file = inDir(dir, name);
      const what = `acknowledge ${file}`;
      const ack = async () => {
        const { session, release } = await lanes.acquire(sig, what);
        try {
          // the whole acknowledgement within one budget: a server that keeps a move's free-name
          // search going is cut there (and by the free-name cap), never left to hold the route
          await withBudget(what, ackBudgetMs(ep.timeoutMs), sig, async (s) => {
            await session.ready(s);
            if (moveTo) {
              // created (if missing) once per cycle, not once per file
              if (!moveDirReady) await session.enterDir(moveTo, true, s);
              moveDirReady = true;
              const free = await session.freeName(moveTo, name, s);
              await session.moveOrGone(file, inDir(moveTo, free), `${what}: move to ${moveTo}`, s);
            } else {
              await session.deleteOrGone(file, what, s);
            }
          });
        } catch (err) {
          throw session.classify(err, what, { missing: 'unavailable' });
        } finally {
          release();
        }
      };
      await (moveTo ? moves.run(moveTo, ack) : ack());
    },

    close: () => {
      lanes.close();
      return Promise.resolve();
    },
  } satisfies Source & RemoteTimes;
}

/** Entries of one listing whose MDTM says its zone (listtimes.ts): the two it printed newest. */
const SAMPLES = 2;

/**
 * The most a zone's daylight saving moves its clock. A listing in local time prints each file in
 * the offset of the file's own date: a file from before the last change of the clocks (an autumn
 * one) printed an hour off the offset learned now would look an hour older than it is.
 */
const DST_SHIFT = 60 * 60_000;

/**
 * Entries a listing printed in local time (an offset other than 0) whose time is within this of
 * ours are asked MDTM each (exact) instead of being read from the listing an hour later.
 */
const LOCAL_RECENT = 2 * DST_SHIFT;

/**
 * The times of `entries`, by ref, from the times their listing printed (`printed`, by ref), once
 * MDTM of the SAMPLES it printed newest has said how far the listing's clock is from UTC and they
 * agree (listtimes.ts): one or two round trips for the listing instead of one per entry. The
 * newest, because a file being written now is among them: its MDTM then moves between the LIST and
 * the question (no whole quarter hours: no times from the listing), and its offset is the one in
 * force now. A listing in local time (offset not 0) may have files printed in another offset
 * (daylight saving): those are read an hour later (never older than they are), and the recent ones
 * are left to MDTM each. Empty when the samples do not settle it (times() then asks per entry).
 * The session is ready and has MDTM.
 */
async function timesFromListing(
  session: FtpSession,
  dir: string,
  entries: readonly RemoteEntry[],
  printed: ReadonlyMap<string, string>,
  sig: AbortSignal,
): Promise<Map<string, Date>> {
  const found = new Map<string, Date>();
  const now = Date.now();
  const clocks = new Map<string, ListClock>();
  for (const e of entries) {
    const c = listClock(printed.get(e.ref));
    if (c) clocks.set(e.ref, c);
  }
  const recent = entries.filter((e) => clocks.get(e.ref)?.hour !== undefined);
  if (recent.length === 0) return found;
  // newest first as printed (the order across zones does not matter among entries of one listing)
  const at = (e: RemoteEntry) => latestMoment(clocks.get(e.ref)!, 0, now)?.getTime() ?? -Infinity;
  const samples = [...recent].sort((a, b) => at(b) - at(a)).slice(0, SAMPLES);
  const exact = new Map<string, Date>();
  let offset: number | null = null;
  for (const e of samples) {
    let file: string;
    try {
      file = inDir(dir, plainName(e.ref, 'entry'));
      session.wire.out(file, 'name');
    } catch {
      return found; // a name we could not ask about (the pipeline judges the name itself)
    }
    const t = await session.modifiedAt(file, `time of ${file}`, sig);
    const o = t ? zoneOffset(clocks.get(e.ref)!, t) : null;
    if (o === null || (offset !== null && o !== offset)) return found;
    offset = o;
    exact.set(e.ref, t!);
  }
  if (offset === null) return found;
  for (const e of entries) {
    const c = clocks.get(e.ref);
    const t = c && latestMoment(c, offset, now);
    if (!t) continue;
    if (offset === 0) found.set(e.ref, t);
    else if (exact.has(e.ref)) found.set(e.ref, exact.get(e.ref)!);
    else if (now - (t.getTime() + DST_SHIFT) >= LOCAL_RECENT) found.set(e.ref, new Date(t.getTime() + DST_SHIFT));
  }
  return found;
}

/**
 * The folders of `dir` (Source.folders) on a session that is ready: CWD unless the lane is there,
 * one listing. A folder that is not there is []: a CWD refused as missing, also after a listing
 * that failed because the folder went while the lane was in it (ftp-srv: `451 ENOENT`).
 */
async function foldersIn(session: FtpSession, dir: string, what: string, sig: AbortSignal): Promise<string[]> {
  try {
    await session.enterDir(dir, false, sig);
  } catch (err) {
    if (folderMissing(session, err, what)) return [];
    throw err;
  }
  let infos: FileInfo[];
  try {
    infos = await session.infosHere(dir, what, sig);
  } catch (err) {
    if (!(err instanceof FTPError)) throw err;
    try {
      await session.command(what, sig, (c) => c.send(`CWD ${session.wire.out(dir, what)}`));
    } catch (cwdErr) {
      if (folderMissing(session, cwdErr, what)) return [];
      if (cwdErr instanceof TransportError) throw cwdErr; // a timeout, an abort, a lost connection
    }
    throw err;
  }
  // folders only: a link's target would take a CWD each to know (and `list` skips links too)
  return sortedNames(
    infos
      .filter((i) => i.isDirectory)
      .map((i) => session.wire.in(i.name))
      .filter(isFolderName),
  );
}

/**
 * Whether a failed CWD says the folder is not there: a 550 whose text does not speak of rights
 * (vsftpd says only "550 Failed to change directory." for a missing folder, as the probe knows).
 */
function folderMissing(session: FtpSession, err: unknown, what: string): boolean {
  if (!(err instanceof FTPError) || err.code !== 550) return false;
  return session.classify(err, what, { missing: 'not-found', refused: 'not-found' }).code === 'not-found';
}
