// What list() makes of the mailbox: which unseen messages are looked at (and how many per cycle),
// the sender check, the DKIM check, the declared SHA-256s, the refused entries, and the decoded
// size and MIME-header name of each attachment taken.
//
// Why it looks like this:
// - An entry's `size` must be what open() delivers. BODYSTRUCTURE gives only the encoded size (a
//   base64 estimate is off by the line breaks and padding), so list() fetches the attachments of
//   each metadata batch together (prefetch.ts), counts the decoded bytes and holds them for
//   open(): each attachment crosses the wire once. A part too large to hold, or beyond what the
//   session holds, is downloaded here to be counted and again by open(), which checks it gets
//   exactly that many. Either way the file name comes from the part's own MIME header, decoded
//   by libmime (RFC 2231 continuations and charsets, encoded-words, quoted-pairs), which does not
//   depend on how faithfully the server re-encodes parameters in BODYSTRUCTURE.
// - A message that is not delivered at all (no single clear sender, sender not in allowFrom, no
//   valid DKIM signature where the route requires one, no attachment matching the route's include,
//   over the size cap, hash headers that do not pair) is one entry for the whole message (ref
//   `.../<uid>/*`) with `refusal` set; nothing of it is downloaded (but its source for a DKIM
//   check). Messages refused and recorded under the route's rules carry its refused-mark, which
//   the SEARCH leaves out.
// - A flood costs a bounded cycle: UIDs from one SEARCH, metadata fetched FETCH_BATCH messages per
//   command, listing stops at the route's maxPerCycle entries (oldest UIDs first), and what one
//   list() holds is capped like every remote listing (ListingBudget): a mailbox without keywords,
//   where refusals cost the cycle nothing and are listed every time, cannot grow it without end.
// - The sender is read from the raw From header lines, strictly (sender.ts), not from ENVELOPE.
import type { FetchMessageObject } from 'imapflow';
import { ListingBudget, type ListingLimits } from '../common/listing.js';
import type { RemoteEntry } from '../types.js';
import { checkDkim, MAX_SIGNATURES, type DnsResolver } from './dkim.js';
import type { Filing } from './filing.js';
import {
  NO_ATTACHMENT,
  type AttachmentPart,
  attachmentParts,
  declaredHashes,
  declaredStation,
  decodedLowerBound,
  formatRef,
  isAckKeyword,
  label,
  noMatchReason,
  partOfKeyword,
  type MessageState,
} from './message.js';
import { prefetchParts, type Wanted } from './prefetch.js';
import { senderAllowed, type SourceRules } from './rules.js';
import { headerValues, senderOf } from './sender.js';
import type { MailboxSession } from './session.js';

/** Messages whose metadata one FETCH asks for. */
const FETCH_BATCH = 100;

/** What one message gives the listing: its entries, and how much of the cycle's budget it used. */
interface Listed {
  entries: RemoteEntry[];
  /** Counts against maxPerCycle: entries to work on, and a message put off to the next cycle. */
  cost: number;
}

export interface ListingDeps {
  box: MailboxSession;
  rules: SourceRules;
  /** Files a message whose attachments were all taken but which was never filed. */
  filing: Filing;
  resolver: DnsResolver;
  /** Caps of one list() (default: those of every transport, common/listing.ts). */
  limits?: ListingLimits | undefined;
}

