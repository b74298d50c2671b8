// Judges an XML package as its bytes go by: well-formed (XML 1.0, checked by the byte scanner of
// xml-scan.ts), in an encoding on the allow-list, no DOCTYPE or ENTITY anywhere in its bytes (so
// nothing is ever expanded or fetched, whatever a later parser makes of the encoding), and within
// the limits of check.xml, each of which stops the check at the first offending byte so that its
// memory stays small whatever the file's size.
//
// Push-based: `createXmlCheck(...)` takes chunks (`write`) and an end (`end`), each returning null
// while nothing is wrong or the reason once something is (and the same reason from then on), so a
// copy loop can feed it the bytes it copies. `checkXmlFile` is the thin wrapper over a file.
//
// The bytes are not decoded to text: UTF-8 is validated as bytes (node:buffer isUtf8), single-byte
// encodings are looked up byte by byte, and only UTF-16 is transcoded (to UTF-8) before the scan.
import { promises as fsp } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { MarkupScan, plan, SNIFF_BYTES, UNDECLARED_FALLBACK, utf8Cut, type Plan } from './encoding.js';
import { DEFAULT_XML_LIMITS, type XmlLimits } from './limits.js';
import { XmlScan, type Charset, type Refusal } from './xml-scan.js';

/** A check fed the bytes of one package in order. */
export interface ContentCheck {
  /**
   * The next bytes: null while nothing is wrong, else the reason (and every later call returns it
   * too). The chunk is not kept after the call.
   */
  write(chunk: Uint8Array): string | null;
  /** No more bytes: the verdict. */
  end(): string | null;
}

export interface XmlCheckOptions {
  /** The package's size when known: lets the nodes-per-MB limit stop the check early. */
  size?: number;
}

const READ_CHUNK = 256 * 1024;

/** Null when the XML is acceptable, else a reason fit for the ledger and the log. */
export function createXmlCheck(limits: XmlLimits = DEFAULT_XML_LIMITS, opts: XmlCheckOptions = {}): ContentCheck {
  let verdict: string | null = null;
  let ended = false;
  let head: Buffer[] | null = [];
  let headLength = 0;
  const scan = new MarkupScan();
  let stage: ByteStage | null = null;

  const feedBytes = (chunk: Buffer): string | null => {
    const found = scan.write(chunk);
    if (found) return found;
    if (head) {
      head.push(Buffer.from(chunk)); // the caller may reuse its buffer
      headLength += chunk.length;
      if (headLength < SNIFF_BYTES) return null;
      const all = Buffer.concat(head);
      head = null;
      const planned = plan(all, true); // headLength >= SNIFF_BYTES
      if (typeof planned === 'string') return planned;
      stage = new ByteStage(planned, limits, opts.size);
      return stage.write(all);
    }
    return stage!.write(chunk);
  };

  return {
    write(chunk) {
      if (verdict !== null) return verdict;
      if (ended) throw new Error('XML check: write() after end()');
      verdict = feedBytes(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      return verdict;
    },
    end() {
      if (verdict !== null || ended) return verdict;
      ended = true;
      if (head) {
        const all = Buffer.concat(head);
        head = null;
        if (all.length === 0) return (verdict = 'not well-formed XML: the file is empty');
        const planned = plan(all, false);
        if (typeof planned === 'string') return (verdict = planned);
        stage = new ByteStage(planned, limits, opts.size);
        verdict = stage.write(all);
        if (verdict !== null) return verdict;
      }
      verdict = stage!.end();
      return verdict;
    },
  };
}

/**
 * Null when the file is acceptable XML, else the reason. Rejects only for I/O failures, or with
 * `signal.reason` when aborted. The bytes are decoded for checking only; the file is never rewritten.
 */
export async function checkXmlFile(
  path: string,
  signal?: AbortSignal,
  limits: XmlLimits = DEFAULT_XML_LIMITS,
): Promise<string | null> {
  signal?.throwIfAborted();
  // Plain positional reads on our own handle, the signal checked between them: a read stream on a
  // FileHandle closes the handle when destroyed early (Node 20), and one given an already aborted
  // signal never closes its file; on Windows an open handle gets in the way of the rename or
  // delete that comes next.
  const fh = await fsp.open(path, 'r');
  try {
    const { size } = await fh.stat();
    const check = createXmlCheck(limits, { size });
    const buf = Buffer.allocUnsafe(READ_CHUNK); // the check keeps no chunk: one buffer serves every read
    for (let position = 0; ;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const reason = check.write(buf.subarray(0, bytesRead));
      if (reason !== null) return reason;
    }
    signal?.throwIfAborted();
    return check.end();
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// From bytes in the planned encoding to the scanner

const UTF8: Charset = { name: 'utf-8', table: null };
const charsets = new Map<string, Charset>();

/** A single-byte encoding's code point for each byte (-1 where it maps none). */
function singleByte(encoding: string): Charset | null {
  let cs = charsets.get(encoding);
  if (cs) return cs;
  const decoder = new TextDecoder(encoding, { fatal: true });
  const table = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    let text: string;
    try {
      text = decoder.decode(Uint8Array.of(b));
    } catch {
      text = ''; // unmapped
    }
    // markup is printable ASCII: an encoding that moves any of it is not scanned as bytes
    // (cp866 swaps three control bytes, judged by what they decode to)
    if (b >= 0x20 && b < 0x7f && text.charCodeAt(0) !== b) return null;
    table[b] = text.length === 1 ? text.charCodeAt(0) : -1;
  }
  cs = { name: encoding, table };
  charsets.set(encoding, cs);
  return cs;
}

const XML_DECL = Buffer.from('<?xml', 'latin1');
// XML 1.0 [23] XMLDecl, as saxes reads it: a version first, then an optional encoding and standalone.
const XML_DECL_SYNTAX =
  /^<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:"1\.[0-9]+"|'1\.[0-9]+')(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:"[A-Za-z][A-Za-z0-9._-]*"|'[A-Za-z][A-Za-z0-9._-]*'))?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\r\n]*\?>$/;

