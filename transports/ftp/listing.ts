// basic-ftp's Client with its listings bounded (issue 10): a listing that never ends costs a
// 'protocol' error after the shared listing caps, not memory.
import { Writable } from 'node:stream';
import { Client, type FileInfo } from 'basic-ftp';
// Not re-exported by basic-ftp's index (the package has no exports map): what its listings use.
import { downloadTo } from 'basic-ftp/dist/transfer.js';
import { ListingBudget } from '../common/listing.js';
import { TransportError } from '../errors.js';

/**
 * basic-ftp's Client with its listings bounded. basic-ftp buffers a listing whole (up to its
 * maxListingBytes, 40 MB) and then parses every line into an object: a listing of tiny lines
 * cost ~500 MB. This one counts lines and bytes as they arrive and stops the transfer at the
 * listing caps: a listing that never ends costs a 'protocol' error after at most 32 MB.
 * `_requestListWithCommand` is basic-ftp's protected hook for how a listing is fetched; the body
 * is basic-ftp's own, with our counting writable in place of its StringWriter.
 */
export class BoundedClient extends Client {
  /** Whose listing of which folder, for the refusal; set before each list(). */
  listingOf = 'FTP listing';
  /**
   * Whether every line of the last listing became an entry (or was `.`/`..`, a `total` line, or a
   * blank): basic-ftp skips a line its parser cannot read without a word, so a listing it read only
   * in part is no proof that a name is not there.
   */
  lastListingWhole = false;

  protected override async _requestListWithCommand(command: string): Promise<FileInfo[]> {
    const text = new ListingText(new ListingBudget(this.listingOf));
    try {
      await downloadTo(text, { ftp: this.ftp, tracker: this._progressTracker, command, remotePath: '', type: 'list' });
    } catch (err) {
      // basic-ftp appends " (data socket)" to the error the data socket was destroyed with
      if (text.refusal) throw new TransportError('protocol', text.refusal);
      throw err;
    }
    const raw = text.text(this.ftp.encoding);
    const entries = this.parseList(raw);
    const lines = raw.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('total'));
    const dots = lines.filter((l) => /(^|[\s;])\.\.?$/.test(l.trimEnd()) || /type=[cp]dir;/i.test(l)).length;
    this.lastListingWhole = entries.length + dots >= lines.length;
    return entries;
  }
}

/** Collects a listing's bytes, each chunk counted first (lines as entries) against the budget. */
class ListingText extends Writable {
  private readonly chunks: Buffer[] = [];
  /** Why the listing was refused (the message as written), once it was. */
  refusal: string | undefined;

  constructor(private readonly budget: ListingBudget) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let lines = 0;
    for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) lines++;
    try {
      this.budget.take(lines, chunk.length);
    } catch (err) {
      this.refusal = (err as Error).message;
      this.chunks.length = 0;
      cb(err as Error);
      return;
    }
    this.chunks.push(chunk);
    cb();
  }

  text(encoding: BufferEncoding | undefined): string {
    return Buffer.concat(this.chunks).toString(encoding);
  }
}
