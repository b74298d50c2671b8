// The e-mail Source: attachments of unseen messages in one IMAP mailbox (imapflow). This module
// joins the parts: the route's rules (rules.ts), the session (session.ts), list() (listing.ts),
// open() here, acknowledge() (filing.ts); and it is the IMAP side's one import for the rest of
// the program. IMAP failures become TransportError codes in errors.ts.
import { Readable } from 'node:stream';
import type { ListingLimits } from '../common/listing.js';
import { exactLength } from '../common/streams.js';
import { TransportError } from '../errors.js';
import type { EmailProfile, Endpoint, RemoteEntry, Source } from '../types.js';
import { systemResolver, type DnsResolver } from './dkim.js';
import { imapError } from './errors.js';
import { Filing } from './filing.js';
import { listMailbox } from './listing.js';
import { parseRef } from './message.js';
import { sourceRules } from './rules.js';
import { MailboxSession } from './session.js';

export {
  decodedLowerBound,
  declaredHashes,
  declaredStation,
  parseRef,
  formatRef,
  attachmentParts,
  NO_ATTACHMENT,
} from './message.js';
export { imapClientOptions } from './connection.js';
export { imapError } from './errors.js';
export { probeImap } from './probe.js';
export { senderOf } from './sender.js';
export type { DnsResolver } from './dkim.js';

/** Entries the pipeline may work on at once (route concurrency permitting): the most a route allows. */
const PARALLEL = 16;

/** A held attachment handed on in pieces of this size, as a download would come. */
const CHUNK = 64 * 1024;

function* chunksOf(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += CHUNK) yield bytes.subarray(at, at + CHUNK);
}

export interface ImapSourceOptions {
  /** DNS TXT lookups for DKIM keys (tests serve keys from memory); default: the system's DNS. */
  dnsResolver?: DnsResolver;
  /** Caps of one listing (tests use small ones); default: those of every transport (common/listing.ts). */
  listingLimits?: ListingLimits;
}

export async function openImapSource(
  profile: EmailProfile,
  ep: Endpoint,
  signal: AbortSignal,
  opts: ImapSourceOptions = {},
): Promise<Source> {
  const rules = sourceRules(profile, ep);
  const resolver = opts.dnsResolver ?? systemResolver(rules.ms);
  const box = await MailboxSession.open(rules, profile.tls, signal);
  const filing = new Filing(box, rules);
  const deps = { box, rules, filing, resolver, limits: opts.listingLimits };

  async function open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
    const ref = parseRef(entry.ref);
    const what = `read ${entry.ref}`;
    if (!ref?.part) throw new TransportError('not-found', `${what}: not an attachment of this source`);
    // fetched with its listing batch, from the generation of the mailbox the ref names: these are
    // the bytes the entry was listed with, nothing on the server is touched
    const held = box.held.take(ref.uidValidity, ref.uid, ref.part);
    if (held && held.bytes.length === entry.size) {
      if (sig.aborted) throw new TransportError('aborted', `${what}: aborted`);
      return Readable.from(chunksOf(held.bytes), { objectMode: false });
    }
    await box.sameGeneration(ref, what, sig);
    const dl = await box.cmd(what, sig, () =>
      box.client.download(String(ref.uid), ref.part, { uid: true, decodeText: false, maxBytes: entry.size + 1 }),
    );
    if (!dl.content) throw new TransportError('not-found', `${what}: the message or attachment is gone`);
    const counted = exactLength(entry.size, what);
    dl.content.on('error', (err) => counted.destroy(imapError(err, what)));
    counted.on('close', () => dl.content?.destroy());
    return box.watchedDownload(dl.content.pipe(counted), what, sig);
  }

  return {
    atomicEntries: true,
    // One connection, one command at a time (imapflow does not pipeline), so what runs in
    // parallel is: opens of attachments list() holds (no server traffic), the pipeline's disk
    // work, and acknowledgements, which are sent as one batch (filing.ts). An open that has to
    // download waits its turn on the connection; a stalled one ends the connection for all.
    parallel: PARALLEL,
    acknowledgesTogether: true,
    list: (sig) => listMailbox(deps, sig),
    open,
    acknowledge: (entry, sig) => filing.acknowledge(entry, sig),
    close: async () => {
      // the marks are a saving, not a record (the ledger is): a failure here costs one more listing
      await filing.flushMarks(signal).catch(() => undefined);
      box.held.clear();
      await box.logout();
    },
  } satisfies Source;
}
