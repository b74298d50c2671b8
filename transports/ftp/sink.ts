// The FTP sink: `.part`, SIZE, rename for every package, on as many lanes (control connections) as
// the pipeline puts packages at once, with one listing of the folder instead of a SIZE per package.
import { plainName, PART } from '../common/names.js';
import { TransportError } from '../errors.js';
import type { Endpoint, OutgoingPackage, PutResult, Sink } from '../types.js';
import { KeyedQueue, type Lanes } from './lane.js';
import { inDir, type FtpSession } from './session.js';
import { hashOf, upload } from './transfer.js';
import type { Wire } from './wire.js';

/**
 * A sink over `lanes`, whose sessions are all in `dir`. What is in `dir` comes from one listing,
 * taken once the second package is put (the first asks SIZE: a single package costs no listing)
 * and kept up to date with what this sink writes; a name the listing shows in another case, or
 * not as a plain file, is asked with SIZE (the server's rules decide, not ours). Packages of the
 * same name go one after the other; others at once, one per lane.
 */
export function ftpSink(lanes: Lanes, ep: Endpoint, dir: string, wire: Wire): Sink {
  const known = new Known();
  const sameName = new KeyedQueue();
  let puts = 0;

  async function put(pkg: OutgoingPackage, signal: AbortSignal): Promise<PutResult> {
    const name = plainName(pkg.name, 'package name', true);
    const what = `put ${name}`;
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    // a name the server's charset cannot write is refused before anything is sent
    wire.out(name, what);
    const first = puts++ === 0;
    return sameName.run(name.toLowerCase(), async () => {
      const held = await lanes.acquire(signal, what);
      try {
        return await putOn(held.session, name, pkg, first, signal);
      } finally {
        held.release();
      }
    });
  }

  async function putOn(
    session: FtpSession,
    name: string,
    pkg: OutgoingPackage,
    first: boolean,
    signal: AbortSignal,
  ): Promise<PutResult> {
    const what = `put ${name}`;
    const final = inDir(dir, name);
    const part = final + PART;
    const remoteRef = final;
    let partStarted = false;
    let renamed = false;
    try {
      await session.ready(signal);
      // nothing is sent on a connection that is there already; a new one (a reconnect) makes
      // sure the folder is still there
      await session.enterDir(dir, true, signal);
      if (!first) await known.load(session, dir, signal);
      const listed = known.size(name);
      const look = () => session.sizeOf(final, `${what}: look for ${final}`, signal);
      let existing = listed === undefined ? await look() : listed;
      // the listing may be older than the office's import of that file: before a refusal, the
      // server has the last word
      if (listed !== undefined && existing !== null && existing !== pkg.size && !ep.overwrite) existing = await look();
      if (existing !== null) {
        // FTP has no portable remote hash (HASH / XSHA256 are rare extensions), and size alone
        // would take a different file of the same size for ours: a same-size file is read back
        // and hashed. That costs a download only when a package is sent again (after a crash).
        if (existing === pkg.size) {
          const sha = await hashOf(session, final, existing, `${what}: compare with ${final}`, signal).catch(
            (err: unknown) => {
              // taken away by its reader while we looked (the office imported it): write ours
              if (err instanceof TransportError && err.code === 'not-found') return null;
              throw err;
            },
          );
          if (sha === pkg.sha256.toLowerCase()) {
            known.wrote(name, pkg.size);
            return { remoteRef, alreadyPresent: true };
          }
          if (sha === null) existing = null;
        }
      }
      if (existing !== null && !ep.overwrite) {
        throw new TransportError('exists', `${what}: a different ${final} (${existing} bytes) is already there`);
      }

      partStarted = true;
      await upload(session, pkg, part, what, signal);
      // kept: the server's own count of what it stored, so that a resend after a crash finds
      // either nothing, a `.part`, or the whole file under its name
      const stored = await session.sizeOf(part, `${what}: size of ${name}${PART}`, signal);
      if (stored !== pkg.size) {
        throw new TransportError(
          'corrupt',
          `${what}: the server holds ${stored ?? 'no'} bytes of ${name}${PART}, ${pkg.size} were sent`,
        );
      }
      await session.renameOnto(part, final, existing !== null, `${what}: rename ${name}${PART}`, signal);
      renamed = true;
      known.wrote(name, pkg.size);
      return { remoteRef, alreadyPresent: false };
    } catch (err) {
      // Best effort, and only while the connection is still good: after a timeout or an abort
      // the `.part` stays; readers skip it and the next put of this name overwrites it.
      if (partStarted && !renamed) await session.removeQuietly(part);
      throw session.classify(err, what, { missing: 'unavailable' });
    }
  }

  return {
    put,
    close: () => {
      lanes.close();
      return Promise.resolve();
    },
  } satisfies Sink;
}

/**
 * The folder as one listing saw it, plus what this sink wrote since. `size` is a number for a
 * plain file of exactly that name, null for none, undefined for "ask the server" (no listing, a
 * name that is there in another case or not as a plain file).
 */
class Known {
  private loading: Promise<void> | undefined;
  private files: Map<string, number> | null = null;
  /** Every listed name (any kind) in lower case, with how many entries have it. */
  private folded = new Map<string, number>();
  private readonly written = new Map<string, number>();
  /** Names written, by their lower case. */
  private readonly writtenFolded = new Map<string, string>();

  /** Lists the folder once (a failed listing leaves every name to SIZE). */
  load(session: FtpSession, dir: string, signal: AbortSignal): Promise<void> {
    this.loading ??= session.listNames(dir, `list ${dir}`, signal).then(
      (entries) => {
        if (!entries) return;
        this.files = new Map();
        for (const e of entries) {
          if (e.size !== null) this.files.set(e.name, e.size);
          const key = e.name.toLowerCase();
          this.folded.set(key, (this.folded.get(key) ?? 0) + 1);
        }
      },
      () => {
        this.files = null;
      },
    );
    return this.loading;
  }

  size(name: string): number | null | undefined {
    const mine = this.written.get(name);
    if (mine !== undefined) return mine;
    const key = name.toLowerCase();
    if (!this.files || this.writtenFolded.has(key)) return undefined;
    const listed = this.folded.get(key) ?? 0;
    if (listed === 0) return null;
    const size = this.files.get(name);
    return listed === 1 && size !== undefined ? size : undefined;
  }

  wrote(name: string, size: number): void {
    this.written.set(name, size);
    this.writtenFolded.set(name.toLowerCase(), name);
  }
}
