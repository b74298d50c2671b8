// Out over SFTP: `NAME.part` written with a window of WRITEs in flight at ordered offsets (as
// OpenSSH's sftp writes; never fastPut, which promises no order and no fsync), fsync@openssh.com
// where offered, then renamed into place; a same-size file already there is read back and
// compared, so a resend after a crash writes nothing. About four round trips for a small package:
// STAT+OPEN, the WRITEs, fsync+FSTAT+CLOSE, RENAME.
import path from 'node:path';
import type { Stats as SftpStats } from 'ssh2';
import { PART, plainName } from '../common/names.js';
import { localReadError, openPackage, PackageCheck, watched } from '../common/streams.js';
import type { MinRate } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { Endpoint, OutgoingPackage, PutResult } from '../types.js';
import type { Connection } from './connection.js';
import { writePipelined } from './pipeline.js';
import { SSH_FX, sftpStatus } from './errors.js';
import { ensureDir, FILE_MODE, hashRemote, notAFile, statOrNull } from './files.js';

/** A failure as the TransportError the caller sees, with no secret in it. */
export type Scrub = (err: unknown, what: string) => TransportError;

export async function put(
  conn: Connection,
  scrub: Scrub,
  ep: Endpoint,
  dir: string,
  pkg: OutgoingPackage,
  signal: AbortSignal,
): Promise<PutResult> {
  const ms = ep.timeoutMs;
  const name = plainName(pkg.name, 'package name', true);
  const what = `put ${name}`;
  const final = path.posix.join(dir, name);
  const part = final + PART;
  // The STAT of `final` and the OPEN of `part` go out together (one round trip for both); the
  // answer to the STAT decides before a byte is written. A `.part` opened for nothing (an
  // identical file is there, or a different one and no overwrite) is closed and removed.
  let handle: Buffer | undefined; // `part`, open
  let created = false; // a `.part` of ours may be on the server
  const opening = createPart(conn, dir, part, what, ms, signal).then((h) => {
    handle = h;
    created = true;
    return h;
  });
  opening.catch(() => undefined); // awaited below, or dropped when the STAT already failed
  try {
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    const existing = await statOrNull(conn, final, `${what}: stat ${final}`, ms, signal);
    let gone = false;
    if (existing) {
      if (notAFile(existing)) throw new TransportError('exists', `${what}: ${final} exists and is not a file`);
      let unreadable = false;
      if (existing.size === pkg.size) {
        // drop boxes often let us write but not read: then identity cannot be shown
        const readBack = `${what}: read back ${final}`;
        const sha = await hashRemote(conn, final, readBack, ms, signal, ep.minRate).catch((err: unknown) => {
          // taken away by its reader while we looked (the office imported it): write ours
          if (sftpStatus(err) === SSH_FX.NO_SUCH_FILE) gone = true;
          else if (sftpStatus(err) === SSH_FX.PERMISSION_DENIED) unreadable = true;
          else throw err;
        });
        if (sha === pkg.sha256.toLowerCase()) {
          await dropPart(conn, opening, part);
          return { remoteRef: final, alreadyPresent: true };
        }
      }
      if (!gone && !ep.overwrite) {
        const why = unreadable ? 'is already there and cannot be read back to compare' : 'is already there';
        throw new TransportError('exists', `${what}: a different ${final} ${why}`);
      }
    }
    const open = await opening;
    handle = undefined; // writePart closes it whichever way it ends
    await writePart(conn, open, part, pkg, what, ms, signal, ep.minRate);
    await moveIntoPlace(conn, part, final, ep.overwrite, what, ms, signal);
    created = false;
    return { remoteRef: final, alreadyPresent: false };
  } catch (err) {
    const e = scrub(err, what);
    // shutting down: no cleanup round trips, the connection goes (a `.part` may stay behind)
    if (e.code === 'aborted' || signal.aborted) conn.kill(e);
    await opening.catch(() => undefined); // a lost connection fails it at once
    if (handle) await conn.closeHandleQuietly(handle);
    if (created) await conn.removeQuietly(part); // best effort: a `.part` is invisible and overwritten next time
    throw e;
  }
}

/**
 * OPEN `part` for writing (created or truncated). The sink made the folder when it opened; one
 * that is gone since (someone tidied up) is made again here, not looked for before every package.
 */
