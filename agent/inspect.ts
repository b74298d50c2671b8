// Owns the judgement of a package before anything is written for it: whether its name is safe to
// create as one file in a folder (Windows rules on every OS, since stations run Windows and a name
// that is fine on Linux can still escape or hit a device there), whether an .xml is well-formed
// (streamed, DOCTYPE refused so nothing is ever expanded or fetched), whether a .zip looks whole,
// and whether a name matches a route's include globs.
import { promises as fsp } from 'node:fs';
import { SaxesParser } from 'saxes';
import { CONTROL_CHARS, INVISIBLE_CHARS } from '../transports/common/text.js';
import { isPartName } from '../transports/include.js';

const codePoint = (c: string): string => (c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');

// ---------------------------------------------------------------------------------------------
// Names

const FORBIDDEN_PRINTABLE = /[<>"|?*]/;
// Look-alikes that Windows' "best fit" conversion to an ANSI code page (what an old Delphi program
// such as SERVIO may use) turns into a path separator, a drive colon or a wildcard: fullwidth
// forms, the division and fraction slashes, the set minus.
const LOOKALIKES = /[\uff0f\uff3c\uff1a\uff1c\uff1e\uff02\uff5c\uff1f\uff0a\u2215\u2044\u2216\u29f5\u29f8\u29f9]/;
// An unpaired surrogate cannot be encoded as UTF-8, so on Linux the name would silently change.
const LONE_SURROGATE = /\p{Cs}/u;
const MAX_NAME_UNITS = 255; // NTFS counts UTF-16 code units
const MAX_NAME_BYTES = 255; // ext4 and most Linux file systems count UTF-8 bytes

// Win32 maps these to devices whatever the extension and whatever trailing spaces precede it, so
// `NUL .xml` opens the null device rather than creating a file.
const RESERVED_DEVICES = new Set([
  'CON',
  'PRN',
  'AUX',
  'NUL',
  'CONIN$',
  'CONOUT$',
  'CLOCK$', // a device on every Windows still in use at stations (NT kept it for DOS programs)
  ...['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '\u00b9', '\u00b2', '\u00b3'].flatMap((d) => [
    `COM${d}`,
    `LPT${d}`,
  ]),
]);

// The agent's own temp files carry this prefix; a package taking it could be mistaken for one.
const TEMP_PREFIX = '.sprelay-';

/**
 * Null when `name` can be created as a single file inside a folder on Windows and Linux, else a
 * short reason fit for the ledger and the log.
 */
export function checkName(name: string): string | null {
  if (name.length === 0) return 'name is empty';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/') || name.includes('\\')) return 'name contains a path separator';
  if (name.includes(':')) return 'name contains ":" (drive letter or alternate data stream)';
  // DEL and the C1 controls are legal on NTFS but act on terminals or are invisible in listings
  if (CONTROL_CHARS.test(name)) return 'name contains a control character';
  // right-to-left overrides, zero-width spaces, ...: the name would not read as what it is
  const invisible = INVISIBLE_CHARS.exec(name);
  if (invisible) return `name contains the invisible character U+${codePoint(invisible[0])}`;
  const forbidden = FORBIDDEN_PRINTABLE.exec(name);
  if (forbidden) return `name contains "${forbidden[0]}", which Windows does not allow`;
  const lookalike = LOOKALIKES.exec(name);
  if (lookalike)
    return `name contains "${lookalike[0]}" (U+${codePoint(lookalike[0])}), which Windows may turn into a path character`;
  if (LONE_SURROGATE.test(name)) return 'name contains an unpaired UTF-16 surrogate';
  if (name.endsWith('.') || name.endsWith(' ')) return 'name ends with a dot or space';
  // Explorer, cmd and many programs trim it: the file would be opened under another name
  if (name.startsWith(' ')) return 'name starts with a space';
  if (name.length > MAX_NAME_UNITS) return `name is longer than ${MAX_NAME_UNITS} characters`;
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `name is longer than ${MAX_NAME_BYTES} bytes in UTF-8`;
  const dot = name.indexOf('.');
  const stem = (dot === -1 ? name : name.slice(0, dot)).replace(/ +$/, '').toUpperCase();
  if (RESERVED_DEVICES.has(stem)) return `reserved device name "${stem}"`;
  if (name.toLowerCase().startsWith(TEMP_PREFIX))
    return `name starts with "${TEMP_PREFIX}", reserved for sprelay temp files`;
  if (isPartName(name)) return 'name ends with ".part", reserved for files still in transfer';
  return null;
}

export function isXmlName(name: string): boolean {
  return /\.xml$/i.test(name);
}

export function isZipName(name: string): boolean {
  return /\.zip$/i.test(name);
}

// ---------------------------------------------------------------------------------------------
// XML well-formedness

const SNIFF_BYTES = 1024; // an XML declaration fits many times over
const READ_CHUNK = 64 * 1024;
// SERVIO exports without a declaration are windows-1251 whenever they are not UTF-8.
const UNDECLARED_FALLBACK = 'windows-1251';
const UNDECODABLE = Symbol('undecodable');

class DoctypeRefused extends Error {}

interface Sniffed {
  encoding: string;
  /** What fixed the encoding, for the reason text when the bytes do not decode. */
  source: 'byte order mark' | 'declaration' | 'byte layout';
}

/**
 * Null when the file is well-formed XML, else a reason naming line and column. Rejects only for
 * I/O failures, or with `signal.reason` when aborted. The bytes are decoded for checking only;
 * the file is never rewritten.
 */
export async function checkXmlFile(path: string, signal?: AbortSignal): Promise<string | null> {
  signal?.throwIfAborted();
  try {
    const head = await readHead(path, SNIFF_BYTES);
    if (head.length === 0) return 'not well-formed XML: the file is empty';
    const sniffed = sniffEncoding(head);
    if (sniffed) {
      const result = await parseXml(path, sniffed.encoding, signal);
      if (result !== UNDECODABLE) return result;
      return `not well-formed XML: bytes are not valid ${sniffed.encoding} (the encoding its ${sniffed.source} implies)`;
    }
    // Restarting costs a second read only for undeclared non-UTF-8 files; parser state cannot be rewound.
    const asUtf8 = await parseXml(path, 'utf-8', signal);
    if (asUtf8 !== UNDECODABLE) return asUtf8;
    const asFallback = await parseXml(path, UNDECLARED_FALLBACK, signal);
    // Every byte has a windows-1251 mapping, so this branch is unreachable in practice.
    return asFallback === UNDECODABLE ? 'not well-formed XML: bytes are not valid UTF-8 or windows-1251' : asFallback;
  } catch (err) {
    // The read stream reports an abort as its own AbortError; callers asked for their reason back.
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}

async function readHead(path: string, max: number): Promise<Buffer> {
  const fh = await fsp.open(path, 'r');
  try {
    return await readAt(fh, 0, max);
  } finally {
    await fh.close();
  }
}

function sniffEncoding(head: Buffer): Sniffed | null {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { encoding: 'utf-8', source: 'byte order mark' };
  if (head[0] === 0xff && head[1] === 0xfe) return { encoding: 'utf-16le', source: 'byte order mark' };
  if (head[0] === 0xfe && head[1] === 0xff) return { encoding: 'utf-16be', source: 'byte order mark' };
  // UTF-16 without a BOM is recognisable by how `<?` is laid out (XML 1.0 appendix F).
  if (head[0] === 0x3c && head[1] === 0x00 && head[2] === 0x3f && head[3] === 0x00) {
    return { encoding: 'utf-16le', source: 'byte layout' };
  }
  if (head[0] === 0x00 && head[1] === 0x3c && head[2] === 0x00 && head[3] === 0x3f) {
    return { encoding: 'utf-16be', source: 'byte layout' };
  }
  const decl = /^<\?xml[ \t\r\n][^>]*?\bencoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\1/.exec(
    head.toString('latin1'),
  );
  if (!decl?.[2]) return null;
  try {
    return { encoding: new TextDecoder(decl[2]).encoding, source: 'declaration' };
  } catch {
    // A label TextDecoder does not know: judge the structure the undeclared way rather than refuse
    // a file whose markup is ASCII in every encoding SERVIO and 1C write.
    return null;
  }
}

async function parseXml(
  path: string,
  encoding: string,
  signal: AbortSignal | undefined,
): Promise<string | null | typeof UNDECODABLE> {
  const decoder = new TextDecoder(encoding, { fatal: true });
  const parser = new SaxesParser();
  let sawRoot = false;
  let prologTail = '';
  parser.on('opentagstart', () => {
    sawRoot = true;
  });
  parser.on('doctype', () => {
    throw new DoctypeRefused();
  });

  const feed = (text: string | null): string | null => {
    try {
      if (text === null) parser.close();
      else parser.write(text);
    } catch (err) {
      return describeParseError(err, parser);
    }
    // saxes reports a DOCTYPE only once it is complete; refusing as soon as one starts in the
    // prolog keeps a huge internal subset from being buffered.
    if (!sawRoot && text !== null) {
      const seen = prologTail + text;
      if (seen.includes('<!DOCTYPE')) return doctypeReason(parser.line, parser.column);
      prologTail = seen.slice(-8);
    }
    return null;
  };

  // Our own handle, closed in `finally`, and the signal checked between chunks rather than given to
  // the stream: a read stream given an already aborted signal never closes its file (Node 20 and
  // 22), and on Windows an open handle gets in the way of the rename or delete that comes next.
  signal?.throwIfAborted();
  const fh = await fsp.open(path, 'r');
  const stream = fh.createReadStream({ highWaterMark: READ_CHUNK, autoClose: false });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      signal?.throwIfAborted();
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        return UNDECODABLE;
      }
      const reason = feed(text);
      if (reason !== null) return reason;
    }
    let rest: string;
    try {
      rest = decoder.decode();
    } catch {
      return UNDECODABLE;
    }
    return feed(rest) ?? feed(null);
  } finally {
    stream.destroy();
    await fh.close();
  }
}

