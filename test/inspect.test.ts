// Pins what agent/inspect.ts lets through: names judged by Windows rules, XML well-formedness in
// the encodings SERVIO writes (with DOCTYPE refused), zip sanity and include-glob matching.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp1251, storedZip } from '../scripts/samples.mjs';
import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import {
  checkName,
  checkXmlFile,
  checkZipFile,
  createXmlCheck,
  DEFAULT_CHECK_LIMITS,
  isXmlName,
  isZipName,
  matchesInclude,
  type CheckLimits,
  type XmlLimits,
} from '../agent/inspect.js';
import { deflatedZeros, makeZip, unicodePathField } from './hostile/zip.js';
import yazl from 'yazl';
import { PassThrough } from 'node:stream';

const MiB = 1024 * 1024;
let dir = '';
let seq = 0;

before(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sprelay-inspect-'));
});

after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function file(content: string | Buffer): Promise<string> {
  const path = join(dir, `f${++seq}`);
  await fsp.writeFile(path, content);
  return path;
}

function isValidUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

const CDS_HEAD =
  '<?xml version="1.0" encoding="windows-1251" standalone="yes"?>\r\n' +
  '<DATAPACKET Version="2.0"><METADATA><FIELDS>' +
  '<FIELD attrname="ID" fieldtype="i4"/>' +
  '<FIELD attrname="NAME" fieldtype="string" WIDTH="60"/>' +
  '<FIELD attrname="VOLUME" fieldtype="fixed" DECIMALS="2" WIDTH="12"/>' +
  '</FIELDS><PARAMS LCID="1049"/></METADATA><ROWDATA>\r\n';
const cdsRow = (i: number): string => `<ROW ID="${i}" NAME="Ёлка АИ-95 &quot;Премиум&quot; ёж" VOLUME="${i}.50"/>\r\n`;
const CDS_TAIL = '</ROWDATA></DATAPACKET>\r\n';

// ---------------------------------------------------------------------------------------------
// checkName

const rejected: Array<[cls: string, reason: RegExp, names: string[]]> = [
  ['empty', /empty/, ['']],
  ['dot names', /not a file name/, ['.', '..']],
  [
    'path separators',
    /path separator/,
    ['..\\..\\Windows\\x.xml', '../x.xml', 'C:\\x.xml', '\\\\server\\share\\x.xml', '/etc/passwd', 'a/b.xml'],
  ],
  ['drive letters and alternate streams', /":"/, ['C:x.xml', 'a.xml:Zone.Identifier', 'a.xml::$DATA', 'D:']],
  [
    'control characters',
    /control character/,
    [
      'a\u0000b.xml',
      'a\nb.xml',
      'a\tb.xml',
      'a\u001fb.xml',
      'a\u007fb.xml',
      'a\u009bb.xml',
      'a\u0085.xml',
      'a\u001b[2J.xml',
    ],
  ],
  [
    'invisible format characters (bidi overrides, zero-width, BOM, soft hyphen)',
    /invisible character U\+[0-9A-F]{4}/,
    [
      'report\u202Elmx.exe',
      'a\u202Ab.xml',
      'a\u2066b\u2069.xml',
      'a\u200Bb.xml',
      'a\u200Db.xml',
      '\uFEFFa.xml',
      'a\u00ADb.xml',
      'a\u200Eb.xml',
      'a\u2028b.xml',
    ],
  ],
  [
    'look-alikes Windows may turn into path characters',
    /may turn into a path character/,
    ['..\uff0fx.xml', 'a\uff3cb.xml', 'C\uff1ax.xml', 'a\u2215b.xml', 'a\u2044b.xml', 'a\uff1fb.xml'],
  ],
  ['a leading space', /starts with a space/, [' leading space.xml', '  x.xml']],
  [
    'characters Windows forbids',
    /Windows does not allow/,
    ['a<b.xml', 'a>b.xml', 'a"b.xml', 'a|b.xml', 'a?.xml', '*.xml'],
  ],
  ['trailing dot or space', /ends with a dot or space/, ['x.xml.', 'x.xml ', 'x...', 'report  ']],
  [
    'reserved device names',
    /reserved device name "(CON|PRN|AUX|NUL|COM.|LPT.|CONIN\$|CONOUT\$|CLOCK\$)"/,
    [
      'CON',
      'con',
      'con.xml',
      'NUL.xml',
      'NUL .xml',
      'COM1.tar.gz',
      'com1.tar.gz',
      'Lpt9 .txt',
      'COM\u00b9.xml',
      'lpt\u00b3',
      'CONIN$',
      'conout$.log',
      'PRN',
      'aux.zip',
      'COM0',
      'LPT0.xml',
      'nul..xml',
      'CLOCK$',
      'clock$.xml',
    ],
  ],
  [
    'too long',
    /longer than 255/,
    ['a'.repeat(256), 'я'.repeat(252) + '.xml', 'я'.repeat(128) + '.xml' /* 132 units but 260 UTF-8 bytes */],
  ],
  ['our temp prefix', /\.sprelay-/, ['.sprelay-1234.tmp', '.SPRELAY-x.xml']],
  ['in-flight suffix', /\.part/, ['x.xml.part', 'X.XML.PART', 'bundle.zip.Part']],
  ['unpaired surrogates', /surrogate/, ['a\ud800b.xml', 'x\udc00.xml']],
];

