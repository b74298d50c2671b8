// The attachments of a listing batch, fetched together in a few FETCH commands and held, decoded,
// until open() hands them on: each attachment crosses the wire once, and a message costs a share
// of one round trip instead of a download (to learn its decoded size) and another (to deliver it).
//
// Why it looks like this:
// - An entry's `size` must be exactly what open() delivers; BODYSTRUCTURE gives only the encoded
//   size. Holding the decoded bytes between list() and open() makes both the same bytes, for any
//   encoding and any line length, without trusting a header (a declared size could lie; the
//   decoded bytes cannot).
// - Bounded: with nothing measured yet, a FETCH asks for at most what a 64 kbit/s link carries
//   within the route's timeout (and FETCH_BYTES at most), so it finishes within the command
//   deadline on a slow link;
//   a part larger than that or than PART_BYTES is never held (open() streams it under the idle
//   deadline and minRate, as before); the session holds at most HELD_BYTES, beyond which list()
//   measures parts one by one, as before.
// - Each FETCH is a round trip the listing waits for (imapflow sends one command at a time), so
//   they are sized by the link this listing has seen: what the batch's metadata FETCH (the
//   listing's, counted by imapflow's stats()) and the FETCHes of attachments so far carried per
//   second (their round trips and the server's work counted in, so the link is never thought
//   faster than it is), times the timeout, divided by LINK_MARGIN (the link may get that much
//   slower and the command still finishes in time), at most FETCH_BYTES_FAST, never less than
//   fetchBytes(); and a FETCH takes the rest of the batch when that is at most TAIL more than
//   its size (no round trip for the last few messages alone). A 100 x 20 KB mailbox on a 100 ms
//   link: 1 FETCH of attachments (6 with the first size alone, 2 when the metadata FETCH was not
//   counted); a link that really is slow keeps the first size.
// - Decoded as imapflow's download() decodes (decodeText: false): the part's own MIME header read
//   by mailsplit's Headers and libmime (the file name with RFC 2231 continuations, charsets and
//   encoded-words), base64 and quoted-printable by the stream decoders of libbase64 and libqp
//   (their decode() functions take a Buffer as it is), anything else as it is. These
//   are imapflow's own dependencies, in the versions it uses. base64 goes through Node's own
//   decoder wherever that gives the same bytes (decodeBase64), 3-4x faster.
// - Only messages that passed every check that needs no download (sender, size cap, hash headers;
//   not on DKIM routes, where the whole message is verified first) are fetched: a refused
//   message's attachments are never downloaded.
// - A part the server does not answer for (expunged meanwhile, a server that drops sections) is
//   simply not held: list() falls back to measuring it alone.
import { Headers } from '@zone-eu/mailsplit';
import libbase64 from 'libbase64';
import libmime from 'libmime';
import libqp from 'libqp';
import type { AttachmentPart } from './message.js';
import type { SourceRules } from './rules.js';
import type { MailboxSession } from './session.js';

/** Encoded bytes the first FETCH of a listing asks for at most. */
export const FETCH_BYTES = 1024 * 1024;
/** Encoded bytes a later FETCH asks for at most, on a link that has shown it carries them in time. */
export const FETCH_BYTES_FAST = 4 * 1024 * 1024;
/** How much slower than measured the link may get while a FETCH sized by it still finishes in time. */
const LINK_MARGIN = 8;
/**
 * A FETCH takes the rest of its group when that is at most this much more than its size: the
 * margin of that one command is LINK_MARGIN / (1 + TAIL), 6.4, instead of a round trip more.
 */
export const TAIL = 0.25;
/**
 * The slowest link a FETCH of several attachments is sized for (64 kbit/s, GPRS): a command must
 * finish within the route's timeout, not only keep moving, and a command that misses it takes the
 * connection with it. A route's minRate above this sizes it instead.
 */
const SLOWEST_LINK = 8 * 1024;

/** Encoded bytes one FETCH may ask for on this route: what the slowest link carries within the timeout. */
export function fetchBytes(rules: Pick<SourceRules, 'ms' | 'minRate'>): number {
  const rate = Math.max(SLOWEST_LINK, rules.minRate?.bytesPerSecond ?? 0);
  return Math.min(FETCH_BYTES, Math.floor((rules.ms / 1000) * rate));
}

