// A zip writer for hostile archives: what yazl refuses to write (absolute and `..` member names,
// backslashes, drive letters), members flagged as encrypted, sizes that lie, deflated zip bombs
// built without holding their inflated bytes, archives with very many members. Only the parts of
// the format the corpus needs (no Zip64, no data descriptors, no extra fields).
import * as zlib from 'node:zlib';

export interface ZipMember {
  /** The name as stored (UTF-8 flag set); a Buffer is stored as is with the flag clear (CP437). */
  name: string | Buffer;
  /** Bytes to store or deflate, or an already deflated stream with its true size and CRC. */
  data: Buffer | Deflated;
  /** Default: deflate for a Buffer of more than 64 bytes, store otherwise. */
  method?: 'store' | 'deflate';
  /** Sets general purpose flag bit 0 (the bytes are not really encrypted: a reader must refuse it anyway). */
  encrypted?: boolean;
  /** Claim this uncompressed size in both headers instead of the true one. */
  declaredSize?: number;
  /** Extra fields (raw), in both headers: e.g. an Info-ZIP Unicode Path field. */
  extra?: Buffer;
  /** A different name in the local header than in the central directory. */
  localName?: string;
  /** Leave the member out of the central directory: only a reader of local headers sees it. */
  hidden?: boolean;
  /** Point the central entry at this earlier member's local header instead of its own (overlap). */
  sameDataAs?: number;
}

/** An Info-ZIP Unicode Path extra field (0x7075) naming `name` for a member stored as `stored`. */
export function unicodePathField(stored: string | Buffer, name: string): Buffer {
  const storedBytes = typeof stored === 'string' ? Buffer.from(stored, 'utf8') : stored;
  const utf8 = Buffer.from(name, 'utf8');
  const head = Buffer.alloc(9);
  head.writeUInt16LE(0x7075, 0);
  head.writeUInt16LE(5 + utf8.length, 2);
  head.writeUInt8(1, 4);
  head.writeUInt32LE(crcUpdate(0, storedBytes), 5);
  return Buffer.concat([head, utf8]);
}

export interface Deflated {
  deflated: Buffer;
  size: number;
  crc: number;
}

/** A deflate stream of `mb` MiB of zero bytes, built from one flushed 1 MiB block repeated: no GB buffer. */
export function deflatedZeros(mb: number): Deflated {
  const block = Buffer.alloc(1 << 20);
  // A full flush ends the block byte-aligned with the dictionary reset, so every copy is the same bytes.
  const one = zlib.deflateRawSync(block, { level: 9, finishFlush: zlib.constants.Z_FULL_FLUSH });
  const end = Buffer.from([0x03, 0x00]); // an empty final block with fixed codes
  const deflated = Buffer.concat([...Array.from({ length: mb }, () => one), end]);
  return { deflated, size: mb * (1 << 20), crc: zerosCrc(mb) };
}

function zerosCrc(mb: number): number {
  const block = Buffer.alloc(1 << 20);
  let crc = 0;
  for (let i = 0; i < mb; i++) crc = crcUpdate(crc, block);
  return crc;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 of `buf` continued from `crc`: node:zlib's where it has one (Node >= 20.15), else by table. */
function crcUpdate(crc: number, buf: Buffer): number {
  const native = (zlib as unknown as { crc32?: (b: Buffer, c: number) => number }).crc32;
  if (native) return native(buf, crc);
  let c = (crc ^ 0xffffffff) >>> 0;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Builds the archive: local headers and data, central directory, end record. */
export function makeZip(members: ZipMember[], comment = Buffer.alloc(0)): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  let listed = 0;
  for (const m of members) {
    const name = typeof m.name === 'string' ? Buffer.from(m.name, 'utf8') : m.name;
    const localName = m.localName !== undefined ? Buffer.from(m.localName, 'utf8') : name;
    const utf8 = typeof m.name === 'string';
    const extra = m.extra ?? Buffer.alloc(0);
    let body: Buffer;
    let size: number;
    let crc: number;
    let method: number;
    if (Buffer.isBuffer(m.data)) {
      const deflate = m.method ? m.method === 'deflate' : m.data.length > 64;
      body = deflate ? zlib.deflateRawSync(m.data) : m.data;
      size = m.data.length;
      crc = crcUpdate(0, m.data);
      method = deflate ? 8 : 0;
    } else {
      body = m.data.deflated;
      size = m.data.size;
      crc = m.data.crc;
      method = 8;
    }
    const declared = m.declaredSize ?? size;
    const flags = (utf8 ? 0x0800 : 0) | (m.encrypted ? 0x0001 : 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(declared, 22);
    local.writeUInt16LE(localName.length, 26);
    local.writeUInt16LE(extra.length, 28);
    offsets.push(offset);
    const at = m.sameDataAs !== undefined ? offsets[m.sameDataAs]! : offset;
    if (m.sameDataAs === undefined) {
      locals.push(local, localName, extra, body);
      offset += local.length + localName.length + extra.length + body.length;
    }
    if (m.hidden) continue;
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(declared, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(at, 42);
    centrals.push(central, name, extra);
    listed++;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(listed, 8);
  eocd.writeUInt16LE(listed, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  eocd.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...locals, cd, eocd, comment]);
}
