// Data transfers on an FTP session: RETR into a stream that ends only when every listed byte came
// and the server confirmed, STOR of a package under a watchdog fed by every byte, and the read-back
// hash of a remote file. Both directions keep the route's minimum rate (session.minRate). Each
// runs on the session's current connection (the caller holds the lane).
import { pipeline, Readable, Transform, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { FTPError, type FTPContext } from 'basic-ftp';
import { IdleWatch, formatMs } from '../deadline.js';
import { TransportError } from '../errors.js';
import { localReadError, openPackage, PackageCheck, sha256Of } from '../common/streams.js';
import type { OutgoingPackage } from '../types.js';
import type { FtpSession } from './session.js';

/** SHA-256 of a remote file, by reading it back (exactly `size` bytes or an error). */
export function hashOf(session: FtpSession, file: string, size: number, what: string, signal: AbortSignal) {
  return sha256Of(download(session, file, size, what, signal, () => undefined).stream);
}

/**
 * RETR into a stream that ends only once the server confirmed the transfer and exactly `size`
 * bytes came, and errors otherwise (basic-ftp ends the destination it was given even after a
 * failed transfer, so the reader never gets that one). `onFree` runs once when the connection is
 * free again: the transfer settled, or it was cut (reader gone, stall, abort) and the connection
 * closed with it. `started` resolves once the first byte was taken (or the transfer of an empty
 * file succeeded) and rejects with the stream's error when it fails before: a refused RETR (the
 * file is gone) or a file grown past its listed size fails `started`, at no round trip of its own.
 */
export function download(
  session: FtpSession,
  file: string,
  size: number,
  what: string,
  signal: AbortSignal,
  onFree: () => void,
): { stream: Readable; started: Promise<void> } {
  const c = session.current;
  const out = new IdleWatch(what, session.ms, signal, session.minRate);
  let begin!: () => void;
  let fail!: (err: unknown) => void;
  const started = new Promise<void>((resolve, reject) => {
    begin = resolve;
    fail = reject;
  });
  started.catch(() => undefined);
  out.once('error', fail);
  out.once('close', () => fail(new TransportError('aborted', `${what}: the reader is gone`)));
  let freed = false;
  const free = () => {
    if (freed) return;
    freed = true;
    onFree();
  };
  if (!c || c.closed) {
    queueMicrotask(() => out.destroy(new TransportError('network', `${what}: the connection was lost`)));
    free();
    return { stream: out, started };
  }
  let received = 0;
  let settled = false;
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      if (received > size) return cb(new TransportError('busy', `${what}: more than the ${size} bytes listed`));
      if (out.destroyed) return cb(new TransportError('aborted', `${what}: the reader is gone`));
      begin();
      if (out.write(chunk)) return cb();
      const onDrain = () => {
        out.off('close', onClose);
        cb();
      };
      const onClose = () => {
        out.off('drain', onDrain);
        cb(new TransportError('aborted', `${what}: the reader is gone`));
      };
      out.once('drain', onDrain);
      out.once('close', onClose);
    },
  });
  out.on('close', () => {
    if (settled) return;
    // cut mid-transfer: basic-ftp cannot abort a RETR, so the connection goes with it
    session.drop(c);
    free();
  });
  let wireName: string;
  try {
    wireName = session.wire.out(file, what);
  } catch (err) {
    settled = true;
    queueMicrotask(() => out.destroy(err as Error));
    free();
    return { stream: out, started };
  }
  c.downloadTo(destination, wireName).then(
    () => {
      settled = true;
      free();
      if (received === size) begin();
      if (received === size) out.end();
      else out.destroy(new TransportError('busy', `${what}: ${received} bytes came, ${size} listed`));
    },
    async (err: unknown) => {
      settled = true;
      // A refusal of RETR leaves the connection in order; anything else may leave the server's
      // late reply to the broken transfer waiting to be taken for the answer to our next command.
      if (!(err instanceof FTPError) || c.closed) session.drop(c);
      let failure = session.classify(err, what, { missing: 'not-found' });
      if (
        err instanceof FTPError &&
        !c.closed &&
        failure.code !== 'not-found' &&
        (err.code === 550 || err.code === 450)
      ) {
        // vsftpd says "550 Failed to open file." for a file that is not there as for one it may
        // not read: SIZE tells them apart (asked only when RETR is refused, never before it)
        const gone = await session.sizeOf(file, `${what}: check`, signal).then(
          (n) => n === null,
          () => false,
        );
        if (gone) failure = new TransportError('not-found', `${what}: no such file on the server`, { cause: err });
      }
      free();
      out.destroy(failure);
    },
  );
  return { stream: out, started };
}