class ByteStage {
  private readonly scan: XmlScan;
  /** UTF-8 (validated here before the scan); false for single-byte encodings (scanned as they are). */
  private utf8: boolean;
  private readonly undeclared: boolean;
  private readonly utf16: TextDecoder | null = null;
  /** An incomplete UTF-8 sequence at the end of the last chunk. */
  private carry: Buffer = Buffer.alloc(0);
  private started = false;

  constructor(
    private readonly plan: Plan,
    limits: XmlLimits,
    size: number | undefined,
  ) {
    this.undeclared = plan.encoding === null;
    const encoding = plan.encoding ?? 'utf-8';
    let charset = UTF8;
    if (encoding === 'utf-16le' || encoding === 'utf-16be') {
      this.utf16 = new TextDecoder(encoding, { fatal: true });
    } else if (encoding !== 'utf-8') {
      // every encoding on the allow-list but UTF-16 writes ASCII as ASCII (checked here anyway)
      charset = singleByte(encoding) ?? UTF8;
      if (charset === UTF8) throw new Error(`XML check: ${encoding} is not ASCII-compatible`);
    }
    this.utf8 = charset === UTF8;
    this.scan = new XmlScan(charset, limits, size);
  }

  /** Feeds the next bytes. */
  write(chunk: Buffer): string | null {
    if (this.utf16) {
      let text: string;
      try {
        text = this.utf16.decode(chunk, { stream: true });
      } catch {
        return this.undecodable();
      }
      chunk = Buffer.from(text, 'utf8');
    }
    if (!this.started) {
      this.started = true;
      const start = this.start(chunk);
      if (typeof start === 'string') return start;
      chunk = chunk.subarray(start);
    }
    return this.utf8 ? this.feedUtf8(chunk, this.utf16 !== null) : out(this.scan.write(chunk));
  }

  end(): string | null {
    if (this.utf16) {
      let text: string;
      try {
        text = this.utf16.decode();
      } catch {
        return this.undecodable();
      }
      const last = this.feedUtf8(Buffer.from(text, 'utf8'), true);
      if (last !== null) return last;
    } else if (this.carry.length > 0) {
      if (!this.undeclared || !this.utf8) return this.undecodable();
      this.fallBack();
      const last = out(this.scan.write(this.carry));
      if (last !== null) return last;
    }
    return out(this.scan.end());
  }

