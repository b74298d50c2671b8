// Counts the fs.promises calls of one kind (stat, lstat) in flight at once on the paths under a
// folder, by wrapping the function on node:fs's shared promises object (what the code under test
// calls); the tests that prove "a few at once, not one after the other" read it.
import fs from 'node:fs';

export interface InFlight {
  /** The paths looked at, relative to the folder, in the order the calls started. */
  readonly paths: string[];
  /** The most calls in flight at once (among the first `first`, when given). */
  readonly most: number;
  /** Puts the original function back (also safe to call twice). */
  restore(): void;
}

/** Wraps fs.promises[`name`] until restore(); calls on other paths pass through uncounted. */
export function countInFlight(name: 'stat' | 'lstat', folder: string, opts: { first?: number } = {}): InFlight {
  // stat and lstat take and give the same: one type for both
  const original: typeof fs.promises.stat = fs.promises[name];
  const prefix = folder.endsWith('/') ? folder : `${folder}/`;
  const paths: string[] = [];
  let inFlight = 0;
  let most = 0;
  fs.promises[name] = (async (...a: Parameters<typeof original>) => {
    const path = String(a[0]);
    if (!path.startsWith(prefix)) return original(...a);
    paths.push(path.slice(prefix.length));
    if (opts.first === undefined || paths.length <= opts.first) most = Math.max(most, inFlight + 1);
    inFlight++;
    try {
      return await original(...a);
    } finally {
      inFlight--;
    }
  }) as typeof original;
  return {
    paths,
    get most() {
      return most;
    },
    restore: () => {
      fs.promises[name] = original;
    },
  };
}
