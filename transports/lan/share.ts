// One share root as the lan transport reaches it: every file-system call through the share's gate
// under a deadline, the root check, folders below the root looked at one component at a time and
// refused when one is a link, failures mapped onto TransportErrors, locked-file retries, and the
// route's `remote` / move target as path segments that can never leave the root.
import { promises as fsp, type Dir, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir as fsyncDirNow, LOCKED_ERRNOS, retryWhileLocked } from '../../store/durable.js';
import { plainName, refuseMoveIntoSelf } from '../common/names.js';
import { answerWithin, formatMs } from '../deadline.js';
import { TransportError, errnoCode, fromSystemError, type TransportErrorCode } from '../errors.js';
import type { Endpoint } from '../types.js';
import { LINK_WORDS } from './files.js';
import { gateOf, type ShareGate } from './gate.js';

/** Waits between attempts on a locked file: 5 tries over about 2 s. */
const LOCKED_BACKOFF_MS = [100, 250, 500, 1000];

export class Share {
  readonly gate: ShareGate;

  /** A signal nobody aborts: cleanup after an abort must still run, under its own deadline. */
  readonly cleanupSignal = new AbortController().signal;

  constructor(readonly root: string) {
    this.gate = gateOf(root);
  }

  /**
   * One file-system call on this share: through the share's gate, under a deadline. When the
   * deadline passes while earlier calls still hold every slot, the message says the share hangs.
   */
  async fsCall<T>(what: string, ms: number, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    try {
      // answerWithin, not withDeadline: a package takes about ten of these, and the calls take no
      // signal (an fs call cannot be taken back), so no AbortController and race per call (issue
      // 11). The deadline runs from the call's start, a wait for a slot included; a call that has
      // not got its slot when the deadline passes or `signal` fires leaves the queue, unstarted.
      return await answerWithin<T>(what, ms, signal, (settle) =>
        this.gate.enter(() => {
          let call: Promise<T>;
          try {
            call = fn();
          } catch (err) {
            call = Promise.reject(err instanceof Error ? err : new Error(String(err)));
          }
          call.then(
            (value) => settle(null, value),
            (err: unknown) => settle(err ?? new Error(`${what}: failed`)),
          );
          return call;
        }),
      );
    } catch (err) {
      const stuck = this.gate.stuckFor(ms);
      if (err instanceof TransportError && err.code === 'timeout' && stuck >= this.gate.slots) {
        throw new TransportError(
          'timeout',
          `${err.message}: ${stuck} call(s) on the share ${this.root} have had no answer for more than ` +
            `${formatMs(ms)} (the share hangs; the other routes go on)`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Closes a handle in the background (through the gate: a close on a dead share may hang too). */
  closeLater(handle: FileHandle | Dir): void {
    void this.gate.run(() => handle.close(), this.cleanupSignal).catch(() => undefined);
  }

  /** Throws 'unavailable' unless the share root is there and is a directory. */
  async checkRoot(ms: number, signal: AbortSignal): Promise<void> {
    const root = this.root;
    let st: Stats;
    try {
      // stat, not lstat: the root is the station's own setting and may be a link or a junction
      st = await this.fsCall(`reach ${root}`, ms, signal, () => fsp.stat(root));
    } catch (err) {
      const errno = errnoCode(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') {
        throw new TransportError('unavailable', `share root ${root} is not reachable (${errno})`, { cause: err });
      }
      throw fromSystemError(err, `reach ${root}`);
    }
    if (!st.isDirectory()) throw new TransportError('unavailable', `share root ${root} is not a directory`);
  }

  async rootMissing(ms: number): Promise<boolean> {
    try {
      await this.checkRoot(ms, this.cleanupSignal);
      return false;
    } catch {
      return true;
    }
  }

  /**
   * Maps a failure onto a TransportError. A missing path is the share going away when the root is
   * gone too; otherwise it is `onMissing` (a missing entry, or a directory removed under us).
   */
  async classify(err: unknown, what: string, ms: number, onMissing: TransportErrorCode) {
    if (err instanceof TransportError) return err;
    const errno = errnoCode(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') {
      const detail = err instanceof Error ? err.message : String(err);
      if (await this.rootMissing(ms)) {
        return new TransportError('unavailable', `${what}: share root ${this.root} is not reachable`, { cause: err });
      }
      return new TransportError(onMissing, `${what}: ${detail}`, { cause: err });
    }
    return fromSystemError(err, what);
  }

  async lstatOrNull(p: string, ms: number, signal: AbortSignal): Promise<Stats | null> {
    try {
      return await this.fsCall(`look at ${p}`, ms, signal, () => fsp.lstat(p));
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
  async folder(segments: string[], ms: number, signal: AbortSignal, create: boolean): Promise<string> {
    await this.checkRoot(ms, signal);
    let at = this.root;
    for (let i = 0; i < segments.length; i++) {
      at = path.join(at, segments[i]!);
      let st: Stats;
      try {
        st = await this.fsCall(`look at ${at}`, ms, signal, () => fsp.lstat(at));
      } catch (err) {
        if (!create || errnoCode(err) !== 'ENOENT') throw err;
        try {
          await this.fsCall(`create ${at}`, ms, signal, () => fsp.mkdir(at));
        } catch (e) {
          if (errnoCode(e) !== 'EEXIST') throw e;
        }
        st = await this.fsCall(`look at ${at}`, ms, signal, () => fsp.lstat(at));
      }
      const rel = segments.slice(0, i + 1).join('/');
      if (st.isSymbolicLink()) {
        throw new TransportError(
          'permission',
          `${JSON.stringify(rel)} on the share ${this.root} is ${LINK_WORDS}: refused (sprelay never follows links below the share root; ` +
            'ask the office to make it a real folder)',
        );
      }
      if (!st.isDirectory()) throw new TransportError('unavailable', `${at} exists but is not a directory`);
    }
    return at;
  }

  /**
   * `folder`, one call fewer in the common case (issue 11: the read, the acknowledgement and the
   * put of each package): when every component below the root is already a real folder (lstat),
   * that is the answer and the root is not stat'ed again. Anything else (missing, a link, a file,
   * the root gone) goes to `folder` itself, which checks the root, makes what is missing
   * (`create`) and says what is wrong.
   */
  async knownFolder(segments: string[], ms: number, signal: AbortSignal, create: boolean): Promise<string> {
    if (segments.length === 0) return this.folder(segments, ms, signal, create);
    let at = this.root;
    for (const segment of segments) {
      at = path.join(at, segment);
      const st = await this.lstatOrNull(at, ms, signal);
      if (!st?.isDirectory()) return this.folder(segments, ms, signal, create);
    }
    return at;
  }

  /** The folder as `folder` checks it, or null when some component is missing. */
  async folderOrNull(segments: string[], ms: number, signal: AbortSignal): Promise<string | null> {
    try {
      return await this.folder(segments, ms, signal, false);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    }
  }

  async removeQuietly(p: string, ms: number): Promise<void> {
    try {
      await this.fsCall(`remove ${p}`, ms, this.cleanupSignal, () => fsp.unlink(p));
    } catch {
      // best effort: a `.part` left behind is invisible to readers and removed by the next put
    }
  }

  async fsyncDir(dir: string, ms: number, signal: AbortSignal): Promise<void> {
    await this.fsCall(`sync ${dir}`, ms, signal, () => fsyncDirNow(dir));
  }

  /**
   * A rename or unlink, retried briefly while the file is locked: on Windows an antivirus scanner or
   * a reader holds a new file for a moment (EBUSY/EPERM/EACCES). Still locked after that: 'busy'.
   */
  async whileLocked(what: string, ms: number, signal: AbortSignal, fn: () => Promise<void>): Promise<void> {
    try {
      await retryWhileLocked(() => this.fsCall(what, ms, signal, fn), LOCKED_BACKOFF_MS, signal);
    } catch (err) {
      const errno = errnoCode(err);
      if (!errno || !LOCKED_ERRNOS.has(errno)) throw err;
      const attempts = LOCKED_BACKOFF_MS.length + 1;
      throw new TransportError('busy', `${what}: still locked after ${attempts} attempts (${errno})`, { cause: err });
    }
  }
}

// ---- names -------------------------------------------------------------------------------------

/** `remote` / `move:` directory relative to the profile root, as path segments ('' and '.' = root). */
export function relativeSegments(rel: string, what: string): string[] {
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

/** The route's folder and its afterReceive move target (null: delete), as segments under the root. */
export function endpointDirs(ep: Endpoint) {
  const segments = relativeSegments(ep.remote, 'remote');
  const to = ep.afterReceive.kind === 'move' ? ep.afterReceive.to : null;
  const moveSegments = to === null ? null : relativeSegments(to, 'move target');
  refuseMoveIntoSelf(segments.join('/'), moveSegments && moveSegments.join('/'), to ?? '');
  return { segments, moveSegments };
}