/**
 * Encoded bytes the next FETCH may ask for, after FETCHes of `bytes` took `ms` in all: what that
 * rate carries within the timeout, LINK_MARGIN times over; between fetchBytes() and FETCH_BYTES_FAST.
 */
export function nextFetchBytes(rules: Pick<SourceRules, 'ms' | 'minRate'>, bytes: number, ms: number): number {
  const first = fetchBytes(rules);
  if (bytes <= 0) return first;
  const rate = bytes / (Math.max(1, ms) / 1000);
  const fits = Math.floor(((rules.ms / 1000) * rate) / LINK_MARGIN);
  return Math.max(first, Math.min(FETCH_BYTES_FAST, fits));
}
/** Parts larger than this (encoded) are not held. */
export const PART_BYTES = 512 * 1024;
/** Decoded bytes one session holds at most between list() and open(). */
export const HELD_BYTES = 32 * 1024 * 1024;

export interface HeldPart {
  bytes: Buffer;
  /** The file name from the part's own MIME header, when it has one. */
  name?: string;
}

/** The decoded attachments list() fetched, until open() takes them (or the next list()). */
export class HeldParts {
  private readonly parts = new Map<string, HeldPart>();
  private generation = '';
  private total = 0;

  clear(generation = ''): void {
    this.parts.clear();
    this.total = 0;
    this.generation = generation;
  }

  get room(): number {
    return HELD_BYTES - this.total;
  }

  put(uid: number, part: string, held: HeldPart): void {
    this.parts.set(`${uid}/${part}`, held);
    this.total += held.bytes.length;
  }

  peek(uid: number, part: string): HeldPart | undefined {
    return this.parts.get(`${uid}/${part}`);
  }

  /** Removes and returns the part, only if it was fetched from this generation of the mailbox. */
  take(generation: string, uid: number, part: string): HeldPart | undefined {
    if (generation !== this.generation) return undefined;
    const held = this.parts.get(`${uid}/${part}`);
    if (!held) return undefined;
    this.parts.delete(`${uid}/${part}`);
    this.total -= held.bytes.length;
    return held;
  }
}

/** A message of the batch and the parts list() will want to measure. */
export interface Wanted {
  uid: number;
  parts: AttachmentPart[];
}

/**
 * Fetches the wanted parts, messages with the same part numbers together, each command as large
 * as the link has shown it carries (nextFetchBytes: `seen` is what the listing's metadata FETCH
 * read, then the FETCHes of attachments count), while the session has room; what was fetched is
 * in `box.held`.
 */
