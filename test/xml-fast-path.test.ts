// The fast paths of the XML scanner (agent/check/xml-scan.ts): a start tag's attributes read in
// one loop, and the attribute names of the tag before (ROW after ROW) matched in place instead of
// going through the duplicate table. A fast path is only right if cutting the bytes anywhere
// changes nothing: each document here is fed split at every byte (and in chunks of 1, 2, 3 and 7
// bytes) and must get exactly the verdict it gets whole, and that verdict must agree with saxes
// (test/helpers/saxes-xml-check.ts, the check the scanner replaced).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createXmlCheck, type ContentCheck } from '../agent/check/xml.js';
import { DEFAULT_XML_LIMITS, type XmlLimits } from '../agent/check/limits.js';
import { createSaxesXmlCheck } from './helpers/saxes-xml-check.js';
import { mutate, rowDocuments } from './helpers/xml-row-docs.js';

function feed(check: ContentCheck, parts: Uint8Array[]): string | null {
  for (const part of parts) {
    const r = check.write(part);
    if (r !== null) return r;
  }
  return check.end();
}

const whole = (bytes: Buffer) => feed(createXmlCheck(DEFAULT_XML_LIMITS), [bytes]);
const saxes = (bytes: Buffer) => feed(createSaxesXmlCheck(DEFAULT_XML_LIMITS), [bytes]);

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** Where a split of `bytes` changes the verdict of the new check (empty: nowhere). */
function splitsThatDiffer(bytes: Buffer, limits: XmlLimits = DEFAULT_XML_LIMITS, size?: number): string[] {
  const make = () => createXmlCheck(limits, size === undefined ? {} : { size });
  const expected = feed(make(), [bytes]);
  const differ: string[] = [];
  for (let at = 0; at <= bytes.length; at++) {
    const got = feed(make(), [bytes.subarray(0, at), bytes.subarray(at)]);
    if (got !== expected) differ.push(`split at ${at}: ${got} (whole: ${expected})`);
  }
  for (const size of [1, 2, 3, 7]) {
    const got = feed(make(), chunks(bytes, size));
    if (got !== expected) differ.push(`chunks of ${size}: ${got} (whole: ${expected})`);
  }
  return differ;
}

const DOCS = rowDocuments();

test('ROW-shaped documents: the verdict saxes gives, the same reason wherever the bytes are split', () => {
  const wrong: string[] = [];
  let refused = 0;
  for (const doc of DOCS) {
    const got = whole(doc.bytes);
    if (got !== null) refused++;
    assert.equal(saxes(doc.bytes) === null, doc.ok, `${doc.name}: saxes disagrees with the case`);
    assert.equal(got === null, doc.ok, `${doc.name}: ${got}`);
    for (const d of splitsThatDiffer(doc.bytes)) wrong.push(`${doc.name}: ${d}`);
  }
  assert.deepEqual(wrong, []);
  assert.ok(refused >= 30 && DOCS.length - refused >= 30, `${refused} of ${DOCS.length} refused`);
});

// More or other mutations: XML_FAST_MUTATIONS=5000 XML_FAST_SEED=7 node --import tsx --test test/xml-fast-path.test.ts
const MUTATIONS = Number(process.env.XML_FAST_MUTATIONS ?? 400);
const SEED = Number(process.env.XML_FAST_SEED ?? 20261202);

test(`${MUTATIONS} seeded mutations of them: saxes's verdict, the same reason wherever split`, () => {
  const wrong: string[] = [];
  let refused = 0;
  for (const bytes of mutate(
    SEED,
    MUTATIONS,
    DOCS.map((d) => d.bytes),
  )) {
    const got = whole(bytes);
    if (got !== null) refused++;
    const old = saxes(bytes);
    if ((old === null) !== (got === null))
      wrong.push(`${JSON.stringify(bytes.toString('latin1'))}: saxes ${old}, new ${got}`);
    for (const d of splitsThatDiffer(bytes)) wrong.push(`${JSON.stringify(bytes.toString('latin1'))}: ${d}`);
  }
  assert.deepEqual(wrong, []);
  assert.ok(refused > MUTATIONS / 4 && refused < MUTATIONS, `${refused} of ${MUTATIONS} refused`);
});

test('many rows across chunk boundaries: a repeated name is found wherever it falls, and only there', () => {
  const row = (n: number) => `<ROW RN="${n}" DT="20230511T08:00:01000" AZS="A 17" FUEL="B" SUM="${n * 3}.5"/>\r\n`;
  const rows = Array.from({ length: 3000 }, (_, n) => row(n)).join('');
  const doc = (extra: string) => Buffer.from(`<DATAPACKET><ROWDATA>\r\n${rows}${extra}${rows}</ROWDATA></DATAPACKET>`);
  const good = doc('');
  const lines = 3000 + 2; // the row after the first 3000, on this line
  // the reasons the check gave before its fast paths (recorded)
  const cases: Array<[Buffer, string | null]> = [
    [good, null],
    [
      doc('<ROW RN="1" DT="2" AZS="3" FUEL="4" SUM="5" RN="6"/>\r\n'),
      `line ${lines}, column 47: duplicate attribute: RN`,
    ],
    [doc('<ROW RN="1" DT="2" AZS="3" FUEL="4" FUEL="5"/>\r\n'), `line ${lines}, column 41: duplicate attribute: FUEL`],
    [doc('<ROW RN="1" XX="2" DT="3" XX="4"/>\r\n'), `line ${lines}, column 29: duplicate attribute: XX`],
    [doc('<ROW SUM="1" RN="2" SUM="3"/>\r\n'), `line ${lines}, column 24: duplicate attribute: SUM`],
    [doc('<ROW RN="1" DT="2"DT="3"/>\r\n'), `line ${lines}, column 19: no whitespace between attributes`],
  ];
  for (const [bytes, reason] of cases) {
    for (const size of [4096, 4099, 65536, 1 << 20, 977]) {
      const got = feed(createXmlCheck(DEFAULT_XML_LIMITS), chunks(bytes, size));
      if (reason === null) assert.equal(got, null, `chunks of ${size}`);
      else assert.equal(got, `not well-formed XML at ${reason}`, `chunks of ${size}`);
    }
    assert.equal(saxes(bytes) === null, reason === null);
  }
});