for (const [cls, reason, names] of rejected) {
  for (const name of names) {
    test(`checkName rejects ${cls}: ${JSON.stringify(name.length > 40 ? name.slice(0, 20) + '…' : name)}`, () => {
      const got = checkName(name);
      assert.ok(got !== null, `expected ${JSON.stringify(name)} to be rejected`);
      assert.match(got, reason);
    });
  }
}

test('checkName names the device in upper case whatever the spelling', () => {
  assert.equal(checkName('con.xml'), 'reserved device name "CON"');
  assert.equal(checkName('Lpt9 .txt'), 'reserved device name "LPT9"');
  assert.equal(checkName('COM\u00b2.tar.gz'), 'reserved device name "COM\u00b2"');
});

const allowed = [
  'Отчёт смены 11_05_2023.XML',
  'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML',
  'a.b.c.xml',
  'trailing inner space .xml',
  'CLOCK.xml',
  'ё Ї ї Є є Ґ ґ І і.xml',
  'name with  inner   spaces.zip',
  'CONSOLE.xml',
  'COM10.xml',
  'LPT.xml',
  'NUL-report.xml',
  'con x.xml',
  'x.partial',
  'part',
  '.hidden.xml',
  '.sprelay',
  'emoji 😀.xml',
  "O'Brien #1 (copy) [2] {x} & y; 100%.xml",
  'a'.repeat(255),
  'я'.repeat(127),
];

for (const name of allowed) {
  test(`checkName allows ${JSON.stringify(name.length > 40 ? name.slice(0, 20) + '…' : name)}`, () => {
    assert.equal(checkName(name), null);
  });
}

test('isXmlName and isZipName look at the extension only, case-insensitively', () => {
  assert.equal(isXmlName('GSMARCHIVE_3.XML'), true);
  assert.equal(isXmlName('отчёт.xml'), true);
  assert.equal(isXmlName('x.xml.part'), false);
  assert.equal(isXmlName('x.zip'), false);
  assert.equal(isXmlName('xml'), false);
  assert.equal(isZipName('Bundle.ZIP'), true);
  assert.equal(isZipName('bundle.zip'), true);
  assert.equal(isZipName('bundle.zip.part'), false);
  assert.equal(isZipName('bundle.xml'), false);
});

// ---------------------------------------------------------------------------------------------
// checkXmlFile

test('XML: well-formed UTF-8 with a declaration', async () => {
  const path = await file('<?xml version="1.0" encoding="UTF-8"?>\n<r a="Отчёт">смена &amp; &#x410; &lt;</r>\n');
  assert.equal(await checkXmlFile(path), null);
});

test('XML: well-formed UTF-8 without a declaration', async () => {
  assert.equal(await checkXmlFile(await file('<r><a>Отчёт смены</a></r>')), null);
});

test('XML: windows-1251 with a declaration', async () => {
  const bytes = cp1251('<?xml version="1.0" encoding="windows-1251"?><r a="Ёлка">Отчёт смены ёж</r>');
  assert.equal(isValidUtf8(bytes), false, 'the sample must not be UTF-8 by accident');
  assert.equal(await checkXmlFile(await file(bytes)), null);
});

test('XML: windows-1251 without a declaration falls back from UTF-8', async () => {
  const bytes = cp1251('<r a="Ёлка">Отчёт смены</r>');
  assert.equal(isValidUtf8(bytes), false);
  assert.equal(await checkXmlFile(await file(bytes)), null);
});

test('XML: windows-1251 without a declaration is still checked for structure', async () => {
  const got = await checkXmlFile(await file(cp1251('<r>\nЁлка</s>')));
  assert.match(got ?? '', /^not well-formed XML at line 2, column \d+: /);
});

test('XML: windows-1251 with a declaration is still checked for structure', async () => {
  const got = await checkXmlFile(await file(cp1251('<?xml version="1.0" encoding="windows-1251"?>\n<r a=Ёлка/>')));
  assert.match(got ?? '', /^not well-formed XML at line 2, column \d+: .*unquoted/);
});

test('XML: bytes that are not the declared UTF-8 are not well-formed', async () => {
  const got = await checkXmlFile(await file(cp1251('<?xml version="1.0" encoding="utf-8"?><r>Ёлка</r>')));
  assert.match(got ?? '', /not valid utf-8/);
});

test('XML: UTF-8 byte order mark is accepted', async () => {
  const bom = Buffer.from([0xef, 0xbb, 0xbf]);
  assert.equal(
    await checkXmlFile(await file(Buffer.concat([bom, Buffer.from('<?xml version="1.0"?><r>Ёж</r>')]))),
    null,
  );
  assert.equal(await checkXmlFile(await file(Buffer.concat([bom, Buffer.from('<r/>')]))), null);
});

test('XML: UTF-16LE with a byte order mark', async () => {
  const path = await file(Buffer.from('\ufeff<?xml version="1.0" encoding="UTF-16"?><r>Отчёт</r>', 'utf16le'));
  assert.equal(await checkXmlFile(path), null);
});

test('XML: a Delphi ClientDataSet packet in windows-1251', async () => {
  const bytes = cp1251(CDS_HEAD + cdsRow(1) + cdsRow(2) + cdsRow(3) + CDS_TAIL);
  assert.equal(isValidUtf8(bytes), false);
  assert.equal(await checkXmlFile(await file(bytes)), null);
});

test('XML: a ClientDataSet packet cut short is not well-formed', async () => {
  const whole = cp1251(CDS_HEAD + cdsRow(1) + cdsRow(2) + CDS_TAIL);
  const got = await checkXmlFile(await file(whole.subarray(0, whole.length - 40)));
  assert.match(got ?? '', /^not well-formed XML at line \d+, column \d+: /);
});

