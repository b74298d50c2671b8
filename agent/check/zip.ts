// Judges a zip package before it is handed to SERVIO's unzip: whole (the end record is there), and
// nothing in it that could escape the folder it is unpacked in, be hidden from this check, or
// inflate out of proportion. Read with yauzl (central directory, local headers, streamed inflate:
// nothing is ever written to disk); every XML member goes through the same XML check as a lone
// XML package.
//
// Refused: member names that are absolute, have a `..` component (with `/` or `\` as separator),
// a drive letter, a device name or anything else checkName refuses in a component; encrypted
// members; more than check.zip.maxEntries members; a member that inflates more than
// check.zip.maxRatio times its compressed size, or members that together declare more than
// check.zip.maxUncompressed; a member that inflates past the size its header declares; members
// whose local header names them differently from the central directory, that overlap, or bytes
// between members holding a local header no central entry lists (an unzip that reads local
// headers would unpack a member this check never saw); an XML member that fails the XML check.
import type { FileHandle } from 'node:fs/promises';
import { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { checkName, isXmlName } from '../inspect.js';
import { DEFAULT_CHECK_LIMITS, RATIO_FLOOR_BYTES, type CheckLimits } from './limits.js';
import { createXmlCheck } from './xml.js';

const LOCAL_HEADER_SIG = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const EOCD_SIG = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const EOCD_SIZE = 22;
const EOCD_SEARCH = EOCD_SIZE + 0xffff; // the record plus the longest comment it can carry
const CENTRAL_HEADER_SIZE = 46;
const READ_CHUNK = 64 * 1024;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;

/** The member data was refused: the reason says why. */
class Refused extends Error {}

interface EndRecord {
  entries: number;
  cdSize: number;
  cdOffset: number;
}

/**
 * Null when the zip is acceptable, else a reason fit for the ledger and the log. Rejects only for
 * I/O failures, or with `signal.reason` when aborted.
 */
export async function checkZipFile(
  path: string,
  signal?: AbortSignal,
  limits: CheckLimits = DEFAULT_CHECK_LIMITS,
): Promise<string | null> {
  signal?.throwIfAborted();
  const fh = await fsp.open(path, 'r');
  try {
    const { size } = await fh.stat();
    const end = await findEndRecord(fh, size);
    if (typeof end === 'string') return end;
    return await checkMembers(fh, size, end, limits, signal);
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (err instanceof Refused) return err.message;
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * The end-of-central-directory record, or why there is none: not a zip at all, or cut short (a
 * zip cut short in transfer loses its end record first).
 */
async function findEndRecord(fh: FileHandle, size: number): Promise<EndRecord | string> {
  if (size === 0) return 'not a zip archive (the file is empty)';
  const head = await readAt(fh, 0, 4);
  // An archive with no entries is the end record alone.
  if (!head.equals(LOCAL_HEADER_SIG) && !head.equals(EOCD_SIG)) return 'not a zip archive';
  const tailStart = Math.max(0, size - EOCD_SEARCH);
  const tail = await readAt(fh, tailStart, size - tailStart);
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail[i] !== 0x50 || !tail.subarray(i, i + 4).equals(EOCD_SIG)) continue;
    // The same four bytes can occur inside compressed data; a real record holds its whole comment.
    if (i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) {
      return {
        entries: tail.readUInt16LE(i + 10),
        cdSize: tail.readUInt32LE(i + 12),
        cdOffset: tail.readUInt32LE(i + 16),
      };
    }
  }
  return 'zip archive is truncated (no end-of-central-directory record)';
}

interface Member {
  entry: yauzl.Entry;
  /** For reasons: the name as an unzip would show it. */
  name: string;
  xml: boolean;
  directory: boolean;
}

async function checkMembers(
  fh: FileHandle,
  size: number,
  end: EndRecord,
  limits: CheckLimits,
  signal: AbortSignal | undefined,
): Promise<string | null> {
  const { zip: z } = limits;
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(new FileReader(fh), size, {
      lazyEntries: true,
      decodeStrings: false,
      validateEntrySizes: true,
      autoClose: false,
    });
  } catch (err) {
    return damaged(err);
  }
  try {
    if (zip.entryCount > z.maxEntries) {
      return `zip archive has ${zip.entryCount} members, more than ${z.maxEntries} (limit check.zip.maxEntries)`;
    }
    // Pass 1, the central directory: names, flags, declared sizes.
    const members: Member[] = [];
    let declared = 0;
    let centralBytes = 0;
    for (;;) {
      signal?.throwIfAborted();
      let entry: yauzl.Entry | null;
      try {
        entry = await nextEntry(zip);
      } catch (err) {
        return damaged(err);
      }
      if (!entry) break;
      centralBytes += CENTRAL_HEADER_SIZE + entry.fileNameLength + entry.extraFieldLength + entry.fileCommentLength;
      const member = judgeEntry(entry);
      const label = `zip member ${member.name}`;
      if (entry.generalPurposeBitFlag & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) {
        return `${label} is encrypted: its content cannot be checked`;
      }
      if (member.xml && entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
        return `${label} uses compression method ${entry.compressionMethod}, which cannot be checked (only stored and deflated XML members are accepted)`;
      }
      const { uncompressedSize: u, compressedSize: c } = entry;
      if (u > RATIO_FLOOR_BYTES && u > z.maxRatio * c) {
        return `${label} inflates ${c} bytes to ${u} (${Math.round(u / Math.max(c, 1))} times, limit check.zip.maxRatio: ${z.maxRatio}): refused as a zip bomb`;
      }
      declared += u;
      if (declared > z.maxUncompressed) {
        return `zip archive unpacks to more than ${z.maxUncompressed} bytes (limit check.zip.maxUncompressed)`;
      }
      members.push(member);
    }
    // The end record counts the members; central entries past that count are hidden from a reader
    // that trusts the count but not from one that reads the whole directory. Zip64 keeps its own
    // counts elsewhere: not compared.
    if (end.cdOffset !== 0xffffffff && end.entries !== 0xffff && centralBytes !== end.cdSize) {
      return `zip archive is damaged: its central directory holds ${end.cdSize} bytes but its ${members.length} members take ${centralBytes} (a hidden member?)`;
    }
    // Pass 2, the data in file order: local headers, the bytes between members, the content.
    const ordered = [...members].sort(
      (a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader,
    );
    let covered = 0;
    for (const m of ordered) {
      signal?.throwIfAborted();
      const start = m.entry.relativeOffsetOfLocalHeader;
      if (start < covered) return `zip archive is damaged: member ${m.name} overlaps the member before it`;
      await scanGap(fh, covered, start, signal);
      let local: yauzl.LocalFileHeader;
      try {
        local = await zip.readLocalFileHeaderPromise(m.entry);
      } catch (err) {
        return damaged(err, m.name);
      }
      if (!local.fileName.equals(m.entry.fileNameRaw)) {
        const other = judgeName(local.fileName, local.generalPurposeBitFlag, [], `zip member ${m.name}'s local header`);
        return `zip member ${m.name} is named ${other.name} in its local header: refused, an unzip could see either`;
      }
      if (local.generalPurposeBitFlag & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) {
        return `zip member ${m.name} is encrypted: its content cannot be checked`;
      }
      covered = local.fileDataStart + m.entry.compressedSize;
      await checkContent(zip, m, limits, signal);
    }
    const cdOffset = end.cdOffset === 0xffffffff ? covered : end.cdOffset;
    if (cdOffset >= covered) await scanGap(fh, covered, cdOffset, signal);
    return null;
  } catch (err) {
    if (err instanceof Refused) return err.message;
    throw err;
  } finally {
    zip.close();
  }
}

/** Names and kind of a central directory entry; refuses (throws Refused) an unsafe name. */
function judgeEntry(entry: yauzl.Entry): Member {
  const judged = judgeName(entry.fileNameRaw, entry.generalPurposeBitFlag, entry.extraFields, 'zip member');
  return { entry, name: judged.name, xml: judged.xml, directory: judged.directory };
}

function judgeName(
  raw: Buffer,
  flags: number,
  extraFields: yauzl.ExtraField[],
  what: string,
): { name: string; xml: boolean; directory: boolean } {
  let plain: string;
  if (flags & FLAG_UTF8) {
    try {
      plain = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw new Refused(`${what} ${JSON.stringify(raw.toString('latin1'))} has a name that is not valid UTF-8`);
    }
  } else {
    plain = yauzl.getFileNameLowLevel(flags, raw, [], true); // CP437, backslashes kept
  }
  // Info-ZIP's Unicode Path field overrides the name for the unzips that read it: judge both.
  const unicode = yauzl.getFileNameLowLevel(flags, raw, extraFields, true);
  const names = unicode === plain ? [plain] : [plain, unicode];
  let result = { name: printable(plain), xml: false, directory: false };
  for (const name of names) {
    const bad = memberNameProblem(name);
    if (bad) throw new Refused(`${what} ${printable(name)}: unsafe name: ${bad}`);
    const directory = /[/\\]$/.test(name);
    const last =
      name
        .split(/[/\\]/)
        .filter((p) => p !== '')
        .pop() ?? '';
    if (name === plain) result = { name: printable(name), xml: !directory && isXmlName(last), directory };
    else if (!directory && isXmlName(last)) result.xml = true;
  }
  return result;
}

/** Why `name` may not be unpacked into a folder, or null. Both `/` and `\` separate (Windows). */
function memberNameProblem(name: string): string | null {
  if (name.length === 0) return 'name is empty';
  if (/^[/\\]/.test(name)) return 'absolute path (starts with a separator)';
  if (/^[A-Za-z]:/.test(name)) return 'absolute path (drive letter)';
  const parts = name.split(/[/\\]/);
  if (parts.at(-1) === '') parts.pop(); // a directory entry ends with a separator
  for (const part of parts) {
    if (part === '..') return 'a ".." component leads out of the folder it is unpacked in';
    const bad = checkName(part);
    if (bad) return `component ${printable(part)}: ${bad}`;
  }
  return null;
}

/** Inflates the member (never to disk): XML through the XML check, anything else only counted. */
async function checkContent(
  zip: yauzl.ZipFile,
  m: Member,
  limits: CheckLimits,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { entry } = m;
  if (m.directory && entry.uncompressedSize === 0) return;
  // Stored bytes are what they say they are (yauzl compares the two sizes); an unknown method in a
  // member that is not XML cannot be inflated here, and its declared sizes were judged already.
  if (!m.xml && entry.compressionMethod !== 8) return;
  let stream: Readable;
  try {
    stream = await zip.openReadStreamPromise(entry);
  } catch (err) {
    throw new Refused(damaged(err, m.name));
  }
  const check = m.xml ? createXmlCheck(limits.xml, { size: entry.uncompressedSize }) : null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      signal?.throwIfAborted();
      const reason = check?.write(chunk) ?? null;
      if (reason !== null) throw new Refused(`zip member ${m.name}: ${reason}`);
    }
  } catch (err) {
    if (err instanceof Refused || signal?.aborted) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (/too many bytes in the stream/.test(message)) {
      throw new Refused(
        `zip member ${m.name} inflates to more than the ${entry.uncompressedSize} bytes its header declares`,
      );
    }
    if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) throw new Refused(damaged(err, m.name));
    if (/not enough bytes in the stream/.test(message)) throw new Refused(damaged(err, m.name));
    throw err;
  } finally {
    stream.destroy();
  }
  const reason = check?.end() ?? null;
  if (reason !== null) throw new Refused(`zip member ${m.name}: ${reason}`);
}