function doctypeReason(line: number, column: number): string {
  return `DOCTYPE is not allowed (line ${line}, column ${column}): entity declarations and external references are refused`;
}

function describeParseError(err: unknown, parser: SaxesParser): string {
  if (err instanceof DoctypeRefused) return doctypeReason(parser.line, parser.column);
  const message = err instanceof Error ? err.message : String(err);
  // saxes prefixes "line:column: " taken at the moment of failure; prefer it to the live position.
  const m = /^(\d+):(\d+): ([\s\S]*)$/.exec(message);
  const [line, column, detail] = m ? [m[1], m[2], m[3] ?? ''] : [parser.line, parser.column, message];
  return `not well-formed XML at line ${line}, column ${column}: ${detail.replace(/\.$/, '')}`;
}

// ---------------------------------------------------------------------------------------------
// Zip sanity

const LOCAL_HEADER_SIG = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const EOCD_SIG = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const EOCD_SIZE = 22;
const EOCD_SEARCH = EOCD_SIZE + 0xffff; // the record plus the longest comment it can carry

/**
 * Null when the file starts like a zip and still has its end-of-central-directory record (a zip
 * cut short in transfer loses it first), else a reason. Does not inflate or list entries.
 */
export async function checkZipFile(path: string): Promise<string | null> {
  const fh = await fsp.open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) return 'not a zip archive (the file is empty)';
    const head = await readAt(fh, 0, 4);
    // An archive with no entries is the end record alone.
    if (!head.equals(LOCAL_HEADER_SIG) && !head.equals(EOCD_SIG)) return 'not a zip archive';
    const tailStart = Math.max(0, size - EOCD_SEARCH);
    const tail = await readAt(fh, tailStart, size - tailStart);
    for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
      if (tail[i] !== 0x50 || !tail.subarray(i, i + 4).equals(EOCD_SIG)) continue;
      // The same four bytes can occur inside compressed data; a real record holds its whole comment.
      if (i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) return null;
    }
    return 'zip archive is truncated (no end-of-central-directory record)';
  } finally {
    await fh.close();
  }
}

async function readAt(fh: fsp.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}

// ---------------------------------------------------------------------------------------------
// Include globs: one rule shared with the transports

export { matchesInclude } from '../transports/include.js';