const malformed: Array<[what: string, content: string | Buffer, reason: RegExp]> = [
  ['empty file', '', /empty/],
  ['unclosed root element', '<?xml version="1.0"?><r><a/>', /unclosed tag: r/],
  ['root cut inside a tag', '<r><a b="1', /not well-formed XML at line 1/],
  ['missing root (declaration only)', '<?xml version="1.0"?>\n', /root element/],
  ['missing root (comment only)', '<!-- nothing -->', /root element/],
  ['plain text', 'hello world', /text data outside of root node/],
  ['binary garbage', Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x03, 0x9c]), /not well-formed XML/],
  ['a zip passed as XML', Buffer.from('PK\x03\x04\x14\x00\x00\x00', 'latin1'), /not well-formed XML/],
  ['mismatched tags', '<r><a></b></r>', /not well-formed XML at line 1/],
  ['two roots', '<r/><s/>', /not well-formed XML/],
  ['undefined entity', '<r>\n&foo;</r>', /^not well-formed XML at line 2, column 5: undefined entity$/],
  ['bad position report', '<r>\n  <a>\n<b x=1/></a></r>', /^not well-formed XML at line 3, column 6: /],
];

for (const [what, content, reason] of malformed) {
  test(`XML: ${what} is reported`, async () => {
    const got = await checkXmlFile(await file(content));
    assert.ok(got !== null, `${what} passed as well-formed`);
    assert.match(got, reason);
  });
}

const doctypes: Array<[what: string, content: string]> = [
  ['XXE', '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'],
  [
    'billion laughs',
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n' +
      ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n' +
      ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n' +
      ' <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">\n' +
      ']>\n<lolz>&lol4;</lolz>',
  ],
  ['external DTD', '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>'],
  ['harmless-looking DOCTYPE', '<!DOCTYPE DATAPACKET><DATAPACKET/>'],
  ['DOCTYPE with an internal subset larger than a read chunk', `<!DOCTYPE r [<!-- ${'x'.repeat(300_000)} -->]><r/>`],
];

for (const [what, content] of doctypes) {
  test(`XML: ${what} is refused for its DOCTYPE`, async () => {
    const got = await checkXmlFile(await file(content));
    assert.ok(got !== null, `${what} passed`);
    assert.match(got, /DOCTYPE/);
    assert.doesNotMatch(got, /root:/, 'nothing may be read through the entity');
  });
}

async function writeLargeCds(rows: number, tail: string): Promise<string> {
  const path = join(dir, `large${++seq}.xml`);
  const out = createWriteStream(path);
  out.write(cp1251(CDS_HEAD));
  for (let i = 0; i < rows; i++) {
    if (!out.write(cp1251(cdsRow(i)))) await once(out, 'drain');
  }
  out.end(cp1251(tail));
  await once(out, 'finish');
  return path;
}

const LARGE_ROWS = 80_000; // about 5.5 MB of rows

test('XML: a 5 MB packet is streamed and judged well-formed', async () => {
  const path = await writeLargeCds(LARGE_ROWS, CDS_TAIL);
  assert.ok((await fsp.stat(path)).size >= 5 * 1024 * 1024);
  assert.equal(await checkXmlFile(path), null);
});

test('XML: a 5 MB packet missing its last close tag is caught at its end', async () => {
  const path = await writeLargeCds(LARGE_ROWS, '</ROWDATA>\r\n');
  const got = await checkXmlFile(path);
  // Rows start on line 3 and the tail ends with a newline: the end of the file is line rows + 4.
  assert.equal(got, `not well-formed XML at line ${LARGE_ROWS + 4}, column 0: unclosed tag: DATAPACKET`);
});

test('XML: an aborted signal rejects with its reason', async () => {
  const path = await writeLargeCds(LARGE_ROWS, CDS_TAIL);
  const pre = new AbortController();
  const early = new Error('stop before start');
  pre.abort(early);
  await assert.rejects(checkXmlFile(path, pre.signal), (e) => e === early);

  const mid = new AbortController();
  const late = new Error('stop while reading');
  const pending = checkXmlFile(path, mid.signal);
  mid.abort(late);
  await assert.rejects(pending, (e) => e === late);
});

test('XML: a missing file rejects rather than being judged', async () => {
  await assert.rejects(checkXmlFile(join(dir, 'no-such.xml')), { code: 'ENOENT' });
});

// ---------------------------------------------------------------------------------------------
// checkZipFile

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function eocd(entries: number, cdSize: number, cdOffset: number, comment = Buffer.alloc(0)): Buffer {
  return Buffer.concat([
    Buffer.from('PK\x05\x06', 'latin1'),
    u16(0),
    u16(0),
    u16(entries),
    u16(entries),
    u32(cdSize),
    u32(cdOffset),
    u16(comment.length),
    comment,
  ]);
}

test('zip: a valid single-entry archive passes', async () => {
  assert.equal(await checkZipFile(await file(storedZip('Отчёт.xml', Buffer.from('<r/>')))), null);
});

test('zip: an archive with a comment passes', async () => {
  const zip = storedZip('a.xml', Buffer.from('<r/>'), Buffer.from('made by SERVIO'));
  assert.equal(await checkZipFile(await file(zip)), null);
});

test('zip: an empty archive (end record only) passes', async () => {
  assert.equal(await checkZipFile(await file(eocd(0, 0, 0))), null);
});

