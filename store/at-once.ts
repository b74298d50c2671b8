// Independent file-system calls of a batch (renames, removals) a few at a time instead of one after
// the other (issue 11): each is a round trip to Node's I/O threads, and waiting for them in turn
// leaves the threads and the disk idle between them.

/** How many of a batch's independent calls are in flight at once. */
export const CALLS_AT_ONCE = 4;

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
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        errors[i] = err ?? new Error('failed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return errors;
}