/** Bytes between members (or before the first, or before the central directory): no hidden local header. */
async function scanGap(fh: FileHandle, from: number, to: number, signal: AbortSignal | undefined): Promise<void> {
  let pos = from;
  let tail = Buffer.alloc(0);
  while (pos < to) {
    signal?.throwIfAborted();
    const chunk = await readAt(fh, pos, Math.min(READ_CHUNK, to - pos));
    if (chunk.length === 0) return;
    const data = Buffer.concat([tail, chunk]);
    const at = data.indexOf(LOCAL_HEADER_SIG);
    if (at !== -1) {
      throw new Refused(
        `zip archive holds a local file header at byte ${pos - tail.length + at} that its central directory does not list (a hidden member)`,
      );
    }
    tail = Buffer.from(data.subarray(Math.max(0, data.length - 3)));
    pos += chunk.length;
  }
}

function damaged(err: unknown, member?: string): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  // Local disk trouble is not the archive's fault: the caller's error handling sees it.
  if (code && !code.startsWith('Z_')) throw err;
  const message = err instanceof Error ? err.message : String(err);
  return `zip archive is damaged${member ? ` at member ${member}` : ''}: ${message.replace(/\.$/, '')}`;
}

/** A name from the archive, quoted and with control characters escaped, at most 100 characters. */
function printable(name: string): string {
  return JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | null> {
  return new Promise((resolve, reject) => {
    const done = () => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    const onEntry = (entry: yauzl.Entry) => (done(), resolve(entry));
    const onEnd = () => (done(), resolve(null));
    const onError = (err: Error) => (done(), reject(err));
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

/**
 * yauzl reads through our own handle: it is closed once, by us (yauzl's fd reader closes the
 * descriptor it is given when its last stream ends, which would close ours under us).
 */
class FileReader extends yauzl.RandomAccessReader {
  constructor(private readonly fh: FileHandle) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    // Positional reads rather than fh.createReadStream: destroying one of those early closes the
    // FileHandle itself (Node 20), and yauzl destroys streams it is done with.
    const fh = this.fh;
    let position = start;
    return new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        const n = Math.min(READ_CHUNK, end - position);
        if (n <= 0) {
          this.push(null);
          return;
        }
        const buf = Buffer.allocUnsafe(n);
        fh.read(buf, 0, n, position).then(
          ({ bytesRead }) => {
            if (bytesRead === 0) {
              this.push(null);
              return;
            }
            position += bytesRead;
            this.push(buf.subarray(0, bytesRead));
          },
          (err: Error) => this.destroy(err),
        );
      },
    });
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null, bytesRead?: number) => void,
  ): void {
    this.fh.read(buffer, offset, length, position).then(
      ({ bytesRead }) => callback(null, bytesRead),
      (err: Error) => callback(err),
    );
  }

  override close(callback: (err: Error | null) => void): void {
    setImmediate(() => callback(null));
  }
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}
