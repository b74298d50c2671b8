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
// - A message that is not delivered at all (sender not in allowFrom, no attachment matching the
//   route's include, over the size cap, hash headers that do not pair) is one entry for the whole
//   message (ref `.../<uid>/*`) with `refusal` set; nothing of it is downloaded. Acknowledging such
//   an entry never flags or deletes: it moves the message as `afterRefuse` says, or leaves it.
import { Transform, type Readable } from 'node:stream';
import { ImapFlow, type FetchMessageObject, type MessageStructureObject } from 'imapflow';
import { isRemotePackage } from './include.js';
import { IdleWatch, withDeadline } from './deadline.js';
import {
  LOGIN_REFUSED,
  TransportError,
  errnoCode,
  fromSystemError,
  isAbortError,
  tlsWords,
  type TransportErrorCode,
} from './errors.js';
import { isTlsErrorCode } from './smtp.js';
import type { EmailProfile, Endpoint, MailServer, ProbeStep, RemoteEntry, Source, TlsOptions } from './types.js';

/** What the contract gives when a route says nothing (an Endpoint built without maxSize). */
const DEFAULT_MAX_SIZE = 50 * 1024 * 1024;
/** Message-size cap, as a multiple of maxSize: one attachment at maxSize is ~1.37x in base64. */
const MESSAGE_CAP_FACTOR = 2;
const MESSAGE_CAP_SLACK = 1024 * 1024;
/** Keyword marking one acknowledged attachment of a message that is not done yet. */
const ACK_KEYWORD_PREFIX = '$sprelay-ack-';
const SHA256_HEADER = 'x-sprelay-sha256';
/** How much of a subject or an attachment list a refused entry carries into the ledger. */
const LABEL_MAX = 160;

interface Ref {
  mailbox: string;
  uidValidity: string;
  uid: number;
  /** Body part ('2', '1.2'); absent for an entry that stands for the whole message (a refusal). */
  part?: string;
}

/** What list() learnt about one message: which parts are entries, which are acknowledged. */
interface MessageState {
  parts: Set<string>;
  acked: Set<string>;
}

interface AttachmentPart {
  part: string;
  name: string;
  encoding: string;
  encodedSize: number;
}

export function imapClientOptions(server: MailServer, tls: TlsOptions, ms: number) {
  return {
    host: server.host,
    port: server.port,
    secure: server.security === 'tls',
    // starttls: required (imapflow fails when the server does not offer it); none: never tried.
    // Left unset, imapflow would fall back to plaintext silently when STARTTLS is not offered.
    ...(server.security === 'tls' ? {} : { doSTARTTLS: server.security === 'starttls' }),
    ...(server.user ? { auth: { user: server.user, pass: server.password ?? '' } } : {}),
    tls: { rejectUnauthorized: tls.rejectUnauthorized, ...(tls.ca ? { ca: tls.ca } : {}) },
    logger: false as const,
    disableAutoIdle: true,
    connectionTimeout: ms,
    greetingTimeout: ms,
    // our own deadlines guard every command; this only reaps a connection idle between commands
    // (while the pipeline checks a large file), so it must not be shorter than that can take
    socketTimeout: Math.max(ms, 5 * 60_000),
    clientInfo: { name: 'sprelay' },
  };
}

/** A connected, logged-in client whose failures are remembered instead of thrown at nobody. */
class Connection {
  readonly client: ImapFlow;
  closed = false;
  lastError: Error | undefined;

  constructor(server: MailServer, tls: TlsOptions, ms: number) {
    this.client = new ImapFlow(imapClientOptions(server, tls, ms));
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.client.on('close', () => {
      this.closed = true;
    });
  }

  /** Drops the connection without a word to the server (after a deadline was missed). */
  kill(): void {
    this.closed = true;
    try {
      this.client.close();
    } catch {
      // already gone
    }
  }

  async logout(ms: number): Promise<void> {
    if (this.closed) return;
    try {
      await withDeadline('imap logout', ms, new AbortController().signal, () => this.client.logout());
    } catch {
      // the connection goes either way
    } finally {
      this.kill();
    }
  }
}

