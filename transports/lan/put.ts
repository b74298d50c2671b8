// Sink.put on the share: an identical file already there is `alreadyPresent` (by read-back hash),
// a different one or a non-file is `exists`; otherwise `NAME.part` is created exclusively, filled
// under the idle deadline and the route's minimum rate, synced, checked and renamed into place;
// the folder is fsynced after the rename, here or (syncDir false) by the sink's flush for a batch.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PART, plainName } from '../common/names.js';
import { localReadError, openPackage, PackageCheck, watched } from '../common/streams.js';
import type { MinRate } from '../deadline.js';
import { TransportError, errnoCode } from '../errors.js';
import type { Endpoint, OutgoingPackage, PutResult } from '../types.js';
import { CREATE_FLAGS, kindOf } from './files.js';
import { readAllHashed } from './read.js';
import type { Share } from './share.js';

export async function put(
  share: Share,
  ep: Endpoint,
  segments: string[],
  pkg: OutgoingPackage,
  signal: AbortSignal,
  /** False: the folder's fsync of the rename is left to the sink's flush (index.ts). */
  syncDir = true,
): Promise<PutResult> {
  const ms = ep.timeoutMs;
  const name = plainName(pkg.name, 'package name', true);
  const what = `put ${name}`;
  const remoteRef = [...segments, name].join('/');
  let part = '';
  let renamed = false;
  try {
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    const dir = await share.knownFolder(segments, ms, signal, true);
    const final = path.join(dir, name);
    const existing = await share.lstatOrNull(final, ms, signal);
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
          sha = await readAllHashed(share, final, existing, `hash ${remoteRef}`, ms, signal, ep.minRate);
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

    const handle = await createPart(share, final + PART, what, ms, signal);
    part = final + PART;
    await writePart(share, handle, pkg, what, ms, signal, ep.minRate);
    // still our folder, not swapped for a link while we wrote; rename replaces a link at `final`
    // itself, never what it points to
    await share.knownFolder(segments, ms, signal, false);
    await share.whileLocked(`${what}: rename ${name}${PART}`, ms, signal, () => fsp.rename(part, final));
    renamed = true;
    if (syncDir) await share.fsyncDir(dir, ms, signal);
    return { remoteRef, alreadyPresent: false };
  } catch (err) {
    if (part && !renamed) await share.removeQuietly(part, ms);
    throw await share.classify(err, what, ms, 'unavailable');
  }
}

/**
 * Creates `part` exclusively (never opening what is there: a link to a station file, a pipe, a
 * hard link). What is in the way (a `.part` of an earlier attempt, or whatever the office put
 * there) loses its name (unlink removes a link, not its target) and the create is tried again.
 */
async function createPart(
  share: Share,
  part: string,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<FileHandle> {
  const partName = path.basename(part);
  const label = `${what}: create ${partName}`;
  for (let attempt = 1; ; attempt++) {
    try {
      return await share.fsCall(label, ms, signal, () => fsp.open(part, CREATE_FLAGS, 0o666));
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      if (attempt === 3) {
        throw new TransportError('busy', `${label}: another ${partName} appeared each time it was removed`, {
          cause: err,
        });
      }
    }
    const st = await share.lstatOrNull(part, ms, signal);
    if (st?.isDirectory()) {
      throw new TransportError('exists', `${label}: ${partName} on the share is a folder: refused, nothing written`);
    }
    if (st) await share.whileLocked(`${what}: remove the old ${partName}`, ms, signal, () => fsp.unlink(part));
  }
}

/**
 * Streams the package into the new `.part`, fsyncs it and checks that every byte arrived. The
 * bytes pass under the idle deadline and `minRate` as the write loop takes them, so a share that
 * writes slowly (or a package that reads slowly) is what the rate measures.
 */
async function writePart(
  share: Share,
  handle: FileHandle,
  pkg: OutgoingPackage,
  what: string,
  ms: number,
  signal: AbortSignal,
  minRate: MinRate | undefined,
) {
  let open = true;
  try {
    const check = new PackageCheck(pkg, what);
    const source = openPackage(pkg, what);
    // Our own write loop, each write under a deadline: a write stuck on a dead share must not
    // hold the caller (a stream pipeline would wait for it to settle before reporting).
    const mapError = (err: unknown) => localReadError(err, what);
    for await (const chunk of watched(source, what, ms, signal, { mapError, minRate })) {
      const buf = chunk as Buffer;
      check.update(buf);
      let at = 0;
      while (at < buf.length) {
        const { bytesWritten } = await share.fsCall(`${what}: write`, ms, signal, () =>
          handle.write(buf, at, buf.length - at),
        );
        at += bytesWritten;
      }
    }
    check.verify();
    await share.fsCall(`${what}: sync`, ms, signal, () => handle.sync());
    const st = await share.fsCall(`${what}: stat`, ms, signal, () => handle.stat());
    if (st.size !== pkg.size) {
      throw new TransportError('corrupt', `${what}: ${st.size} bytes on the share, ${pkg.size} written`);
    }
    open = false;
    await share.fsCall(`${what}: close`, ms, signal, () => handle.close());
  } finally {
    if (open) {
      try {
        await share.fsCall(`${what}: close`, ms, share.cleanupSignal, () => handle.close());
      } catch {
        // the error that got us here is the one worth reporting
      }
    }
  }
}