test('zip: a large archive whose end record is far from the start passes', async () => {
  const big = Buffer.concat([Buffer.from('<r>'), Buffer.alloc(200_000, 0x61), Buffer.from('</r>')]);
  assert.equal(await checkZipFile(await file(storedZip('big.xml', big))), null);
});

test('zip: truncated archives are reported', async () => {
  const zip = storedZip('a.xml', Buffer.alloc(1000, 0x61));
  for (const cut of [10, zip.length - 30, zip.length - 5, zip.length - 1]) {
    const got = await checkZipFile(await file(zip.subarray(0, cut)));
    assert.equal(got, 'zip archive is truncated (no end-of-central-directory record)', `cut at ${cut}`);
  }
});

test('zip: end-record bytes inside the data do not hide a truncation', async () => {
  // A fake end record whose comment would run past the end of the file.
  const fake = Buffer.concat([eocd(0, 0, 0).subarray(0, 20), u16(0xffff), Buffer.alloc(100, 0x61)]);
  const zip = storedZip('a.xml', fake);
  const cut = zip.indexOf(Buffer.from('PK\x01\x02', 'latin1'));
  assert.match((await checkZipFile(await file(zip.subarray(0, cut)))) ?? '', /truncated/);
});

test('zip: non-zip files are reported', async () => {
  assert.equal(await checkZipFile(await file('<r/>')), 'not a zip archive');
  assert.equal(await checkZipFile(await file(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00]))), 'not a zip archive');
  assert.equal(await checkZipFile(await file('PK')), 'not a zip archive');
  assert.match((await checkZipFile(await file(''))) ?? '', /not a zip archive/);
});

// ---------------------------------------------------------------------------------------------
// XML: declared encodings on an allow-list, and the raw-byte scan for DOCTYPE / ENTITY

const accepted: Array<[label: string, bytes: Buffer]> = [
  [
    'cp866',
    Buffer.concat([
      Buffer.from('<?xml version="1.0" encoding="cp866"?><r>'),
      Buffer.from([0x8e, 0xe2, 0xe7, 0xa5, 0xe2]),
      Buffer.from('</r>'),
    ]),
  ],
  [
    'KOI8-R',
    Buffer.concat([
      Buffer.from('<?xml version="1.0" encoding="KOI8-R"?><r>'),
      Buffer.from([0xf4, 0xc5, 0xd3, 0xd4]),
      Buffer.from('</r>'),
    ]),
  ],
  [
    'koi8-u',
    Buffer.concat([
      Buffer.from("<?xml version='1.0' encoding='koi8-u'?><r>"),
      Buffer.from([0xa4, 0xa6]),
      Buffer.from('</r>'),
    ]),
  ],
  [
    'ISO-8859-5',
    Buffer.concat([
      Buffer.from('<?xml version="1.0" encoding="ISO-8859-5"?><r a="'),
      Buffer.from([0xbe, 0xe2]),
      Buffer.from('"/>'),
    ]),
  ],
  [
    'ISO-8859-1',
    Buffer.concat([
      Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><r>caf'),
      Buffer.from([0xe9]),
      Buffer.from('</r>'),
    ]),
  ],
  ['US-ASCII', Buffer.from('<?xml version="1.0" encoding="US-ASCII"?><r/>')],
  ['Windows-1251', cp1251('<?xml version="1.0" encoding="Windows-1251"?><r>Ёж</r>')],
  [
    'UTF-16BE with a byte order mark',
    Buffer.from('\ufeff<?xml version="1.0" encoding="UTF-16"?><r>Отчёт</r>', 'utf16le').swap16(),
  ],
  ['UTF-16LE without a byte order mark', Buffer.from('<?xml version="1.0" encoding="UTF-16"?><r>Отчёт</r>', 'utf16le')],
];

for (const [label, bytes] of accepted) {
  test(`XML: encoding ${label} is accepted`, async () => {
    assert.equal(await checkXmlFile(await file(bytes)), null);
  });
}

