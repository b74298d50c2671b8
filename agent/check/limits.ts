// The limits a package's content is judged under (config `check:`), with defaults that every real
// SERVIO / 1C package passes by a wide margin and that keep the check's own memory small.
//
// A Delphi ClientDataSet packet is shallow (DATAPACKET > METADATA > FIELDS > FIELD, or
// DATAPACKET > ROWDATA > ROW; nested datasets add a level or two), has one attribute per field on
// each ROW (wide tables: a few hundred), short field names, and values that are short except for
// memo/blob fields. 1C exchange files nest deeper (a few dozen at most), use longer names, and may
// carry a large base64 value as element text.

const MiB = 1024 * 1024;

export interface XmlLimits {
  /** Elements open at once. ClientDataSet: under 10; 1C: a few dozen. */
  maxDepth: number;
  /** Attributes on one element (a ROW has one per field). */
  maxAttributes: number;
  /** Characters in one element or attribute name. */
  maxNameLength: number;
  /** Characters in one attribute value (memo and blob fields are values). */
  maxAttributeLength: number;
  /** Characters in one text node, CDATA section, comment or processing instruction. */
  maxTextLength: number;
  /** Elements + attributes + text nodes (and comments, CDATA, PIs) per MiB of the file (a file under 1 MiB counts as 1 MiB). */
  maxNodesPerMB: number;
}

export interface ZipLimits {
  /** Total of the members' uncompressed sizes, bytes. */
  maxUncompressed: number;
  /** A member larger than 1 MiB may not inflate to more than this many times its compressed size. */
  maxRatio: number;
  /** Members in one archive (directories count). */
  maxEntries: number;
}

export interface CheckLimits {
  xml: XmlLimits;
  zip: ZipLimits;
}

export const DEFAULT_XML_LIMITS: Readonly<XmlLimits> = Object.freeze({
  // Real packets stay under 10-30; MSXML's own default stop is 256.
  maxDepth: 64,
  // A ROW carries one attribute per field; the widest SERVIO tables have a few hundred fields.
  maxAttributes: 1000,
  // ClientDataSet field names are at most 31-128 characters; 1C identifiers at most 80 (+ prefix).
  maxNameLength: 256,
  // Memo and blob fields are attribute values; 16M characters is far beyond a real one.
  maxAttributeLength: 16 * MiB,
  // A 1C file may carry an attached document as one base64 text node.
  maxTextLength: 32 * MiB,
  // Dense real data (a wide table of zeros, `F12="0"`) is about 130k nodes per MiB; the densest
  // possible markup (`<a/>x` repeated) is 420k. Half-way refuses only markup built to be dense.
  maxNodesPerMB: 250_000,
});

export const DEFAULT_ZIP_LIMITS: Readonly<ZipLimits> = Object.freeze({
  // A 50 MB package of XML compressed 10-20 times is 0.5-1 GB; SERVIO never sends more.
  maxUncompressed: 1024 * MiB,
  // Real tables deflate 10-20 times, a wide table of zeros 155 times, identical rows 410 times;
  // deflate cannot exceed about 1030 (1 GB of zeros in 1 MB).
  maxRatio: 500,
  // SERVIO zips carry a handful of tables.
  maxEntries: 10_000,
});

export const DEFAULT_CHECK_LIMITS: Readonly<CheckLimits> = Object.freeze({
  xml: DEFAULT_XML_LIMITS,
  zip: DEFAULT_ZIP_LIMITS,
});

/** Below this a member's compression ratio is not judged: small members cannot hurt. */
export const RATIO_FLOOR_BYTES = MiB;
