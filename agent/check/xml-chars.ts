// Bytes and characters for the XML scanner (xml-scan.ts): its states, the XML 1.0 character
// classes (Char, NameStartChar, NameChar), and the byte classes its fast loops use.

/** Non-ASCII bytes: UTF-8 (validated), or a single-byte encoding's code points (-1: unmapped). */
export interface Charset {
  name: string;
  table: Int32Array | null;
}

/** A refusal: the reason, with its position (line, column in characters) already in it. */
export class Refusal {
  constructor(readonly reason: string) {}
}

/**
 * saxes built an attribute value (and a comment) of a piece per entity reference, tab or line
 * break, so 48 MB of them held 0.4-1.7 GB; this scanner holds nothing, but a tag or comment with
 * more than this many is still refused as the attack it is (no real tag has a thousandth of it).
 */
export const MAX_TAG_PIECES = 1_000_000;

export const MiB = 1024 * 1024;

/**
 * The start of the FNV-1a hash of attribute names (duplicates are found through it), random per
 * process so that no file can be built to make its names collide; verdicts never depend on it.
 */
export const HASH_SEED = (0x811c9dc5 ^ Math.floor(Math.random() * 0x7fffffff)) | 0;

/** Slots of the table an attribute name's hash picks (murmur3's final mix of the bits). */
export function slotOf(h: number, mask: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) & mask;
}

// states
export const MISC = 0; // outside the root: whitespace, comments, PIs, the root's start tag
export const TEXT = 1; // inside the root: character data
export const LT = 2; // after `<`
export const NAME = 3; // in a name (`nameKind` says whose)
export const TAG = 4; // in a start tag after the name or a value: whitespace, an attribute, `/`, `>`
export const EQ = 5; // after an attribute name, before `=`
export const QUOTE = 6; // after `=`, before the value's quote
export const VALUE = 7; // in an attribute value
export const SLASH = 8; // after `/` in a start tag
export const CLOSE_END = 9; // after a close tag's name
export const REF = 10; // after `&`
export const CHARREF = 11; // after `&#`
export const BANG = 12; // after `<!`
export const COMMENT = 13;
export const CDATA = 14;
export const PI_AFTER = 15; // after a PI's target
export const PI = 16; // in a PI's body
export const OPEN_CDATA = 17; // matching `[CDATA[` after `<!`
export const COMMENT_START = 18; // after `<!-`
export const OPEN_DOCTYPE = 19; // matching `DOCTYPE` after `<!`

// what a name belongs to
export const K_ELEM = 0;
export const K_ATTR = 1;
export const K_CLOSE = 2;
export const K_PI = 3;
export const K_ENTITY = 4;

// byte classes of the fast loops
export const PLAIN = 0;
export const STOP = 1;
export const NL = 2;
export const CONT = 3;
export const PIECE = 4;

export const LF = 0x0a;
export const CR = 0x0d;
export const TAB = 0x09;
export const SP = 0x20;
export const isWs = (c: number) => c === SP || c === LF || c === CR || c === TAB;

export const ASCII_START = new Uint8Array(128);
export const ASCII_NAME = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const start = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x3a;
  ASCII_START[c] = start ? 1 : 0;
  ASCII_NAME[c] = start || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e ? 1 : 0;
}

/** XML 1.0 fifth edition NameStartChar, non-ASCII. */
export function isNameStart(cp: number): boolean {
  return (
    (cp >= 0xc0 && cp <= 0xd6) ||
    (cp >= 0xd8 && cp <= 0xf6) ||
    (cp >= 0xf8 && cp <= 0x2ff) ||
    (cp >= 0x370 && cp <= 0x37d) ||
    (cp >= 0x37f && cp <= 0x1fff) ||
    (cp >= 0x200c && cp <= 0x200d) ||
    (cp >= 0x2070 && cp <= 0x218f) ||
    (cp >= 0x2c00 && cp <= 0x2fef) ||
    (cp >= 0x3001 && cp <= 0xd7ff) ||
    (cp >= 0xf900 && cp <= 0xfdcf) ||
    (cp >= 0xfdf0 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0xeffff)
  );
}

export function isNameChar(cp: number): boolean {
  return isNameStart(cp) || cp === 0xb7 || (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x203f && cp <= 0x2040);
}

/** XML 1.0 Char. */
export function isChar(cp: number): boolean {
  return (
    cp === TAB ||
    cp === LF ||
    cp === CR ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/** Bytes that are no XML Char in `charset` (a control; unmapped in a single-byte encoding). */
export function badBytes(charset: Charset): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) {
    if (c >= 0x80 && charset.table === null) continue; // UTF-8 is validated before the scan
    const cp = charset.table === null ? c : charset.table[c]!;
    t[c] = cp < 0 || !isChar(cp) ? 1 : 0;
  }
  return t;
}

/** Byte classes for a fast loop: `stops` and bad bytes are STOP, LF NL, UTF-8 continuation bytes CONT. */
export function classes(stops: string, charset: Charset): Uint8Array {
  const t = new Uint8Array(256);
  const bad = badBytes(charset);
  for (let c = 0; c < 0x80; c++) t[c] = bad[c] ? STOP : PLAIN;
  t[LF] = NL;
  for (const s of stops) t[s.charCodeAt(0)] = STOP;
  if (stops.includes('"')) t[TAB] = t[CR] = PIECE; // attribute values count them
  for (let c = 0x80; c < 256; c++) {
    if (charset.table === null) t[c] = c < 0xc0 ? CONT : PLAIN;
    else t[c] = bad[c] ? STOP : PLAIN;
  }
  return t;
}

export const PREDEFINED = ['amp', 'lt', 'gt', 'quot', 'apos'].map((s) => Buffer.from(s, 'latin1'));

export const KIND_NAMES = ['tag', 'attribute', 'closing tag', 'processing instruction', 'entity'];

/** a[from, to) equals b[0, len). */
export function same(a: Uint8Array, from: number, to: number, b: Uint8Array, at: number, len: number): boolean {
  if (to - from !== len) return false;
  for (let k = 0; k < len; k++) if (a[from + k] !== b[at + k]) return false;
  return true;
}

export function copy(from: Uint8Array, start: number, len: number, to: Uint8Array, at: number): void {
  for (let k = 0; k < len; k++) to[at + k] = from[start + k]!;
}

export function grow(a: Uint8Array, need: number): Uint8Array {
  const b = new Uint8Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}
