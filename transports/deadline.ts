// Deadlines for library calls that may never settle (basic-ftp #123/#167/#209, SMB calls stuck in
// the kernel): the caller gets a TransportError in time even when the library does not, and the
// library is told to stop through the AbortSignal it was given.
import { Transform, type TransformCallback } from 'node:stream';
import { TransportError } from './errors.js';

/**
 * Runs `fn` with a signal that fires when `outer` fires or after `ms` without completion.
 * Rejects with TransportError('aborted' | 'timeout') at that moment, whatever `fn` does.
 */
export async function withDeadline<T>(
  what: string,
  ms: number,
  outer: AbortSignal,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (outer.aborted) throw new TransportError('aborted', `${what}: aborted`);
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TransportError('timeout', `${what}: no answer within ${formatMs(ms)}`);
      ctl.abort(err);
      reject(err);
    }, ms);
    onAbort = () => {
      const err = new TransportError('aborted', `${what}: aborted`);
      ctl.abort(err);
      reject(err);
    };
    outer.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([fn(ctl.signal), stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) outer.removeEventListener('abort', onAbort);
  }
}

/**
 * A pass-through that fails with TransportError('timeout') when no byte passes for `ms`, or
 * TransportError('aborted') when `signal` fires. Put it in a transfer pipeline so a stalled
 * transfer costs one retryable failure instead of a hung cycle.
 */
export class IdleWatch extends Transform {
  private timer: NodeJS.Timeout;
  private readonly onAbort: () => void;

  constructor(
    private readonly what: string,
    private readonly ms: number,
    private readonly signal: AbortSignal,
  ) {
    super();
    this.timer = setTimeout(() => this.expire(), ms);
    this.onAbort = () => this.destroy(new TransportError('aborted', `${what}: aborted`));
    if (signal.aborted) queueMicrotask(this.onAbort);
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  private expire(): void {
    this.destroy(new TransportError('timeout', `${this.what}: no progress for ${formatMs(this.ms)}`));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.timer.refresh();
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.cleanup();
    cb();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.cleanup();
    cb(err);
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