export async function prefetchParts(
  box: MailboxSession,
  rules: SourceRules,
  wanted: Wanted[],
  sig: AbortSignal,
  seen: { bytes: number; ms: number } = { bytes: 0, ms: 0 },
): Promise<void> {
  const first = fetchBytes(rules);
  /** Bytes read so far and the ms their commands took, round trips included: from `seen` on. */
  let carried = seen.bytes;
  let took = seen.ms;
  let perCommand = nextFetchBytes(rules, carried, took);
  const groups = new Map<string, Wanted[]>();
  for (const w of wanted) {
    const parts = w.parts.filter((p) => p.encodedSize <= Math.min(PART_BYTES, first));
    if (parts.length === 0) continue;
    const key = parts.map((p) => p.part).join(',');
    groups.set(key, [...(groups.get(key) ?? []), { uid: w.uid, parts }]);
  }
  let room = box.held.room;
  for (const [key, members] of groups) {
    const sections = key.split(',');
    const sizes = members.map((m) => m.parts.reduce((n, p) => n + p.encodedSize, 0));
    let rest = sizes.reduce((n, b) => n + b, 0);
    let next = 0;
    while (next < members.length) {
      const batch: Wanted[] = [];
      let bytes = 0;
      // the rest of the group in this command when it is little more than the command: another
      // FETCH for its last few messages would be a round trip for them alone
      const limit = rest <= perCommand * (1 + TAIL) ? rest : perCommand;
      while (next < members.length) {
        const size = sizes[next]!;
        const decoded = members[next]!.parts.reduce((n, p) => n + decodedUpperBound(p), 0);
        if (batch.length > 0 && bytes + size > limit) break;
        if (decoded > room) return;
        batch.push(members[next++]!);
        bytes += size;
        rest -= size;
        room -= decoded;
      }
      const uids = batch.map((w) => w.uid);
      const what = `fetch attachments of ${rules.mailbox}/${uids[0]}${uids.length > 1 ? `..${uids.at(-1)} (${uids.length} messages)` : ''}`;
      // one command, read whole before anything else is sent (imapflow #219, #159)
      const started = performance.now();
      const fetched = await box.cmd(what, sig, () =>
        box.client.fetchAll(
          uids.join(','),
          { uid: true, bodyParts: sections.flatMap((p) => [`${p}.mime`, p]) },
          { uid: true },
        ),
      );
      carried += bytes;
      took += performance.now() - started;
      perCommand = nextFetchBytes(rules, carried, took);
      for (const msg of fetched) {
        if (!uids.includes(msg.uid)) continue;
        for (const part of sections) {
          const body = msg.bodyParts?.get(part);
          if (!body) continue;
          box.held.put(msg.uid, part, await decodePart(msg.bodyParts?.get(`${part}.mime`), body));
        }
      }
      // what is held now, whatever the server's BODYSTRUCTURE said the parts would be
      room = Math.min(room, box.held.room);
    }
  }
}

/** The most bytes a part can decode to: base64 gives at most 3 bytes for 4 characters, others no more than they take. */
function decodedUpperBound(p: AttachmentPart): number {
  return p.encoding === 'base64' ? Math.floor((p.encodedSize * 3) / 4) : p.encodedSize;
}

/** Bytes of the base64 alphabet, URL-safe `-` and `_` included (what libbase64's decode() looks for after a `=`). */
function isBase64Char(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2b ||
    c === 0x2f ||
    c === 0x2d ||
    c === 0x5f
  );
}

/**
 * base64 decoded as libbase64's Decoder (imapflow's download()) decodes it, by Node's own decoder
 * where the two give the same bytes, 3-4x faster (issue 11: W3's 20 MB of attachments). Both skip
 * what is not base64 (line breaks, stray characters); they differ on URL-safe `-` and `_` (Node
 * takes them as digits, libbase64 drops them) and on data after a `=` (libbase64 decodes it as a
 * new run, Node stops): those go to libbase64, whose answer is the reference.
 */
export async function decodeBase64(body: Buffer): Promise<Buffer> {
  if (body.indexOf(0x2d) < 0 && body.indexOf(0x5f) < 0) {
    const pad = body.indexOf(0x3d);
    let after = false;
    for (let i = pad < 0 ? body.length : pad + 1; i < body.length && !after; i++) after = isBase64Char(body[i]!);
    if (!after) return Buffer.from(body.toString('latin1'), 'base64');
  }
  return Buffer.concat(await new libbase64.Decoder().end(body).toArray());
}

/** The part's bytes and file name, as imapflow's download() (decodeText: false) gives them. */
export async function decodePart(mime: Buffer | undefined, body: Buffer): Promise<HeldPart> {
  const headers = new Headers(mime ?? false);
  const encoding = libmime
    .parseHeaderValue(headers.getFirst('Content-Transfer-Encoding'))
    .value.replace(/\(.*\)/g, '')
    .toLowerCase()
    .trim();
  const bytes =
    encoding === 'base64'
      ? await decodeBase64(body)
      : encoding === 'quoted-printable'
        ? Buffer.concat(await new libqp.Decoder().end(body).toArray())
        : body;
  const disposition = libmime.parseHeaderValue(headers.getFirst('Content-Disposition'));
  const type = libmime.parseHeaderValue(headers.getFirst('Content-Type'));
  let name: string | undefined = disposition.params.filename || type.params.name || undefined;
  if (name) {
    try {
      name = libmime.decodeWords(name);
    } catch {
      // an unknown charset: kept as it is, as imapflow does
    }
  }
  return name ? { bytes, name } : { bytes };
}