export async function openImapSource(profile: EmailProfile, ep: Endpoint, signal: AbortSignal): Promise<Source> {
  const server = profile.imap;
  if (!server) throw new TransportError('unsupported', `route ${ep.route}: the e-mail profile has no imap server`);
  if (!server.user) throw new TransportError('auth', `route ${ep.route}: the imap server has no user to log in as`);
  const allowFrom = new Set((ep.allowFrom ?? []).map((a) => a.trim().toLowerCase()));
  if (allowFrom.size === 0) {
    throw new TransportError('unsupported', `route ${ep.route}: allowFrom is required for e-mail in-routes`);
  }
  const mailbox = ep.remote || 'INBOX';
  const moveTo = ep.afterReceive.kind === 'move' ? ep.afterReceive.to : null;
  if (moveTo !== null && sameMailbox(moveTo, mailbox)) {
    throw new TransportError('invalid-name', `move target ${JSON.stringify(moveTo)} is the listed mailbox itself`);
  }
  if (ep.afterRefuse?.kind === 'delete') {
    throw new TransportError('unsupported', `route ${ep.route}: refused messages are left or moved, never deleted`);
  }
  const refuseTo = ep.afterRefuse?.kind === 'move' ? ep.afterRefuse.to : null;
  if (refuseTo !== null && sameMailbox(refuseTo, mailbox)) {
    throw new TransportError(
      'invalid-name',
      `afterRefuse move target ${JSON.stringify(refuseTo)} is the listed mailbox itself`,
    );
  }
  const ms = ep.timeoutMs;
  // Without the route's maxSize (an Endpoint built without it) nothing is refused by a size
  // estimate: the pipeline compares the measured size with its own limit.
  const knownMaxSize = ep.maxSize;
  const messageCap = (knownMaxSize ?? DEFAULT_MAX_SIZE) * MESSAGE_CAP_FACTOR + MESSAGE_CAP_SLACK;
  const included = includeMatcher(ep.include);
  const where = `imap ${server.host}:${server.port}`;

  const conn = new Connection(server, profile.tls, ms);
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
    for await (const chunk of watched(dl.content, what, ms, sig, () => conn.kill())) size += (chunk as Buffer).length;
    return dl.meta.filename !== undefined ? { size, name: dl.meta.filename } : { size };
  }

  async function entriesOf(msg: FetchMessageObject, uidValidity: string, sig: AbortSignal): Promise<RemoteEntry[]> {
    const uid = msg.uid;
    const from = (msg.envelope?.from?.[0]?.address ?? '').trim().toLowerCase();
    const parts = attachmentParts(msg.bodyStructure);
    const ours = parts.filter((p) => included(p.name));
    const msgRef = formatRef({ mailbox, uidValidity, uid });
    const size = msg.size ?? 0;
    const subject = label(msg.envelope?.subject ?? '');
    const refuse = (reason: string, name = ours[0]?.name ?? (subject || NO_ATTACHMENT), n = size): RemoteEntry[] => [
      { name, size: n, ref: msgRef, refusal: reason, ...(from ? { origin: from } : {}) },
    ];
    if (!from || !allowFrom.has(from)) return refuse(`sender <${from || 'unknown'}> not allowed`);
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
    const flags = msg.flags ?? new Set<string>();
    const acked = new Set([...flags].filter(isAckKeyword).map(partOfKeyword));
    if (ours.every((p) => acked.has(p.part))) {
      // every attachment was taken, but the message was never filed (a failure in between)
      await finish(uid, flags, sig);
      return [];
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
      if (knownMaxSize !== undefined && atLeast > knownMaxSize) {
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
    return entries;
  }

  async function list(sig: AbortSignal): Promise<RemoteEntry[]> {
    const uidValidity = await currentUidValidity(sig);
    if (uidValidity !== selectedUidValidity) await select(sig);
    messages.clear();
    const found = await cmd(`search ${mailbox}`, sig, () => client.search({ seen: false }, { uid: true }));
    const uids = Array.isArray(found) ? [...found].sort((a, b) => a - b) : [];
    const entries: RemoteEntry[] = [];
    for (const uid of uids) {
      const msg = await cmd(`fetch ${mailbox}/${uid}`, sig, () =>
        client.fetchOne(
          String(uid),
          { uid: true, envelope: true, bodyStructure: true, size: true, flags: true, headers: [SHA256_HEADER] },
          { uid: true },
        ),
      );
      if (!msg) continue; // expunged meanwhile
      entries.push(...(await entriesOf(msg, selectedUidValidity, sig)));
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
    const stream = watched(dl.content.pipe(counted), what, ms, sig, () => conn.kill());
    // the reader gets errors through its pipeline; this only keeps an unread stream from crashing us
    stream.on('error', () => undefined);
    return stream;
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
   * A refused message the pipeline has recorded: moved to the afterRefuse mailbox as it is (its
   * flags untouched, so it stays unseen for whoever looks at it there), or left alone. Never
   * flagged \Seen, never deleted.
   */
  async function fileRefused(ref: Ref, what: string, sig: AbortSignal): Promise<void> {
    if (refuseTo === null) return; // afterRefuse: leave
    await sameGeneration(ref, what, sig);
    const msg = await cmd(`fetch ${mailbox}/${ref.uid}`, sig, () =>
      client.fetchOne(String(ref.uid), { uid: true }, { uid: true }),
    );
    if (!msg) return; // gone already: a repeat, or someone else took it
    await moveMessage(ref.uid, refuseTo, sig);
    messages.delete(ref.uid);
  }

  async function acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
    const ref = parseRef(entry.ref);
    const what = `acknowledge ${entry.ref}`;
    if (!ref) throw new TransportError('not-found', `${what}: not an entry of this source`);
    // an entry for the whole message is always a refusal (whatever the caller kept of `refusal`)
    if (!ref.part) return fileRefused(ref, what, sig);
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
    close: () => conn.logout(ms),
  } satisfies Source;
}

// ---- message structure ---------------------------------------------------------------------------

/** Leaf parts that carry a file name, in message order; a forwarded message is not looked into. */
export function attachmentParts(root: MessageStructureObject | undefined): AttachmentPart[] {
  const out: AttachmentPart[] = [];
  const walk = (node: MessageStructureObject) => {
    if (node.childNodes && node.childNodes.length > 0) {
      if (node.type.toLowerCase() === 'message/rfc822') return;
      for (const child of node.childNodes) walk(child);
      return;
    }
    const name = node.dispositionParameters?.filename ?? node.parameters?.name;
    if (name === undefined || name === '') return;
    out.push({
      part: node.part ?? '1',
      name,
      encoding: (node.encoding ?? '7bit').toLowerCase(),
      encodedSize: node.size ?? 0,
    });
  };
  if (root) walk(root);
  return out;
}

/** The name of a refused entry for a message without subject and without a matching attachment. */
export const NO_ATTACHMENT = '(no attachment)';

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]+/g;

/** Subject or file names as one line of printable text, cut to a length a ledger line can show. */
function label(text: string): string {
  const flat = text.replace(CONTROL_RE, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > LABEL_MAX ? `${flat.slice(0, LABEL_MAX - 3)}...` : flat;
}

/** Why a message from an allowed sender gives the route nothing. */
function noMatchReason(parts: AttachmentPart[]): string {
  if (parts.length === 0) return 'no attachment in the message; nothing delivered';
  return `no attachment matching the route's include (attached: ${label(parts.map((p) => p.name).join(', '))}); nothing delivered`;
}

/** The X-SPRelay-SHA256 values, one per attachment in order (lower-case). */
export function declaredHashes(headers: Buffer | undefined): string[] {
  if (!headers) return [];
  const unfolded = headers.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const out: string[] = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const m = /^x-sprelay-sha256\s*:\s*(.*)$/i.exec(line);
    if (m) out.push(m[1]!.trim().toLowerCase());
  }
  return out;
}

/**
 * A number of decoded bytes the part certainly has at least. Only used to refuse a part without
 * downloading it; never given to open(). base64: 4 characters -> 3 bytes, assuming lines of at
 * least 40 characters (RFC 2045 writes 76; only a mailer with shorter lines could make the bound
 * too high); quoted-printable: at most 4 characters per byte with soft line breaks; anything else:
 * CRLF may stand for LF.
 */
export function decodedLowerBound(encoding: string, encodedSize: number): number {
  if (encoding === 'base64') return Math.max(0, Math.floor(((encodedSize * 40) / 42) * 0.75) - 4);
  if (encoding === 'quoted-printable') return Math.floor(encodedSize / 4);
  return Math.floor(encodedSize / 2);
}

function isAckKeyword(flag: string): boolean {
  return flag.toLowerCase().startsWith(ACK_KEYWORD_PREFIX);
}

function partOfKeyword(flag: string): string {
  return flag.slice(ACK_KEYWORD_PREFIX.length);
}

// ---- refs and names -------------------------------------------------------------------------------

/** `INBOX/<uidvalidity>/<uid>/<part>`, or `.../<uid>/*` for an entry standing for the whole message. */
export function formatRef(ref: Ref): string {
  return `${ref.mailbox}/${ref.uidValidity}/${ref.uid}/${ref.part ?? '*'}`;
}

/** Parsed from the right: the mailbox name may itself contain the hierarchy delimiter. */
export function parseRef(text: string): Ref | null {
  const m = /^(.+)\/(\d+)\/(\d+)\/(\*|\d+(?:\.\d+)*)$/.exec(text);
  if (!m) return null;
  return { mailbox: m[1]!, uidValidity: m[2]!, uid: Number(m[3]), ...(m[4] !== '*' ? { part: m[4]! } : {}) };
}

function sameMailbox(a: string, b: string): boolean {
  const norm = (s: string) => (s.toUpperCase() === 'INBOX' ? 'INBOX' : s);
  return norm(a) === norm(b);
}

/** The pipeline's include rule (transports/include.ts): the same names, or a message never finishes. */
function includeMatcher(patterns: string[]): (name: string) => boolean {
  return (name) => isRemotePackage(name, patterns);
}

// ---- streams --------------------------------------------------------------------------------------

function watched(source: Readable, what: string, ms: number, signal: AbortSignal, onStall: () => void): Readable {
  const watch = new IdleWatch(what, ms, signal);
  source.on('error', (err) => watch.destroy(imapError(err, what)));
  watch.on('error', (err) => {
    // a stalled or aborted download leaves a FETCH in flight: that connection is done for
    if (err instanceof TransportError && (err.code === 'timeout' || err.code === 'aborted')) onStall();
  });
  watch.on('close', () => source.destroy());
  source.pipe(watch);
  return watch;
}

/** Exactly `expected` bytes or an error: a short or long part is never delivered as whole. */
function exactLength(expected: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > expected) cb(new TransportError('corrupt', `${what}: more than the ${expected} bytes listed`));
      else cb(null, chunk);
    },
    flush(cb) {
      if (seen !== expected) cb(new TransportError('corrupt', `${what}: ${seen} bytes read, ${expected} listed`));
      else cb();
    },
  });
}

