// The messages between agent/check/parallel.ts and its worker thread (check-worker.ts).
import type { XmlLimits } from './limits.js';
import type { XmlCheckOptions } from './xml.js';

export type ToWorker =
  | { t: 'start'; id: number; limits: XmlLimits; opts: XmlCheckOptions }
  | { t: 'chunk'; id: number; bytes: Uint8Array }
  | { t: 'end'; id: number }
  | { t: 'drop'; id: number };

export type FromWorker =
  /** `buffer`: the chunk's memory, handed back for the next chunk */
  | { t: 'ack'; id: number; bytes: number; refused: string | null; buffer: ArrayBuffer }
  | { t: 'verdict'; id: number; verdict: string | null };
