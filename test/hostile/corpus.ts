// The hostile-input corpus: packages an office, a mailbox or anyone on the network could hand a
// station, each with what must become of it. test/hostile/packages.test.ts runs every entry
// through the inbound pipeline of every transport (lan, FTP, SFTP, e-mail) and through the
// outbound check. A new attack is one new object literal in ENTRIES; its bytes are built here in
// code (no binaries checked in).
import { PassThrough } from 'node:stream';
import yazl from 'yazl';
import { cp1251 } from '../../scripts/samples.mjs';
import { deflatedZeros, makeZip, unicodePathField } from './zip.js';

export type TransportKind = 'lan' | 'ftp' | 'sftp' | 'email';
export const TRANSPORTS: readonly TransportKind[] = ['lan', 'ftp', 'sftp', 'email'];

export interface HostileEntry {
  /** Unique, short, used in test names. */
  id: string;
  /** The attack in one line (or, for a control, what legitimate package it stands for). */
  attack: string;
  /** The package's file name (attachment name over e-mail). Unique within the corpus. */
  name: string;
  /** The bytes, built in code. */
  bytes(): Buffer | Promise<Buffer>;
  /** `delivered`: byte-identical in the inbox; `refused`: quarantined (in) / left in the outbox (out), the reason containing this text. */
  expect: 'delivered' | { refused: string };
  /** A memory attack: the agent judging it runs as a child process whose peak RSS is bounded. */
  memory?: boolean;
  /** Transports it runs on when not all of them, and why. */
  only?: { transports: TransportKind[]; why: string };
}

const MiB = 1024 * 1024;

// ---- building blocks ----------------------------------------------------------------------------

/** A Delphi ClientDataSet packet as SERVIO writes it: shallow, one attribute per field on each ROW. */
function cds(rows: number, opts: { encoding?: 'windows-1251' | 'utf-8-nodecl'; fields?: number } = {}): Buffer {
  const extra = Array.from({ length: Math.max(0, (opts.fields ?? 8) - 8) }, (_, k) => `F${k}`);
  const fields =
    '<FIELD attrname="ID" fieldtype="i4"/><FIELD attrname="NUM_AZS" fieldtype="i4"/>' +
    '<FIELD attrname="DATE_OPER" fieldtype="dateTime"/><FIELD attrname="FUEL" fieldtype="string" WIDTH="40"/>' +
    '<FIELD attrname="VOLUME" fieldtype="fixed" DECIMALS="2" WIDTH="12"/><FIELD attrname="PRICE" fieldtype="fixed" DECIMALS="2" WIDTH="12"/>' +
    '<FIELD attrname="SUMMA" fieldtype="fixed" DECIMALS="2" WIDTH="16"/><FIELD attrname="NOTE" fieldtype="string.uni" WIDTH="2000"/>' +
    extra.map((f) => `<FIELD attrname="${f}" fieldtype="i4"/>`).join('');
  const row = (i: number) =>
    `<ROW RowState="4" ID="${i}" NUM_AZS="17" DATE_OPER="20230511T08:${String(i % 60).padStart(2, '0')}:02000" ` +
    `FUEL="АИ-95 &quot;Премиум&quot;" VOLUME="${((i * 7.31) % 100).toFixed(2)}" PRICE="52.30" ` +
    `SUMMA="${(((i * 7.31) % 100) * 52.3).toFixed(2)}" NOTE="Смена N${i % 3}: ёмкость&#13;&#10;проверена"` +
    extra.map((f, k) => ` ${f}="${(i + k) % 10}"`).join('') +
    '/>';
  const body =
    '<DATAPACKET Version="2.0"><METADATA><FIELDS>' +
    fields +
    '</FIELDS><PARAMS LCID="1049"/></METADATA><ROWDATA>' +
    Array.from({ length: rows }, (_, i) => row(i + 1)).join('') +
    '</ROWDATA></DATAPACKET>';
  if (opts.encoding === 'utf-8-nodecl') {
    return Buffer.from(`<?xml version="1.0" standalone="yes"?>${body}`, 'utf8');
  }
  return cp1251(`<?xml version="1.0" encoding="windows-1251" standalone="yes"?>\r\n${body}\r\n`);
}

/** `count` bytes of `<a>` nested without end. */
function deepXml(bytes: number): Buffer {
  return Buffer.alloc(bytes, '<a>');
}