// ---- errors ---------------------------------------------------------------------------------------

interface ImapFailure {
  code?: string;
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  serverResponseCode?: string;
  responseStatus?: string;
  responseText?: string;
  mailboxMissing?: boolean;
}

const IMAPFLOW_CODES: Record<string, TransportErrorCode> = {
  CONNECT_TIMEOUT: 'timeout',
  GREETING_TIMEOUT: 'timeout',
  UPGRADE_TIMEOUT: 'timeout',
  ETIMEOUT: 'timeout',
  NoConnection: 'network',
  EConnectionClosed: 'network',
  ClosedAfterConnectText: 'network',
  ClosedAfterConnectTLS: 'network',
  StateLogout: 'network',
  ETHROTTLE: 'unavailable',
  DownloadIncomplete: 'not-found',
  DownloadOverflow: 'protocol',
  LineTooLarge: 'protocol',
  LiteralTooLarge: 'protocol',
  ResponseTooLarge: 'protocol',
  TooManyTokens: 'protocol',
  TooManyResponses: 'protocol',
  STARTTLS_INJECTION: 'tls',
  NoMailboxSelected: 'protocol',
};

/** Maps an imapflow failure onto a TransportError. Server text is kept; credentials never appear. */
export function imapError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  const e = (err && typeof err === 'object' ? err : {}) as ImapFailure;
  const detail = [err instanceof Error ? err.message : String(err), e.responseText].filter(Boolean).join(': ');
  const make = (code: TransportErrorCode, text: string) => new TransportError(code, `${what}: ${text}`, { cause: err });
  const response = e.serverResponseCode?.toUpperCase();
  if (e.authenticationFailed || response === 'AUTHENTICATIONFAILED' || response === 'AUTHORIZATIONFAILED') {
    return make('auth', `${LOGIN_REFUSED}: ${detail}`);
  }
  if (e.tlsFailed || isTlsErrorCode(e.code)) return make('tls', `${tlsWords(e.code ?? errnoCode(err))}: ${detail}`);
  if (response === 'UNAVAILABLE' || response === 'INUSE' || response === 'LIMIT') {
    return make('unavailable', `the server is not available right now: ${detail}`);
  }
  if (e.code && IMAPFLOW_CODES[e.code]) return make(IMAPFLOW_CODES[e.code]!, detail);
  if (e.code?.startsWith('ParserError')) return make('protocol', detail);
  if (errnoCode(err) && /^E[A-Z]+$/.test(errnoCode(err)!)) return fromSystemError(err, what);
  if (e.responseStatus === 'NO' || e.responseStatus === 'BAD') {
    return make('protocol', `the server answered ${e.responseStatus}: ${detail}`);
  }
  return make('network', detail);
}

