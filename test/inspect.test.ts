// Pins what agent/inspect.ts lets through: names judged by Windows rules, XML well-formedness in
// the encodings SERVIO writes (with DOCTYPE refused), zip sanity and include-glob matching.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp1251, storedZip } from '../scripts/samples.mjs';
import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { checkName, checkXmlFile, checkZipFile, isXmlName, isZipName, matchesInclude } from '../agent/inspect.js';

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
  assert.equal(await checkZipFile(await file(storedZip('big.xml', Buffer.alloc(200_000, 0x61)))), null);
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
