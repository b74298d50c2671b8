// The per-share call limiter: how many file-system calls one share root may have in flight at
// once, for the whole process (every route and every `check` on that share goes through its gate),
// so that a share that hangs holds at most CALLS_PER_SHARE of Node's I/O threads.
import path from 'node:path';
import { TransportError } from '../errors.js';

/**
 * File-system calls in flight on one share root at most. A route works one file at a time, so two
 * routes on one share rarely want more; a share that hangs holds no more than this many of the
 * process's I/O threads (4 by default; the `sprelay` command raises it to 16: bin/sprelay.js).
 */
export const CALLS_PER_SHARE = 2;

/**
 * At most `slots` calls at once. A call keeps its slot until it settles, even when its caller gave
 * up on it (a deadline): the OS thread under it is busy that long. Waiting for a slot ends with
 * the waiter's signal.
 */
export class ShareGate {
  private readonly started = new Set<{ at: number }>();
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(readonly slots: number) {}

  /**
   * `fn` when a slot is free; waiting for it ends with `signal` (the call, once started, is
   * `fn`'s to end). Built on `enter`, as Share.fsCall is.
   */
  run<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let started = false;
      const onAbort = () => {
        if (started) return;
        cancel();
        reject(signal.reason instanceof Error ? signal.reason : new TransportError('aborted', 'aborted'));
      };
      const cancel = this.enter(() => {
        started = true;
        signal.removeEventListener('abort', onAbort);
        let call: Promise<T>;
        try {
          call = fn();
        } catch (err) {
          call = Promise.reject(err);
        }
        call.then(resolve, reject);
        return call;
      });
      if (started) return;
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Starts `start` when a slot is free (at once when one is): `start` returns the call's promise,
   * and the slot is held until that settles. Returns what takes the call back while it still
   * waits for a slot (a no-op once it has started). For Share.fsCall, which brings its own
   * deadline and abort: no AbortSignal and no promise of its own per call (issue 11).
   */
  enter(start: () => Promise<unknown>): () => void {
    if (this.busy < this.slots) {
      this.busy++;
      this.begin(start);
      return noop;
    }
    const waiter = { grant: () => this.begin(start) };
    this.waiting.push(waiter);
    return () => {
      const i = this.waiting.indexOf(waiter);
      if (i >= 0) this.waiting.splice(i, 1);
    };
  }

  private begin(start: () => Promise<unknown>): void {
    const mark = { at: Date.now() };
    this.started.add(mark);
    const done = () => {
      this.started.delete(mark);
      this.release();
    };
    let call: Promise<unknown>;
    try {
      call = start();
    } catch {
      done();
      return;
    }
    call.then(done, done);
  }

  /** Calls in flight for longer than `ms`. */
  stuckFor(ms: number): number {
    const before = Date.now() - ms;
    let n = 0;
    for (const s of this.started) if (s.at <= before) n++;
    return n;
  }

  private busy = 0;

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.busy--;
  }
}

const noop = () => undefined;

/**
 * File-system calls on any share that have not settled yet. Node cannot end a process while one of
 * its I/O threads is blocked (process.exit waits for the thread pool), so the `sprelay` command
 * asks this before it exits and ends a process with a hung share call the hard way.
 */
export function shareCallsInFlight(): number {
  let n = 0;
  for (const g of gates.values()) n += g.stuckFor(0);
  return n;
}

/** One gate per share root for the whole process: every route and every `check` on it shares it. */
const gates = new Map<string, ShareGate>();

export function gateOf(root: string): ShareGate {
  const key = process.platform === 'win32' ? path.win32.resolve(root).toLowerCase() : path.resolve(root);
  let gate = gates.get(key);
  if (!gate) {
    gate = new ShareGate(CALLS_PER_SHARE);
    gates.set(key, gate);
  }
  return gate;
}
