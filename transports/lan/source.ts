// Source on the share: the listing (regular files; links, pipes, devices and folders named like a
// package listed as refused; held to the listing caps), open (exactly the listed bytes of the file
// that was looked at, under the idle deadline and the route's minimum rate) and acknowledge (delete
// or move, only the file that was read, safe to repeat, under one budget), and the folders (the
// station folders of an office in-route: folders, and links whose target is one).
import { promises as fsp, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { isFolderName, sortedNames } from '../common/folders.js';
import { ListingBudget } from '../common/listing.js';
import { freeName, isVisible, plainName } from '../common/names.js';
import { exactLength, watched } from '../common/streams.js';
import { ackBudgetMs, withBudget } from '../deadline.js';
import { TransportError, errnoCode, fromSystemError } from '../errors.js';
import { isRemotePackage } from '../include.js';
import type { Endpoint, RemoteEntry, Source } from '../types.js';
import type { WholeRead } from '../whole.js';
import { kindOf, refusalOf, unchanged } from './files.js';
import { openRegular, readExactly, reader } from './read.js';
import { inPool } from '../../store/at-once.js';
import { CALLS_PER_SHARE } from './gate.js';
import { endpointDirs, type Share } from './share.js';

/**
 * The entries of a directory as a Source lists them: regular files (a hard link is one: it is
 * the same file under another name). Anything else a package could be named (`include`) is
 * listed as refused, never to be opened or acknowledged: a link (to a file, a folder, or
 * nowhere), a pipe, a socket, a device, a folder. Other names that are not files are skipped.
 * Held to the listing caps every transport keeps (entries and name bytes).
 */
export async function listDir(
  share: Share,
  dir: string,
  label: string,
  include: string[],
  ms: number,
  signal: AbortSignal,
) {
  const names = (await readDir(share, dir, label, ms, signal)).map((d) => d.name).filter(isVisible);
  // the lstats as many at once as the share's gate lets through (issue 11: one after the other, a
  // thousand entries were a thousand round trips in a row); the first failure stops the rest
  const stats: (Stats | null)[] = names.map(() => null);
  const { error } = await inPool(
    names,
    CALLS_PER_SHARE,
    async (name, i) => {
      stats[i] = await share.lstatOrNull(path.join(dir, name), ms, signal);
    },
    () => false,
  );
  if (error !== undefined) throw error;
  const entries: RemoteEntry[] = [];
  for (const [i, name] of names.entries()) {
    const st = stats[i];
    if (!st) continue;
    if (st.isFile()) {
      entries.push({ name, size: st.size, modifiedAt: st.mtime, ref: name });
    } else if (isRemotePackage(name, include)) {
      // size 0 and no time: what it points to or holds is not ours to look at, and the refusal is
      // recorded once however its target changes
      entries.push({ name, size: 0, ref: name, refusal: refusalOf(st) });
    }
  }
  return entries;
}

/** Every entry of a directory with its type as the directory says it, held to the listing caps. */
async function readDir(share: Share, dir: string, label: string, ms: number, signal: AbortSignal) {
  const budget = new ListingBudget(`listing of ${label} on the share ${share.root}`);
  const entries: Dirent[] = [];
  const handle = await share.fsCall(`list ${dir}`, ms, signal, () => fsp.opendir(dir));
  try {
    for (;;) {
      const d = await share.fsCall(`list ${dir}`, ms, signal, () => handle.read());
      if (d === null) break;
      budget.take(1, Buffer.byteLength(d.name));
      entries.push(d);
    }
  } finally {
    share.closeLater(handle);
  }
  return entries;
}

/** The largest file read whole (WholeRead): one buffer, read in one call. */
const WHOLE_MAX = 1024 * 1024;

/** What a link's target cannot be looked at for: it is then not a folder (a dangling link, a loop). */
const UNREADABLE_TARGET = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EACCES', 'EPERM']);

/**
 * The folders directly inside `segments` (Source.folders): real folders, and links (or junctions)
 * whose target stat says is a folder; names by the common folder rule, sorted. A missing folder
 * is []; a missing share root is 'unavailable' and a link on the way there 'permission', as for
 * `list`. A link listed here is still refused when a route opens it as its folder (share.folder).
 */
export async function listFolders(
  share: Share,
  segments: string[],
  ms: number,
  signal: AbortSignal,
): Promise<string[]> {
  const dir = await share.folderOrNull(segments, ms, signal);
  if (dir === null) return [];
  const label = segments.join('/') || '.';
  const names: string[] = [];
  for (const d of await readDir(share, dir, label, ms, signal)) {
    if (!isFolderName(d.name)) continue;
    if (d.isDirectory()) {
      names.push(d.name);
    } else if (d.isSymbolicLink()) {
      const at = path.join(dir, d.name);
      try {
        if ((await share.fsCall(`look at ${at}`, ms, signal, () => fsp.stat(at))).isDirectory()) names.push(d.name);
      } catch (err) {
        if (!UNREADABLE_TARGET.has(errnoCode(err) ?? '')) throw err;
      }
    }
  }
  return sortedNames(names);
}

export async function openSource(share: Share, ep: Endpoint, signal: AbortSignal): Promise<Source & WholeRead> {
  const { segments, moveSegments } = endpointDirs(ep);
  const ms = ep.timeoutMs;
  const label = segments.join('/') || '.';
  try {
    await share.folder(segments, ms, signal, true);
    // a move target that leads off the share stops the route before anything is taken
    if (moveSegments) await share.folder(moveSegments, ms, signal, true);
  } catch (err) {
    throw await share.classify(err, `open ${label}`, ms, 'unavailable');
  }
  /** What was opened under each name (fstat): acknowledge removes that file or nothing. */
  const opened = new Map<string, Stats>();
  const readWhat = (entry: RemoteEntry) => `read ${[...segments, plainName(entry.ref, 'entry')].join('/')}`;

  /**
   * The listed entry opened for reading: a regular file now (lstat), opened only as that file
   * (openRegular), still the listed size; remembered for acknowledge. Throws as open() documents.
   */
  async function openListed(entry: RemoteEntry, what: string, sig: AbortSignal): Promise<FileHandle> {
    const name = plainName(entry.ref, 'entry');
    if (entry.refusal !== undefined) throw new TransportError('rejected', `${what}: ${entry.refusal}`);
    const file = path.join(await share.knownFolder(segments, ms, sig, false), name);
    const seen = await share.fsCall(what, ms, sig, () => fsp.lstat(file));
    if (!seen.isFile()) {
      throw new TransportError('busy', `${what}: it is ${kindOf(seen)} now, not a file: not read`);
    }
    const { handle, st } = await openRegular(share, file, seen, what, ms, sig);
    if (st.size !== entry.size) {
      share.closeLater(handle);
      throw new TransportError('busy', `${what}: ${st.size} bytes now, ${entry.size} when listed (still changing)`);
    }
    opened.set(name, st);
    return handle;
  }

  const source = {
    // Entries worked on at once (opens, reads and acknowledgements of different files): the share's
    // gate still lets at most CALLS_PER_SHARE calls reach the share at once, so a share that hangs
    // holds no more threads; twice that keeps the gate busy while the other entries' bytes are
    // written, hashed and checked on the station's own disk.
    parallel: CALLS_PER_SHARE * 2,

    async list(sig: AbortSignal): Promise<RemoteEntry[]> {
      try {
        return await listDir(share, await share.folder(segments, ms, sig, true), label, ep.include, ms, sig);
      } catch (err) {
        throw await share.classify(err, `list ${label}`, ms, 'unavailable');
      }
    },

    async folders(sig: AbortSignal): Promise<string[]> {
      try {
        return await listFolders(share, segments, ms, sig);
      } catch (err) {
        throw await share.classify(err, `list the folders of ${label}`, ms, 'unavailable');
      }
    },

    async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
      const what = readWhat(entry);
      try {
        const handle = await openListed(entry, what, sig);
        const file$ = reader(share, handle);
        const counted = exactLength(entry.size, what);
        file$.on('error', (err) => counted.destroy(fromSystemError(err, what)));
        counted.on('close', () => file$.destroy());
        return watched(file$.pipe(counted), what, ms, sig, { minRate: ep.minRate });
      } catch (err) {
        throw await share.classify(err, what, ms, 'not-found');
      }
    },

    // A small file in one read (its size is the listing's): no stream. Every call is under the
    // idle deadline, which ends it before a window of the minimum rate could (the window is never
    // shorter than the deadline), so the rate has nothing more to cut.
    wholeMax: WHOLE_MAX,

    async readWhole(entry: RemoteEntry, sig: AbortSignal): Promise<Buffer> {
      const what = readWhat(entry);
      try {
        if (entry.size > WHOLE_MAX) {
          throw new TransportError('too-large', `${what}: ${entry.size} bytes, more than ${WHOLE_MAX} to read whole`);
        }
        const handle = await openListed(entry, what, sig);
        try {
          return await readExactly(share, handle, entry.size, what, ms, sig);
        } finally {
          share.closeLater(handle);
        }
      } catch (err) {
        throw await share.classify(err, what, ms, 'not-found');
      }
    },

    async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
      const name = plainName(entry.ref, 'entry');
      const rel = [...segments, name].join('/');
      const what = `acknowledge ${rel}`;
      if (entry.refusal !== undefined) {
        throw new TransportError(
          'rejected',
          `${what}: refused on the share (${entry.refusal}); never removed or moved`,
        );
      }
      let file = '';
      try {
        await withBudget(what, ackBudgetMs(ms), sig, async (s) => {
          file = path.join(await share.knownFolder(segments, ms, s, false), name);
          const st = await share.lstatOrNull(file, ms, s);
          if (!st) throw Object.assign(new Error(`${rel} is not there`), { code: 'ENOENT' });
          if (!st.isFile()) {
            throw new TransportError(
              'rejected',
              `${what}: it is ${kindOf(st)} now, not the file that was read: left where it is`,
            );
          }
          const read = opened.get(name);
          if (read && !unchanged(read, st)) {
            throw new TransportError(
              'busy',
              `${what}: another file of that name took its place after it was read: left where it is`,
            );
          }
          if (moveSegments) {
            const target = await share.folder(moveSegments, ms, s, true);
            const where = moveSegments.join('/');
            const free = await freeName(
              name,
              async (candidate) => (await share.lstatOrNull(path.join(target, candidate), ms, s)) !== null,
              where,
            );
            await share.whileLocked(`${what}: move`, ms, s, () => fsp.rename(file, path.join(target, free)));
            await share.fsyncDir(target, ms, s);
          } else {
            await share.whileLocked(what, ms, s, () => fsp.unlink(file));
          }
        });
        opened.delete(name);
      } catch (err) {
        // gone already (a repeat, or someone else took it): done, as long as the share is there
        if (errnoCode(err) === 'ENOENT' && !(await share.rootMissing(ms))) {
          if (file === '' || !(await share.lstatOrNull(file, ms, sig))) {
            opened.delete(name);
            return;
          }
        }
        throw await share.classify(err, what, ms, 'unavailable');
      }
    },

    close: () => Promise.resolve(),
  } satisfies Source & WholeRead;
  return source;
}