const refusedEncodings: Array<[what: string, bytes: Buffer, reason: RegExp]> = [
  [
    'UTF-7',
    Buffer.from('<?xml version="1.0" encoding="UTF-7"?><r>+ACY-x+ADs-</r>'),
    /XML encoding "UTF-7" is not accepted \(accepted: UTF-8, UTF-16, windows-1251/,
  ],
  [
    'an unknown label',
    Buffer.from('<?xml version="1.0" encoding="x-nobody"?><r/>'),
    /encoding "x-nobody" is not accepted/,
  ],
  [
    'ISO-2022-JP (escape sequences)',
    Buffer.from('<?xml version="1.0" encoding="ISO-2022-JP"?><r/>'),
    /encoding "ISO-2022-JP" is not accepted/,
  ],
  [
    'windows-1250 (not on the list)',
    Buffer.from('<?xml version="1.0" encoding="windows-1250"?><r/>'),
    /"windows-1250" is not accepted/,
  ],
  [
    'a label with a space',
    Buffer.from('<?xml version="1.0" encoding="UTF 7"?><r/>'),
    /encoding "UTF 7" is not accepted/,
  ],
  [
    'UTF-7 declared behind a UTF-8 byte order mark',
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<?xml version="1.0" encoding="UTF-7"?><r/>')]),
    /"UTF-7" is not accepted/,
  ],
  [
    'UTF-7 declared in a UTF-16 file',
    Buffer.from('\ufeff<?xml version="1.0" encoding="UTF-7"?><r/>', 'utf16le'),
    /"UTF-7" is not accepted/,
  ],
  ['UTF-32BE byte order mark', Buffer.from([0, 0, 0xfe, 0xff, 0, 0, 0, 0x3c]), /UTF-32/],
  ['UTF-32LE without a byte order mark', Buffer.from([0x3c, 0, 0, 0, 0x72, 0, 0, 0]), /UTF-32/],
  ['EBCDIC', Buffer.from([0x4c, 0x6f, 0xa7, 0x94, 0x93]), /EBCDIC/],
  [
    'a declaration that does not end in the first 1024 bytes',
    Buffer.from(`<?xml version="1.0"${' '.repeat(1100)} encoding="UTF-7"?><r/>`),
    /declaration does not end within its first 1024 bytes/,
  ],
];

for (const [what, bytes, reason] of refusedEncodings) {
  test(`XML: ${what} is refused naming the encoding`, async () => {
    assert.match((await checkXmlFile(await file(bytes))) ?? '', reason);
  });
}

const hiddenMarkup: Array<[what: string, bytes: Buffer, reason: RegExp]> = [
  ['lower-case <!doctype', Buffer.from('<!doctype r><r/>'), /^DOCTYPE is not allowed \(byte 0\)/],
  [
    '<!ENTITY in a comment',
    Buffer.from('<r><!-- <!ENTITY x SYSTEM "file:///etc/passwd"> --></r>'),
    /^ENTITY declaration is not allowed \(byte 8\)/,
  ],
  ['DOCTYPE in CDATA', Buffer.from('<r><![CDATA[<!DOCTYPE x>]]></r>'), /^DOCTYPE is not allowed/],
  [
    'DOCTYPE as UTF-16LE bytes in a windows-1251 file',
    Buffer.concat([Buffer.from('<r>'), Buffer.from('<!DOCTYPE', 'utf16le'), Buffer.from('</r>')]),
    /as UTF-16LE text/,
  ],
  [
    'DOCTYPE as UTF-16BE bytes',
    Buffer.concat([Buffer.from('<r>'), Buffer.from('<!doctype', 'utf16le').swap16(), Buffer.from('</r>')]),
    /as UTF-16BE text/,
  ],
  [
    'ENTITY in a UTF-16LE file',
    Buffer.from('\ufeff<r><!-- <!ENTITY x "y"> --></r>', 'utf16le'),
    /ENTITY declaration is not allowed.*UTF-16LE/,
  ],
];

for (const [what, bytes, reason] of hiddenMarkup) {
  test(`XML raw scan: ${what} is refused`, async () => {
    assert.match((await checkXmlFile(await file(bytes))) ?? '', reason);
  });
}

test('XML raw scan: a DOCTYPE split across two reads is found at its byte', async () => {
  for (const at of [64 * 1024 - 4, 256 * 1024 - 4]) {
    // `<!DO` ends a 64 KB (or 256 KB) read, `CTYPE` starts the next
    const bytes = Buffer.concat([
      Buffer.from('<r>'),
      Buffer.alloc(at - 3, 0x20),
      Buffer.from('<!DOCTYPE r>'),
      Buffer.from('</r>'),
    ]);
    const reason = `DOCTYPE is not allowed (byte ${at}): entity declarations and external references are refused`;
    assert.equal(await checkXmlFile(await file(bytes)), reason);
    // and pushed in pieces that cut the word anywhere
    for (const cut of [at + 1, at + 2, at + 5, at + 8]) {
      const check = createXmlCheck();
      assert.equal(check.write(bytes.subarray(0, cut)) ?? check.write(bytes.subarray(cut)), reason, `cut at ${cut}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// XML: limits (check.xml)

function xmlLimits(over: Partial<XmlLimits>): XmlLimits {
  return { ...DEFAULT_CHECK_LIMITS.xml, ...over };
}

function nested(depth: number): string {
  return '<a>'.repeat(depth) + '</a>'.repeat(depth);
}

test('XML limits: depth at the limit passes, one more is refused where it happens', async () => {
  const limits = xmlLimits({ maxDepth: 5 });
  assert.equal(await checkXmlFile(await file(nested(5)), undefined, limits), null);
  assert.equal(
    await checkXmlFile(await file(nested(6)), undefined, limits),
    'XML elements nested more than 5 deep at line 1, column 18 (limit check.xml.maxDepth)',
  );
});

test('XML limits: the default depth (64) passes a ClientDataSet packet and refuses 65', async () => {
  assert.equal(await checkXmlFile(await file(nested(64))), null);
  assert.match((await checkXmlFile(await file(nested(65)))) ?? '', /nested more than 64 deep/);
});

test('XML limits: attributes per element', async () => {
  const el = (n: number) => `<ROW${Array.from({ length: n }, (_, i) => ` F${i}="${i}"`).join('')}/>`;
  const limits = xmlLimits({ maxAttributes: 300 });
  assert.equal(await checkXmlFile(await file(`<R>${el(300)}${el(300)}</R>`), undefined, limits), null);
  assert.match(
    (await checkXmlFile(await file(`<R>${el(300)}${el(301)}</R>`), undefined, limits)) ?? '',
    /^element <ROW> has more than 300 attributes at line 1, column \d+ \(limit check\.xml\.maxAttributes\)$/,
  );
});

test('XML limits: names of elements and attributes', async () => {
  const limits = xmlLimits({ maxNameLength: 31 });
  const name = 'N'.repeat(31);
  assert.equal(await checkXmlFile(await file(`<${name} ${name}="1"/>`), undefined, limits), null);
  assert.match(
    (await checkXmlFile(await file(`<${name}X/>`), undefined, limits)) ?? '',
    /XML name longer than 31 characters/,
  );
  assert.match(
    (await checkXmlFile(await file(`<r ${name}X="1"/>`), undefined, limits)) ?? '',
    /XML name longer than 31 characters/,
  );
});

test('XML limits: attribute values and text', async () => {
  const limits = xmlLimits({ maxAttributeLength: 1000, maxTextLength: 2000 });
  assert.equal(
    await checkXmlFile(await file(`<r a="${'x'.repeat(1000)}">${'t'.repeat(2000)}</r>`), undefined, limits),
    null,
  );
  assert.match(
    (await checkXmlFile(await file(`<r a="${'x'.repeat(1001)}"/>`), undefined, limits)) ?? '',
    /^attribute "a" is longer than 1000 characters at line 1, column \d+ \(limit check\.xml\.maxAttributeLength\)$/,
  );
  assert.match(
    (await checkXmlFile(await file(`<r>${'t'.repeat(2001)}</r>`), undefined, limits)) ?? '',
    /XML text longer than 2000 characters/,
  );
  assert.match(
    (await checkXmlFile(await file(`<r><!--${'c'.repeat(2001)}--></r>`), undefined, limits)) ?? '',
    /XML text longer than 2000/,
  );
});

test('XML limits: a value still open is stopped at the limit, not read to its end', async () => {
  // 3 MB of an attribute that never closes: refused within a read of the limit, not at its end.
  const limits = xmlLimits({ maxAttributeLength: MiB, maxTextLength: MiB });
  const got = await checkXmlFile(
    await file(Buffer.concat([Buffer.from('<r a="'), Buffer.alloc(3 * MiB, 'x')])),
    undefined,
    limits,
  );
  const col = Number(/^attribute "a" is longer than 1048576 characters at line 1, column (\d+) /.exec(got ?? '')?.[1]);
  assert.ok(col > MiB && col <= MiB + 256 * 1024 + 6, `stopped within a read of the limit: ${got}`);
  const name = await checkXmlFile(await file(Buffer.concat([Buffer.from('<r'), Buffer.alloc(MiB, 'x')])));
  // `<` and 256 name characters, refused at the 257th
  assert.match(name ?? '', /^XML name longer than 256 characters at line 1, column 258 /);
});

test('XML limits: many references or line breaks in one tag are a memory attack', async () => {
  const amp = Buffer.concat([Buffer.from('<r a="'), Buffer.alloc(6 * MiB, '&amp;'), Buffer.from('"/>')]);
  assert.match(
    (await checkXmlFile(await file(amp))) ?? '',
    /more than 1000000 entity references, tabs or line breaks in one tag/,
  );
  // the same count spread over many tags is ordinary data
  const rows = Array.from({ length: 30_000 }, (_, i) => `<ROW N="a&amp;b&#13;&#10;${i}"/>`).join('\n');
  assert.equal(await checkXmlFile(await file(`<R>${rows}</R>`)), null);
  // and text is never held, so an escaped document as text is no attack
  assert.equal(await checkXmlFile(await file(`<r>${'&lt;x/&gt;'.repeat(300_000)}</r>`)), null);
});

test('XML limits: nodes per MB count elements, attributes and text, a small file as 1 MB', async () => {
  const limits = xmlLimits({ maxNodesPerMB: 1000 });
  // 500 elements, 500 text nodes: 1000 nodes
  assert.equal(await checkXmlFile(await file(`<r>${'<a/>x'.repeat(499)}<a/></r>`), undefined, limits), null);
  assert.match(
    (await checkXmlFile(await file(`<r>${'<a/>x'.repeat(500)}</r>`), undefined, limits)) ?? '',
    /^too many XML nodes: more than 1000 elements, attributes and text nodes in \d+ bytes \(limit check\.xml\.maxNodesPerMB: 1000 per MB\)$/,
  );
  assert.match(
    (await checkXmlFile(
      await file(`<r ${Array.from({ length: 1000 }, (_, i) => `a${i}="1"`).join(' ')}/>`),
      undefined,
      limits,
    )) ?? '',
    /too many XML nodes/,
  );
});

test('XML limits: a deep 5 MB file is refused after its first bytes, in little memory', async () => {
  const path = await file(Buffer.alloc(5 * MiB, '<a>'));
  const before = process.memoryUsage().heapUsed;
  const t = Date.now();
  assert.match((await checkXmlFile(path)) ?? '', /nested more than 64 deep at line 1, column 195/);
  assert.ok(Date.now() - t < 2000, 'refused at the start, not after reading it all');
  assert.ok(process.memoryUsage().heapUsed - before < 50 * MiB, 'the tag stack was not built');
});

// ---------------------------------------------------------------------------------------------
// XML: the push-based check gives the file's verdict whatever the chunking

const pushCases: Array<[what: string, bytes: Buffer]> = [
  [
    'a cp1251 packet without a declared encoding',
    cp1251(CDS_HEAD.replace(' encoding="windows-1251"', '') + cdsRow(1) + cdsRow(2) + CDS_TAIL),
  ],
  ['UTF-8 Cyrillic split inside characters', Buffer.from('<r a="Ёлка">Отчёт смены ёж</r>')],
  ['UTF-16LE', Buffer.from('\ufeff<r>Отчёт</r>', 'utf16le')],
  ['not well-formed', Buffer.from('<r><a></r>')],
  ['a DOCTYPE', Buffer.from('<!DOCTYPE r><r/>')],
];

for (const [what, bytes] of pushCases) {
  test(`XML push check: ${what}, fed a byte at a time, says what the file check says`, async () => {
    const fromFile = await checkXmlFile(await file(bytes));
    const check = createXmlCheck(DEFAULT_CHECK_LIMITS.xml, { size: bytes.length });
    let got: string | null = null;
    for (let i = 0; i < bytes.length && got === null; i++) got = check.write(bytes.subarray(i, i + 1));
    got ??= check.end();
    if (fromFile === null) assert.equal(got, null);
    else assert.equal((got ?? '').replace(/\d+/g, 'N'), fromFile.replace(/\d+/g, 'N'));
    assert.equal(check.end(), got, 'the verdict sticks');
  });
}

test('XML push check: an undeclared file that turns out not to be UTF-8 after a UTF-8 start is judged as windows-1251', () => {
  const check = createXmlCheck();
  assert.equal(check.write(Buffer.from('<r a="Ёлка">')), null); // valid UTF-8
  assert.equal(check.write(cp1251('<b>Отчёт</b>')), null); // not UTF-8: read on as windows-1251
  assert.equal(check.write(Buffer.from('</r>')), null);
  assert.equal(check.end(), null);
});

// ---------------------------------------------------------------------------------------------
// zip: members

function zipLimits(over: Partial<CheckLimits['zip']>, xml: Partial<XmlLimits> = {}): CheckLimits {
  return { xml: xmlLimits(xml), zip: { ...DEFAULT_CHECK_LIMITS.zip, ...over } };
}

async function yazlZip(add: (z: yazl.ZipFile) => void): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  add(zip);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream as AsyncIterable<Buffer>) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('zip: SERVIO-like archives pass (deflated, folders, data descriptors, stored, non-XML members)', async () => {
  const cdsBytes = cp1251(CDS_HEAD + cdsRow(1) + cdsRow(2) + CDS_TAIL);
  const deflated = await yazlZip((z) => {
    z.addEmptyDirectory('TABLES/');
    z.addBuffer(cdsBytes, 'TABLES/GOODS.XML');
    z.addBuffer(Buffer.from('x'), 'TABLES/notes.txt', { compress: false });
  });
  assert.equal(await checkZipFile(await file(deflated)), null);
  const streamed = await yazlZip((z) => {
    const s = new PassThrough();
    s.end(cdsBytes);
    z.addReadStream(s, 'GOODS.XML');
    z.addBuffer(cdsBytes, 'Остатки.xml');
  });
  assert.equal(await checkZipFile(await file(streamed)), null);
  // a member that is not XML is only counted, whatever it holds
  assert.equal(await checkZipFile(await file(makeZip([{ name: 'photo.jpg', data: Buffer.alloc(5000, 0xff) }]))), null);
});

const unsafeMembers: Array<[name: string | Buffer, reason: RegExp]> = [
  ['../x.xml', /leads out of the folder/],
  ['a/../../x.xml', /leads out of the folder/],
  ['..\\x.xml', /leads out of the folder/],
  ['/x.xml', /absolute path \(starts with a separator\)/],
  ['\\\\server\\share\\x.xml', /absolute path/],
  ['C:\\x.xml', /drive letter/],
  ['C:x.xml', /drive letter/],
  ['dir/CON', /reserved device name "CON"/],
  ['dir/COM1.xml', /reserved device name "COM1"/],
  ['dir/a:b.xml', /":"/],
  ['a/./b.xml', /"\." is not a file name/],
  ['a//b.xml', /name is empty/],
  ['x.xml ', /ends with a dot or space/],
  ['dir /x.xml', /ends with a dot or space/],
  ['a\u0001.xml', /control character/],
  [Buffer.from([0x2e, 0x2e, 0x2f, 0x78]), /leads out of the folder/], // CP437 "../x"
];

for (const [name, reason] of unsafeMembers) {
  test(`zip: member name ${JSON.stringify(typeof name === 'string' ? name : name.toString('latin1'))} is refused`, async () => {
    const got = await checkZipFile(await file(makeZip([{ name, data: Buffer.from('<r/>') }])));
    assert.match(got ?? '', /^zip member .*: unsafe name: /);
    assert.match(got ?? '', reason);
  });
}

test('zip: a UTF-8 flagged name that is not UTF-8 is refused', async () => {
  const zip = makeZip([{ name: Buffer.from([0x61, 0xc0, 0xae, 0x2e, 0x78]), data: Buffer.from('<r/>') }]);
  // flip the UTF-8 flag on in both headers
  zip.writeUInt16LE(0x0800, 6);
  zip.writeUInt16LE(0x0800, zip.indexOf(Buffer.from('PK\x01\x02', 'latin1')) + 8);
  assert.match((await checkZipFile(await file(zip))) ?? '', /has a name that is not valid UTF-8/);
});

test('zip: the Unicode Path field is judged too', async () => {
  const zip = makeZip([
    { name: Buffer.from('ok.xml'), data: Buffer.from('<r/>'), extra: unicodePathField('ok.xml', 'dir/NUL.xml') },
  ]);
  assert.match((await checkZipFile(await file(zip))) ?? '', /reserved device name "NUL"/);
});

test('zip: limits on members, total size and ratio come from the configuration', async () => {
  const three = makeZip([1, 2, 3].map((i) => ({ name: `t${i}.xml`, data: Buffer.from('<r/>') })));
  assert.equal(await checkZipFile(await file(three), undefined, zipLimits({ maxEntries: 3 })), null);
  assert.equal(
    await checkZipFile(await file(three), undefined, zipLimits({ maxEntries: 2 })),
    'zip archive has 3 members, more than 2 (limit check.zip.maxEntries)',
  );
  const table = Buffer.from(`<r>${'<ROW A="1"/>'.repeat(20_000)}</r>`); // 240 KB, deflates about 400 times
  const zip = makeZip([
    { name: 'a.xml', data: table },
    { name: 'b.xml', data: table },
  ]);
  assert.equal(await checkZipFile(await file(zip)), null);
  assert.equal(
    await checkZipFile(await file(zip), undefined, zipLimits({ maxUncompressed: table.length * 2 - 1 })),
    `zip archive unpacks to more than ${table.length * 2 - 1} bytes (limit check.zip.maxUncompressed)`,
  );
  const bomb = makeZip([{ name: 'z.bin', data: deflatedZeros(16) }]);
  assert.match(
    (await checkZipFile(await file(bomb))) ?? '',
    /inflates \d+ bytes to 16777216 \(\d+ times, limit check\.zip\.maxRatio: 500\): refused as a zip bomb/,
  );
  assert.equal(await checkZipFile(await file(bomb), undefined, zipLimits({ maxRatio: 2000 })), null);
});

test('zip: XML members go through the XML check with the configured XML limits', async () => {
  const zip = makeZip([{ name: 'TABLES/a.xml', data: Buffer.from(nested(6)) }]);
  assert.equal(await checkZipFile(await file(zip)), null);
  assert.equal(
    await checkZipFile(await file(zip), undefined, zipLimits({}, { maxDepth: 5 })),
    'zip member "TABLES/a.xml": XML elements nested more than 5 deep at line 1, column 18 (limit check.xml.maxDepth)',
  );
  const broken = makeZip([{ name: 'b.XML', data: Buffer.from('<r><a></r>') }]);
  assert.match((await checkZipFile(await file(broken))) ?? '', /^zip member "b.XML": not well-formed XML at line 1/);
});

test('zip: an XML member in a method that cannot be inflated here is refused; another member is not', async () => {
  const xml = makeZip([{ name: 'a.xml', data: Buffer.from('<r/>'), method: 'store' }]);
  xml.writeUInt16LE(12, 8); // bzip2, local header
  xml.writeUInt16LE(12, xml.indexOf(Buffer.from('PK\x01\x02', 'latin1')) + 10);
  assert.match((await checkZipFile(await file(xml))) ?? '', /uses compression method 12, which cannot be checked/);
});

test('zip: damaged archives are reported, I/O errors are not swallowed', async () => {
  const zip = makeZip([{ name: 'a.xml', data: Buffer.from(`<r>${'x'.repeat(1000)}</r>`) }]);
  const bad = Buffer.from(zip);
  bad[40] = bad[40]! ^ 0xff; // inside the deflated data
  assert.match((await checkZipFile(await file(bad))) ?? '', /^zip (archive is damaged|member "a.xml")/);
  await assert.rejects(checkZipFile(join(dir, 'no-such.zip')), { code: 'ENOENT' });
});

test('zip: an aborted signal rejects with its reason', async () => {
  const c = new AbortController();
  const reason = new Error('stop');
  c.abort(reason);
  await assert.rejects(
    checkZipFile(await file(makeZip([{ name: 'a.xml', data: Buffer.from('<r/>') }])), c.signal),
    (e) => e === reason,
  );
});

// ---------------------------------------------------------------------------------------------
// matchesInclude

const includeCases: Array<[name: string, patterns: string[], expected: boolean]> = [
  ['X.XML', ['*.xml'], true],
  ['x.xml', ['*.xml'], true],
  ['Bundle.ZIP', ['*.xml', '*.zip'], true],
  ['bundle.zip', ['*.zip'], true],
  ['x.xml.part', ['*.xml', '*.zip'], false],
  ['x.xml.part', ['*'], false],
  ['X.XML.PART', ['*.part'], false],
  ['x.txt', ['*.xml', '*.zip'], false],
  ['.hidden.xml', ['*.xml'], false],
  ['.sprelay-1.tmp', ['*'], false],
  ['Отчёт смены 11_05_2023.XML', ['*.xml'], true],
  ['ОТЧЁТ смены.xml', ['отчёт*'], true],
  ['Сводка.xml', ['отчёт*'], false],
  ['GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML', ['GSM*'], true],
  ['gsmarchive_3.xml', ['GSM*'], true],
  ['PUMPS.xml', ['GSM*'], false],
  ['x.xml', [], false],
];

for (const [name, patterns, expected] of includeCases) {
  test(`matchesInclude(${JSON.stringify(name)}, ${JSON.stringify(patterns)}) is ${expected}`, () => {
    assert.equal(matchesInclude(name, patterns), expected);
  });
}

test('matchesInclude gives the same answers on repeated calls with equal pattern lists', () => {
  for (let i = 0; i < 3; i++) {
    assert.equal(matchesInclude('A.XML', ['*.xml', '*.zip']), true);
    assert.equal(matchesInclude('a.txt', ['*.xml', '*.zip']), false);
    assert.equal(matchesInclude('a.txt', ['*.txt']), true);
  }
});
