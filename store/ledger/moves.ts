// What may be written into the ledger's history: the event names (one union, no free strings) and
// the state moves a package may make after it is inserted, one table per direction. A move that is
// not in its table is a bug in a pipeline, and `Ledger.transition` refuses it rather than record it.
import type { Direction, PackageState } from './rows.js';

export type LedgerEvent =
  // out: outbox -> spool -> sink
  /** Taken from the outbox into the spool. */
  | 'queued'
  /** A stable outbox file that is not taken (bad name, not well-formed, too large), or changed since. */
  | 'refused'
  /** Put on the remote (or the identical file was already there). */
  | 'sent'
  /** A put failed; another attempt is due later. */
  | 'failed'
  /** Given up (attempts spent, a permanent error, or the bytes are gone): waits for a person. */
  | 'dead'
  /** A put failed on a refused login or certificate: the package keeps its place and attempts. */
  | 'error'
  /** Queued again by a person (`sprelay resend`). */
  | 'resend'
  /** The office's receipt names this package (name and SHA-256): it got there. */
  | 'confirmed'
  // both
  /** Same name and bytes as a package already known (or already in the inbox): not moved again. */
  | 'duplicate'
  // in: source -> temp -> inbox -> acknowledge
  /** Written ahead of the rename into the inbox (pending_path holds the temp name). */
  | 'receiving'
  /** Renamed into the inbox. */
  | 'delivered'
  /** A not yet imported file of that name is in the inbox: left on the remote for a later cycle. */
  | 'waiting'
  /** Refused (name, size, content, sender): kept aside, never put into the inbox. */
  | 'quarantined'
  /** A crash between the ledger and the inbox rename was finished after restart. */
  | 'recovered'
  /** The remote copy was removed or moved (afterReceive / afterRefuse). */
  | 'acknowledged'
  // a person
  /** A person saw a dead/quarantined/refused package (`sprelay ack`). */
  | 'ack';

export const LEDGER_EVENTS: readonly LedgerEvent[] = [
  'queued',
  'refused',
  'sent',
  'failed',
  'dead',
  'error',
  'resend',
  'confirmed',
  'duplicate',
  'receiving',
  'delivered',
  'waiting',
  'quarantined',
  'recovered',
  'acknowledged',
  'ack',
];

type Moves = Partial<Record<PackageState, readonly PackageState[]>>;

/**
 * The legal moves, from -> to, as the pipelines make them. A state a package is inserted in
 * (duplicate, refused, quarantined, ...) and never leaves has no entry. Patches that keep the state
 * (pending_path, acked_at, stored_path, seen_at, a new last_error) are not moves: `Ledger.update`.
 */
export const LEGAL_MOVES: Record<Direction, Moves> = {
  out: {
    // sendGroup: sent, or recordFailure: failed / dead, or the bytes are gone: dead; resend of a
    // queued package starts its count again
    queued: ['sent', 'failed', 'dead', 'queued'],
    failed: ['sent', 'failed', 'dead', 'queued'],
    // resend (maintenance.ts): a person sends it again
    dead: ['queued'],
    // a receipt from the office (Ledger.confirmOut), or a person sends it again
    sent: ['queued', 'confirmed'],
    confirmed: ['queued'],
  },
  in: {
    // a waiting package fetched again once the inbox name is free (write-ahead `receiving`)
    waiting: ['delivered'],
    // the rename into the inbox found the name taken (now, or when a crash is recovered)
    delivered: ['waiting'],
  },
};

export function isLegalMove(direction: Direction, from: PackageState, to: PackageState): boolean {
  return LEGAL_MOVES[direction][from]?.includes(to) ?? false;
}

/** A pipeline asked for a move its package may not make: nothing was written. */
export class IllegalTransitionError extends Error {
  constructor(
    readonly id: number,
    readonly from: PackageState,
    readonly to: PackageState,
    why: string,
  ) {
    super(`ledger: package ${id} cannot go from ${from} to ${to}: ${why}`);
    this.name = 'IllegalTransitionError';
  }
}
