// The `lan` transport: a folder under a path the OS opens (UNC share, mapped drive, mounted share,
// local directory). Owns the file-system rules of the exchange: `.part` then rename, names that can
// never leave the route's directory, and a deadline on every call that a dead share could hang.
//
// What is below the share root belongs to the office and is not trusted (issue 10): where the
// station follows the share's symbolic links (NFS, CIFS with unix extensions, a synced or local
// folder), a link could lead a read, a write or a delete to the station's own files. So nothing
// below the root is ever followed: every folder component is looked at with lstat and refused when
// it is a link (or a junction: Windows' lstat reports both as links); files are opened with
// O_NOFOLLOW | O_NONBLOCK where the OS has them and the handle's fstat must be the regular file
// lstat showed; `.part` is created exclusively (O_CREAT | O_EXCL: never through what is there);
// entries that are not regular files (links, pipes, sockets, devices, folders) are listed as
// refused, never opened, moved or removed. Unlink and rename act on the name itself, never on what a
// link points to. Residual: Node has no openat/renameat, so an office that swaps a checked folder
// for a link in the microseconds between our lstat and our call is not caught by the folder check
// (a file opened through it is still refused on Linux/macOS when the last component is a link, and
// everywhere when fstat shows another file than lstat did).
//
// And a share that hangs (a dead NFS mount, a FIFO) must not take Node's I/O threads from the other
// routes: every file-system call on one share goes through that share's gate (CALLS_PER_SHARE at
// once). A call the deadline gave up on keeps its slot until the OS answers, so a dead share holds
// at most CALLS_PER_SHARE threads of the pool; its later calls wait for a slot and time out.
import { constants as fsc, promises as fsp, type Dir, type Stats } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fsyncDir as fsyncDirNow, LOCKED_ERRNOS, retryWhileLocked } from '../store/durable.js';
import { ListingBudget } from './common/listing.js';
import { freeName, isVisible, PART, plainName, probeFileName, refuseMoveIntoSelf } from './common/names.js';
import { probeRun } from './common/probe.js';
import { exactLength, localReadError, openPackage, PackageCheck, sha256Of, watched } from './common/streams.js';
import { ackBudgetMs, formatMs, withBudget, withDeadline } from './deadline.js';
import { TransportError, errnoCode, fromSystemError, missingInFolder, type TransportErrorCode } from './errors.js';
import { isRemotePackage } from './include.js';
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

/**
 * File-system calls in flight on one share root at most. A route works one file at a time, so two
 * routes on one share rarely want more; a share that hangs holds no more than this many of the
 * process's I/O threads (4 by default; the `sprelay` command raises it to 16: bin/sprelay.js).
 */
export const CALLS_PER_SHARE = 2;

/** Bytes per read of a file on the share. */
const READ_CHUNK = 64 * 1024;

// O_NOFOLLOW: the open fails (ELOOP) when the last component is a link. O_NONBLOCK: opening a FIFO
// returns at once instead of waiting for a writer forever. Windows has neither (undefined there):
// it gets lstat before the open and the handle's fstat after, compared (sameFile).
const NOFOLLOW = fsc.O_NOFOLLOW ?? 0;
const NONBLOCK = fsc.O_NONBLOCK ?? 0;
const READ_FLAGS = fsc.O_RDONLY | NOFOLLOW | NONBLOCK;
/** A new file, never an existing one and never through a link, even a dangling one (O_EXCL). */
const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | NOFOLLOW;

const LINK_WORDS = process.platform === 'win32' ? 'a symbolic link or junction' : 'a symbolic link';

type FileHandle = fsp.FileHandle;

