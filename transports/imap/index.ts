// The e-mail Source: attachments of unseen messages in one IMAP mailbox (imapflow). Owns which
// attachments count as entries, the sender check, the declared SHA-256s, what "acknowledged"
// means for a message with several attachments, and the mapping of IMAP failures onto
// TransportError codes.
//
// Why it looks like this:
// - imapflow: `error`/`close` handlers go on before connect; no command is ever issued inside a
//   fetch iterator (imapflow #219, #159): the UIDs come from one SEARCH, then every message is
//   fetched with its own command, one at a time; every command runs under a deadline and a
//   connection that missed one is closed, never reused.
// - Refs carry the mailbox's UIDVALIDITY (`INBOX/<uidvalidity>/<uid>/<part>`); open and
//   acknowledge compare it with the server's before touching anything, so a recreated mailbox
//   can never make us delete or deliver some other message that now has the same UID.
// - An entry's `size` must be what open() delivers. BODYSTRUCTURE gives only the encoded size (a
//   base64 estimate is off by the line breaks and padding), so list() downloads each candidate
//   attachment once and counts the decoded bytes; open() then checks it gets exactly that many.
//   The same download gives the file name from the part's own MIME header, decoded by libmime
//   (RFC 2231 continuations and charsets, encoded-words, quoted-pairs), which does not depend on
//   how faithfully the server re-encodes parameters in BODYSTRUCTURE.
// - A message is done when every attachment the route takes from it is acknowledged: then it is
//   flagged \Seen and deleted or moved. Until then each acknowledged attachment is marked with a
//   keyword (where the mailbox allows keywords), so the next cycle does not fetch it again.
// - A message that is not delivered at all (no single clear sender, sender not in allowFrom, no
//   valid DKIM signature where the route requires one, no attachment matching the route's include,
//   over the size cap, hash headers that do not pair) is one entry for the whole message (ref
//   `.../<uid>/*`) with `refusal` set; nothing of it is downloaded (but its source for a DKIM
//   check). Acknowledging such an entry never flags or deletes: it moves the message as
//   `afterRefuse` says, or (leave) marks it with the route's refused keyword, so that the next
//   SEARCH skips it instead of fetching it again. Marks are sent in batches (one STORE for many
//   UIDs); a mark lost to a failure only means the message is listed, and found in the ledger,
//   once more. A mailbox without keywords lists refused messages every cycle (metadata only).
// - A flood costs a bounded cycle: UIDs from one SEARCH, metadata fetched FETCH_BATCH messages per
//   command, and listing stops at the route's maxPerCycle entries (oldest UIDs first).
// - The sender is read from the raw From header lines, strictly (sender.ts), not from ENVELOPE.
import type { Readable } from 'node:stream';
import type { FetchMessageObject } from 'imapflow';
import { exactLength, watched } from '../common/streams.js';
import { withDeadline } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { EmailProfile, Endpoint, RemoteEntry, Source } from '../types.js';
import { Connection } from './connection.js';
import { checkDkim, MAX_SIGNATURES, systemResolver, type DnsResolver } from './dkim.js';
import { imapError, mailboxError } from './errors.js';
import { headerValues, senderOf } from './sender.js';
import {
  ACK_KEYWORD_PREFIX,
  NO_ATTACHMENT,
  SHA256_HEADER,
  attachmentParts,
  declaredHashes,
  decodedLowerBound,
  formatRef,
  includeMatcher,
  isAckKeyword,
  label,
  noMatchReason,
  parseRef,
  partOfKeyword,
  refusedKeyword,
  sameMailbox,
  type MessageState,
  type Ref,
} from './message.js';

export { decodedLowerBound, declaredHashes, parseRef, formatRef, attachmentParts, NO_ATTACHMENT } from './message.js';
export { imapClientOptions } from './connection.js';
export { imapError } from './errors.js';
export { probeImap } from './probe.js';
export { senderOf } from './sender.js';
export type { DnsResolver } from './dkim.js';