export async function listMailbox(deps: ListingDeps, sig: AbortSignal): Promise<RemoteEntry[]> {
  const { box, rules, filing } = deps;
  const { mailbox, maxPerCycle } = rules;
  await filing.flushMarks(sig);
  // the mailbox's generation as the server says now: from the SELECT when that was the last
  // command (the first listing of a session), else asked (STATUS)
  if (!box.justSelected && (await box.currentUidValidity(sig)) !== box.selectedUidValidity) await box.select(sig);
  box.messages.clear();
  box.held.clear(box.selectedUidValidity);
  // messages refused and recorded under these rules carry refusedMark: the server leaves them out
  const query = box.keywordsAllowed ? { seen: false, unKeyword: rules.refusedMark } : { seen: false };
  const found = await box.cmd(`search ${mailbox}`, sig, () => box.client.search(query, { uid: true }));
  const uids = Array.isArray(found) ? [...found].sort((a, b) => a - b) : [];
  const budget = new ListingBudget(
    `IMAP listing of mailbox ${mailbox} on ${rules.where}` +
      (box.keywordsAllowed ? '' : ' (the mailbox takes no keywords: its refused messages are listed every cycle)'),
    ...(deps.limits ? [deps.limits] : []),
  );
  const entries: RemoteEntry[] = [];
  let spent = 0;
  let next = 0;
  while (next < uids.length && spent < maxPerCycle) {
    // without keywords a refusal costs nothing, so the batch cannot be sized by what is left
    const room = box.keywordsAllowed ? maxPerCycle - spent : FETCH_BATCH;
    const batch = uids.slice(next, next + Math.max(1, Math.min(FETCH_BATCH, room)));
    next += batch.length;
    const what = `fetch ${mailbox}/${batch[0]}${batch.length > 1 ? `..${batch.at(-1)} (${batch.length} messages)` : ''}`;
    // one command for the batch, read whole before anything else is sent (imapflow #219, #159);
    // what it carried in what time is the first measure of the link (prefetch.ts)
    const readBefore = box.client.stats().received;
    const started = performance.now();
    const fetched = await box.cmd(what, sig, () =>
      box.client.fetchAll(
        batch.join(','),
        { uid: true, envelope: true, bodyStructure: true, size: true, flags: true, headers: rules.wantedHeaders },
        { uid: true },
      ),
    );
    const link = { bytes: box.client.stats().received - readBefore, ms: performance.now() - started };
    const byUid = new Map(fetched.map((m) => [m.uid, m]));
    // every attachment list() will measure in this batch, fetched together and held for open()
    if (rules.requireAuth !== 'dkim') {
      const wanted: Wanted[] = [];
      for (const uid of batch) {
        const msg = byUid.get(uid);
        if (!msg || wanted.length >= maxPerCycle - spent) continue;
        const screened = screen(deps, msg, box.selectedUidValidity);
        if ('entries' in screened) continue;
        const parts = toMeasure(rules, msg, screened);
        if (parts.length > 0) wanted.push({ uid, parts });
      }
      await prefetchParts(box, rules, wanted, sig, link);
    }
    for (const uid of batch) {
      if (spent >= maxPerCycle) break;
      const msg = byUid.get(uid);
      if (!msg) continue; // expunged meanwhile
      const got = await entriesOf(deps, msg, box.selectedUidValidity, sig);
      budget.take(
        got.entries.length,
        got.entries.reduce((n, e) => n + entryBytes(e), 0),
      );
      entries.push(...got.entries);
      spent += got.cost;
    }
  }
  return entries;
}

/** The text an entry holds, in bytes (what the listing cap counts). */
function entryBytes(e: RemoteEntry): number {
  const texts = [e.name, e.ref, e.refusal, e.origin, e.expectedSha256, e.station];
  return texts.reduce((n, t) => n + (t ? Buffer.byteLength(t) : 0), 0);
}

/** A message that passed every check needing no download: what the rest of the listing needs of it. */
interface Screened {
  uid: number;
  from: string;
  /** The sending station (see screen). */
  station?: string;
  parts: AttachmentPart[];
  ours: AttachmentPart[];
  hashes: string[];
  msgRef: string;
  refuse: (reason: string, name?: string, n?: number) => Listed;
}

