// Lanes: FTP runs one command at a time per control connection, so a sink or source that is to
// move N files at once needs N connections. A pool of sessions, each one lane, opened lazily.
import { TransportError } from '../errors.js';
import type { FtpSession } from './session.js';

/** The most connections one sink or source opens to a server (the config's `concurrency` cap). */
export const MAX_LANES = 16;

/** A session held by one caller; `release` (idempotent) hands it to the next. */
export interface Held {
  session: FtpSession;
  release(): void;
}

interface Waiter {
  give(session: FtpSession): void;
  fail(err: TransportError): void;
}

/**
 * Up to `max` sessions to one server, each used by one caller at a time. `acquire` takes an idle
 * one; else, while there are fewer than `max`, opens one more (`open`: connected, logged in, in
 * its folder); else waits for the next release, in order. A server that refuses one more
 * connection (a per-user or per-address limit) is not an error while one lane is open: the pool
 * stays at the lanes it has and the caller waits for one of them. The first lane is opened by
 * the caller that makes the pool, so that an unreachable server fails there.
 */
export class Lanes {
  private readonly all: FtpSession[];
  private readonly idle: FtpSession[];
  private readonly waiting: Waiter[] = [];
  private opening = 0;
  private limit: number;
  private closed = false;

  constructor(
    first: FtpSession,
    max: number,
    private readonly open: (signal: AbortSignal) => Promise<FtpSession>,
  ) {
    this.all = [first];
    this.idle = [first];
    this.limit = Math.max(1, Math.min(max, MAX_LANES));
  }

  /** Lanes opened so far. */
  get size(): number {
    return this.all.length;
  }

  async acquire(signal: AbortSignal, what: string): Promise<Held> {
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    if (this.closed) throw new TransportError('aborted', `${what}: the connection is closed`);
    const idle = this.idle.pop();
    if (idle) return this.hold(idle);
    if (this.all.length + this.opening < this.limit) {
      this.opening++;
      let session: FtpSession | undefined;
      try {
        session = await this.open(signal);
      } catch (err) {
        if (signal.aborted || this.closed) throw err;
        // the server would not take one more: this many lanes it is, for this sink or source
        this.limit = this.all.length;
      } finally {
        this.opening--;
      }
      if (session) {
        if (this.closed) {
          session.close();
          throw new TransportError('aborted', `${what}: the connection is closed`);
        }
        this.all.push(session);
        return this.hold(session);
      }
    }
    return this.wait(signal, what);
  }

  private wait(signal: AbortSignal, what: string): Promise<Held> {
    return new Promise<Held>((resolve, reject) => {
      const onAbort = () => {
        const at = this.waiting.indexOf(waiter);
        if (at !== -1) this.waiting.splice(at, 1);
        reject(new TransportError('aborted', `${what}: aborted while waiting for the connection`));
      };
      const waiter: Waiter = {
        give: (session) => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.hold(session));
        },
        fail: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private hold(session: FtpSession): Held {
    let released = false;
    return {
      session,
      release: () => {
        if (released) return;
        released = true;
        if (this.closed) return;
        const next = this.waiting.shift();
        if (next) next.give(session);
        else this.idle.push(session);
      },
    };
  }

  /** Closes every lane; callers still waiting get 'aborted'. Never throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.fail(new TransportError('aborted', 'the connection was closed'));
    for (const s of this.all) s.close();
    this.idle.length = 0;
  }
}

/** Runs `fn`s with the same key one after another (different keys at once). */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    try {
      await before;
      return await fn();
    } finally {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
