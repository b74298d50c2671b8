// An optional capability of a Source: a small entry's bytes in one buffer, taken in as few calls
// as the transport can (lan: one read of a file whose size the listing gave), instead of a stream
// with its per-chunk machinery. The pipeline uses it for entries of at most `wholeMax` bytes and
// open() for the others; a source without it (every transport but lan, a wrapper) is streamed.
// (Kept out of Source in types.ts so that wrappers built field by field stay complete.)
import type { RemoteEntry, Source } from './types.js';

export interface WholeRead {
  /** The largest entry (bytes) readWhole takes: the buffer is held in memory whole. */
  readonly wholeMax: number;
  /**
   * Exactly the entry's listed bytes, under the same rules and errors as open(): 'busy' when the
   * entry is not the listed size now (still changing), 'not-found' when it is gone, a deadline on
   * every call the transport makes.
   */
  readWhole(entry: RemoteEntry, signal: AbortSignal): Promise<Buffer>;
}

/** `source` when it reads small entries whole, else null. */
export function wholeReadOf(source: Source): (Source & WholeRead) | null {
  const s = source as Source & Partial<WholeRead>;
  return typeof s.readWhole === 'function' && typeof s.wholeMax === 'number' ? (s as Source & WholeRead) : null;
}