export interface ImapSourceOptions {
  /** DNS TXT lookups for DKIM keys (tests serve keys from memory); default: the system's DNS. */
  dnsResolver?: DnsResolver;
}

/** Messages whose metadata one FETCH asks for. */
const FETCH_BATCH = 100;
/** Refused messages marked by one STORE. */
const MARK_BATCH = 100;

/** Message-size cap, as a multiple of maxSize: one attachment at maxSize is ~1.37x in base64. */
const MESSAGE_CAP_FACTOR = 2;
const MESSAGE_CAP_SLACK = 1024 * 1024;
export async function openImapSource(
  profile: EmailProfile,
  ep: Endpoint,
  signal: AbortSignal,
  opts: ImapSourceOptions = {},
): Promise<Source> {
  const server = profile.imap;
  if (!server) throw new TransportError('unsupported', `route ${ep.route}: the e-mail profile has no imap server`);
  if (!server.user) throw new TransportError('auth', `route ${ep.route}: the imap server has no user to log in as`);
  const allowFrom = new Set((ep.mail?.allowFrom ?? []).map((a) => a.trim().toLowerCase()));
  if (allowFrom.size === 0) {
    throw new TransportError('unsupported', `route ${ep.route}: allowFrom is required for e-mail in-routes`);
  }
  const mailbox = ep.remote || 'INBOX';
  const moveTo = ep.afterReceive.kind === 'move' ? ep.afterReceive.to : null;
  if (moveTo !== null && sameMailbox(moveTo, mailbox)) {
    throw new TransportError('invalid-name', `move target ${JSON.stringify(moveTo)} is the listed mailbox itself`);
  }
  // the type allows leave or move only; a caller outside the types still gets a plain refusal
  const refuseKind: string = ep.mail?.afterRefuse?.kind ?? 'leave';
  if (refuseKind !== 'leave' && refuseKind !== 'move') {
    throw new TransportError('unsupported', `route ${ep.route}: refused messages are left or moved, never deleted`);
  }
  const refuse = ep.mail?.afterRefuse;
  const refuseTo = refuse?.kind === 'move' ? refuse.to : null;
  if (refuseTo !== null && sameMailbox(refuseTo, mailbox)) {
    throw new TransportError(
      'invalid-name',
      `afterRefuse move target ${JSON.stringify(refuseTo)} is the listed mailbox itself`,
    );
  }
  const ms = ep.timeoutMs;
  const maxSize = ep.maxSize;
  const messageCap = maxSize * MESSAGE_CAP_FACTOR + MESSAGE_CAP_SLACK;
  const included = includeMatcher(ep.include);
  const where = `imap ${server.host}:${server.port}`;
  const requireAuth = ep.mail?.requireAuth;
  const resolver = opts.dnsResolver ?? systemResolver(ms);
  const maxPerCycle = ep.maxPerCycle ?? Infinity;
  const refusedMark = refusedKeyword({
    allowFrom: [...allowFrom],
    include: ep.include,
    maxSize,
    requireAuth,
  });
  const wantedHeaders = ['from', SHA256_HEADER, ...(requireAuth === 'dkim' ? ['dkim-signature'] : [])];

  const conn = new Connection(server, profile.tls, ms);
  /** A download under the idle deadline; a stalled or aborted one leaves a FETCH in flight: that connection is done for. */
  const watchedDownload = (stream: Readable, what: string, sig: AbortSignal) =>
    watched(stream, what, ms, sig, { mapError: (err) => imapError(err, what), onStall: () => conn.kill() });
  const client = conn.client;

  /** One IMAP command under the deadline; a missed deadline or abort kills the connection. */
  async function cmd<T>(what: string, sig: AbortSignal, fn: () => Promise<T>): Promise<T> {
    if (conn.closed) {
      throw new TransportError('network', `${what}: the connection to ${where} is closed`, { cause: conn.lastError });
    }
    try {
      return await withDeadline(what, ms, sig, fn);
    } catch (err) {
      if (err instanceof TransportError && (err.code === 'timeout' || err.code === 'aborted')) conn.kill();
      throw imapError(err, what);
    }
  }

  let selectedUidValidity = '';
  let keywordsAllowed = false;

  async function select(sig: AbortSignal): Promise<void> {
    let box;
    try {
      box = await cmd(`open mailbox ${mailbox}`, sig, () => client.mailboxOpen(mailbox));
    } catch (err) {
      throw mailboxError(err, mailbox);
    }
    selectedUidValidity = String(box.uidValidity);
    const permanent = box.permanentFlags;
    keywordsAllowed = !permanent || permanent.has('\\*');
  }

  /** The mailbox's UIDVALIDITY as the server says now (STATUS), not as we remember it. */
  async function currentUidValidity(sig: AbortSignal): Promise<string> {
    const st = await cmd(`status ${mailbox}`, sig, () => client.status(mailbox, { uidValidity: true }));
    if (!st || st.uidValidity === undefined) {
      throw new TransportError('protocol', `status ${mailbox}: the server did not report UIDVALIDITY`);
    }
    return String(st.uidValidity);
  }

  async function sameGeneration(ref: Ref, what: string, sig: AbortSignal): Promise<void> {
    if (!sameMailbox(ref.mailbox, mailbox)) {
      throw new TransportError('not-found', `${what}: ${ref.mailbox} is not the mailbox of this route`);
    }
    const now = await currentUidValidity(sig);
    if (now !== ref.uidValidity || now !== selectedUidValidity) {
      throw new TransportError(
        'unavailable',
        `${what}: mailbox ${mailbox} was recreated (UIDVALIDITY ${ref.uidValidity} -> ${now}); listed again next cycle`,
      );
    }
  }

  try {
    await withDeadline(`connect to ${where}`, ms * 4, signal, () => client.connect());
  } catch (err) {
    conn.kill();
    throw imapError(err, `connect to ${where}`);
  }
  try {
    await select(signal);
  } catch (err) {
    await conn.logout(ms);
    throw err;
  }

  const messages = new Map<number, MessageState>();

  /** Downloads one part to learn its decoded size and the file name from its MIME header. */
  async function measure(uid: number, part: string, sig: AbortSignal): Promise<{ size: number; name?: string } | null> {
    const what = `measure ${mailbox}/${uid}/${part}`;
    const dl = await cmd(what, sig, () =>
      client.download(String(uid), part, { uid: true, decodeText: false, maxBytes: messageCap }),
    );
    if (!dl.content) return null;
    let size = 0;
    for await (const chunk of watchedDownload(dl.content, what, sig)) size += (chunk as Buffer).length;
    return dl.meta.filename !== undefined ? { size, name: dl.meta.filename } : { size };
  }

  /** What one message gives the listing: its entries, and how much of the cycle's budget it used. */
  interface Listed {
    entries: RemoteEntry[];
    /** Counts against maxPerCycle: entries to work on, and a message put off to the next cycle. */
    cost: number;
  }

  /** Downloads the whole message (within the size cap) through the DKIM verifier. */
  async function verifyDkim(uid: number, sender: string, sig: AbortSignal) {
    const what = `DKIM check of ${mailbox}/${uid}`;
    const dl = await cmd(what, sig, () => client.download(String(uid), undefined, { uid: true, maxBytes: messageCap }));
    if (!dl.content) return null;
    const stream = watchedDownload(dl.content, what, sig);
    try {
      return await checkDkim(stream, sender, { resolver, ms, signal: sig, what });
    } finally {
      stream.destroy();
    }
  }

  async function entriesOf(msg: FetchMessageObject, uidValidity: string, sig: AbortSignal): Promise<Listed> {
    const uid = msg.uid;
    const sender = senderOf(msg.headers);
    const from = sender.address ?? '';
    const parts = attachmentParts(msg.bodyStructure);
    const ours = parts.filter((p) => included(p.name));
    const msgRef = formatRef({ mailbox, uidValidity, uid });
    const size = msg.size ?? 0;
    const subject = label(msg.envelope?.subject ?? '');
    // a refusal is listed again every cycle where it cannot be marked: then it costs the listing nothing
    const refusalCost = keywordsAllowed ? 1 : 0;
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
    if (!allowFrom.has(from)) return refuse(`sender <${from}> not allowed`);
    if (ours.length === 0) return refuse(noMatchReason(parts), subject || NO_ATTACHMENT, 0);
    if (size > messageCap) {
      return refuse(`message of ${size} bytes is larger than the limit of ${messageCap} bytes`);
    }
    const hashes = declaredHashes(msg.headers);
    if (hashes.length > 0 && hashes.length !== parts.length) {
      return refuse(
        `the message declares ${hashes.length} X-SPRelay-SHA256 value(s) for ${parts.length} attachment(s)`,
      );
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
      const verdict = await verifyDkim(uid, from, sig);
      if (verdict === null) return { entries: [], cost: 0 }; // expunged meanwhile
      if (verdict.ok === 'later') return { entries: [], cost: 1 }; // DNS did not answer: next cycle
      if (verdict.ok === false) return refuse(verdict.reason);
    }
    const flags = msg.flags ?? new Set<string>();
    const acked = new Set([...flags].filter(isAckKeyword).map(partOfKeyword));
    if (ours.every((p) => acked.has(p.part))) {
      // every attachment was taken, but the message was never filed (a failure in between)
      await finish(uid, flags, sig);
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
      };
      const atLeast = decodedLowerBound(p.encoding, p.encodedSize);
      if (atLeast > maxSize) {
        // certainly over the limit: not downloaded; the pipeline refuses it by this size
        state.parts.add(p.part);
        entries.push({ name: p.name, size: atLeast, ...base });
        continue;
      }
      const measured = await measure(uid, p.part, sig);
      if (!measured) {
        gone = true; // expunged meanwhile
        continue;
      }
      const name = measured.name ?? p.name;
      if (!included(name)) continue;
      state.parts.add(p.part);
      entries.push({ name, size: measured.size, ...base });
    }
    if (state.parts.size > 0) messages.set(uid, state);
    // every candidate's own MIME header named a file the route does not take
    else if (!gone && acked.size === 0) return refuse(noMatchReason(parts), subject || NO_ATTACHMENT, 0);
    return { entries, cost: Math.max(1, entries.length) };
  }

  async function list(sig: AbortSignal): Promise<RemoteEntry[]> {
    await flushMarks(sig);
    const uidValidity = await currentUidValidity(sig);
    if (uidValidity !== selectedUidValidity) await select(sig);
    messages.clear();
    // messages refused and recorded under these rules carry refusedMark: the server leaves them out
    const query = keywordsAllowed ? { seen: false, unKeyword: refusedMark } : { seen: false };
    const found = await cmd(`search ${mailbox}`, sig, () => client.search(query, { uid: true }));
    const uids = Array.isArray(found) ? [...found].sort((a, b) => a - b) : [];
    const entries: RemoteEntry[] = [];
    let spent = 0;
    let next = 0;
    while (next < uids.length && spent < maxPerCycle) {
      // without keywords a refusal costs nothing, so the batch cannot be sized by what is left
      const room = keywordsAllowed ? maxPerCycle - spent : FETCH_BATCH;
      const batch = uids.slice(next, next + Math.max(1, Math.min(FETCH_BATCH, room)));
      next += batch.length;
      const what = `fetch ${mailbox}/${batch[0]}${batch.length > 1 ? `..${batch.at(-1)} (${batch.length} messages)` : ''}`;
      // one command for the batch, read whole before anything else is sent (imapflow #219, #159)
      const fetched = await cmd(what, sig, () =>
        client.fetchAll(
          batch.join(','),
          { uid: true, envelope: true, bodyStructure: true, size: true, flags: true, headers: wantedHeaders },
          { uid: true },
        ),
      );
      const byUid = new Map(fetched.map((m) => [m.uid, m]));
      for (const uid of batch) {
        if (spent >= maxPerCycle) break;
        const msg = byUid.get(uid);
        if (!msg) continue; // expunged meanwhile
        const got = await entriesOf(msg, selectedUidValidity, sig);
        entries.push(...got.entries);
        spent += got.cost;
      }
    }
    return entries;
  }

  async function open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
    const ref = parseRef(entry.ref);
    const what = `read ${entry.ref}`;
    if (!ref?.part) throw new TransportError('not-found', `${what}: not an attachment of this source`);
    await sameGeneration(ref, what, sig);
    const dl = await cmd(what, sig, () =>
      client.download(String(ref.uid), ref.part, { uid: true, decodeText: false, maxBytes: entry.size + 1 }),
    );
    if (!dl.content) throw new TransportError('not-found', `${what}: the message or attachment is gone`);
    const counted = exactLength(entry.size, what);
    dl.content.on('error', (err) => counted.destroy(imapError(err, what)));
    counted.on('close', () => dl.content?.destroy());
    return watchedDownload(dl.content.pipe(counted), what, sig);
  }

  /**
   * Flags the message \Seen (dropping our keywords in the same STORE), then moves or deletes it.
   * When the move or delete fails the \Seen is taken back, so the next cycle lists the message
   * again instead of leaving it read but unfiled.
   */
  async function finish(uid: number, flags: Set<string>, sig: AbortSignal): Promise<void> {
    const at = `${mailbox}/${uid}`;
    const ours = [...flags].filter(isAckKeyword);
    if (ours.length > 0) {
      const keep = [...flags].filter((f) => !isAckKeyword(f) && f.toLowerCase() !== '\\recent');
      await cmd(`flag ${at} \\Seen`, sig, () =>
        client.messageFlagsSet(String(uid), [...keep, '\\Seen'], { uid: true }),
      );
    } else {
      await cmd(`flag ${at} \\Seen`, sig, () => client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true }));
    }
    try {
      if (moveTo === null) {
        const ok = await cmd(`delete ${at}`, sig, () => client.messageDelete(String(uid), { uid: true }));
        if (!ok) throw new TransportError('protocol', `delete ${at}: the server refused`);
        return;
      }
      await moveMessage(uid, moveTo, sig);
    } catch (err) {
      if (!flags.has('\\Seen')) {
        await cmd(`unflag ${at}`, sig, () => client.messageFlagsRemove(String(uid), ['\\Seen'], { uid: true })).catch(
          () => undefined,
        );
      }
      throw err;
    }
  }

  /** Moves one message to `target`, creating the mailbox when the server says it is missing. */
  async function moveMessage(uid: number, target: string, sig: AbortSignal): Promise<void> {
    const at = `${mailbox}/${uid}`;
    const move = () =>
      cmd(`move ${at} to ${target}`, sig, () => client.messageMove(String(uid), target, { uid: true }));
    if (await move()) return;
    // imapflow answers false (no error) when the target does not exist: create it, try again
    await cmd(`create mailbox ${target}`, sig, () => client.mailboxCreate(target)).catch(() => undefined);
    if (!(await move())) {
      throw new TransportError('unavailable', `move ${at} to ${target}: the server refused (does the mailbox exist?)`);
    }
  }

  /**
   * A refused message the pipeline has recorded, afterRefuse move: moved to that mailbox as it is
   * (its flags untouched, so it stays unseen for whoever looks at it there). Never flagged \Seen,
   * never deleted.
   */
  async function fileRefused(ref: Ref, what: string, sig: AbortSignal): Promise<void> {
    if (refuseTo === null) return;
    await sameGeneration(ref, what, sig);
    const msg = await cmd(`fetch ${mailbox}/${ref.uid}`, sig, () =>
      client.fetchOne(String(ref.uid), { uid: true }, { uid: true }),
    );
    if (!msg) return; // gone already: a repeat, or someone else took it
    await moveMessage(ref.uid, refuseTo, sig);
    messages.delete(ref.uid);
  }

  /** Refused messages recorded by the pipeline, to be marked with refusedMark (afterRefuse: leave). */
  const pendingMarks = new Set<number>();

  /**
   * afterRefuse leave: the message stays as it is (unseen, for whoever looks at the mailbox) but
   * gets refusedMark, so the next SEARCH leaves it out. Marked in batches; a mailbox without
   * keywords gets nothing (its refused messages are listed, and found in the ledger, every cycle).
   */
  async function markRefused(ref: Ref, sig: AbortSignal): Promise<void> {
    if (!keywordsAllowed || !sameMailbox(ref.mailbox, mailbox) || ref.uidValidity !== selectedUidValidity) return;
    pendingMarks.add(ref.uid);
    if (pendingMarks.size >= MARK_BATCH) await flushMarks(sig);
  }

  /** One STORE for the pending marks, only while the mailbox is still the one they were listed in. */
  async function flushMarks(sig: AbortSignal): Promise<void> {
    if (pendingMarks.size === 0) return;
    const uids = [...pendingMarks].sort((a, b) => a - b);
    pendingMarks.clear();
    if ((await currentUidValidity(sig)) !== selectedUidValidity) return; // recreated: those UIDs are not ours
    const stored = await cmd(`mark ${uids.length} refused message(s) in ${mailbox}`, sig, () =>
      client.messageFlagsAdd(uids.join(','), [refusedMark], { uid: true }),
    );
    // refused by the server although PERMANENTFLAGS said \* (imapflow answers false): no more
    // marks this session; those messages are listed, and found in the ledger, next time
    if (!stored) keywordsAllowed = false;
  }

  async function acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
    const ref = parseRef(entry.ref);
    const what = `acknowledge ${entry.ref}`;
    if (!ref) throw new TransportError('not-found', `${what}: not an entry of this source`);
    // an entry for the whole message is always a refusal (whatever the caller kept of `refusal`)
    if (!ref.part) return refuseTo === null ? markRefused(ref, sig) : fileRefused(ref, what, sig);
    await sameGeneration(ref, what, sig);
    const uid = ref.uid;
    const known = messages.get(uid);
    const msg = await cmd(`fetch ${mailbox}/${uid}`, sig, () =>
      client.fetchOne(String(uid), { uid: true, flags: true, bodyStructure: !known }, { uid: true }),
    );
    if (!msg) return; // gone already: a repeat, or someone else took it
    const flags = msg.flags ?? new Set<string>();
    const keywords = [...flags].filter(isAckKeyword);
    // Not listed by this source (a repeat after a restart): the parts come from BODYSTRUCTURE.
    const state = known ?? {
      parts: new Set(
        attachmentParts(msg.bodyStructure)
          .filter((p) => included(p.name))
          .map((p) => p.part),
      ),
      acked: new Set<string>(),
    };
    for (const k of keywords) state.acked.add(partOfKeyword(k));
    state.acked.add(ref.part);
    const pending = [...state.parts].filter((p) => !state.acked.has(p));
    if (pending.length === 0) {
      await finish(uid, flags, sig);
      messages.delete(uid);
      return;
    }
    if (keywordsAllowed) {
      const keyword = ACK_KEYWORD_PREFIX + ref.part;
      await cmd(`mark ${mailbox}/${uid} part ${ref.part} done`, sig, () =>
        client.messageFlagsAdd(String(uid), [keyword], { uid: true }),
      );
    }
  }

  return {
    atomicEntries: true,
    list,
    open,
    acknowledge,
    close: async () => {
      // the marks are a saving, not a record (the ledger is): a failure here costs one more listing
      await flushMarks(signal).catch(() => undefined);
      await conn.logout(ms);
    },
  } satisfies Source;
}
