// The `lan` transport: a folder under a path the OS opens (UNC share, mapped drive, mounted share,
// local directory). Owns the file-system rules of the exchange: `.part` then rename, names that can
// never leave the route's directory, and a deadline on every call that a dead share could hang.
import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir as fsyncDirNow, LOCKED_ERRNOS, retryWhileLocked } from '../store/durable.js';
import { freeName, isVisible, PART, plainName, probeFileName, refuseMoveIntoSelf } from './common/names.js';
import { probeRun } from './common/probe.js';
import { exactLength, localReadError, openPackage, PackageCheck, sha256Of, watched } from './common/streams.js';
import { withDeadline } from './deadline.js';
import { TransportError, errnoCode, fromSystemError, missingInFolder, type TransportErrorCode } from './errors.js';
import type {
  Endpoint,
  LanProfile,
  OutgoingPackage,
  ProbeStep,
  PutResult,
  RemoteEntry,
  Sink,
  Source,
  Transport,
} from './types.js';

/** Waits between attempts on a locked file: 5 tries over about 2 s. */
const LOCKED_BACKOFF_MS = [100, 250, 500, 1000];

export function createLanTransport(profile: LanProfile): Transport {
  const root = profile.root;

  /** A signal nobody aborts: cleanup after an abort must still run, under its own deadline. */
  const cleanupSignal = new AbortController().signal;

  /** Throws 'unavailable' unless the share root is there and is a directory. */
  async function checkRoot(ms: number, signal: AbortSignal): Promise<void> {
    let st: Stats;
    try {
      st = await withDeadline(`reach ${root}`, ms, signal, () => fsp.stat(root));
    } catch (err) {
      const errno = errnoCode(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') {
        throw new TransportError('unavailable', `share root ${root} is not reachable (${errno})`, { cause: err });
      }
      throw fromSystemError(err, `reach ${root}`);
    }
    if (!st.isDirectory()) throw new TransportError('unavailable', `share root ${root} is not a directory`);
  }

  async function rootMissing(ms: number): Promise<boolean> {
    try {
      await checkRoot(ms, cleanupSignal);
      return false;
    } catch {
      return true;
    }
  }

  /**
   * Maps a failure onto a TransportError. A missing path is the share going away when the root is
   * gone too; otherwise it is `onMissing` (a missing entry, or a directory removed under us).
   */
  async function classify(err: unknown, what: string, ms: number, onMissing: TransportErrorCode) {
    if (err instanceof TransportError) return err;
    const errno = errnoCode(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') {
      const detail = err instanceof Error ? err.message : String(err);
      if (await rootMissing(ms)) {
        return new TransportError('unavailable', `${what}: share root ${root} is not reachable`, { cause: err });
      }
      return new TransportError(onMissing, `${what}: ${detail}`, { cause: err });
    }
    return fromSystemError(err, what);
  }

  /**
   * Creates the directory under the root one level at a time, never the root itself: a recursive
   * mkdir on a share that has just vanished would recreate its path on the local disk.
   */
  async function ensureDir(segments: string[], ms: number, signal: AbortSignal): Promise<string> {
    await checkRoot(ms, signal);
    const dir = path.join(root, ...segments);
    if (segments.length === 0) return dir;
    const existing = await statOrNull(dir, ms, signal);
    if (existing?.isDirectory()) return dir;
    let at = root;
    for (const segment of segments) {
      at = path.join(at, segment);
      try {
        await withDeadline(`create ${at}`, ms, signal, () => fsp.mkdir(at));
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
    }
    const st = await statOrNull(dir, ms, signal);
    if (!st?.isDirectory()) throw new TransportError('unavailable', `${dir} exists but is not a directory`);
    return dir;
  }

  async function statOrNull(p: string, ms: number, signal: AbortSignal): Promise<Stats | null> {
    try {
      return await withDeadline(`stat ${p}`, ms, signal, () => fsp.stat(p));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    }
  }

  async function removeQuietly(p: string, ms: number): Promise<void> {
    try {
      await withDeadline(`remove ${p}`, ms, cleanupSignal, () => fsp.unlink(p));
    } catch {
      // best effort: a `.part` left behind is invisible to readers and overwritten next time
    }
  }

  async function fsyncDir(dir: string, ms: number, signal: AbortSignal): Promise<void> {
    await withDeadline(`sync ${dir}`, ms, signal, () => fsyncDirNow(dir));
  }

  /**
   * A rename or unlink, retried briefly while the file is locked: on Windows an antivirus scanner or
   * a reader holds a new file for a moment (EBUSY/EPERM/EACCES). Still locked after that: 'busy'.
   */
  async function whileLocked(what: string, ms: number, signal: AbortSignal, fn: () => Promise<void>): Promise<void> {
    try {
      await retryWhileLocked(() => withDeadline(what, ms, signal, fn), LOCKED_BACKOFF_MS, signal);
    } catch (err) {
      const errno = errnoCode(err);
      if (!errno || !LOCKED_ERRNOS.has(errno)) throw err;
      const attempts = LOCKED_BACKOFF_MS.length + 1;
      throw new TransportError('busy', `${what}: still locked after ${attempts} attempts (${errno})`, { cause: err });
    }
  }

  async function readAllHashed(file: string, what: string, ms: number, signal: AbortSignal): Promise<string> {
    const handle = await withDeadline(what, ms, signal, () => fsp.open(file, 'r'));
    return sha256Of(watched(handle.createReadStream(), what, ms, signal));
  }

  /** The entries of a directory as a Source lists them. */
  async function listDir(dir: string, ms: number, signal: AbortSignal): Promise<RemoteEntry[]> {
    const names = await withDeadline(`list ${dir}`, ms, signal, () => fsp.readdir(dir));
    const entries: RemoteEntry[] = [];
    for (const name of names) {
      if (!isVisible(name)) continue;
      // stat, not lstat: a symlink to a file is a file, a symlink to a directory is skipped
      const st = await statOrNull(path.join(dir, name), ms, signal);
      if (!st?.isFile()) continue;
      entries.push({ name, size: st.size, modifiedAt: st.mtime, ref: name });
    }
    return entries;
  }

  async function put(ep: Endpoint, segments: string[], pkg: OutgoingPackage, signal: AbortSignal): Promise<PutResult> {
    const ms = ep.timeoutMs;
    const name = plainName(pkg.name, 'package name', true);
    const what = `put ${name}`;
    const remoteRef = [...segments, name].join('/');
    let part = '';
    let renamed = false;
    try {
      if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
      const dir = await ensureDir(segments, ms, signal);
      const final = path.join(dir, name);
      const existing = await statOrNull(final, ms, signal);
      if (existing) {
        if (!existing.isFile()) throw new TransportError('exists', `${what}: ${remoteRef} exists and is not a file`);
        let sha: string | null = null;
        if (existing.size === pkg.size) {
          try {
            sha = await readAllHashed(final, `hash ${remoteRef}`, ms, signal);
          } catch (err) {
            // taken away by its reader while we looked (the office imported it): write ours
            if (errnoCode(err) !== 'ENOENT') throw err;
            sha = null;
          }
          if (sha === pkg.sha256.toLowerCase()) return { remoteRef, alreadyPresent: true };
        }
        const stillThere = sha !== null || existing.size !== pkg.size;
        if (stillThere && !ep.overwrite) {
          throw new TransportError('exists', `${what}: a different ${remoteRef} is already there`);
        }
      }

      part = final + PART;
      await writePart(part, pkg, what, ms, signal);
      await whileLocked(`${what}: rename ${name}${PART}`, ms, signal, () => fsp.rename(part, final));
      renamed = true;
      await fsyncDir(dir, ms, signal);
      return { remoteRef, alreadyPresent: false };
    } catch (err) {
      if (part && !renamed) await removeQuietly(part, ms);
      throw await classify(err, what, ms, 'unavailable');
    }
  }

  /** Streams the package into `part`, fsyncs it and checks that every byte arrived. */
  async function writePart(part: string, pkg: OutgoingPackage, what: string, ms: number, signal: AbortSignal) {
    const handle = await withDeadline(`${what}: create ${path.basename(part)}`, ms, signal, () => fsp.open(part, 'w'));
    let open = true;
    try {
      const check = new PackageCheck(pkg, what);
      const source = openPackage(pkg, what);
      // Our own write loop, each write under a deadline: a write stuck on a dead share must not
      // hold the caller (a stream pipeline would wait for it to settle before reporting).
      for await (const chunk of watched(source, what, ms, signal, { mapError: (err) => localReadError(err, what) })) {
        const buf = chunk as Buffer;
        check.update(buf);
        let at = 0;
        while (at < buf.length) {
          const { bytesWritten } = await withDeadline(`${what}: write`, ms, signal, () =>
            handle.write(buf, at, buf.length - at),
          );
          at += bytesWritten;
        }
      }
      check.verify();
      await withDeadline(`${what}: sync`, ms, signal, () => handle.sync());
      const st = await withDeadline(`${what}: stat`, ms, signal, () => handle.stat());
      if (st.size !== pkg.size) {
        throw new TransportError('corrupt', `${what}: ${st.size} bytes on the share, ${pkg.size} written`);
      }
      open = false;
      await withDeadline(`${what}: close`, ms, signal, () => handle.close());
    } finally {
      if (open) {
        try {
          await withDeadline(`${what}: close`, ms, cleanupSignal, () => handle.close());
        } catch {
          // the error that got us here is the one worth reporting
        }
      }
    }
  }

  function endpointDirs(ep: Endpoint) {
    const segments = relativeSegments(ep.remote, 'remote');
    const to = ep.afterReceive.kind === 'move' ? ep.afterReceive.to : null;
    const moveSegments = to === null ? null : relativeSegments(to, 'move target');
    refuseMoveIntoSelf(segments.join('/'), moveSegments && moveSegments.join('/'), to ?? '');
    return { segments, moveSegments };
  }

  async function openSink(ep: Endpoint, signal: AbortSignal): Promise<Sink> {
    const { segments } = endpointDirs(ep);
    try {
      await ensureDir(segments, ep.timeoutMs, signal);
    } catch (err) {
      throw await classify(err, `open ${ep.remote || '.'}`, ep.timeoutMs, 'unavailable');
    }
    const sink = {
      put: (pkg: OutgoingPackage, sig: AbortSignal) => put(ep, segments, pkg, sig),
      close: () => Promise.resolve(),
    } satisfies Sink;
    return sink;
  }

  async function openSource(ep: Endpoint, signal: AbortSignal): Promise<Source> {
    const { segments, moveSegments } = endpointDirs(ep);
    const ms = ep.timeoutMs;
    const label = segments.join('/') || '.';
    try {
      await ensureDir(segments, ms, signal);
    } catch (err) {
      throw await classify(err, `open ${label}`, ms, 'unavailable');
    }
    const dirOf = () => path.join(root, ...segments);

    const source = {
      async list(sig: AbortSignal): Promise<RemoteEntry[]> {
        try {
          return await listDir(await ensureDir(segments, ms, sig), ms, sig);
        } catch (err) {
          throw await classify(err, `list ${label}`, ms, 'unavailable');
        }
      },

      async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
        const name = plainName(entry.ref, 'entry');
        const what = `read ${[...segments, name].join('/')}`;
        try {
          const file = path.join(dirOf(), name);
          const handle = await withDeadline(what, ms, sig, () => fsp.open(file, 'r'));
          let st: Stats;
          try {
            st = await withDeadline(what, ms, sig, () => handle.stat());
          } catch (err) {
            void handle.close().catch(() => undefined);
            throw err;
          }
          if (!st.isFile() || st.size !== entry.size) {
            void handle.close().catch(() => undefined);
            if (!st.isFile()) throw new TransportError('not-found', `${what}: not a file`);
            throw new TransportError(
              'busy',
              `${what}: ${st.size} bytes now, ${entry.size} when listed (still changing)`,
            );
          }
          const file$ = handle.createReadStream();
          const counted = exactLength(entry.size, what);
          file$.on('error', (err) => counted.destroy(fromSystemError(err, what)));
          counted.on('close', () => file$.destroy());
          return watched(file$.pipe(counted), what, ms, sig);
        } catch (err) {
          throw await classify(err, what, ms, 'not-found');
        }
      },

      async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
        const name = plainName(entry.ref, 'entry');
        const what = `acknowledge ${[...segments, name].join('/')}`;
        const file = path.join(dirOf(), name);
        try {
          if (moveSegments) {
            const target = await ensureDir(moveSegments, ms, sig);
            const free = await freeName(name, async (candidate) => {
              const at = path.join(target, candidate);
              const st = await withDeadline(`stat ${candidate}`, ms, sig, () => fsp.lstat(at)).catch((err: unknown) => {
                if (errnoCode(err) === 'ENOENT') return null;
                throw err;
              });
              return st !== null;
            });
            await whileLocked(`${what}: move`, ms, sig, () => fsp.rename(file, path.join(target, free)));
            await fsyncDir(target, ms, sig);
          } else {
            await whileLocked(what, ms, sig, () => fsp.unlink(file));
          }
        } catch (err) {
          // gone already (a repeat, or someone else took it): done, as long as the share is there
          if (errnoCode(err) === 'ENOENT' && !(await rootMissing(ms)) && !(await statOrNull(file, ms, sig))) return;
          throw await classify(err, what, ms, 'unavailable');
        }
      },

      close: () => Promise.resolve(),
    } satisfies Source;
    return source;
  }

  async function probe(ep: Endpoint, direction: 'in' | 'out', signal: AbortSignal): Promise<ProbeStep[]> {
    const ms = ep.timeoutMs;
    const { steps, step } = probeRun((err, name) => classify(err, name, ms, 'unavailable'));

    let dir = '';
    const probeName = probeFileName();
    if (
      !(await step('root reachable', async () => {
        await checkRoot(ms, signal);
        return root;
      }))
    ) {
      return steps;
    }
    if (
      !(await step('list remote', async () => {
        const segments = relativeSegments(ep.remote, 'remote');
        const rel = segments.join('/') || '.';
        const before = await statOrNull(path.join(root, ...segments), ms, signal);
        // an in-route never creates its remote folder: a typo there would be polled forever
        if (!before?.isDirectory() && direction === 'in') throw missingInFolder(rel);
        dir = await ensureDir(segments, ms, signal);
        const entries = await listDir(dir, ms, signal);
        return `${entries.length} file(s) in ${rel}${before?.isDirectory() ? '' : ' (created: it was not there)'}`;
      }))
    ) {
      return steps;
    }
    const probeFile = path.join(dir, probeName);
    const written = await step('write probe file', async () => {
      await withDeadline('write probe file', ms, signal, async () => {
        const handle = await fsp.open(probeFile, 'wx');
        try {
          await handle.writeFile('sprelay probe\n');
          await handle.sync();
        } finally {
          await handle.close();
        }
      });
      return probeName;
    });
    if (!written) {
      await removeQuietly(probeFile, ms);
      return steps;
    }
    const removed = await step('remove probe file', async () => {
      await withDeadline('remove probe file', ms, signal, () => fsp.unlink(probeFile));
      return undefined;
    });
    if (!removed) await removeQuietly(probeFile, ms);
    if (removed && direction === 'in' && ep.afterReceive.kind === 'move') {
      const to = ep.afterReceive.to;
      await step('move target reachable', async () => {
        const { moveSegments } = endpointDirs(ep);
        await ensureDir(moveSegments ?? [], ms, signal);
        return to;
      });
    }
    return steps;
  }

  return { kind: 'lan', features: { move: true, bundle: false }, openSink, openSource, probe } satisfies Transport;
}

// ---- names -------------------------------------------------------------------------------------

/** `remote` / `move:` directory relative to the profile root, as path segments ('' and '.' = root). */
function relativeSegments(rel: string, what: string): string[] {
  if (path.posix.isAbsolute(rel) || path.win32.isAbsolute(rel) || /^[a-zA-Z]:/.test(rel)) {
    throw new TransportError(
      'invalid-name',
      `${what} ${JSON.stringify(rel)} refused: must be relative to the share root`,
    );
  }
  const segments = rel.split(/[/\\]+/).filter((s) => s !== '' && s !== '.');
  for (const s of segments) {
    if (s === '..') {
      throw new TransportError('invalid-name', `${what} ${JSON.stringify(rel)} refused: '..' leaves the share root`);
    }
    plainName(s, what);
  }
  return segments;
}