/** The checks that need no download: a refusal (or nothing), or what the listing goes on with. */
function screen(deps: ListingDeps, msg: FetchMessageObject, uidValidity: string): Listed | Screened {
  const { box, rules } = deps;
  const { mailbox, messageCap, included, requireAuth } = rules;
  const uid = msg.uid;
  const sender = senderOf(msg.headers);
  const from = sender.address ?? '';
  const parts = attachmentParts(msg.bodyStructure);
  const ours = parts.filter((p) => included(p.name));
  const msgRef = formatRef({ mailbox, uidValidity, uid });
  const size = msg.size ?? 0;
  const subject = label(msg.envelope?.subject ?? '');
  // a refusal is listed again every cycle where it cannot be marked: then it costs the listing nothing
  const refusalCost = box.keywordsAllowed ? 1 : 0;
  const refuse = (reason: string, name = ours[0]?.name ?? (subject || NO_ATTACHMENT), n = size): Listed => ({
    entries: [{ name, size: n, ref: msgRef, refusal: reason, ...(from ? { origin: from } : {}) }],
    cost: refusalCost,
  });
  if ('reason' in sender) return refuse(`sender not accepted: ${sender.reason}`);
  // the server's own reading of the From header must agree with ours (a parser differential is a forgery)
  const envelope = (msg.envelope?.from ?? []).map((a) => (a.address ?? '').trim().toLowerCase());
  if (envelope.length > 0 && (envelope.length !== 1 || envelope[0] !== from)) {
    return refuse(`sender not accepted: the server reads From as <${envelope.join('>, <')}>, not <${from}>`);
  }
  const allowed = senderAllowed(rules, from);
  if (!allowed) return refuse(`sender <${from}> not allowed`);
  // the station: the one its address is (a {station} pattern), checked against the one the
  // message names (X-SPRelay-Station); else the one the message names, unchecked
  const named = declaredStation(msg.headers);
  if (allowed.station !== undefined && named !== undefined && named.toLowerCase() !== allowed.station)
    return refuse(
      `the message says it is from station ${named}, but <${from}> is the address of station ${allowed.station}`,
    );
  const station = named ?? allowed.station;
  if (ours.length === 0) return refuse(noMatchReason(parts), subject || NO_ATTACHMENT, 0);
  if (size > messageCap) {
    return refuse(`message of ${size} bytes is larger than the limit of ${messageCap} bytes`);
  }
  const hashes = declaredHashes(msg.headers);
  if (hashes.length > 0 && hashes.length !== parts.length) {
    return refuse(`the message declares ${hashes.length} X-SPRelay-SHA256 value(s) for ${parts.length} attachment(s)`);
  }
  if (requireAuth === 'dkim') {
    const signatures = headerValues(msg.headers, 'dkim-signature');
    if (signatures.length === 0) return refuse('no DKIM signature (requireAuth: dkim)');
    if (signatures.length > MAX_SIGNATURES) {
      return refuse(`${signatures.length} DKIM signatures (at most ${MAX_SIGNATURES} are checked)`);
    }
    // l=: the signature covers only the first bytes of the body; anything after them (an
    // attachment) is anyone's. Refused outright, before any download.
    if (signatures.some((v) => /(^|;)\s*l\s*=/i.test(v))) {
      return refuse('a DKIM signature covers only part of the body (l= tag): not accepted');
    }
  }
  return { uid, from, parts, ours, hashes, msgRef, refuse, ...(station !== undefined ? { station } : {}) };
}

/** The parts of a screened message list() will measure: not acknowledged, not certainly too large. */
function toMeasure(rules: SourceRules, msg: FetchMessageObject, s: Screened): AttachmentPart[] {
  const acked = new Set([...(msg.flags ?? [])].filter(isAckKeyword).map(partOfKeyword));
  if (s.ours.every((p) => acked.has(p.part))) return [];
  return s.ours.filter((p) => !acked.has(p.part) && decodedLowerBound(p.encoding, p.encodedSize) <= rules.maxSize);
}

