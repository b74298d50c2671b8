// The strictness corpus of the XML check (agent/check/xml-scan.ts, a byte scanner) against the
// check it replaced (saxes, kept as test/helpers/saxes-xml-check.ts): every malformed document
// here is refused by the old check (recorded first) and by the new one, every valid one accepted
// by both, and thousands of seeded random mutations of valid documents get the same verdict from
// both, except one listed difference (an undeclared file that stops being UTF-8, below).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextDecoder } from 'node:util';
import { createXmlCheck, firstInvalidUtf8, type ContentCheck } from '../agent/check/xml.js';
import { plan } from '../agent/check/encoding.js';
import { DEFAULT_XML_LIMITS } from '../agent/check/limits.js';
import { createSaxesXmlCheck } from './helpers/saxes-xml-check.js';
import { cp1251 } from '../scripts/samples.mjs';
import { ENTRIES } from './hostile/corpus.js';

type Make = () => ContentCheck;
const NEW: Make = () => createXmlCheck(DEFAULT_XML_LIMITS);
const OLD: Make = () => createSaxesXmlCheck(DEFAULT_XML_LIMITS);

/** The verdict for `bytes` fed in chunks of `chunk` bytes. */
function verdict(make: Make, bytes: Buffer, chunk = 1 << 20): string | null {
  const check = make();
  for (let i = 0; i < bytes.length; i += chunk) {
    const r = check.write(bytes.subarray(i, i + chunk));
    if (r !== null) return r;
  }
  return check.end();
}

const u8 = (s: string) => Buffer.from(s, 'utf8');

// ---- valid documents: both accept -----------------------------------------------------------------

const CDS_BODY =
  '<DATAPACKET Version="2.0"><METADATA><FIELDS><FIELD attrname="ID" fieldtype="i4"/>' +
  '<FIELD attrname="FUEL" fieldtype="string" WIDTH="40"/><FIELD attrname="NOTE" fieldtype="string.uni" WIDTH="2000"/>' +
  '</FIELDS><PARAMS LCID="1049" CHANGE_LOG="1 0 4"/></METADATA><ROWDATA>\r\n' +
  '<ROW RowState="4" ID="1" FUEL="АИ-95 &quot;Премиум&quot;" NOTE="ёмкость&#13;&#10;проверена"/>\r\n' +
  "<ROW ID='2' FUEL='ДТ Евро' NOTE=\"a&amp;b &lt;c&gt; &apos;d&apos;\"/>\r\n" +
  '</ROWDATA></DATAPACKET>\r\n';
const RICH =
  '<?xml version="1.0" encoding="UTF-8"?>\n<!-- head -->\n<?pi some data?>\n' +
  '<r xmlns:a="urn:x" a:b="1">\n  <a>text &amp; &lt; &gt; &apos; &quot; &#65; &#x42; &#x1F600; Ёж ]] ] &gt;</a>\n' +
  '  <![CDATA[ <raw> & ]] ]]]>\n  <b/><c d="e" f=\'g\' ></c><!-- c - d --><?x y?>\n  <Отчёт смена="1"/><_x.y-z:w/>\n</r >\n<!-- tail -->\n';

const VALID: Array<[what: string, bytes: Buffer]> = [
  [
    'ClientDataSet, windows-1251, declared',
    cp1251(`<?xml version="1.0" encoding="windows-1251" standalone="yes"?>\r\n${CDS_BODY}`),
  ],
  ['ClientDataSet, windows-1251, undeclared', cp1251(CDS_BODY)],
  ['ClientDataSet, UTF-8 without an encoding', u8(`<?xml version="1.0" standalone="yes"?>${CDS_BODY}`)],
  ['ClientDataSet, UTF-8 with a byte order mark', u8(`\ufeff<?xml version="1.0" encoding="UTF-8"?>${CDS_BODY}`)],
  ['ClientDataSet, UTF-16LE', Buffer.from(`\ufeff<?xml version="1.0" encoding="UTF-16"?>${CDS_BODY}`, 'utf16le')],
  ['ClientDataSet, UTF-16BE', Buffer.from(`\ufeff${CDS_BODY}`, 'utf16le').swap16()],
  ['comments, PIs, CDATA, references, non-ASCII names', u8(RICH)],
  ['single quotes in the declaration', u8("<?xml version='1.1' encoding='utf-8' standalone='no' ?><r/>")],
  ['whitespace around = and before >', u8('<r\n\ta \n=\r\n "1"\t/>')],
  [
    'cp866 declared',
    Buffer.concat([u8('<?xml version="1.0" encoding="cp866"?><r a="'), Buffer.from([0x80, 0xa0]), u8('"/>')]),
  ],
  [
    'KOI8-R declared',
    Buffer.concat([u8('<?xml version="1.0" encoding="KOI8-R"?><r>'), Buffer.from([0xc1, 0xe1]), u8('</r>')]),
  ],
  ['C1 control U+0098 in windows-1251 text', Buffer.concat([cp1251('<r>'), Buffer.from([0x98]), cp1251('</r>')])],
];

