// One pass over a file's bytes: copied into a new file, hashed (SHA-256) and judged by a content
// check from the same read (issue 11: the outbound XML check, hash and spool copy read the outbox
// file once, not twice). The copy is fsynced before this returns; a refused or failed copy is
// removed. The caller renames a kept copy into place.
//
// Read with the file handle, no stream (issue 11: a stream costs a read past the end and its own
// machinery per file): a file the caller knows to be small (`maxBytes`, the listed size) in ONE
// read into a buffer of its size, checked and hashed from it and written with one write, the copy
// created only once the check has passed; a larger one in chunks of CHUNK_BYTES, so the memory
// held is three chunks whatever the file's size (one read, one checked, one written at once).
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
  const length = Math.min(CHUNK_BYTES, maxBytes + 1);
  // A file read in one go needs one buffer. A larger one goes through three in turn, so that the
  // disk works while the check and the hash run (issue 11: they had waited for each other, and for
  // a 200 MB package that was the read and write time added to the check's): chunk k is checked
  // and hashed while chunk k+1 is being read and chunk k-1 written.
  const buffers = [Buffer.allocUnsafe(length)];
  let input: FileHandle | undefined = await fsp.open(src, 'r');
  let out: FileHandle | undefined;
  let created = false;
  let keep = false;
  // the read and the write in flight, awaited before the handles are closed
  let reading: Promise<number> | null = null;
  let writing: Promise<void> | null = null;
  try {
    const hash = createHash('sha256');
    let size = 0;
    let refused: string | null = null;
    let tooLong = false;
    const from = input;
    // fills `buffer`, or stops at the end (a read of 0) or short at exactly maxBytes
    const fill = async (buffer: Buffer, before: number): Promise<number> => {
      let got = 0;
      for (;;) {
        const { bytesRead } = await from.read(buffer, got, buffer.length - got, null);
        got += bytesRead;
        if (bytesRead === 0 || got === buffer.length || before + got === maxBytes) return got;
      }
    };
    const write = async (chunk: Buffer): Promise<void> => {
      if (!out) {
        created = true;
        out = await fsp.open(dest, 'w', opts.mode ?? 0o666);
      }
      for (let at = 0; at < chunk.length;) at += (await out.write(chunk, at, chunk.length - at)).bytesWritten;
    };
    // a failure is met where the promise is awaited, never as an unhandled rejection meanwhile
    const quiet = <T>(p: Promise<T>): Promise<T> => {
      p.catch(() => undefined);
      return p;
    };
    // the chunk read last, not written yet: a small file is written once, after the check passed
    let last: Buffer | null = null;
    reading = quiet(fill(buffers[0]!, 0));
    for (let k = 0; ; k++) {
      signal?.throwIfAborted();
      const got = await reading!; // set before the loop and whenever it goes on
      reading = null;
      if (got === 0) break;
      const buffer = buffers[k % buffers.length]!;
      const chunk = buffer.subarray(0, got);
      size += got;
      if (size > maxBytes) {
        tooLong = true;
        break;
      }
      // short: the end (at maxBytes, or a read of 0 came back)
      const more = got === buffer.length;
      if (more) {
        if (buffers.length < 3) buffers.push(Buffer.allocUnsafe(length), Buffer.allocUnsafe(length));
        // the next buffer's earlier chunk (k-2) was written: `writing` is chunk k-1's
        reading = quiet(fill(buffers[(k + 1) % buffers.length]!, size));
      }
      if (check) {
        refused = check.write(chunk);
        if (refused !== null) break;
      }
      hash.update(chunk);
      if (!more) {
        last = chunk;
        break;
      }
      if (writing) await writing;
      writing = quiet(write(chunk));
    }
    if (reading) await reading.catch(() => 0); // a refusal or tooLong left one in flight
    reading = null;
    if (writing) await writing;
    writing = null;
    const closing = input;
    input = undefined;
    await closing.close();
    if (!tooLong && refused === null && check) refused = check.end();
    if (tooLong || refused !== null) return { size, sha256: '', refused, tooLong };
    if (last) await write(last);
    if (!out) {
      created = true;
      out = await fsp.open(dest, 'w', opts.mode ?? 0o666); // an empty file
    }
    await out.sync();
    keep = true;
    return { size, sha256: hash.digest('hex'), refused: null, tooLong: false };
  } finally {
    // nothing in flight on a handle we close
    await reading?.catch(() => undefined);
    await writing?.catch(() => undefined);
    // closed before we return: on Windows an open handle would refuse the outbox file's removal
    await input?.close().catch(() => undefined);
    await out?.close().catch(() => undefined);
    if (created && !keep) await fsp.rm(dest, { force: true }).catch(() => undefined);
  }
}