/**
 * STOR of the package's bytes to `file`. The package stream goes through an IdleWatch (a stall
 * of ours or of the server fails it); an outer watchdog, fed by every byte, also covers the
 * wait for the data connection and for the server's final reply.
 */
export async function upload(
  session: FtpSession,
  pkg: OutgoingPackage,
  file: string,
  what: string,
  signal: AbortSignal,
): Promise<void> {
  const c = session.current;
  if (!c || c.closed) throw new TransportError('network', `${what}: the connection to ${session.where} was lost`);
  const wireName = session.wire.out(file, what);
  if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
  const source = openPackage(pkg, what);
  const dog = watchdog(what, session.ms, signal);
  const watch = new IdleWatch(what, session.ms, signal, session.minRate);
  const check = new PackageCheck(pkg, what);
  const tally = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      check.update(chunk);
      dog.kick();
      cb(null, chunk);
    },
  });
  // the first cause wins: a stalled or broken package stream, not the "client closed" after it
  let streamError: TransportError | undefined;
  source.on('error', (err) => (streamError ??= localReadError(err, what)));
  watch.on('error', (err) => (streamError ??= err instanceof TransportError ? err : localReadError(err, what)));
  pipeline(source, watch, tally, (err) => {
    if (err) streamError ??= err instanceof TransportError ? err : localReadError(err, what);
  });
  let body: Readable = tally;
  try {
    if (pkg.size === 0 && c.ftp.hasTLS) {
      // the package is read (and checked empty) first; what goes out then waits for the TLS
      tally.resume();
      await Promise.race([finished(tally), dog.tripped]);
      if (check.bytes !== 0)
        throw new TransportError('corrupt', `${what}: the package gave ${check.bytes} bytes, 0 expected`);
      body = endAfterTlsTickets(c.ftp);
    }
    await Promise.race([c.uploadFrom(body, wireName), dog.tripped]);
  } catch (err) {
    if (!(err instanceof FTPError)) session.drop(c);
    source.destroy();
    tally.destroy();
    body.destroy();
    throw streamError ?? err;
  } finally {
    dog.stop();
  }
  if (streamError) throw streamError;
  check.verify();
}

/**
 * The body of an empty upload over TLS. vsftpd (TLS 1.3) fails an upload whose data connection
 * closes right after its handshake, before the server's session tickets are through: "DATA
 * connection terminated without SSL shutdown", 426, and a TLS alert for us (the TLS 1.3 FTPS
 * race behind curl#13556 and proftpd#959). With bytes to send the timing works out by itself; an
 * empty body ends only once a ticket came (or 100 ms passed), and 10 ms later. basic-ftp starts
 * reading the body once the data connection's TLS is up.
 */
function endAfterTlsTickets(ftp: FTPContext): Readable {
  const timers: NodeJS.Timeout[] = [];
  let started = false;
  return new Readable({
    read() {
      if (started) return;
      started = true;
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        timers.push(setTimeout(() => this.push(null), 10));
      };
      timers.push(setTimeout(end, 100));
      ftp.dataSocket?.once('session', end);
    },
    destroy(err, cb) {
      timers.forEach(clearTimeout);
      cb(err);
    },
  });
}

/** Rejects `tripped` with 'timeout' once `kick` was not called for `ms`, or 'aborted' when `signal` fires. */
function watchdog(what: string, ms: number, signal: AbortSignal) {
  let trip!: (err: TransportError) => void;
  const tripped = new Promise<never>((_, reject) => (trip = reject));
  tripped.catch(() => undefined);
  const timer = setTimeout(() => trip(new TransportError('timeout', `${what}: no progress for ${formatMs(ms)}`)), ms);
  const onAbort = () => trip(new TransportError('aborted', `${what}: aborted`));
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    tripped,
    kick: () => void timer.refresh(),
    stop: () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    },
  };
}
