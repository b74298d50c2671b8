// Serialization: FTP runs one command at a time per connection.
import { TransportError } from '../errors.js';

/**
 * A queue of one: FTP runs one command at a time per connection. `acquire` waits its turn (or
 * rejects with 'aborted' when the signal fires first, passing its turn on) and returns `release`.
 */
export class Lane {
  private tail: Promise<void> = Promise.resolve();

  async acquire(signal: AbortSignal, what: string): Promise<() => void> {
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    let free!: () => void;
    const mine = new Promise<void>((resolve) => (free = resolve));
    const before = this.tail;
    this.tail = before.then(() => mine);
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onAbort = () => reject(new TransportError('aborted', `${what}: aborted while waiting for the connection`));
        signal.addEventListener('abort', onAbort, { once: true });
        void before.then(resolve);
      });
    } catch (err) {
      void before.then(free);
      throw err;
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      free();
    };
  }
}