async function entriesOf(
  deps: ListingDeps,
  msg: FetchMessageObject,
  uidValidity: string,
  sig: AbortSignal,
): Promise<Listed> {
  const { box, rules } = deps;
  const { mailbox, maxSize, included, requireAuth } = rules;
  const screened = screen(deps, msg, uidValidity);
  if ('entries' in screened) return screened;
  const { uid, from, parts, ours, hashes, refuse, station } = screened;
  const subject = label(msg.envelope?.subject ?? '');
  if (requireAuth === 'dkim') {
    const verdict = await verifyDkim(deps, uid, from, sig);
    if (verdict === null) return { entries: [], cost: 0 }; // expunged meanwhile
    if (verdict.ok === 'later') return { entries: [], cost: 1 }; // DNS did not answer: next cycle
    if (verdict.ok === false) return refuse(verdict.reason);
  }
  const flags = msg.flags ?? new Set<string>();
  const acked = new Set([...flags].filter(isAckKeyword).map(partOfKeyword));
  if (ours.every((p) => acked.has(p.part))) {
    // every attachment was taken, but the message was never filed (a failure in between)
    await deps.filing.finish(uid, flags, sig);
    return { entries: [], cost: 1 };
  }
  const state: MessageState = { parts: new Set(), acked };
  const entries: RemoteEntry[] = [];
  let gone = false;
  for (const p of ours) {
    if (acked.has(p.part)) {
      state.parts.add(p.part);
      continue;
    }
    const declared = hashes[parts.indexOf(p)];
    const base = {
      ref: formatRef({ mailbox, uidValidity, uid, part: p.part }),
      origin: from,
      ...(declared ? { expectedSha256: declared } : {}),
      ...(station ? { station } : {}),
    };
    const atLeast = decodedLowerBound(p.encoding, p.encodedSize);
    if (atLeast > maxSize) {
      // certainly over the limit: not downloaded; the pipeline refuses it by this size
      state.parts.add(p.part);
      entries.push({ name: p.name, size: atLeast, ...base });
      continue;
    }
    const measured = await measure(deps, uid, p.part, sig);
    if (!measured) {
      gone = true; // expunged meanwhile
      continue;
    }
    const name = measured.name ?? p.name;
    if (!included(name)) continue;
    state.parts.add(p.part);
    entries.push({ name, size: measured.size, ...base });
  }
  if (state.parts.size > 0) box.messages.set(uid, state);
  // every candidate's own MIME header named a file the route does not take
  else if (!gone && acked.size === 0) return refuse(noMatchReason(parts), subject || NO_ATTACHMENT, 0);
  return { entries, cost: Math.max(1, entries.length) };
}

/**
 * The decoded size of one part and the file name from its MIME header: from the part held since
 * its batch was fetched (prefetch.ts), else downloaded to learn them.
 */
async function measure(
  { box, rules }: ListingDeps,
  uid: number,
  part: string,
  sig: AbortSignal,
): Promise<{ size: number; name?: string } | null> {
  const held = box.held.peek(uid, part);
  if (held) return held.name !== undefined ? { size: held.bytes.length, name: held.name } : { size: held.bytes.length };
  const what = `measure ${rules.mailbox}/${uid}/${part}`;
  const dl = await box.cmd(what, sig, () =>
    box.client.download(String(uid), part, { uid: true, decodeText: false, maxBytes: rules.messageCap }),
  );
  if (!dl.content) return null;
  let size = 0;
  for await (const chunk of box.watchedDownload(dl.content, what, sig)) size += (chunk as Buffer).length;
  return dl.meta.filename !== undefined ? { size, name: dl.meta.filename } : { size };
}

/** Downloads the whole message (within the size cap) through the DKIM verifier. */
async function verifyDkim({ box, rules, resolver }: ListingDeps, uid: number, sender: string, sig: AbortSignal) {
  const what = `DKIM check of ${rules.mailbox}/${uid}`;
  const dl = await box.cmd(what, sig, () =>
    box.client.download(String(uid), undefined, { uid: true, maxBytes: rules.messageCap }),
  );
  if (!dl.content) return null;
  const stream = box.watchedDownload(dl.content, what, sig);
  try {
    return await checkDkim(stream, sender, { resolver, ms: rules.ms, signal: sig, what });
  } finally {
    stream.destroy();
  }
}
