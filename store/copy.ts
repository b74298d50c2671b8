// One pass over a file's bytes: copied into a new file, hashed (SHA-256) and judged by a content
// check from the same read (issue 11: the outbound XML check, hash and spool copy read the outbox
// file once, not twice). The copy is fsynced before this returns; a refused or failed copy is
// removed. The caller renames a kept copy into place.
//
// Read with the file handle, no stream (issue 11: a stream costs a read past the end and its own
// machinery per file): a file the caller knows to be small (`maxBytes`, the listed size) in ONE
// read into a buffer of its size, checked and hashed from it and written with one write, the copy
// created only once the check has passed; a larger one in chunks of CHUNK_BYTES, so the memory
// held is one chunk whatever the file's size.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { WrittenFile } from './files.js';

/** Fed the bytes in order as they are copied (agent/check's ContentCheck, structurally). */
export interface CopyCheck {
  /** Null while nothing is wrong, else the reason. The chunk is not kept after the call. */
  write(chunk: Uint8Array): string | null;
  /** No more bytes: the verdict. */
  end(): string | null;
}

export interface CheckedCopy extends WrittenFile {
  /** The check's reason when it refused the bytes (the copy is removed then), else null. */
  refused: string | null;
  /** True when the source had more than `maxBytes` (the copy stopped there and is removed). */
  tooLong: boolean;
}

/** The largest read (and the buffer held for it): a file up to this size is read at once. */
export const CHUNK_BYTES = 1024 * 1024;

/**
 * Copies `src` to `dest` (created or truncated) in one read. Stops at the first refusal of
 * `check`, or past `maxBytes` (a file still growing): the copy is removed and the result says
 * why. Otherwise the copy is fsynced and kept. Rejects on I/O errors (the copy removed).
 *
 * A read that ends short exactly at `maxBytes` is taken as the end of the file (a regular file
 * reads short only at its end): no read past it. A file that grows after that read is what the
 * caller's look at its size and mtime after the copy catches, as for one that grows after an
 * empty read.
 */
export async function copyChecked(
  src: string,
  dest: string,
  opts: { mode?: number; signal?: AbortSignal; check?: CopyCheck | null; maxBytes?: number } = {},
): Promise<CheckedCopy> {
  const { signal, check } = opts;
  signal?.throwIfAborted();
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  // one byte more than the file may have: a read that fills it says the file is longer
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1));
  let input: FileHandle | undefined = await fsp.open(src, 'r');
  let out: FileHandle | undefined;
  let created = false;
  let keep = false;
  try {
    const hash = createHash('sha256');
    let size = 0;
    let refused: string | null = null;
    let tooLong = false;
    // the chunk read last, not written yet: a small file is written once, after the check passed
    let pending: Buffer | null = null;
    const flush = async () => {
      if (!pending) return;
      const chunk = pending;
      pending = null;
      if (!out) {
        created = true;
        out = await fsp.open(dest, 'w', opts.mode ?? 0o666);
      }
      for (let at = 0; at < chunk.length;) at += (await out.write(chunk, at, chunk.length - at)).bytesWritten;
    };
    for (;;) {
      signal?.throwIfAborted();
      await flush(); // the buffer is read into again
      let got = 0;
      // fill the buffer, or stop at the end (a read of 0) or short at exactly maxBytes
      for (;;) {
        const { bytesRead } = await input.read(buffer, got, buffer.length - got, null);
        got += bytesRead;
        if (bytesRead === 0 || got === buffer.length || size + got === maxBytes) break;
      }
      if (got === 0) break;
      const chunk = buffer.subarray(0, got);
      size += got;
      if (size > maxBytes) {
        tooLong = true;
        break;
      }
      if (check) {
        refused = check.write(chunk);
        if (refused !== null) break;
      }
      hash.update(chunk);
      pending = chunk;
      if (got < buffer.length) break; // short: the end (at maxBytes, or a read of 0 came back)
    }
    const closing = input;
    input = undefined;
    await closing.close();
    if (!tooLong && refused === null && check) refused = check.end();
    if (tooLong || refused !== null) return { size, sha256: '', refused, tooLong };
    await flush();
    if (!out) {
      created = true;
      out = await fsp.open(dest, 'w', opts.mode ?? 0o666); // an empty file
    }
    await out.sync();
    keep = true;
    return { size, sha256: hash.digest('hex'), refused: null, tooLong: false };
  } finally {
    // closed before we return: on Windows an open handle would refuse the outbox file's removal
    await input?.close().catch(() => undefined);
    await out?.close().catch(() => undefined);
    if (created && !keep) await fsp.rm(dest, { force: true }).catch(() => undefined);
  }
}
