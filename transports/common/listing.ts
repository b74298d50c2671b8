// How much of a remote folder's listing a transport is willing to hold. A server decides how long
// its listing is: one that never ends it (an SFTP READDIR that never says EOF, an FTP LIST whose
// data connection keeps sending) ran the agent out of memory before any deadline fired. Every
// transport counts what it has been sent and stops at the same caps.
import { TransportError } from '../errors.js';

/**
 * Entries a listing may have. A station's exchange folder holds tens of files, an office that
 * never cleans up a few thousand; 100 000 is ~300 days of a package every five minutes, left
 * unread. Held as RemoteEntry objects, that is some tens of MB.
 */
export const LISTING_MAX_ENTRIES = 100_000;

/**
 * Bytes of listing text (LIST/MLSD lines, SFTP names and long names). At the entry cap with
 * ordinary names a listing is ~10 MB (100 bytes a line); 32 MB leaves room for long Cyrillic
 * names (two bytes a letter) and keeps a hostile listing's cost (buffers, the decoded text, the
 * parsed entries) to a few hundred MB at worst.
 */
export const LISTING_MAX_BYTES = 32 * 1024 * 1024;

export interface ListingLimits {
  entries: number;
  bytes: number;
}

export const LISTING_LIMITS: ListingLimits = { entries: LISTING_MAX_ENTRIES, bytes: LISTING_MAX_BYTES };

/**
 * Counts a listing as it arrives; `take` throws TransportError('protocol') as soon as either cap
 * is passed, so the caller stops reading (and drops what it has: nothing is received, acknowledged
 * or deleted from a listing that was refused).
 */
export class ListingBudget {
  private seenEntries = 0;
  private seenBytes = 0;

  /** `what`: whose listing of which folder, e.g. `SFTP listing of /out/azs017`. */
  constructor(
    private readonly what: string,
    private readonly limits: ListingLimits = LISTING_LIMITS,
  ) {}

  get entries(): number {
    return this.seenEntries;
  }

  get bytes(): number {
    return this.seenBytes;
  }

  take(entries: number, bytes: number): void {
    this.seenEntries += entries;
    this.seenBytes += bytes;
    if (this.seenEntries > this.limits.entries) throw this.refused(`${this.limits.entries} entries`);
    if (this.seenBytes > this.limits.bytes) throw this.refused(formatBytes(this.limits.bytes));
  }

  private refused(cap: string): TransportError {
    return new TransportError(
      'protocol',
      `${this.what} passed ${cap}: refused (a folder that large, or a listing that never ends, is not ` +
        `read; nothing was received or removed). Clear out the folder, or check the server`,
    );
  }
}

function formatBytes(n: number): string {
  const mb = n / (1024 * 1024);
  return Number.isInteger(mb) ? `${mb} MB` : `${n} bytes`;
}