async function createPart(
  conn: Connection,
  dir: string,
  part: string,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<Buffer> {
  const open = () =>
    conn.call<Buffer>(`${what}: create ${part}`, ms, signal, 'write', (s, cb) =>
      s.open(part, 'w', { mode: FILE_MODE }, cb),
    );
  try {
    return await open();
  } catch (err) {
    if (sftpStatus(err) !== SSH_FX.NO_SUCH_FILE) throw err;
    await ensureDir(conn, dir, ms, signal);
    return open();
  }
}

/** A `.part` opened for nothing: closed, then removed (in that order: Windows keeps an open file). */
async function dropPart(conn: Connection, opening: Promise<Buffer>, part: string): Promise<void> {
  const handle = await opening.catch(() => undefined);
  if (!handle) return;
  await conn.closeHandleQuietly(handle);
  await conn.removeQuietly(part);
}

/**
 * Streams the package into the open `part` with up to WINDOW WRITEs in flight at ordered offsets
 * (pipeline.ts), checks that the bytes were the package's, then sends fsync@openssh.com (where
 * offered), FSTAT and CLOSE together: a server handles one handle's requests in the order sent,
 * and each answer still counts (the size on the server must be the package's; some servers report
 * a failed write only at CLOSE). The handle is closed when this returns or throws, unless the
 * connection is gone.
 */
async function writePart(
  conn: Connection,
  handle: Buffer,
  part: string,
  pkg: OutgoingPackage,
  what: string,
  ms: number,
  signal: AbortSignal,
  minRate: MinRate | undefined,
): Promise<void> {
  let open = true;
  try {
    const source = openPackage(pkg, what);
    const check = new PackageCheck(pkg, what);
    const mapError = (err: unknown) => localReadError(err, what);
    // the package's bytes pass as fast as the server acknowledges WRITEs (a window of them ahead):
    // the watch's minimum rate is the upload's
    const watch = watched(source, what, ms, signal, { mapError, minRate });
    const chunks = (async function* () {
      for await (const chunk of watch) {
        check.update(chunk as Buffer);
        yield chunk as Buffer;
      }
    })();
    await writePipelined(conn, handle, chunks, what, ms, signal);
    check.verify();
    const fsync = conn.canFsync
      ? conn.call<void>(`${what}: fsync`, ms, signal, 'write', (s, cb) => s.ext_openssh_fsync(handle, (err) => cb(err)))
      : Promise.resolve();
    const fstat = conn.call<SftpStats>(`${what}: stat ${part}`, ms, signal, 'meta', (s, cb) => s.fstat(handle, cb));
    open = false;
    const close = conn.call<void>(`${what}: close ${part}`, ms, signal, 'write', (s, cb) => s.close(handle, cb));
    const [synced, stat, closed] = await Promise.allSettled([fsync, fstat, close]);
    for (const r of [synced, stat, closed]) if (r.status === 'rejected') throw r.reason;
    const size = (stat as PromiseFulfilledResult<SftpStats>).value.size;
    if (size !== pkg.size) {
      throw new TransportError('corrupt', `${what}: ${size} bytes on the server, ${pkg.size} written`);
    }
  } finally {
    if (open) await conn.closeHandleQuietly(handle);
  }
}

/**
 * `part` -> `final`. posix-rename@openssh.com replaces atomically. Without it (SFTP v3 RENAME
 * refuses an existing target on most servers) an overwrite is delete-then-rename, which costs a
 * moment in which `final` does not exist at all (a reader polling then sees it vanish and come
 * back), and a crash in that moment leaves only `NAME.part`: the old bytes are gone (overwrite
 * asked for that) and the package is still in our spool, so the retry puts it again.
 */
async function moveIntoPlace(
  conn: Connection,
  part: string,
  final: string,
  overwrite: boolean,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<void> {
  const rename = () =>
    conn.call<void>(`${what}: rename to ${final}`, ms, signal, 'meta', (s, cb) => s.rename(part, final, cb));
  if (conn.canPosixRename) {
    await conn.call<void>(`${what}: rename to ${final}`, ms, signal, 'meta', (s, cb) =>
      s.ext_openssh_rename(part, final, cb),
    );
    return;
  }
  try {
    await rename();
  } catch (err) {
    if (sftpStatus(err) !== SSH_FX.FAILURE) throw err;
    const there = await statOrNull(conn, final, `${what}: stat ${final}`, ms, signal);
    if (!there) throw err;
    if (!overwrite) throw new TransportError('exists', `${what}: ${final} appeared while uploading`);
    await conn.call<void>(`${what}: remove old ${final}`, ms, signal, 'meta', (s, cb) => s.unlink(final, cb));
    await rename();
  }
}
