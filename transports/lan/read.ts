// Reading a file on the share, strictly: opened only if it is the regular file its lstat showed
// (never through a link, never waiting on a pipe, the handle's fstat the same file), then its bytes
// read one chunk at a time through the share's gate, or a small file's all at once (its size known
// from the listing: one read); and the read-back hash of a file already there.
import { promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { sha256Of, watched } from '../common/streams.js';
import type { MinRate } from '../deadline.js';
import { TransportError, errnoCode } from '../errors.js';
import { kindOf, LINK_WORDS, READ_FLAGS, sameFile } from './files.js';
import type { Share } from './share.js';

/**
 * Bytes per read of a file on the share streamed (a big package): 256 KB keeps the per-chunk work
 * (a gate slot, the stream's hops, the checks' calls) at a quarter of 64 KB's, and a few chunks in
 * flight at most (the reader holds one ahead).
 */
const READ_CHUNK = 256 * 1024;

/**
 * Opens `file` for reading only if it is the regular file `seen` (its lstat) says: never through
 * a link (O_NOFOLLOW), never waiting on a pipe (O_NONBLOCK), and the handle's fstat must show a
 * regular file, the same one. Anything else: 'busy' (it changed since it was looked at; the next
 * listing says what it is now).
 */
export async function openRegular(
  share: Share,
  file: string,
  seen: Stats,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<{ handle: FileHandle; st: Stats }> {
  let handle: FileHandle;
  try {
    handle = await share.fsCall(what, ms, signal, () => fsp.open(file, READ_FLAGS));
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
    st = await share.fsCall(what, ms, signal, () => handle.stat());
  } catch (err) {
    share.closeLater(handle);
    throw err;
  }
  if (!st.isFile() || !sameFile(seen, st)) {
    share.closeLater(handle);
    const now = st.isFile() ? 'another file' : kindOf(st);
    throw new TransportError('busy', `${what}: it is ${now} now, not the file that was looked at: not read`);
  }
  return { handle, st };
}

/** The bytes of an open file, each read through the gate (a read on a dead share hangs too). */
export function reader(share: Share, handle: FileHandle): Readable {
  const stop = new AbortController();
  let position = 0;
  return new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      share.gate
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
      share.closeLater(handle);
      cb(err);
    },
  });
}

/**
 * The `size` bytes of an open regular file whose fstat said `size`, through the share's gate under
 * the deadline: one read with room for one byte more (a file that grew since is seen in the same
 * call), read on only when the OS gave fewer bytes without reaching the end. Not exactly `size`
 * bytes: 'busy' (it changed since it was listed). The caller closes the handle.
 */
export async function readExactly(
  share: Share,
  handle: FileHandle,
  size: number,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size + 1);
  let got = 0;
  for (;;) {
    const { bytesRead } = await share.fsCall(what, ms, signal, () => handle.read(buf, got, buf.length - got, got));
    got += bytesRead;
    if (bytesRead === 0 || got >= size) break;
  }
  if (got !== size) {
    const now = got > size ? `more than the ${size} bytes listed` : `${got} bytes read, ${size} listed`;
    throw new TransportError('busy', `${what}: ${now} (still changing)`);
  }
  return buf.subarray(0, size);
}

/**
 * SHA-256 of a file already on the share (the same size as the package to put), read as strictly
 * as a delivery, under the idle deadline and the route's minimum rate: it is a package's worth of
 * bytes from the same share, and a share that drips them would hold the put as long as it likes.
 */
export async function readAllHashed(
  share: Share,
  file: string,
  seen: Stats,
  what: string,
  ms: number,
  signal: AbortSignal,
  minRate: MinRate | undefined,
) {
  const { handle } = await openRegular(share, file, seen, what, ms, signal);
  return sha256Of(watched(reader(share, handle), what, ms, signal, { minRate }));
}
