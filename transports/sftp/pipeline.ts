// Several READ or WRITE requests in flight on one handle, 2 MB of them as OpenSSH's sftp keeps
// (64 x 32 KB; here in as few requests as the server's size cap allows): on a link with a round
// trip of 100 ms one request at a time caps a transfer at ~320 KB/s. Every request keeps its own
// deadline through Connection.call (a server that stops answering costs a 'timeout' and the
// connection, never a hang), offsets are handed out in order, and what is in flight is bounded
// (IN_FLIGHT bytes, at most WINDOW requests), whatever the file's size.
import { setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import { TransportError } from '../errors.js';
import type { Connection } from './connection.js';

/**
 * Bytes in flight per handle: OpenSSH sftp's default (64 requests of 32 KB), rclone's (its sftp
 * `concurrency` of 64 x 32 KB), and the channel window both OpenSSH and ssh2 give a session
 * (2 MB): more in flight than that only waits in a queue.
 */
export const IN_FLIGHT = 2 * 1024 * 1024;
/** Requests in flight per handle at most (OpenSSH sftp's default), whatever their size. */
export const WINDOW = 64;
/**
 * Bytes per request at most; the server's own cap applies below it (Connection.maxReadLen /
 * maxWriteLen: OpenSSH says 255 KB through limits@openssh.com, any other server gets ssh2's
 * 31,952). Every request costs the same work in ssh2, in the server and here whatever its size:
 * 200 MB in 32 KB requests took ~1.5x the CPU of 255 KB ones (issue 11).
 */
export const CHUNK = 255 * 1024;

/** The least a READ asks for after short answers (a server that answers 1 byte at a time). */
const MIN_CHUNK = 4096;

/** Requests of `chunk` bytes in flight: IN_FLIGHT bytes, at most WINDOW requests, at least 1. */
export function windowFor(chunk: number): number {
  return Math.max(1, Math.min(WINDOW, Math.floor(IN_FLIGHT / chunk)));
}

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
 * Writes `chunks` at consecutive offsets from 0, up to IN_FLIGHT bytes of WRITEs in flight;
 * resolves with the byte count once every WRITE was acknowledged, rejects with the first failure.
 * A chunk is taken from `chunks` only when there is room in the window: the package is never
 * buffered whole.
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
  const window = windowFor(chunk);
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
  /** Waits for room in the window; then `piece` goes out at the next offset. */
  const push = async (piece: Buffer) => {
    check();
    while (inFlight.size >= window) {
      await Promise.race(inFlight);
      check();
    }
    send(piece, offset);
    offset += piece.length;
  };
  // WRITEs of `chunk` bytes, whatever sizes the source reads in (64 KB from a file): pieces of the
  // source's buffers where they hold a whole request, joined (one copy, of the request's size)
  // where they do not; a package smaller than a request goes as the source read it, uncopied
  let pending: Buffer[] = [];
  let pendingLen = 0;
  for await (const buf of chunks) {
    let i = 0;
    while (i < buf.length) {
      if (pendingLen === 0 && buf.length - i >= chunk) {
        await push(buf.subarray(i, i + chunk));
        i += chunk;
        continue;
      }
      const take = Math.min(buf.length - i, chunk - pendingLen);
      pending.push(buf.subarray(i, i + take));
      pendingLen += take;
      i += take;
      if (pendingLen === chunk) {
        const full = Buffer.concat(pending, chunk);
        pending = [];
        pendingLen = 0;
        await push(full);
      }
    }
  }
  if (pendingLen > 0) await push(pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen));
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
 * Exactly `size` bytes of an open handle, up to IN_FLIGHT bytes of READs in flight, delivered in
 * order. One more READ at `size`, sent along with the last ones, must answer EOF: a file longer than listed
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
  let chunk = Math.min(CHUNK, conn.maxReadLen);
  let window = windowFor(chunk);
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
    // the server never waits for the channel's window to answer what is asked (connection.ts)
    conn.openReceiveWindow();
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
    while (slots.length < window && next < size) {
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
        // a short answer: the rest of this range is asked for next, ahead of everything queued;
        // and what the server answers at most is what is asked from now on, more requests of it
        // in flight (an OpenSSH before limits@openssh.com answers 64 KB of the 254 KB ssh2 asks:
        // 8 requests in flight would keep 512 KB moving, not 2 MB)
        if (got.length < slot.len) {
          const at = slot.at + got.length;
          slots.unshift({ at, len: slot.len - got.length, result: read(at, slot.len - got.length) });
          if (got.length < chunk) {
            chunk = Math.max(got.length, MIN_CHUNK);
            window = windowFor(chunk);
          }
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
