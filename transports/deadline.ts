// Deadlines for library calls that may never settle (basic-ftp #123/#167/#209, SMB calls stuck in
// the kernel): the caller gets a TransportError in time even when the library does not, and the
// library is told to stop through the AbortSignal it was given. And the pace a transfer must keep:
// a peer that sends one byte now and then never trips an idle deadline, so a transfer also has a
// minimum average rate (`minRate`) over a window.
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
  return deadline(what, ms, outer, fn, `no answer within ${formatMs(ms)}`);
}

/**
 * withDeadline for a request that takes no signal and answers by callback (ssh2's SFTP requests:
 * it cannot take one back): the same deadline, abort and words, without an AbortController and a
 * race per request (a transfer sends thousands). `start` sends the request and hands its answer to
 * `settle` (also callable from elsewhere, e.g. when the connection is lost); what it returns is
 * run once the request has settled, however.
 */
export function answerWithin<T>(
  what: string,
  ms: number,
  outer: AbortSignal,
  start: (settle: (err: unknown, value?: T) => void) => (() => void) | undefined,
): Promise<T> {
  if (outer.aborted) return Promise.reject(new TransportError('aborted', `${what}: aborted`));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let cleanup: (() => void) | undefined;
    const settle = (err: unknown, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outer.removeEventListener('abort', onAbort);
      cleanup?.();
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = setTimeout(
      () => settle(new TransportError('timeout', `${what}: no answer within ${formatMs(ms)}`)),
      ms,
    );
    const onAbort = () => settle(new TransportError('aborted', `${what}: aborted`));
    outer.addEventListener('abort', onAbort, { once: true });
    try {
      cleanup = start(settle);
    } catch (err) {
      settle(err ?? new Error(`${what}: failed`));
    }
    // settled while `start` ran: its cleanup was not known to settle yet
    if (settled) cleanup?.();
  });
}

/**
 * Like withDeadline, for a whole job of several requests (each under its own deadline): the job
 * as a whole must be done within `ms` ("not done within 3m" rather than "no answer").
 */
export async function withBudget<T>(
  what: string,
  ms: number,
  outer: AbortSignal,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return deadline(what, ms, outer, fn, `not done within ${formatMs(ms)}`);
}

/**
 * How long an acknowledgement (delete, or the stat / free-name search / rename of a move) may
 * take in all: a few requests, each under the route's timeout. Three timeouts cover a slow server;
 * a server that keeps one busy longer (a free-name search it never lets end) costs a timeout.
 */
export function ackBudgetMs(timeoutMs: number): number {
  return 3 * timeoutMs;
}

async function deadline<T>(
  what: string,
  ms: number,
  outer: AbortSignal,
  fn: (signal: AbortSignal) => Promise<T>,
  words: string,
): Promise<T> {
  if (outer.aborted) throw new TransportError('aborted', `${what}: aborted`);
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TransportError('timeout', `${what}: ${words}`);
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
 * The slowest a transfer may go: on average at least `bytesPerSecond` over every `windowMs`
 * (counted in consecutive windows from the start of the transfer). A transfer that ends within
 * its first window is never judged.
 */
export interface MinRate {
  bytesPerSecond: number;
  windowMs: number;
}

/** The shortest window a minimum rate is measured over (a longer route timeout makes it longer). */
export const MIN_RATE_WINDOW_MS = 60_000;

/**
 * The rule for a route's `minRate` (bytes per second; 0 = none): measured over 60 s or the
 * route's timeout, whichever is longer, so that a pause the timeout allows never fails it alone.
 */
export function minRateRule(bytesPerSecond: number, timeoutMs: number): MinRate | undefined {
  if (!(bytesPerSecond > 0)) return undefined;
  return { bytesPerSecond, windowMs: Math.max(MIN_RATE_WINDOW_MS, timeoutMs) };
}

/**
 * A pass-through that fails with TransportError('timeout') when no byte passes for `ms`, or (with
 * `minRate`) when fewer bytes than the rate asks for pass in a window, and with
 * TransportError('aborted') when `signal` fires. Put it in a transfer pipeline so a stalled or
 * dripping transfer costs one retryable failure instead of a hung cycle.
 */
export class IdleWatch extends Transform {
  private timer: NodeJS.Timeout;
  private readonly onAbort: () => void;
  private rateTimer: NodeJS.Timeout | undefined;
  /** Bytes passed in the current rate window. */
  private windowBytes = 0;

  constructor(
    private readonly what: string,
    private readonly ms: number,
    private readonly signal: AbortSignal,
    private readonly minRate?: MinRate,
  ) {
    super();
    this.timer = setTimeout(() => this.expire(), ms);
    if (minRate && minRate.bytesPerSecond > 0) this.rateTimer = setTimeout(() => this.judgeRate(), minRate.windowMs);
    this.onAbort = () => this.destroy(new TransportError('aborted', `${what}: aborted`));
    if (signal.aborted) queueMicrotask(this.onAbort);
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  private expire(): void {
    this.destroy(new TransportError('timeout', `${this.what}: no progress for ${formatMs(this.ms)}`));
  }

  /** End of a rate window: enough bytes passed in it, or the transfer fails. */
  private judgeRate(): void {
    const { bytesPerSecond, windowMs } = this.minRate!;
    const needed = (bytesPerSecond * windowMs) / 1000;
    if (this.windowBytes < needed) {
      const message =
        `${this.what}: slower than ${formatRate(bytesPerSecond)} for ${formatMs(windowMs)} ` +
        `(${this.windowBytes} bytes in that time, ${Math.ceil(needed)} needed; the route's minRate): ` +
        `the transfer was cut and will be tried again`;
      this.destroy(new TransportError('timeout', message));
      return;
    }
    this.windowBytes = 0;
    this.rateTimer = setTimeout(() => this.judgeRate(), windowMs);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.timer.refresh();
    this.windowBytes += chunk.length;
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
    clearTimeout(this.rateTimer);
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

/** `1 KB/s`, `512 B/s`, `1.5 MB/s` (1024-based, as sizes are in the config). */
export function formatRate(bytesPerSecond: number): string {
  const units: Array<[string, number]> = [
    ['MB', 1024 * 1024],
    ['KB', 1024],
  ];
  for (const [unit, size] of units) {
    if (bytesPerSecond >= size) return `${Number((bytesPerSecond / size).toFixed(2))} ${unit}/s`;
  }
  return `${bytesPerSecond} B/s`;
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
