// Several READ or WRITE requests in flight on one handle, as OpenSSH's sftp keeps them (64 x 32 KB):
// on a link with a round trip of 100 ms one request at a time caps a transfer at ~320 KB/s. Every
// request keeps its own deadline through Connection.call (a server that stops answering costs a
// 'timeout' and the connection, never a hang), offsets are handed out in order, and what is in
// flight is bounded (WINDOW requests of at most CHUNK bytes), whatever the file's size.
import { setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import { TransportError } from '../errors.js';
import type { Connection } from './connection.js';

/** Requests in flight per handle (OpenSSH sftp's default, rclone's sftp `concurrency`). */
export const WINDOW = 64;
/** Bytes per request: OpenSSH sftp's default buffer; every server takes it (ssh2's own cap is below for non-OpenSSH). */
export const CHUNK = 32 * 1024;

/**
 * A signal for one transfer's requests, fired with `outer`: each request in flight listens to it
 * (a window of them is more than Node's default of 10 listeners before it warns of a leak), and
 * `outer` gets one listener per transfer, removed by `release`.
 */
function transferSignal(outer: AbortSignal): { signal: AbortSignal; release: () => void } {
  const local = new AbortController();
  setMaxListeners(WINDOW + 8, local.signal);
  const onAbort = () => local.abort(outer.reason);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return { signal: local.signal, release: () => outer.removeEventListener('abort', onAbort) };
}

/**
 * Writes `chunks` at consecutive offsets from 0, up to WINDOW WRITEs in flight; resolves with the
 * byte count once every WRITE was acknowledged, rejects with the first failure. A chunk is taken
 * from `chunks` only when there is room in the window: the package is never buffered whole.
 */
export async function writePipelined(
  conn: Connection,
  handle: Buffer,
  chunks: AsyncIterable<Buffer>,
  what: string,
  ms: number,
  outer: AbortSignal,
): Promise<number> {
  const { signal, release } = transferSignal(outer);
  try {
    return await writeWindow(conn, handle, chunks, what, ms, signal);
  } finally {
    release();
  }
}

async function writeWindow(
  conn: Connection,
  handle: Buffer,
  chunks: AsyncIterable<Buffer>,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<number> {
  const chunk = Math.min(CHUNK, conn.maxWriteLen);
  const inFlight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  /** The first failure, rethrown (a function: TypeScript cannot see the callbacks set it). */
  const check = (): void => {
    if (failure) throw failure.err;
  };
  let offset = 0;
  const send = (piece: Buffer, at: number) => {
    const request: Promise<void> = conn
      .call<void>(`${what}: write`, ms, signal, 'write', (s, cb) =>
        s.write(handle, piece, 0, piece.length, at, (err) => cb(err)),
      )
      .then(
        () => void inFlight.delete(request),
        (err: unknown) => {
          inFlight.delete(request);
          failure ??= { err };
        },
      );
    inFlight.add(request);
  };
  for await (const buf of chunks) {
    for (let i = 0; i < buf.length; i += chunk) {
      check();
      while (inFlight.size >= WINDOW) {
        await Promise.race(inFlight);
        check();
      }
      const piece = buf.subarray(i, Math.min(i + chunk, buf.length));
      send(piece, offset);
      offset += piece.length;
    }
  }
  await Promise.all(inFlight);
  check();
  return offset;
}

interface Slot {
  at: number;
  len: number;
  /** The bytes read (fewer than `len` on a short read; none at the end of the file). */
  result: Promise<Buffer>;
}

/**
 * Exactly `size` bytes of an open handle, up to WINDOW READs in flight, delivered in order. One
 * more READ at `size`, sent along with the last ones, must answer EOF: a file longer than listed
 * is 'busy' (still being written), as one that ends early is. The handle is closed (CLOSE sent,
 * not awaited) as soon as the last answer is in, before the stream ends, so a reader that removes
 * the file next finds it closed on servers that answer in order (Windows refuses to delete an
 * open file); and when the reader stops early. The first READs are sent at once.
 */
export function readPipelined(
  conn: Connection,
  handle: Buffer,
  size: number,
  what: string,
  ms: number,
  outer: AbortSignal,
): Readable {
  const { signal, release } = transferSignal(outer);
  const chunk = Math.min(CHUNK, conn.maxReadLen);
  const slots: Slot[] = [];
  let next = 0;
  let eof: Promise<Buffer> | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    release();
    void conn.closeHandleQuietly(handle);
  };
  const read = (at: number, len: number): Promise<Buffer> => {
    const p = conn.call<Buffer>(`${what}`, ms, signal, 'read', (s, cb) =>
      // ssh2 answers EOF with (undefined, 0): no bytes. Not zero-filled: only the `n` bytes the
      // server sent (copied in by ssh2) are ever looked at
      s.read(handle, Buffer.allocUnsafe(len), 0, len, at, (err, n, data) =>
        err ? cb(err) : cb(undefined, data.subarray(0, n)),
      ),
    );
    p.catch(() => undefined); // observed when its turn comes (or dropped with the stream)
    return p;
  };
  const fill = () => {
    while (slots.length < WINDOW && next < size) {
      const len = Math.min(chunk, size - next);
      slots.push({ at: next, len, result: read(next, len) });
      next += len;
    }
    if (next >= size && !eof) eof = read(size, 1);
  };

  async function* bytes(): AsyncGenerator<Buffer> {
    try {
      while (slots.length > 0) {
        const slot = slots.shift()!;
        const got = await slot.result;
        if (got.length === 0) {
          throw new TransportError('busy', `${what}: the file ended after ${slot.at} bytes, ${size} listed`);
        }
        // a short answer: the rest of this range is asked for next, ahead of everything queued
        if (got.length < slot.len) {
          const at = slot.at + got.length;
          slots.unshift({ at, len: slot.len - got.length, result: read(at, slot.len - got.length) });
        }
        fill();
        if (slots.length === 0) {
          const extra = await eof!;
          if (extra.length > 0) throw new TransportError('busy', `${what}: more than the ${size} bytes listed`);
          close();
        }
        yield got;
      }
      if (size === 0) {
        const extra = await eof!;
        if (extra.length > 0) throw new TransportError('busy', `${what}: more than the ${size} bytes listed`);
      }
    } finally {
      close();
    }
  }
  // the first READs go out now, with whatever the caller sends next (open's FSTAT): one round trip
  fill();
  const stream = Readable.from(bytes(), { objectMode: false });
  stream.on('close', close); // also when destroyed before the first read
  return stream;
}