test('a name matched from the rows before is still judged in the encoding it is read in', () => {
  // undeclared: UTF-8 up to the first byte that is not, windows-1251 from there; the bytes of
  // "Ёж" in UTF-8 read as windows-1251 hold "¶", which is no name character
  const name = Buffer.from('Ёж', 'utf8');
  const row = Buffer.concat([Buffer.from('<ROW '), name, Buffer.from('="1" RN="2"/>\r\n')]);
  const bytes = Buffer.concat([
    Buffer.from('<r>\r\n'),
    row,
    row,
    Buffer.from([0xc0, 0x0d, 0x0a]), // not UTF-8: windows-1251 from here on (line 4; the row on line 5)
    row,
    Buffer.from('</r>'),
  ]);
  const got = whole(bytes);
  assert.match(got ?? '', /^not well-formed XML at line 5, column 9: disallowed character in attribute name$/);
  assert.deepEqual(splitsThatDiffer(bytes), []);
  // and the same rows without the switch are fine
  assert.equal(whole(Buffer.concat([Buffer.from('<r>'), row, row, row, Buffer.from('</r>')])), null);
});

test('under tight limits (attributes, name and value lengths, nodes): the verdict saxes gives, the same reason wherever split', () => {
  // DT="20230511T08:00:01000" is 20 characters: at the first limit, over the second; a ROW has 5
  // attributes; the third refuses the longer documents by their nodes
  const tight: XmlLimits[] = [
    { maxDepth: 4, maxAttributes: 5, maxNameLength: 10, maxAttributeLength: 20, maxTextLength: 64, maxNodesPerMB: 200 },
    { ...DEFAULT_XML_LIMITS, maxAttributeLength: 19 },
    { ...DEFAULT_XML_LIMITS, maxNodesPerMB: 22 },
  ];
  const wrong: string[] = [];
  const reasons = new Set<string>();
  let accepted = 0;
  for (const limits of tight) {
    for (const doc of DOCS) {
      for (const size of [undefined, doc.bytes.length]) {
        const opts = size === undefined ? {} : { size };
        const got = feed(createXmlCheck(limits, opts), [doc.bytes]);
        const old = feed(createSaxesXmlCheck(limits, opts), [doc.bytes]);
        if (got === null) accepted++;
        else
          reasons.add(
            got.replace(/ at .*\(limit/, ' (limit').replace(/^not well-formed XML at [^:]*/, 'not well-formed'),
          );
        if ((old === null) !== (got === null)) wrong.push(`${doc.name}: saxes ${old}, new ${got}`);
        for (const d of splitsThatDiffer(doc.bytes, limits, size)) wrong.push(`${doc.name}: ${d}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(accepted > 0, 'some documents are within the limits');
  for (const key of ['maxAttributes', 'maxAttributeLength', 'maxNodesPerMB']) {
    assert.ok(
      [...reasons].some((r) => r.includes(`check.xml.${key}`)),
      `no refusal by ${key}: ${[...reasons].join('; ')}`,
    );
  }
});

test("a value's length is in characters: UTF-8 Cyrillic at the limit is accepted, one more is refused, wherever split", () => {
  const limits: XmlLimits = { ...DEFAULT_XML_LIMITS, maxAttributeLength: 6 };
  const doc = (azs: string) =>
    Buffer.from(
      `<?xml version="1.0" encoding="UTF-8"?>\n<R>\n<ROW RN="1" AZS="${azs}"/>\n<ROW RN="2" AZS="${azs}"/>\n</R>`,
    );
  const at = doc('АЗС 17'); // 6 characters in 9 bytes
  const over = doc('АЗС 177');
  assert.equal(feed(createXmlCheck(limits), [at]), null);
  assert.equal(feed(createSaxesXmlCheck(limits), [at]), null);
  // the reason the check gave before its fast paths (recorded)
  assert.equal(
    feed(createXmlCheck(limits), [over]),
    'attribute "AZS" is longer than 6 characters at line 3, column 24 (limit check.xml.maxAttributeLength)',
  );
  assert.notEqual(feed(createSaxesXmlCheck(limits), [over]), null);
  assert.deepEqual(splitsThatDiffer(at, limits), []);
  assert.deepEqual(splitsThatDiffer(over, limits), []);
});