/** Everything in `text` as one UTF-7 base64 run (`+...-`), as a UTF-7 parser would read it. */
function utf7(text: string): string {
  return `+${Buffer.from(text, 'utf16le').swap16().toString('base64').replace(/=+$/, '')}-`;
}

const XXE = '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<r>&x;</r>\n';

/** A zip as a SERVIO station's tools write one (deflated members, a folder entry), via yazl. */
async function servioZip(dataDescriptors: boolean): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  const mtime = new Date(Date.UTC(2023, 4, 11, 8, 1, 2));
  zip.addEmptyDirectory('TABLES/', { mtime });
  const tables: Array<[string, Buffer]> = [
    ['TABLES/GSMARCHIVE_3.XML', cds(400)],
    ['TABLES/Остатки в резервуарах.xml', cds(50, { encoding: 'utf-8-nodecl' })],
    ['readme.txt', Buffer.from('SERVIO PUMP export\r\n')],
  ];
  for (const [name, data] of tables) {
    if (dataDescriptors) {
      const s = new PassThrough();
      s.end(data);
      zip.addReadStream(s, name, { mtime });
    } else {
      zip.addBuffer(data, name, { mtime });
    }
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const LAN_ONLY_BIG =
  "48 MB through the in-process FTP, SFTP and IMAP servers would take most of the suite's time; " +
  'the smaller variant of the same attack runs on every transport';

// ---- the corpus ---------------------------------------------------------------------------------

export const ENTRIES: HostileEntry[] = [
  // XML: resource attacks
  {
    id: 'deep-xml-48mb',
    attack: '48 MB of nested <a> (within maxSize): took `once` to 4.5 GB and a heap-OOM abort',
    name: 'deep48.xml',
    bytes: () => deepXml(48 * MiB),
    expect: { refused: 'nested more than 64 deep' },
    memory: true,
    only: { transports: ['lan'], why: LAN_ONLY_BIG },
  },
  {
    id: 'deep-xml-5mb',
    attack: '5 MB of nested <a>: cost 510-640 MB of memory',
    name: 'deep5.xml',
    bytes: () => deepXml(5 * MiB),
    expect: { refused: 'nested more than 64 deep' },
    memory: true,
  },
  {
    id: 'many-attributes',
    attack: 'one element with 20000 attributes (each kept by the parser until the tag ends)',
    name: 'attributes.xml',
    bytes: () => Buffer.from(`<r${Array.from({ length: 20_000 }, (_, i) => ` a${i}="1"`).join('')}/>`),
    expect: { refused: 'more than 1000 attributes' },
  },
  {
    id: 'long-name',
    attack: 'an element name of 2 million characters',
    name: 'longname.xml',
    bytes: () => Buffer.concat([Buffer.from('<r'), Buffer.alloc(2 * MiB, 'x'), Buffer.from('/>')]),
    expect: { refused: 'name longer than 256' },
  },
  {
    id: 'entity-dense-attribute',
    attack: 'one attribute of 6 MB of &amp; (each reference a separate piece in memory: 0.4 GB for 48 MB)',
    name: 'amp.xml',
    bytes: () => Buffer.concat([Buffer.from('<r a="'), Buffer.alloc(6_000_000, '&amp;'), Buffer.from('"/>')]),
    expect: { refused: 'refused as a memory attack' },
    memory: true,
  },
  {
    id: 'linebreak-dense-attribute',
    attack: 'one attribute of 3 MB of line breaks (1.7 GB of memory for 48 MB)',
    name: 'newlines.xml',
    bytes: () => Buffer.concat([Buffer.from('<r a="'), Buffer.alloc(3 * MiB, '\n'), Buffer.from('"/>')]),
    expect: { refused: 'refused as a memory attack' },
    memory: true,
  },
  {
    id: 'dense-nodes',
    attack: '2 MB of <a/>x: 420k nodes per MB, a DOM that a station parser would have to build',
    name: 'dense.xml',
    bytes: () => Buffer.concat([Buffer.from('<r>'), Buffer.alloc(2_000_000, '<a/>x'), Buffer.from('</r>')]),
    expect: { refused: 'too many XML nodes' },
  },
  // XML: entities and encodings
  {
    id: 'xxe',
    attack: 'an external entity reading a station file',
    name: 'xxe.xml',
    bytes: () => Buffer.from(XXE),
    expect: { refused: 'DOCTYPE is not allowed' },
  },
  {
    id: 'billion-laughs',
    attack: 'nested entity expansion',
    name: 'lol.xml',
    bytes: () =>
      Buffer.from(
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">' +
          '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>',
      ),
    expect: { refused: 'DOCTYPE is not allowed' },
  },
  {
    id: 'utf7-hidden-doctype',
    attack: 'encoding="UTF-7" with a DOCTYPE and &x; in UTF-7: passed, and libxml2 then read /etc/hostname',
    name: 'utf7.xml',
    bytes: () =>
      Buffer.from(
        '<?xml version="1.0" encoding="UTF-7"?>\n' +
          `<?x ${utf7('?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><?x ')} ?>\n` +
          `<r>${utf7('&x;')}</r>\n`,
      ),
    expect: { refused: 'encoding "UTF-7" is not accepted' },
  },
  {
    id: 'declaration-past-sniff',
    attack: 'encoding="UTF-7" placed after 2000 spaces inside the XML declaration, past the bytes sniffed',
    name: 'longdecl.xml',
    bytes: () => Buffer.from(`<?xml version="1.0"${' '.repeat(2000)} encoding="UTF-7"?><r/>`),
    expect: { refused: 'XML declaration does not end' },
  },
  {
    id: 'utf32',
    attack: 'a UTF-32 file (byte order mark) that the check cannot read as declared',
    name: 'utf32.xml',
    bytes: () => {
      const text = '<?xml version="1.0" encoding="UTF-32"?><r/>';
      const out = Buffer.alloc(4 + text.length * 4);
      out.writeUInt32LE(0xfeff, 0);
      for (let i = 0; i < text.length; i++) out.writeUInt32LE(text.charCodeAt(i), 4 + i * 4);
      return out;
    },
    expect: { refused: 'UTF-32' },
  },
  {
    id: 'ebcdic',
    attack: 'an EBCDIC file',
    name: 'ebcdic.xml',
    bytes: () => Buffer.from([0x4c, 0x6f, 0xa7, 0x94, 0x93, 0x40, 0x6f, 0x6e, 0x4c, 0x99, 0x61, 0x6e]),
    expect: { refused: 'EBCDIC' },
  },
  {
    id: 'unknown-encoding',
    attack: 'an encoding label nobody knows (it used to be read the undeclared way)',
    name: 'unknown-enc.xml',
    bytes: () => Buffer.from('<?xml version="1.0" encoding="x-sprelay-7"?><r/>'),
    expect: { refused: 'encoding "x-sprelay-7" is not accepted' },
  },
  {
    id: 'doctype-as-utf16-bytes',
    attack: 'a DOCTYPE in UTF-16LE bytes inside a windows-1251 file, for a parser that guesses UTF-16',
    name: 'utf16-doctype.xml',
    bytes: () =>
      Buffer.concat([
        Buffer.from('<?xml version="1.0" encoding="windows-1251"?><r><!-- '),
        Buffer.from('<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd">', 'utf16le'),
        Buffer.from(' --></r>'),
      ]),
    expect: { refused: 'as UTF-16LE text' },
  },
  {
    id: 'doctype-in-cdata',
    attack: 'a DOCTYPE with an external entity as CDATA text (a field a later parser might parse)',
    name: 'cdata-doctype.xml',
    bytes: () => Buffer.from(`<r><![CDATA[${XXE.slice(22)}]]></r>`),
    expect: { refused: 'DOCTYPE is not allowed' },
  },
  // Zips
  {
    id: 'zip-xxe-member',
    attack: "a zip holding an XML with an external entity (was delivered to SERVIO's unzip)",
    name: 'xxe.zip',
    bytes: () => makeZip([{ name: 'TABLE.xml', data: Buffer.from(XXE) }]),
    expect: { refused: 'zip member "TABLE.xml": DOCTYPE is not allowed' },
  },
  {
    id: 'zip-traversal',
    attack: 'a zip member named ../../../x.xml (was delivered)',
    name: 'traversal.zip',
    bytes: () => makeZip([{ name: '../../../x.xml', data: Buffer.from('<r/>') }]),
    expect: { refused: 'leads out of the folder' },
  },
  {
    id: 'zip-backslash-traversal',
    attack: 'a zip member named ..\\..\\Windows\\x.xml (Windows unzips take \\ as a separator)',
    name: 'backslash.zip',
    bytes: () => makeZip([{ name: '..\\..\\Windows\\x.xml', data: Buffer.from('<r/>') }]),
    expect: { refused: 'leads out of the folder' },
  },
  {
    id: 'zip-absolute',
    attack: 'a zip member with an absolute path',
    name: 'absolute.zip',
    bytes: () => makeZip([{ name: '/etc/cron.d/x.xml', data: Buffer.from('<r/>') }]),
    expect: { refused: 'absolute path' },
  },
  {
    id: 'zip-drive-letter',
    attack: 'a zip member named C:\\ServioPump\\Import\\x.xml',
    name: 'drive.zip',
    bytes: () => makeZip([{ name: 'C:\\ServioPump\\Import\\x.xml', data: Buffer.from('<r/>') }]),
    expect: { refused: 'drive letter' },
  },
  {
    id: 'zip-device-name',
    attack: 'a zip member named TABLES/NUL.xml (a device on Windows)',
    name: 'device.zip',
    bytes: () => makeZip([{ name: 'TABLES/NUL.xml', data: Buffer.from('<r/>') }]),
    expect: { refused: 'reserved device name "NUL"' },
  },
  {
    id: 'zip-unicode-path',
    attack: 'a harmless stored name whose Info-ZIP Unicode Path field says ../../x.xml',
    name: 'unicode-path.zip',
    bytes: () =>
      makeZip([
        { name: Buffer.from('x.xml'), data: Buffer.from('<r/>'), extra: unicodePathField('x.xml', '../../x.xml') },
      ]),
    expect: { refused: 'leads out of the folder' },
  },
  {
    id: 'zip-local-name',
    attack: 'the central directory says a.xml, the local header (read by streaming unzips) ../a.xml',
    name: 'local-name.zip',
    bytes: () => makeZip([{ name: 'a.xml', localName: '../a.xml', data: Buffer.from('<r/>') }]),
    expect: { refused: 'local header' },
  },
  {
    id: 'zip-hidden-member',
    attack: 'a local entry ../../x.xml that the central directory does not list',
    name: 'hidden.zip',
    bytes: () =>
      makeZip([
        { name: '../../x.xml', data: Buffer.from('<r/>'), hidden: true },
        { name: 'a.xml', data: Buffer.from('<r/>') },
      ]),
    expect: { refused: 'does not list (a hidden member)' },
  },
  {
    id: 'zip-overlap',
    attack: "two central entries sharing one member's data (the overlapping zip bomb)",
    name: 'overlap.zip',
    bytes: () =>
      makeZip([
        { name: 'a.xml', data: Buffer.from('<r/>') },
        { name: 'b.xml', data: Buffer.from('<r/>'), sameDataAs: 0 },
      ]),
    expect: { refused: 'overlaps' },
  },
  {
    id: 'zip-encrypted',
    attack: 'an encrypted member: its content cannot be checked',
    name: 'encrypted.zip',
    bytes: () => makeZip([{ name: 'a.xml', data: Buffer.alloc(100, 0x41), encrypted: true, method: 'deflate' }]),
    expect: { refused: 'is encrypted' },
  },
  {
    id: 'zip-bomb',
    attack: "1 GB of zeros deflated into 1 MB (was delivered to SERVIO's unzip)",
    name: 'bomb.zip',
    bytes: () => makeZip([{ name: 'bomb.xml', data: deflatedZeros(1024) }]),
    expect: { refused: 'refused as a zip bomb' },
    memory: true,
  },
  {
    id: 'zip-lying-size',
    attack: 'a member declaring 1000 bytes that inflates to 64 MB',
    name: 'liar.zip',
    bytes: () => makeZip([{ name: 'liar.dat', data: deflatedZeros(64), declaredSize: 1000 }]),
    expect: { refused: 'inflates to more than the 1000 bytes its header declares' },
  },
  {
    id: 'zip-many-entries',
    attack: '10001 empty members',
    name: 'many.zip',
    bytes: () => makeZip(Array.from({ length: 10_001 }, (_, i) => ({ name: `e${i}`, data: Buffer.alloc(0) }))),
    expect: { refused: 'more than 10000 (limit check.zip.maxEntries)' },
  },
  {
    id: 'zip-deep-member',
    attack: 'an XML member of nested <a>, checked like a lone XML',
    name: 'deep-member.zip',
    bytes: () => makeZip([{ name: 'TABLE.xml', data: deepXml(1_000_000) }]),
    expect: { refused: 'zip member "TABLE.xml": XML elements nested more than 64 deep' },
  },
  // XML well-formedness past the first read: the byte scanner (agent/check/xml-scan.ts) keeps its
  // state across chunks, so a fault deep in a large package is caught where it is
  {
    id: 'duplicate-attribute-deep',
    attack:
      'a ClientDataSet packet whose 3000th ROW repeats an attribute (a parser keeping the last value reads another row)',
    name: 'dup-attr.xml',
    bytes: () => {
      const whole = cds(3000).toString('latin1');
      const last = whole.lastIndexOf('<ROW RowState="4"');
      return Buffer.from(`${whole.slice(0, last)}<ROW ID="0" ${whole.slice(last + 5)}`, 'latin1');
    },
    expect: { refused: 'duplicate attribute: ID' },
  },
  {
    id: 'cdata-end-in-text',
    attack: 'text holding "]]>" far into the file (not well-formed; a lenient parser passes it on)',
    name: 'cdata-end.xml',
    bytes: () => Buffer.concat([cds(2000).subarray(0, -2), Buffer.from('<!-- x -->]]>\r\n')]),
    expect: { refused: 'not well-formed XML' },
  },
  {
    id: 'noncharacter-utf8',
    attack: "U+FFFF (valid UTF-8, not an XML character) in a UTF-8 packet's attribute value",
    name: 'nonchar.xml',
    bytes: () => Buffer.from('<?xml version="1.0" encoding="UTF-8"?><r a="\uffff"/>', 'utf8'),
    expect: { refused: 'disallowed character' },
  },
  {
    id: 'undeclared-utf8-then-cp1251',
    attack:
      'control: no declared encoding, 200 KB of UTF-8 Cyrillic then windows-1251 rows (read as windows-1251 from there; delivered)',
    name: 'mixed-undeclared.xml',
    bytes: () => {
      const utf8 = cds(700, { encoding: 'utf-8-nodecl' }).toString('utf8');
      const head = utf8.slice(0, utf8.indexOf('</ROWDATA>'));
      const rows = cds(100).toString('latin1');
      const tail = rows.slice(rows.indexOf('<ROWDATA>') + '<ROWDATA>'.length);
      return Buffer.concat([Buffer.from(head, 'utf8'), Buffer.from(tail, 'latin1')]);
    },
    expect: 'delivered',
  },
  // Controls: what stations really send must still be delivered
  {
    id: 'servio-cp1251',
    attack: 'control: a SERVIO ClientDataSet packet in windows-1251 (delivered)',
    name: 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML',
    bytes: () => cds(2000),
    expect: 'delivered',
  },
  {
    id: 'servio-utf8-undeclared',
    attack: 'control: a Delphi packet with no encoding in its declaration, UTF-8 Cyrillic (delivered)',
    name: 'Сменный отчёт АЗС 17.xml',
    bytes: () => cds(300, { encoding: 'utf-8-nodecl' }),
    expect: 'delivered',
  },
  {
    id: 'wide-table',
    attack: 'control: a table of 300 fields, one attribute each on every ROW (delivered)',
    name: 'WIDE_TABLE.xml',
    bytes: () => cds(200, { fields: 300 }),
    expect: 'delivered',
  },
  {
    id: 'utf16-bom',
    attack: 'control: a UTF-16LE XML with a byte order mark (delivered)',
    name: 'utf16.xml',
    bytes: () => Buffer.from('\ufeff<?xml version="1.0" encoding="UTF-16"?><r a="Отчёт">смена</r>', 'utf16le'),
    expect: 'delivered',
  },
  {
    id: 'koi8r',
    attack: 'control: a KOI8-R declared XML (delivered)',
    name: 'koi8.xml',
    bytes: () =>
      Buffer.concat([
        Buffer.from('<?xml version="1.0" encoding="KOI8-R"?><r>'),
        Buffer.from([0xf4, 0xc5, 0xd3, 0xd4]),
        Buffer.from('</r>'),
      ]),
    expect: 'delivered',
  },
  {
    id: 'servio-zip',
    attack: 'control: a SERVIO zip (deflated tables in a folder, a readme) written by yazl (delivered)',
    name: 'Архив таблиц 11_05_2023.zip',
    bytes: () => servioZip(false),
    expect: 'delivered',
  },
  {
    id: 'servio-zip-streamed',
    attack: 'control: the same zip written with data descriptors, as streaming zippers do (delivered)',
    name: 'bundle-streamed.zip',
    bytes: () => servioZip(true),
    expect: 'delivered',
  },
];

/** The entries that run on `kind`. */
export function entriesFor(kind: TransportKind): HostileEntry[] {
  return ENTRIES.filter((e) => !e.only || e.only.transports.includes(kind));
}
