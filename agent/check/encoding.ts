// What a package's bytes are before any parsing: the encoding it declares or implies (byte order
// mark, UTF-16 byte layout, XML declaration) checked against the allow-list, and the raw-byte scan
// for `<!DOCTYPE` and `<!ENTITY` in every layout an accepted encoding can write them in. Used by
// the XML check (xml.ts), which decodes and parses with what `plan` decides.
import { TextDecoder } from 'node:util';

/** Bytes the encoding is judged from: an XML declaration fits many times over. */
export const SNIFF_BYTES = 1024;
/** SERVIO exports without a declaration are windows-1251 whenever they are not UTF-8. */
export const UNDECLARED_FALLBACK = 'windows-1251';

/**
 * Encodings a package may declare, by the name WHATWG's TextDecoder gives them (its labels are the
 * aliases: `cp1251`, `cp866`, `latin1`, `us-ascii`, `iso_8859-5`, ...). ISO-8859-1, -9 and -11
 * decode as their Windows supersets, as in every browser. ISO-8859-16 is missing: Node's decoder
 * does not know it, so it cannot be checked.
 */
const ACCEPTED = new Set([
  'utf-8',
  'utf-16le',
  'utf-16be',
  'windows-1251',
  'ibm866',
  'koi8-r',
  'koi8-u',
  'windows-1252', // ISO-8859-1, US-ASCII
  'iso-8859-2',
  'iso-8859-3',
  'iso-8859-4',
  'iso-8859-5',
  'iso-8859-6',
  'iso-8859-7',
  'iso-8859-8',
  'iso-8859-8-i',
  'windows-1254', // ISO-8859-9
  'iso-8859-10',
  'windows-874', // ISO-8859-11
  'iso-8859-13',
  'iso-8859-14',
  'iso-8859-15',
]);
const ACCEPTED_TEXT = 'UTF-8, UTF-16, windows-1251, cp866, KOI8-R, KOI8-U, ISO-8859-1 to ISO-8859-15';

type Source = 'byte order mark' | 'declaration' | 'byte layout';

export interface Plan {
  /** null: undeclared, UTF-8 with the windows-1251 fallback. */
  encoding: string | null;
  source?: Source;
}

// ---------------------------------------------------------------------------------------------
// Encoding: byte order mark, byte layout, declaration; the allow-list

/** The encoding to decode with, or the reason the file is refused before any parsing. */
export function plan(head: Buffer, full: boolean): Plan | string {
  const b = (i: number) => head[i] ?? -1;
  const four = [b(0), b(1), b(2), b(3)].join(',');
  // XML 1.0 appendix F: four-byte units and EBCDIC, recognised to be refused by name.
  const ucs4 = [
    '0,0,254,255',
    '255,254,0,0',
    '0,0,255,254',
    '254,255,0,0',
    '0,0,0,60',
    '60,0,0,0',
    '0,0,60,0',
    '0,60,0,0',
  ];
  if (ucs4.includes(four)) return notAccepted('UTF-32 (UCS-4)');
  if (four === '76,111,167,148') return notAccepted('EBCDIC');

  let family: 'utf-8' | 'utf-16le' | 'utf-16be' | null = null;
  let source: Source | undefined;
  let skip = 0;
  if (b(0) === 0xef && b(1) === 0xbb && b(2) === 0xbf) [family, source, skip] = ['utf-8', 'byte order mark', 3];
  else if (b(0) === 0xff && b(1) === 0xfe) [family, source, skip] = ['utf-16le', 'byte order mark', 2];
  else if (b(0) === 0xfe && b(1) === 0xff) [family, source, skip] = ['utf-16be', 'byte order mark', 2];
  else if (four === '60,0,63,0') [family, source] = ['utf-16le', 'byte layout'];
  else if (four === '0,60,0,63') [family, source] = ['utf-16be', 'byte layout'];

  // Only the first SNIFF_BYTES count, however the bytes arrived: the same file gets the same verdict.
  const rest = head.subarray(skip, SNIFF_BYTES);
  const prolog =
    family === 'utf-16le' || family === 'utf-16be'
      ? new TextDecoder(family, { ignoreBOM: true }).decode(rest.subarray(0, rest.length & ~1))
      : rest.toString('latin1');
  const declared = readDeclaration(prolog, full);
  if (declared !== null && typeof declared === 'object') return declared.refused;
  if (declared !== null) {
    const canonical = whatwgName(declared);
    if (canonical === null || !ACCEPTED.has(canonical)) return notAccepted(`"${declared}"`);
    // A byte order mark or UTF-16 layout decides over the declaration, as XML 1.0 says.
    if (family) return { encoding: family, source: source! };
    return { encoding: canonical, source: 'declaration' };
  }
  if (family) return { encoding: family, source: source! };
  return { encoding: null };
}

function notAccepted(what: string): string {
  return `XML encoding ${what} is not accepted (accepted: ${ACCEPTED_TEXT})`;
}