for (const [what, bytes] of VALID) {
  test(`valid: ${what} is accepted by the old and the new check, whatever the chunks`, () => {
    assert.equal(verdict(OLD, bytes), null, 'old');
    assert.equal(verdict(NEW, bytes), null, 'new');
    assert.equal(verdict(NEW, bytes, 1), null, 'new, a byte at a time');
    assert.equal(verdict(NEW, bytes, 7), null, 'new, 7 bytes at a time');
  });
}

// ---- malformed documents: the old check refuses each (recorded), the new one too -------------------

const MALFORMED: Array<[what: string, bytes: Buffer]> = [
  ['empty', u8('')],
  ['whitespace only', u8(' \r\n')],
  ['no root (declaration only)', u8('<?xml version="1.0"?>\n')],
  ['no root (comment only)', u8('<!-- c -->')],
  ['mismatched tags', u8('<r><a></b></r>')],
  ['mismatched case', u8('<r></R>')],
  ['unclosed element', u8('<r><a></a>')],
  ['unclosed root at end of a tag', u8('<r><a/')],
  ['cut inside a start tag', u8('<r a="1')],
  ['cut inside a name', u8('<r><abc')],
  ['close tag with no open element', u8('</r>')],
  ['extra close tag after the root', u8('<r></r></r>')],
  ['two roots', u8('<r/><s/>')],
  ['text before the root', u8('x<r/>')],
  ['text after the root', u8('<r/>x')],
  ['a reference after the root', u8('<r/>&amp;')],
  ['CDATA before the root', u8('<![CDATA[x]]><r/>')],
  ['CDATA after the root', u8('<r/><![CDATA[x]]>')],
  ['unquoted attribute value', u8('<r a=1/>')],
  ['mismatched quotes', u8('<r a="1\'/>')],
  ['attribute without value', u8('<r a/>')],
  ['attribute without =', u8('<r a "1"/>')],
  ['no whitespace between attributes', u8('<r a="1"b="2"/>')],
  ['duplicate attribute', u8('<r a="1" b="2" a="3"/>')],
  ['duplicate attribute, non-ASCII name', u8('<r Ё="1" Ё="2"/>')],
  ['"<" in an attribute value', u8('<r a="x<y"/>')],
  ['"&" alone in an attribute value', u8('<r a="x & y"/>')],
  ['"&" alone in text', u8('<r>x & y</r>')],
  ['reference without ";"', u8('<r>&amp</r>')],
  ['undefined entity in text', u8('<r>&foo;</r>')],
  ['undefined entity in a value', u8('<r a="&nbsp;"/>')],
  ['empty entity name', u8('<r>&;</r>')],
  ['char ref &#0;', u8('<r>&#0;</r>')],
  ['char ref &#xD800;', u8('<r>&#xD800;</r>')],
  ['char ref &#xFFFE;', u8('<r>&#xFFFE;</r>')],
  ['char ref past U+10FFFF', u8('<r>&#x110000;</r>')],
  ['char ref to a control', u8('<r a="&#1;"/>')],
  ['char ref with capital X', u8('<r>&#X41;</r>')],
  ['char ref without digits', u8('<r>&#x;</r>')],
  ['char ref with a bad digit', u8('<r>&#12a;</r>')],
  ['"--" inside a comment', u8('<r><!-- a -- b --></r>')],
  ['comment ending in "--->"', u8('<r><!-- a ---></r>')],
  ['unterminated comment', u8('<r><!-- a </r>')],
  ['unterminated CDATA', u8('<r><![CDATA[ a </r>')],
  ['unterminated PI', u8('<r><?pi a </r>')],
  ['bad CDATA opening', u8('<r><![CDAT[x]]></r>')],
  ['"<!" markup other than a comment or CDATA', u8('<r><!ELEMENTS x></r>')],
  ['lower-case doctype', u8('<!doctype r><r/>')],
  ['"]]>" in text', u8('<r>a]]>b</r>')],
  ['name starting with a digit', u8('<1r/>')],
  ['name starting with "-"', u8('<-r/>')],
  ['space after "<"', u8('< r/>')],
  ['attribute name starting with a digit', u8('<r 1a="1"/>')],
  ['"/" not followed by ">"', u8('<r/ >')],
  ['non-name character in a name', u8('<r«/>')],
  ['disallowed character in a closing tag', u8('<r></r x>')],
  ['XML declaration not at the start', u8(' <?xml version="1.0"?><r/>')],
  ['a second XML declaration', u8('<?xml version="1.0"?><?xml version="1.0"?><r/>')],
  ['PI named XML', u8('<r><?XmL x?></r>')],
  ['PI without a target', u8('<r><? x?></r>')],
  ['PI target without whitespace', u8('<r><?pi"x"?></r>')],
  ['declaration without a version', u8('<?xml encoding="UTF-8"?><r/>')],
  ['declaration with version 2.0', u8('<?xml version="2.0"?><r/>')],
  ['declaration with a bad standalone', u8('<?xml version="1.0" standalone="maybe"?><r/>')],
  ['declaration with the wrong order', u8('<?xml version="1.0" standalone="yes" encoding="UTF-8"?><r/>')],
  ['declaration without "?>"', u8('<?xml version="1.0" <r/>')],
  ['DOCTYPE', u8('<!DOCTYPE r><r/>')],
  [
    'invalid UTF-8 in a declared UTF-8 file',
    Buffer.concat([u8('<?xml version="1.0" encoding="UTF-8"?><r>'), Buffer.from([0xc3, 0x28]), u8('</r>')]),
  ],
  [
    'a lone continuation byte in a UTF-8 file',
    Buffer.concat([u8('<?xml version="1.0" encoding="UTF-8"?><r>'), Buffer.from([0x80]), u8('</r>')]),
  ],
  [
    'an overlong UTF-8 "<"',
    Buffer.concat([u8('<?xml version="1.0" encoding="UTF-8"?><r>'), Buffer.from([0xc0, 0xbc]), u8('</r>')]),
  ],
  [
    'a UTF-8 surrogate',
    Buffer.concat([u8('<?xml version="1.0" encoding="UTF-8"?><r>'), Buffer.from([0xed, 0xa0, 0x80]), u8('</r>')]),
  ],
  [
    'a UTF-8 file cut inside a character',
    Buffer.concat([u8('<?xml version="1.0" encoding="UTF-8"?><r/>'), Buffer.from([0xd0])]),
  ],
  ['U+FFFE in UTF-8', u8('<r>\ufffe</r>')],
  ['U+FFFF in an attribute value', u8('<r a="\uffff"/>')],
  [
    'a lone surrogate in UTF-16',
    Buffer.concat([Buffer.from('\ufeff<r>', 'utf16le'), Buffer.from([0x00, 0xd8]), Buffer.from('</r>', 'utf16le')]),
  ],
  ['control character in text', u8('<r>\u0001</r>')],
  ['control character in an attribute value', u8('<r a="\u001f"/>')],
  ['control character in a comment', u8('<r><!--\u0000--></r>')],
  ['control character in a name', u8('<r\u0008/>')],
  ['NUL before the root', u8('\u0000<r/>')],
  [
    'cp866 byte 0x7F (U+001A)',
    Buffer.concat([u8('<?xml version="1.0" encoding="cp866"?><r>'), Buffer.from([0x7f]), u8('</r>')]),
  ],
  [
    'an unmapped ISO-8859-8 byte',
    Buffer.concat([u8('<?xml version="1.0" encoding="ISO-8859-8"?><r>'), Buffer.from([0xa1]), u8('</r>')]),
  ],
  ['binary garbage', Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x03, 0x9c])],
  ['a zip passed as XML', Buffer.from('PK\x03\x04\x14\x00\x00\x00', 'latin1')],
];

