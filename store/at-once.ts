// Work on a batch's items a few at a time instead of one after the other (issue 11): independent
// file-system calls (renames, removals: each a round trip to Node's I/O threads, and waiting for them
// in turn leaves the threads and the disk idle between them), and the inbound pipeline's fetches and
// per-station cycles. One pool; two ways to treat an error: every item still runs (eachAtOnce), or
// no new item starts (inPool).

/** How many of a batch's independent calls are in flight at once. */
export const CALLS_AT_ONCE = 4;

/**
 * Calls `fn` for each item in order, at most `width` at once, while `goOn()` says so (checked
 * before each item is started); resolves with how many were started once those have settled.
 * `fn` must not reject: the variants below decide what an error means.
 */
async function pool<T>(
  items: readonly T[],
  width: number,
  fn: (item: T, index: number) => Promise<void>,
  goOn: () => boolean,
): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (goOn() && next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, items.length)) }, worker));
  return next;
}

/**
 * Calls `fn` for each item, at most `n` at once, and resolves once every call has settled: with
 * each item's error (null when its call succeeded), in the items' order.
 */
export async function eachAtOnce<T>(
  items: readonly T[],
  fn: (item: T, index: number) => Promise<void>,
  n = CALLS_AT_ONCE,
): Promise<(unknown | null)[]> {
  const errors: (unknown | null)[] = items.map(() => null);
  await pool(
    items,
    n,
    async (item, i) => {
      try {
        await fn(item, i);
      } catch (err) {
        errors[i] = err ?? new Error('failed');
      }
    },
    () => true,
  );
  return errors;
}

/**
 * `work` for the items, `width` at once, until one fails or `stopped()`: no new item is started
 * then, those started finish. How many were started, and the first failure.
 */
export async function inPool<T>(
  items: readonly T[],
  width: number,
  work: (item: T, index: number) => Promise<void>,
  stopped: () => boolean,
): Promise<{ started: number; error?: unknown }> {
  let failed = false;
  let error: unknown;
  const started = await pool(
    items,
    width,
    async (item, i) => {
      try {
        await work(item, i);
      } catch (err) {
        if (!failed) {
          failed = true;
          error = err;
        }
      }
    },
    () => !failed && !stopped(),
  );
  return failed ? { started, error } : { started };
}
