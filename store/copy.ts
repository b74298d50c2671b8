// One pass over a file's bytes: copied into a new file, hashed (SHA-256) and judged by a content
// check from the same read (issue 11: the outbound XML check, hash and spool copy read the outbox
// file once, not twice). The copy is fsynced before this returns; a refused or failed copy is
// removed. The caller renames a kept copy into place.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, promises as fsp } from 'node:fs';
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

/**
 * Copies `src` to `dest` (created or truncated) in one read. Stops at the first refusal of
 * `check`, or past `maxBytes` (a file still growing): the copy is removed and the result says
 * why. Otherwise the copy is fsynced and kept. Rejects on I/O errors (the copy removed).
 */
export async function copyChecked(
  src: string,
  dest: string,
  opts: { mode?: number; signal?: AbortSignal; check?: CopyCheck | null; maxBytes?: number } = {},
): Promise<CheckedCopy> {
  const { signal, check } = opts;
  signal?.throwIfAborted();
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  // A plain read stream of the file (64 KB chunks): the chunks are handed on and dropped, so the
  // memory held is a chunk or two whatever the file's size.
  const input = createReadStream(src);
  let out: FileHandle | undefined;
  let keep = false;
  try {
    out = await fsp.open(dest, 'w', opts.mode ?? 0o666);
    const hash = createHash('sha256');
    let size = 0;
    let refused: string | null = null;
    let tooLong = false;
    for await (const data of input) {
      signal?.throwIfAborted();
      const chunk = data as Buffer;
      size += chunk.length;
      if (size > maxBytes) {
        tooLong = true;
        break;
      }
      if (check) {
        refused = check.write(chunk);
        if (refused !== null) break;
      }
      hash.update(chunk);
      for (let at = 0; at < chunk.length;) at += (await out.write(chunk, at, chunk.length - at)).bytesWritten;
    }
    if (!tooLong && refused === null && check) refused = check.end();
    if (tooLong || refused !== null) return { size, sha256: '', refused, tooLong };
    await out.sync();
    keep = true;
    return { size, sha256: hash.digest('hex'), refused: null, tooLong: false };
  } finally {
    // closed before we return: on Windows an open handle would refuse the outbox file's removal
    if (!input.closed) {
      const closed = once(input, 'close').catch(() => undefined);
      input.destroy();
      await closed;
    }
    await out?.close().catch(() => undefined);
    if (!keep) await fsp.rm(dest, { force: true }).catch(() => undefined);
  }
}