test('malformed: the corpus is refused by the old check (recorded before the change) and by the new one, whatever the chunks', (t) => {
  const missed: string[] = [];
  for (const [what, bytes] of MALFORMED) {
    const old = verdict(OLD, bytes);
    assert.notEqual(old, null, `the old check accepted "${what}": the corpus entry is wrong`);
    for (const chunk of [1 << 20, 1, 3]) {
      if (verdict(NEW, bytes, chunk) === null) missed.push(`${what} (chunks of ${chunk})`);
    }
  }
  t.diagnostic(`${MALFORMED.length} malformed documents, ${VALID.length} valid ones`);
  assert.deepEqual(missed, [], 'malformed documents the new check accepted');
  assert.ok(MALFORMED.length >= 80, `corpus size ${MALFORMED.length}`);
});

test('malformed: reasons keep their shape (line, column, detail)', () => {
  assert.equal(verdict(NEW, u8('<r>\n&foo;</r>')), 'not well-formed XML at line 2, column 5: undefined entity');
  assert.equal(
    verdict(NEW, u8('<r>\n  <a>\n<b x=1/></a></r>')),
    'not well-formed XML at line 3, column 6: unquoted attribute value',
  );
  assert.equal(
    verdict(NEW, u8('<r><a></b></r>')),
    'not well-formed XML at line 1, column 10: unmatched closing tag: b',
  );
  assert.equal(
    verdict(NEW, u8('<r a="1" a="2"/>')),
    'not well-formed XML at line 1, column 11: duplicate attribute: a',
  );
  assert.equal(verdict(NEW, u8('<r>Ёж\u0001</r>')), 'not well-formed XML at line 1, column 6: disallowed character');
  assert.equal(verdict(NEW, u8('<r>\n')), 'not well-formed XML at line 2, column 0: unclosed tag: r');
});