export function createLanTransport(profile: LanProfile): Transport {
  const root = profile.root;
  const gate = gateOf(root);

  /** A signal nobody aborts: cleanup after an abort must still run, under its own deadline. */
  const cleanupSignal = new AbortController().signal;

  /**
   * One file-system call on this share: through the share's gate, under a deadline. When the
   * deadline passes while earlier calls still hold every slot, the message says the share hangs.
   */
  async function fsCall<T>(what: string, ms: number, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    try {
      return await withDeadline(what, ms, signal, (s) => gate.run(fn, s));
    } catch (err) {
      const stuck = gate.stuckFor(ms);
      if (err instanceof TransportError && err.code === 'timeout' && stuck >= gate.slots) {
        throw new TransportError(
          'timeout',
          `${err.message}: ${stuck} call(s) on the share ${root} have had no answer for more than ` +
            `${formatMs(ms)} (the share hangs; the other routes go on)`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Closes a handle in the background (through the gate: a close on a dead share may hang too). */
  function closeLater(handle: FileHandle | Dir): void {
    void gate.run(() => handle.close(), cleanupSignal).catch(() => undefined);
  }

  /** Throws 'unavailable' unless the share root is there and is a directory. */
  async function checkRoot(ms: number, signal: AbortSignal): Promise<void> {
    let st: Stats;
    try {
      // stat, not lstat: the root is the station's own setting and may be a link or a junction
      st = await fsCall(`reach ${root}`, ms, signal, () => fsp.stat(root));
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

  async function lstatOrNull(p: string, ms: number, signal: AbortSignal): Promise<Stats | null> {
    try {
      return await fsCall(`look at ${p}`, ms, signal, () => fsp.lstat(p));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    }
  }

  /**
   * The folder `segments` under the root, checked one component at a time with lstat: the root is
   * the station's own setting and trusted, every component below it must be a real folder, not a
   * link. With `create`, missing components are made one level at a time, never the root itself
   * (a recursive mkdir on a share that has just vanished would recreate its path on the local
   * disk); without it, a missing component throws its ENOENT.
   */
  async function folder(segments: string[], ms: number, signal: AbortSignal, create: boolean): Promise<string> {
    await checkRoot(ms, signal);
    let at = root;
    for (let i = 0; i < segments.length; i++) {
      at = path.join(at, segments[i]!);
      let st: Stats;
      try {
        st = await fsCall(`look at ${at}`, ms, signal, () => fsp.lstat(at));
      } catch (err) {
        if (!create || errnoCode(err) !== 'ENOENT') throw err;
        try {
          await fsCall(`create ${at}`, ms, signal, () => fsp.mkdir(at));
        } catch (e) {
          if (errnoCode(e) !== 'EEXIST') throw e;
        }
        st = await fsCall(`look at ${at}`, ms, signal, () => fsp.lstat(at));
      }
      const rel = segments.slice(0, i + 1).join('/');
      if (st.isSymbolicLink()) {
        throw new TransportError(
          'permission',
          `${JSON.stringify(rel)} on the share ${root} is ${LINK_WORDS}: refused (sprelay never follows links below the share root; ` +
            'ask the office to make it a real folder)',
        );
      }
      if (!st.isDirectory()) throw new TransportError('unavailable', `${at} exists but is not a directory`);
    }
    return at;
  }

  /** The folder as `folder` checks it, or null when some component is missing. */
  async function folderOrNull(segments: string[], ms: number, signal: AbortSignal): Promise<string | null> {
    try {
      return await folder(segments, ms, signal, false);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    }
  }

  async function removeQuietly(p: string, ms: number): Promise<void> {
    try {
      await fsCall(`remove ${p}`, ms, cleanupSignal, () => fsp.unlink(p));
    } catch {
      // best effort: a `.part` left behind is invisible to readers and removed by the next put
    }
  }

  async function fsyncDir(dir: string, ms: number, signal: AbortSignal): Promise<void> {
    await fsCall(`sync ${dir}`, ms, signal, () => fsyncDirNow(dir));
  }

  /**
   * A rename or unlink, retried briefly while the file is locked: on Windows an antivirus scanner or
   * a reader holds a new file for a moment (EBUSY/EPERM/EACCES). Still locked after that: 'busy'.
   */
  async function whileLocked(what: string, ms: number, signal: AbortSignal, fn: () => Promise<void>): Promise<void> {
    try {
      await retryWhileLocked(() => fsCall(what, ms, signal, fn), LOCKED_BACKOFF_MS, signal);
    } catch (err) {
      const errno = errnoCode(err);
      if (!errno || !LOCKED_ERRNOS.has(errno)) throw err;
      const attempts = LOCKED_BACKOFF_MS.length + 1;
      throw new TransportError('busy', `${what}: still locked after ${attempts} attempts (${errno})`, { cause: err });
    }
  }

  /**
   * Opens `file` for reading only if it is the regular file `seen` (its lstat) says: never through
   * a link (O_NOFOLLOW), never waiting on a pipe (O_NONBLOCK), and the handle's fstat must show a
   * regular file, the same one. Anything else: 'busy' (it changed since it was looked at; the next
   * listing says what it is now).
   */
  async function openRegular(
    file: string,
    seen: Stats,
    what: string,
    ms: number,
    signal: AbortSignal,
  ): Promise<{ handle: FileHandle; st: Stats }> {
    let handle: FileHandle;
    try {
      handle = await fsCall(what, ms, signal, () => fsp.open(file, READ_FLAGS));
    } catch (err) {
      const errno = errnoCode(err);
      // ELOOP: a link (O_NOFOLLOW); EMLINK is the BSDs' word for it
      if (errno === 'ELOOP' || errno === 'EMLINK') {
        throw new TransportError('busy', `${what}: it became ${LINK_WORDS} since it was looked at: not read`, {
          cause: err,
        });
      }
      throw err;
    }
    let st: Stats;
    try {
      st = await fsCall(what, ms, signal, () => handle.stat());
    } catch (err) {
      closeLater(handle);
      throw err;
    }
    if (!st.isFile() || !sameFile(seen, st)) {
      closeLater(handle);
      const now = st.isFile() ? 'another file' : kindOf(st);
      throw new TransportError('busy', `${what}: it is ${now} now, not the file that was looked at: not read`);
    }
    return { handle, st };
  }

  /** The bytes of an open file, each read through the gate (a read on a dead share hangs too). */
  function reader(handle: FileHandle): Readable {
    const stop = new AbortController();
    let position = 0;
    return new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        const buf = Buffer.allocUnsafe(READ_CHUNK);
        gate
          .run(() => handle.read(buf, 0, READ_CHUNK, position), stop.signal)
          .then(
            ({ bytesRead }) => {
              if (bytesRead === 0) {
                this.push(null);
                return;
              }
              position += bytesRead;
              this.push(buf.subarray(0, bytesRead));
            },
            (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
          );
      },
      destroy(err, cb) {
        stop.abort();
        closeLater(handle);
        cb(err);
      },
    });
  }

  async function readAllHashed(file: string, seen: Stats, what: string, ms: number, signal: AbortSignal) {
    const { handle } = await openRegular(file, seen, what, ms, signal);
    return sha256Of(watched(reader(handle), what, ms, signal));
  }

  /**
   * The entries of a directory as a Source lists them: regular files (a hard link is one: it is
   * the same file under another name). Anything else a package could be named (`include`) is
   * listed as refused, never to be opened or acknowledged: a link (to a file, a folder, or
   * nowhere), a pipe, a socket, a device, a folder. Other names that are not files are skipped.
   * Held to the listing caps every transport keeps (entries and name bytes).
   */
  async function listDir(dir: string, label: string, include: string[], ms: number, signal: AbortSignal) {
    const budget = new ListingBudget(`listing of ${label} on the share ${root}`);
    const names: string[] = [];
    const handle = await fsCall(`list ${dir}`, ms, signal, () => fsp.opendir(dir));
    try {
      for (;;) {
        const d = await fsCall(`list ${dir}`, ms, signal, () => handle.read());
        if (d === null) break;
        budget.take(1, Buffer.byteLength(d.name));
        names.push(d.name);
      }
    } finally {
      closeLater(handle);
    }
    const entries: RemoteEntry[] = [];
    for (const name of names) {
      if (!isVisible(name)) continue;
      const st = await lstatOrNull(path.join(dir, name), ms, signal);
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

  async function put(ep: Endpoint, segments: string[], pkg: OutgoingPackage, signal: AbortSignal): Promise<PutResult> {
    const ms = ep.timeoutMs;
    const name = plainName(pkg.name, 'package name', true);
    const what = `put ${name}`;
    const remoteRef = [...segments, name].join('/');
    let part = '';
    let renamed = false;
    try {
      if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
      const dir = await folder(segments, ms, signal, true);
      const final = path.join(dir, name);
      const existing = await lstatOrNull(final, ms, signal);
      if (existing) {
        if (!existing.isFile()) {
          throw new TransportError(
            'exists',
            `${what}: ${remoteRef} on the share is ${kindOf(existing)}, not a file: refused, nothing written`,
          );
        }
        let sha: string | null = null;
        if (existing.size === pkg.size) {
          try {
            sha = await readAllHashed(final, existing, `hash ${remoteRef}`, ms, signal);
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

      const handle = await createPart(final + PART, what, ms, signal);
      part = final + PART;
      await writePart(handle, pkg, what, ms, signal);
      // still our folder, not swapped for a link while we wrote; rename replaces a link at `final`
      // itself, never what it points to
      await folder(segments, ms, signal, false);
      await whileLocked(`${what}: rename ${name}${PART}`, ms, signal, () => fsp.rename(part, final));
      renamed = true;
      await fsyncDir(dir, ms, signal);
      return { remoteRef, alreadyPresent: false };
    } catch (err) {
      if (part && !renamed) await removeQuietly(part, ms);
      throw await classify(err, what, ms, 'unavailable');
    }
  }

  /**
   * Creates `part` exclusively (never opening what is there: a link to a station file, a pipe, a
   * hard link). What is in the way (a `.part` of an earlier attempt, or whatever the office put
   * there) loses its name (unlink removes a link, not its target) and the create is tried again.
   */
  async function createPart(part: string, what: string, ms: number, signal: AbortSignal): Promise<FileHandle> {
    const partName = path.basename(part);
    const label = `${what}: create ${partName}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fsCall(label, ms, signal, () => fsp.open(part, CREATE_FLAGS, 0o666));
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
        if (attempt === 3) {
          throw new TransportError('busy', `${label}: another ${partName} appeared each time it was removed`, {
            cause: err,
          });
        }
      }
      const st = await lstatOrNull(part, ms, signal);
      if (st?.isDirectory()) {
        throw new TransportError('exists', `${label}: ${partName} on the share is a folder: refused, nothing written`);
      }
      if (st) await whileLocked(`${what}: remove the old ${partName}`, ms, signal, () => fsp.unlink(part));
    }
  }

  /** Streams the package into the new `.part`, fsyncs it and checks that every byte arrived. */
  async function writePart(handle: FileHandle, pkg: OutgoingPackage, what: string, ms: number, signal: AbortSignal) {
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
          const { bytesWritten } = await fsCall(`${what}: write`, ms, signal, () =>
            handle.write(buf, at, buf.length - at),
          );
          at += bytesWritten;
        }
      }
      check.verify();
      await fsCall(`${what}: sync`, ms, signal, () => handle.sync());
      const st = await fsCall(`${what}: stat`, ms, signal, () => handle.stat());
      if (st.size !== pkg.size) {
        throw new TransportError('corrupt', `${what}: ${st.size} bytes on the share, ${pkg.size} written`);
      }
      open = false;
      await fsCall(`${what}: close`, ms, signal, () => handle.close());
    } finally {
      if (open) {
        try {
          await fsCall(`${what}: close`, ms, cleanupSignal, () => handle.close());
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
      await folder(segments, ep.timeoutMs, signal, true);
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
      await folder(segments, ms, signal, true);
      // a move target that leads off the share stops the route before anything is taken
      if (moveSegments) await folder(moveSegments, ms, signal, true);
    } catch (err) {
      throw await classify(err, `open ${label}`, ms, 'unavailable');
    }
    /** What was opened under each name (fstat): acknowledge removes that file or nothing. */
    const opened = new Map<string, Stats>();

    const source = {
      async list(sig: AbortSignal): Promise<RemoteEntry[]> {
        try {
          return await listDir(await folder(segments, ms, sig, true), label, ep.include, ms, sig);
        } catch (err) {
          throw await classify(err, `list ${label}`, ms, 'unavailable');
        }
      },

      async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
        const name = plainName(entry.ref, 'entry');
        const what = `read ${[...segments, name].join('/')}`;
        if (entry.refusal !== undefined) throw new TransportError('rejected', `${what}: ${entry.refusal}`);
        try {
          const file = path.join(await folder(segments, ms, sig, false), name);
          const seen = await fsCall(what, ms, sig, () => fsp.lstat(file));
          if (!seen.isFile()) {
            throw new TransportError('busy', `${what}: it is ${kindOf(seen)} now, not a file: not read`);
          }
          const { handle, st } = await openRegular(file, seen, what, ms, sig);
          if (st.size !== entry.size) {
            closeLater(handle);
            throw new TransportError(
              'busy',
              `${what}: ${st.size} bytes now, ${entry.size} when listed (still changing)`,
            );
          }
          opened.set(name, st);
          const file$ = reader(handle);
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
            file = path.join(await folder(segments, ms, s, false), name);
            const st = await lstatOrNull(file, ms, s);
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
              const target = await folder(moveSegments, ms, s, true);
              const where = moveSegments.join('/');
              const free = await freeName(
                name,
                async (candidate) => (await lstatOrNull(path.join(target, candidate), ms, s)) !== null,
                where,
              );
              await whileLocked(`${what}: move`, ms, s, () => fsp.rename(file, path.join(target, free)));
              await fsyncDir(target, ms, s);
            } else {
              await whileLocked(what, ms, s, () => fsp.unlink(file));
            }
          });
          opened.delete(name);
        } catch (err) {
          // gone already (a repeat, or someone else took it): done, as long as the share is there
          if (errnoCode(err) === 'ENOENT' && !(await rootMissing(ms))) {
            if (file === '' || !(await lstatOrNull(file, ms, sig))) {
              opened.delete(name);
              return;
            }
          }
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
        const before = await folderOrNull(segments, ms, signal);
        // an in-route never creates its remote folder: a typo there would be polled forever
        if (before === null && direction === 'in') throw missingInFolder(rel);
        dir = await folder(segments, ms, signal, true);
        const entries = await listDir(dir, rel, ep.include, ms, signal);
        const refused = entries.filter((e) => e.refusal !== undefined).length;
        return (
          `${entries.length - refused} file(s) in ${rel}` +
          (refused ? `, ${refused} refused (links or special files, never read)` : '') +
          (before === null ? ' (created: it was not there)' : '')
        );
      }))
    ) {
      return steps;
    }
    const probeFile = path.join(dir, probeName);
    const written = await step('write probe file', async () => {
      const handle = await fsCall('write probe file', ms, signal, () => fsp.open(probeFile, CREATE_FLAGS, 0o666));
      let closed = false;
      try {
        await fsCall('write probe file', ms, signal, async () => {
          await handle.writeFile('sprelay probe\n');
          await handle.sync();
        });
        closed = true;
        await fsCall('write probe file', ms, signal, () => handle.close());
      } finally {
        if (!closed) closeLater(handle);
      }
      return probeName;
    });
    if (!written) {
      await removeQuietly(probeFile, ms);
      return steps;
    }
    const removed = await step('remove probe file', async () => {
      await fsCall('remove probe file', ms, signal, () => fsp.unlink(probeFile));
      return undefined;
    });
    if (!removed) await removeQuietly(probeFile, ms);
    if (removed && direction === 'in' && ep.afterReceive.kind === 'move') {
      const to = ep.afterReceive.to;
      await step('move target reachable', async () => {
        const { moveSegments } = endpointDirs(ep);
        await folder(moveSegments ?? [], ms, signal, true);
        return to;
      });
    }
    return steps;
  }

  return { kind: 'lan', features: { move: true, bundle: false }, openSink, openSource, probe } satisfies Transport;
}

// ---- files -------------------------------------------------------------------------------------

/** What a non-regular entry is, in words for the ledger and the log. */
function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return LINK_WORDS;
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  if (st.isFile()) return 'a file';
  return 'not a regular file';
}

function refusalOf(st: Stats): string {
  return (
    `${kindOf(st)} on the share, not a regular file: refused, not read and left where it is ` +
    '(sprelay never follows links nor opens special files on a share)'
  );
}

/**
 * Whether two stats are of the same file. POSIX: device and inode. Windows: the file index, where
 * the file system gives one (not its volume number: the path and the handle calls may word it
 * differently); where it gives none (0), size and modification time stand in.
 */
function sameFile(a: Stats, b: Stats): boolean {
  if (process.platform !== 'win32') return a.dev === b.dev && a.ino === b.ino;
  if (a.ino !== 0 && b.ino !== 0) return a.ino === b.ino;
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/**
 * Whether the file read (`read`: its handle's fstat) is still what is there (`now`: lstat) and
 * unchanged. POSIX also compares size and time: a file system may give a freed inode number to the
 * next new file at once. Windows' file index carries a sequence number that a reused record changes.
 */
function unchanged(read: Stats, now: Stats): boolean {
  if (!sameFile(read, now)) return false;
  return process.platform === 'win32' || (read.size === now.size && read.mtimeMs === now.mtimeMs);
}

// ---- the gate: how many calls one share may have in flight -------------------------------------

/**
 * At most `slots` calls at once. A call keeps its slot until it settles, even when its caller gave
 * up on it (a deadline): the OS thread under it is busy that long. Waiting for a slot ends with
 * the waiter's signal.
 */
class ShareGate {
  private readonly started = new Set<{ at: number }>();
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(readonly slots: number) {}

  async run<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    await this.acquire(signal);
    const mark = { at: Date.now() };
    this.started.add(mark);
    try {
      return await fn();
    } finally {
      this.started.delete(mark);
      this.release();
    }
  }

  /** Calls in flight for longer than `ms`. */
  stuckFor(ms: number): number {
    const before = Date.now() - ms;
    let n = 0;
    for (const s of this.started) if (s.at <= before) n++;
    return n;
  }

  private busy = 0;

  private acquire(signal: AbortSignal): Promise<void> {
    if (this.busy < this.slots) {
      this.busy++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason instanceof Error ? signal.reason : new TransportError('aborted', 'aborted'));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.busy--;
  }
}

/** One gate per share root for the whole process: every route and every `check` on it shares it. */
const gates = new Map<string, ShareGate>();

function gateOf(root: string): ShareGate {
  const key = process.platform === 'win32' ? path.win32.resolve(root).toLowerCase() : path.resolve(root);
  let gate = gates.get(key);
  if (!gate) {
    gate = new ShareGate(CALLS_PER_SHARE);
    gates.set(key, gate);
  }
  return gate;
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
