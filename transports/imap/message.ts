// What a message is to the IMAP source: its attachment parts, the declared SHA-256s, the keywords
// that mark acknowledged parts, the refs kept in the ledger, and the labels of refused messages.
import { createHash } from 'node:crypto';
import type { MessageStructureObject } from 'imapflow';
import { flatLine } from '../common/text.js';
import { isRemotePackage } from '../include.js';

/** Keyword marking one acknowledged attachment of a message that is not done yet. */
export const ACK_KEYWORD_PREFIX = '$sprelay-ack-';
/** Keyword marking a refused message the pipeline has recorded (afterRefuse: leave). */
export const REFUSED_KEYWORD_PREFIX = '$sprelay-refused-';

/**
 * The refused-mark of a route's rules: `$sprelay-refused-<8 hex>` of what decides a refusal here
 * (allowFrom, include, the size cap, requireAuth). Rules changed in the config give another
 * keyword, so messages refused under the old rules are looked at again (and delivered if they are
 * acceptable now) instead of staying hidden.
 */
export function refusedKeyword(rules: {
  allowFrom: string[];
  include: string[];
  maxSize: number;
  requireAuth?: string | undefined;
}): string {
  const text = JSON.stringify([
    [...rules.allowFrom].sort(),
    [...rules.include].sort(),
    rules.maxSize,
    rules.requireAuth ?? '',
  ]);
  return REFUSED_KEYWORD_PREFIX + createHash('sha256').update(text).digest('hex').slice(0, 8);
}
export const SHA256_HEADER = 'x-sprelay-sha256';
export const STATION_HEADER = 'x-sprelay-station';
/** The config's station rule (agent/config/schemas.ts): a header value that is not one is ignored. */
const STATION_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** How much of a subject or an attachment list a refused entry carries into the ledger. */
const LABEL_MAX = 160;

export interface Ref {
  mailbox: string;
  uidValidity: string;
  uid: number;
  /** Body part ('2', '1.2'); absent for an entry that stands for the whole message (a refusal). */
  part?: string;
}

/** What list() learnt about one message: which parts are entries, which are acknowledged. */
export interface MessageState {
  parts: Set<string>;
  acked: Set<string>;
}

export interface AttachmentPart {
  part: string;
  name: string;
  encoding: string;
  encodedSize: number;
}

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

/**
 * Subject or file names as one line of printable text (controls and invisible characters as
 * common/text.ts defines them), cut to a length a ledger line can show.
 */
export function label(text: string): string {
  const flat = flatLine(text);
  return flat.length > LABEL_MAX ? `${flat.slice(0, LABEL_MAX - 3)}...` : flat;
}

/** Why a message from an allowed sender gives the route nothing. */
export function noMatchReason(parts: AttachmentPart[]): string {
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
 * The sending station as our SMTP sink writes it (X-SPRelay-Station), when there is exactly one
 * such header and it is a station name; otherwise undefined. Untrusted like everything in a
 * message: the office checks it against what the package says where it can.
 */
export function declaredStation(headers: Buffer | undefined): string | undefined {
  if (!headers) return undefined;
  const unfolded = headers.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const values: string[] = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const m = /^x-sprelay-station\s*:\s*(.*)$/i.exec(line);
    if (m) values.push(m[1]!.trim());
  }
  return values.length === 1 && STATION_RE.test(values[0]!) ? values[0] : undefined;
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

export function isAckKeyword(flag: string): boolean {
  return flag.toLowerCase().startsWith(ACK_KEYWORD_PREFIX);
}

export function partOfKeyword(flag: string): string {
  return flag.slice(ACK_KEYWORD_PREFIX.length);
}

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

export function sameMailbox(a: string, b: string): boolean {
  const norm = (s: string) => (s.toUpperCase() === 'INBOX' ? 'INBOX' : s);
  return norm(a) === norm(b);
}

/** The pipeline's include rule (transports/include.ts): the same names, or a message never finishes. */
export function includeMatcher(patterns: string[]): (name: string) => boolean {
  return (name) => isRemotePackage(name, patterns);
}