  /** Where the document starts: past a UTF-8 byte order mark and a valid XML declaration. */
  private start(head: Buffer): number | string {
    let at = 0;
    if (this.plan.encoding === 'utf-8' && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
      this.scan.skip(head.subarray(0, 3), true);
      at = 3;
    }
    const ws = head[at + 5];
    if (head.subarray(at, at + 5).equals(XML_DECL) && (ws === 0x20 || ws === 0x09 || ws === 0x0a || ws === 0x0d)) {
      const end = head.indexOf('?>', at, 'latin1');
      if (end === -1) return 'not well-formed XML at line 1: the XML declaration is incomplete';
      const decl = head.subarray(at, end + 2);
      if (!XML_DECL_SYNTAX.test(decl.toString('latin1'))) {
        return `not well-formed XML at line 1: malformed XML declaration ${JSON.stringify(short(decl.toString('latin1')))}`;
      }
      this.scan.skip(decl);
      at = end + 2;
    }
    return at;
  }

  /** UTF-8 bytes: validated (whole sequences, none of U+FFFE and U+FFFF), then scanned. */
  private feedUtf8(chunk: Buffer, transcoded: boolean): string | null {
    if (!this.utf8) return out(this.scan.write(chunk)); // an undeclared file gone windows-1251
    let data = chunk;
    if (this.carry.length > 0) {
      // complete the sequence the last chunk ended inside of
      const want = seqLength(this.carry[0]!) - this.carry.length;
      const take = Math.min(Math.max(want, 0), data.length);
      const joined = Buffer.concat([this.carry, data.subarray(0, take)]);
      data = data.subarray(take);
      this.carry = Buffer.alloc(0);
      if (want > take) {
        this.carry = joined;
        return null;
      }
      const r = this.validated(joined, transcoded);
      if (r !== null) return r;
      if (!this.utf8) return out(this.scan.write(data)); // that sequence was not UTF-8: windows-1251 from it on
    }
    const cut = utf8Cut(data);
    if (cut < data.length) this.carry = Buffer.from(data.subarray(cut));
    return this.validated(data.subarray(0, cut), transcoded);
  }

  private validated(part: Buffer, transcoded: boolean): string | null {
    if (!transcoded && !isUtf8(part)) {
      if (!this.undeclared) return this.undecodable();
      // undeclared: UTF-8 up to here, windows-1251 from the first byte that is not
      const bad = firstInvalidUtf8(part);
      const before = this.checked(part.subarray(0, bad));
      if (before !== null) return before;
      this.fallBack();
      const rest = Buffer.concat([part.subarray(bad), this.carry]);
      this.carry = Buffer.alloc(0);
      return out(this.scan.write(rest));
    }
    return this.checked(part);
  }

  /** Valid UTF-8: refuses the two non-characters XML excludes, then scans. */
  private checked(part: Buffer): string | null {
    for (let k = part.indexOf(NONCHAR_LEAD); k !== -1; k = part.indexOf(NONCHAR_LEAD, k + 1)) {
      const third = part[k + 2];
      if (third === 0xbe || third === 0xbf) {
        const before = out(this.scan.write(part.subarray(0, k)));
        return before ?? out(this.scan.refuseNext('disallowed character'));
      }
    }
    return out(this.scan.write(part));
  }

  private fallBack(): void {
    this.utf8 = false;
    this.scan.switchTo(singleByte(UNDECLARED_FALLBACK)!);
  }

  private undecodable(): string {
    return `not well-formed XML: bytes are not valid ${this.plan.encoding ?? 'utf-8'} (the encoding its ${this.plan.source ?? 'content'} implies)`;
  }
}

const NONCHAR_LEAD = Buffer.from([0xef, 0xbf]);

function out(r: Refusal | null): string | null {
  return r === null ? null : r.reason;
}

/** Bytes in the UTF-8 sequence `lead` starts (1 for a byte that starts none). */
function seqLength(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
}

/** Offset of the first byte of `buf` that does not start a valid UTF-8 sequence (buf.length if none). */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const c = buf[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    const len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > buf.length) return i;
    let ok = true;
    for (let k = 1; k < len; k++) if ((buf[i + k]! & 0xc0) !== 0x80) ok = false;
    const c1 = buf[i + 1]!;
    if (c === 0xe0 && c1 < 0xa0) ok = false; // overlong
    if (c === 0xed && c1 >= 0xa0) ok = false; // surrogate
    if (c === 0xf0 && c1 < 0x90) ok = false; // overlong
    if (c === 0xf4 && c1 >= 0x90) ok = false; // past U+10FFFF
    if (!ok) return i;
    i += len;
  }
  return i;
}

function short(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