/**
 * The label the XML declaration names, null when there is no declaration or it names no
 * encoding, or a refusal when a declaration starts but does not end within the bytes sniffed
 * (a label hidden past them would be read by another parser and not by this check).
 */
function readDeclaration(prolog: string, full: boolean): string | null | { refused: string } {
  if (!/^<\?xml[ \t\r\n]/.test(prolog)) return null;
  const end = prolog.indexOf('?>');
  if (end === -1) {
    return full ? { refused: `the XML declaration does not end within its first ${SNIFF_BYTES} bytes` } : null;
  }
  const decl = prolog.slice(0, end);
  const m = /[ \t\r\n]encoding[ \t\r\n]*=[ \t\r\n]*(?:"([^"]*)"|'([^']*)')/.exec(decl);
  if (!m) return null;
  const label = m[1] ?? m[2] ?? '';
  // XML's EncName; anything else is refused here rather than guessed at.
  if (!/^[A-Za-z][A-Za-z0-9._-]*$/.test(label)) return { refused: notAccepted(JSON.stringify(label.slice(0, 40))) };
  return label;
}

function whatwgName(label: string): string | null {
  try {
    return new TextDecoder(label).encoding;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The raw-byte scan: `<!DOCTYPE` and `<!ENTITY` as bytes, in the three layouts of every accepted
// encoding (ASCII-compatible ones write them as ASCII; UTF-16 in either byte order), any case.

const WORDS = ['DOCTYPE', 'ENTITY'] as const;
const LAYOUTS = [
  { name: '', unit: 1, lead: Buffer.from('<!', 'latin1'), at: 0 },
  { name: 'UTF-16LE', unit: 2, lead: Buffer.from('<\0!\0', 'latin1'), at: 0 },
  { name: 'UTF-16BE', unit: 2, lead: Buffer.from('\0<\0!', 'latin1'), at: 1 },
] as const;
/** Bytes a match can span: `<!DOCTYPE` in UTF-16, plus the byte before a BE unit. */
const SPAN = 2 * ('<!'.length + 'DOCTYPE'.length) + 1;

export class MarkupScan {
  private tail = Buffer.alloc(0);
  private offset = 0; // file offset of tail[0]

  write(chunk: Buffer): string | null {
    // A match starting in the bytes kept from the last chunk, searched for in those bytes and the
    // start of this chunk; then any match inside this chunk (the chunk itself is not copied).
    const kept = this.tail.length;
    if (kept > 0) {
      const found = findMarkup(Buffer.concat([this.tail, chunk.subarray(0, SPAN - 1)]));
      if (found && found.at < kept) return refusal(found, this.offset + found.at);
    }
    const found = findMarkup(chunk);
    if (found) return refusal(found, this.offset + kept + found.at);
    const total = kept + chunk.length;
    const keep = Math.min(SPAN - 1, total);
    this.tail =
      chunk.length >= keep
        ? Buffer.from(chunk.subarray(chunk.length - keep))
        : Buffer.concat([this.tail.subarray(kept - (keep - chunk.length)), chunk]);
    this.offset += total - keep;
    return null;
  }
}

function refusal(found: { word: string; layout: string }, at: number): string {
  return `${found.word === 'DOCTYPE' ? 'DOCTYPE' : 'ENTITY declaration'} is not allowed (byte ${at}${found.layout ? `, as ${found.layout} text` : ''}): entity declarations and external references are refused`;
}

function findMarkup(data: Buffer): { word: string; at: number; layout: string } | null {
  for (const layout of LAYOUTS) {
    let i = data.indexOf(layout.lead);
    while (i !== -1) {
      const after = i + layout.lead.length;
      for (const word of WORDS) {
        if (matchesWord(data, after, word, layout.unit, layout.at)) return { word, at: i, layout: layout.name };
      }
      i = data.indexOf(layout.lead, i + 1);
    }
  }
  return null;
}

/** `word` (ASCII, any case) at `pos`, one byte per character or two with the ASCII byte at `at`. */
function matchesWord(data: Buffer, pos: number, word: string, unit: number, at: number): boolean {
  if (pos + word.length * unit > data.length) return false;
  for (let k = 0; k < word.length; k++) {
    const p = pos + k * unit;
    if (unit === 2 && data[p + 1 - at] !== 0) return false;
    if (((data[p + at] ?? 0) | 0x20) !== (word.charCodeAt(k) | 0x20)) return false;
  }
  return true;
}

/** Index where an incomplete UTF-8 sequence at the end of `buf` starts (buf.length if none). */
export function utf8Cut(buf: Buffer): number {
  for (let i = buf.length - 1; i >= Math.max(0, buf.length - 3); i--) {
    const byte = buf[i]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    if (byte < 0xc0) return buf.length; // ASCII ends the buffer whole
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return buf.length - i < need ? i : buf.length;
  }
  return buf.length;
}