// ---- the hostile corpus: every XML package gets the same verdict from both -------------------------

test('hostile corpus: every XML package gets the verdict the corpus expects from the new check, as from the old', async () => {
  let n = 0;
  for (const entry of ENTRIES) {
    if (!/\.xml$/i.test(entry.name)) continue;
    const bytes = await entry.bytes();
    const chunk = 64 * 1024;
    const got = verdict(NEW, bytes, chunk);
    const old = verdict(OLD, bytes, chunk);
    if (entry.expect === 'delivered') {
      assert.equal(got, null, `${entry.id}: new`);
      assert.equal(old, null, `${entry.id}: old`);
    } else {
      assert.ok(got?.includes(entry.expect.refused), `${entry.id}: new said ${got}`);
      assert.ok(old?.includes(entry.expect.refused), `${entry.id}: old said ${old}`);
    }
    n++;
  }
  assert.ok(n >= 15, `XML entries: ${n}`);
});

// ---- differential: seeded mutations of valid documents ----------------------------------------------

const SNIPPETS = [
  '&#0;',
  '&#xD800;',
  '&#x10FFFF;',
  '&#x110000;',
  '--',
  ']]>',
  '<!--',
  '-->',
  '<![CDATA[',
  '<?xml version="1.0"?>',
  '&foo;',
  '&#65;',
  ' a="1"',
  '<a>',
  '</a>',
  '<b/>',
  '&amp',
  '&#x;',
  '&#X41;',
  '\u0001',
  '\ufffe',
  '\uffff',
  '<?xml?>',
  '<?XML x?>',
  '<!DOCTYPE',
  '<!doc',
  '\r',
  '\t',
  '<',
  '>',
  '&',
  '"',
  "'",
  '=',
  '/',
  '?',
  '!',
  '[',
  ']',
  ';',
  '#',
  ' ',
  '\n',
  '\u00ab',
  '\u00b7',
  '\u0301',
  'Ё',
  '\ud83d\ude00',
];