/** A mailbox that cannot be selected: it may be created later, or the server is struggling. */
function mailboxError(err: unknown, mailbox: string): TransportError {
  const e = err instanceof TransportError ? err : imapError(err, `open mailbox ${mailbox}`);
  if (e.code !== 'protocol') return e;
  return new TransportError('unavailable', `mailbox ${mailbox} cannot be opened: ${e.message}`, { cause: err });
}

// ---- probe ----------------------------------------------------------------------------------------

/** `sprelay check` for an in-route: connect, TLS, log in, open the mailbox, the move target. */
export async function probeImap(profile: EmailProfile, ep: Endpoint, signal: AbortSignal): Promise<ProbeStep[]> {
  const server = profile.imap;
  if (!server)
    return [{ step: 'imap server', ok: false, detail: 'the e-mail profile has no imap server', code: 'unsupported' }];
  const ms = ep.timeoutMs;
  const where = `${server.host}:${server.port}`;
  const connectStep = `connect to imap ${where}`;
  const tlsStep = server.security === 'none' ? 'TLS: none (security: none)' : `TLS (${server.security})`;
  const loginStep = `log in as ${server.user ?? '(no user configured)'}`;
  const steps: ProbeStep[] = [];
  if (!server.user) {
    return [{ step: loginStep, ok: false, detail: 'the imap server needs a user and password', code: 'auth' }];
  }
  const conn = new Connection(server, profile.tls, ms);
  const client = conn.client;
  try {
    try {
      await withDeadline(`connect to imap ${where}`, ms * 4, signal, () => client.connect());
      steps.push({ step: connectStep, ok: true });
      steps.push({
        step: tlsStep,
        ok: true,
        ...(server.security === 'none' ? { detail: 'not encrypted' } : {}),
      });
      steps.push({ step: loginStep, ok: true });
    } catch (err) {
      const e = imapError(err, `imap ${where}`);
      const failed = (step: string): ProbeStep => ({ step, ok: false, detail: e.message, code: e.code });
      if (e.code === 'tls') steps.push({ step: connectStep, ok: true }, failed(tlsStep));
      else if (e.code === 'auth')
        steps.push({ step: connectStep, ok: true }, { step: tlsStep, ok: true }, failed(loginStep));
      else steps.push(failed(connectStep));
      return steps;
    }
    const mailbox = ep.remote || 'INBOX';
    const boxStep = `open mailbox ${mailbox}`;
    try {
      const box = await withDeadline(boxStep, ms, signal, () => client.mailboxOpen(mailbox, { readOnly: true }));
      const unseen = await withDeadline(boxStep, ms, signal, () => client.status(mailbox, { unseen: true }));
      steps.push({
        step: boxStep,
        ok: true,
        detail: `${box.exists} message(s), ${unseen && unseen.unseen !== undefined ? unseen.unseen : '?'} unseen`,
      });
    } catch (err) {
      const e = mailboxError(err, mailbox);
      steps.push({ step: boxStep, ok: false, detail: e.message, code: e.code });
      return steps;
    }
    if (!ep.allowFrom || ep.allowFrom.length === 0) {
      steps.push({ step: 'allowed senders', ok: false, detail: 'allowFrom is required', code: 'unsupported' });
    }
    // a move target that is missing is no failure: the first move creates it
    const target = async (step: string, to: string): Promise<ProbeStep> => {
      const missing = { step, ok: true, detail: 'does not exist yet; created on first use' };
      try {
        // imapflow answers false when the server refuses STATUS (no such mailbox)
        const st = await withDeadline(step, ms, signal, () => client.status(to, { messages: true }));
        return st ? { step, ok: true, detail: `${st.messages ?? '?'} message(s)` } : missing;
      } catch {
        return missing;
      }
    };
    if (ep.afterReceive.kind === 'move')
      steps.push(await target(`move target ${ep.afterReceive.to}`, ep.afterReceive.to));
    if (ep.afterRefuse?.kind === 'move') {
      steps.push(await target(`refused-message target ${ep.afterRefuse.to}`, ep.afterRefuse.to));
    }
    return steps;
  } finally {
    await conn.logout(ms);
  }
}
