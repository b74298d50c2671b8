// Streams every transport uses the same way: a remote's bytes under an idle deadline, exactly the
// listed length or an error, and the check that a package gave its declared size and SHA-256.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { IdleWatch, type MinRate } from '../deadline.js';
import { TransportError, fromSystemError } from '../errors.js';
import type { OutgoingPackage } from '../types.js';

export interface WatchOptions {
  /** How an error of the source reaches the reader. Default: fromSystemError. */
  mapError?: (err: unknown) => TransportError;
  /** Called when the watch fails with 'timeout' or 'aborted' (a transfer left in flight). */
  onStall?: (err: TransportError) => void;
  /** The slowest average the transfer may keep (the route's `minRate`, Endpoint.minRate); none if absent. */
  minRate?: MinRate | undefined;
}

/**
 * `source` through an IdleWatch (and its minimum rate, when given). Errors of the source reach
 * the reader as TransportErrors; when the reader stops (or the watch fires) the source is
 * destroyed, so no handle is left open.
 */
export function watched(source: Readable, what: string, ms: number, signal: AbortSignal, opts: WatchOptions = {}) {
  const mapError = opts.mapError ?? ((err: unknown) => fromSystemError(err, what));
  const watch = new IdleWatch(what, ms, signal, opts.minRate);
  source.on('error', (err) => watch.destroy(mapError(err)));
  watch.on('close', () => source.destroy());
  source.pipe(watch);
  // The reader gets errors through its pipeline / for-await; this listener only keeps a reader that
  // has not attached one yet from turning a dead connection or share into a crash.
  watch.on('error', (err) => {
    if (err instanceof TransportError && (err.code === 'timeout' || err.code === 'aborted')) opts.onStall?.(err);
  });
  return watch;
}

/**
 * Passes exactly `expected` bytes or fails with 'busy': an entry that changed between the listing
 * and the read is not delivered now; the next cycle lists it again.
 */
export function exactLength(expected: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > expected) cb(new TransportError('busy', `${what}: more than the ${expected} bytes listed`));
      else cb(null, chunk);
    },
    flush(cb) {
      if (seen !== expected) cb(new TransportError('busy', `${what}: ${seen} bytes read, ${expected} listed`));
      else cb();
    },
  });
}

/** The package's own stream failed: that is our local disk, not the remote. */
export function localReadError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  return fromSystemError(err, `${what}: reading the package`);
}

/** `pkg.open()`, a throw of it reported as our local disk's failure. */
export function openPackage(pkg: OutgoingPackage, what: string): Readable {
  try {
    return pkg.open();
  } catch (err) {
    throw localReadError(err, what);
  }
}

/** Counts and hashes a package's bytes as they pass; `verify` says whether they were the package. */
export class PackageCheck {
  private seen = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(
    private readonly pkg: Pick<OutgoingPackage, 'size' | 'sha256'>,
    private readonly what: string,
  ) {}

  get bytes(): number {
    return this.seen;
  }

  update(chunk: Buffer): void {
    this.seen += chunk.length;
    this.hash.update(chunk);
  }

  /** The declared size and SHA-256, or TransportError('corrupt'). */
  failure(): TransportError | undefined {
    if (this.seen !== this.pkg.size) {
      return new TransportError(
        'corrupt',
        `${this.what}: the package gave ${this.seen} bytes, ${this.pkg.size} expected`,
      );
    }
    if (this.hash.digest('hex') !== this.pkg.sha256.toLowerCase()) {
      return new TransportError('corrupt', `${this.what}: the package bytes do not match its SHA-256`);
    }
    return undefined;
  }

  verify(): void {
    const e = this.failure();
    if (e) throw e;
  }
}

/** Passes the package bytes on (calling `onChunk` with each) and fails at the end unless they were the package. */
export function verifiedPackage(pkg: OutgoingPackage, what: string, onChunk: () => void = () => undefined): Transform {
  const check = new PackageCheck(pkg, what);
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      onChunk();
      check.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      cb(check.failure() ?? null);
    },
  });
}

/** SHA-256 (hex) of everything a stream gives. */
export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