function mutations(seed: number, count: number, bases: Buffer[]): Buffer[] {
  let s = seed;
  const rnd = () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
  const below = (n: number) => Math.floor(rnd() * n);
  const out: Buffer[] = [];
  for (let t = 0; t < count; t++) {
    let b = bases[below(bases.length)]!;
    for (let k = 1 + below(2); k > 0; k--) {
      const at = below(b.length + 1);
      switch (below(6)) {
        case 0:
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          break;
        case 1:
          b = Buffer.concat([b.subarray(0, at), Buffer.from([below(256)]), b.subarray(at)]);
          break;
        case 2:
          b = Buffer.from(b);
          if (at < b.length) b[at] = below(256);
          break;
        case 3:
          b = b.subarray(0, at);
          break;
        default: {
          const snippet = SNIPPETS[below(SNIPPETS.length)]!;
          const bytes = rnd() < 0.5 ? u8(snippet) : Buffer.from(snippet, 'latin1');
          b = Buffer.concat([b.subarray(0, at), bytes, b.subarray(at)]);
        }
      }
    }
    out.push(b);
  }
  return out;
}

// More or other mutations: XML_DIFF_MUTATIONS=50000 XML_DIFF_SEED=7 node --import tsx --test test/xml-check.test.ts
const MUTATIONS = Number(process.env.XML_DIFF_MUTATIONS ?? 6000);
const SEED = Number(process.env.XML_DIFF_SEED ?? 20261202);

test(`differential: ${MUTATIONS} seeded mutations of valid documents get the old verdict, but for the one listed difference`, (t) => {
  const bases = VALID.map(([, b]) => b).filter((b) => b.length < 2000);
  let refused = 0;
  const differences: string[] = [];
  let undeclaredSwitch = 0;
  for (const bytes of mutations(SEED, MUTATIONS, bases)) {
    const old = verdict(OLD, bytes);
    const got = verdict(NEW, bytes);
    assert.equal(
      verdict(NEW, bytes, 5) === null,
      got === null,
      `chunking changed the verdict of ${JSON.stringify(bytes.toString('latin1'))}`,
    );
    if (old !== null) refused++;
    if ((old === null) === (got === null)) continue;
    // The one difference: a file without a declared encoding that stops being UTF-8 part-way is
    // read as UTF-8 up to the first byte that is not and as windows-1251 from there by the new
    // check; the old one switched at the start of the read holding that byte (for a file under
    // 1 KB: at its start), so its verdict depended on the read size. The old check given the same
    // characters as UTF-8 must agree with the new one.
    const bad = firstInvalidUtf8(bytes);
    const planned = plan(bytes.subarray(0, 1024), bytes.length >= 1024);
    if (bad < bytes.length && typeof planned !== 'string' && planned.encoding === null) {
      const text =
        new TextDecoder('utf-8').decode(bytes.subarray(0, bad)) +
        new TextDecoder('windows-1251').decode(bytes.subarray(bad));
      if ((verdict(OLD, u8(text)) === null) === (got === null)) {
        undeclaredSwitch++;
        continue;
      }
    }
    differences.push(`${JSON.stringify(bytes.toString('latin1'))}: old ${old}, new ${got}`);
  }
  t.diagnostic(
    `refused by the old check: ${refused} of ${MUTATIONS}; undeclared-switch differences: ${undeclaredSwitch}`,
  );
  assert.deepEqual(differences, []);
  assert.ok(
    refused > MUTATIONS / 2 && refused < MUTATIONS * 0.98,
    'the mutations make both valid and malformed documents',
  );
});

test('duplicate attributes are found among the most a tag may have, whatever the chunks', () => {
  const names = Array.from({ length: 1000 }, (_, i) => `a${i}`);
  const tag = (extra: string) => u8(`<r ${names.map((n) => `${n}="1"`).join(' ')}${extra}/>`);
  for (const chunk of [1 << 20, 1, 97]) {
    assert.equal(verdict(NEW, tag(''), chunk), null);
    // 1000 attributes and one more is over the limit; so the duplicate replaces the last one
    const dup = u8(
      `<r ${names
        .slice(0, 999)
        .map((n) => `${n}="1"`)
        .join(' ')} a500="2"/>`,
    );
    assert.match(verdict(NEW, dup, chunk) ?? '', /duplicate attribute: a500$/);
    assert.match(verdict(NEW, tag(' b="1"'), chunk) ?? '', /more than 1000 attributes/);
  }
  // and in many tags, each starting afresh
  const rows = u8(`<r>${'<ROW a="1" b="2" c="3"/>'.repeat(5000)}<ROW a="1" b="2" a="3"/></r>`);
  assert.match(verdict(NEW, rows, 4096) ?? '', /duplicate attribute: a$/);
});
