// Out over SFTP: `NAME.part` written with sequential WRITEs (never fastPut's parallel ones),
// fsync@openssh.com where offered, then renamed into place; a same-size file already there is
// read back and compared, so a resend after a crash writes nothing.
import path from 'node:path';
import type { Stats as SftpStats } from 'ssh2';
import { PART, plainName } from '../common/names.js';
import { localReadError, openPackage, PackageCheck, watched } from '../common/streams.js';
import type { MinRate } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { Endpoint, OutgoingPackage, PutResult } from '../types.js';
import type { Connection } from './connection.js';
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
  let wrotePart = false;
  try {
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    await ensureDir(conn, dir, ms, signal);
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
        if (sha === pkg.sha256.toLowerCase()) return { remoteRef: final, alreadyPresent: true };
      }
      if (!gone && !ep.overwrite) {
        const why = unreadable ? 'is already there and cannot be read back to compare' : 'is already there';
        throw new TransportError('exists', `${what}: a different ${final} ${why}`);
      }
    }
    wrotePart = true;
    await writePart(conn, part, pkg, what, ms, signal, ep.minRate);
    await moveIntoPlace(conn, part, final, ep.overwrite, what, ms, signal);
    wrotePart = false;
    return { remoteRef: final, alreadyPresent: false };
  } catch (err) {
    const e = scrub(err, what);
    if (e.code === 'aborted') conn.kill(e);
    if (wrotePart) await conn.removeQuietly(part); // best effort: a `.part` is invisible and overwritten next time
    throw e;
  }
}

/** Streams the package into `part` with sequential WRITEs, fsyncs it where offered, checks the size. */
async function writePart(
  conn: Connection,
  part: string,
  pkg: OutgoingPackage,
  what: string,
  ms: number,
  signal: AbortSignal,
  minRate: MinRate | undefined,
): Promise<void> {
  const handle = await conn.call<Buffer>(`${what}: create ${part}`, ms, signal, 'write', (s, cb) =>
    s.open(part, 'w', { mode: FILE_MODE }, cb),
  );
  let open = true;
  try {
    const source = openPackage(pkg, what);
    const check = new PackageCheck(pkg, what);
    let written = 0;
    // One WRITE at a time, each under its own deadline: a server that stops acknowledging costs
    // one timeout, and the offsets are always in order (what fastPut does not promise).
    const mapError = (err: unknown) => localReadError(err, what);
    // the package's bytes pass as fast as the server acknowledges WRITEs: the watch's minimum rate
    // is the upload's
    for await (const chunk of watched(source, what, ms, signal, { mapError, minRate })) {
      const buf = chunk as Buffer;
      check.update(buf);
      const at = written;
      await conn.call<void>(`${what}: write`, ms, signal, 'write', (s, cb) =>
        s.write(handle, buf, 0, buf.length, at, (err) => cb(err)),
      );
      written += buf.length;
    }
    check.verify();
    if (conn.canFsync) {
      await conn.call<void>(`${what}: fsync`, ms, signal, 'write', (s, cb) =>
        s.ext_openssh_fsync(handle, (err) => cb(err)),
      );
    }
    const st = await conn.call<SftpStats>(`${what}: stat ${part}`, ms, signal, 'meta', (s, cb) => s.fstat(handle, cb));
    if (st.size !== pkg.size) {
      throw new TransportError('corrupt', `${what}: ${st.size} bytes on the server, ${pkg.size} written`);
    }
    open = false;
    // some servers report a failed write only at CLOSE: it counts
    await conn.call<void>(`${what}: close ${part}`, ms, signal, 'write', (s, cb) => s.close(handle, cb));
  } catch (err) {
    // shutting down: no cleanup round trips, the connection goes (a `.part` may stay behind)
    if (signal.aborted || (err instanceof TransportError && err.code === 'aborted')) {
      conn.kill(err instanceof TransportError ? err : new TransportError('aborted', `${what}: aborted`));
    }
    throw err;
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
