// Small ClientDataSet-shaped documents for the XML check's fast paths (agent/check/xml-scan.ts):
// ROW after ROW with the same attribute names (read without the duplicate table), rows whose
// names differ from the row before at each position, repeat one of the known names, have more or
// fewer attributes, non-ASCII names, references, tabs and line breaks in values, `>` and `/>`
// right after a value; then seeded mutations of them. test/xml-fast-path.test.ts feeds each of
// them split at every byte.
import { cp1251 } from '../../scripts/samples.mjs';

const DECL_1251 = '<?xml version="1.0" encoding="windows-1251" standalone="yes"?>\r\n';
const DECL_UTF8 = '<?xml version="1.0" encoding="UTF-8"?>\n';

const row = (attrs: string, end = '/>') => `<ROW${attrs}${end}\r\n`;
const R1 = ' RN="1" DT="20230511T08:00:01000" AZS="АЗС 17" FUEL="А-95" SUM="4243.18"';
const R2 = ' RN="2" DT="20230511T08:00:02000" AZS="АЗС 17" FUEL="ДТ Евро" SUM="1.5"';

/** The bodies (inside `<DATAPACKET><ROWDATA>`), each a case of the fast paths; `ok`: well-formed. */
const BODIES: Array<[ok: boolean, body: string]> = [
  [true, row(R1) + row(R2) + row(R1)],
  [true, row(R1) + row(' RN="3" DT="x"') + row(R2)], // fewer, then all again
  [true, row(' RN="3" DT="x"') + row(R1) + row(R2)], // more than the row before
  [true, row(R1) + row(' RN="3" XX="1" AZS="2" FUEL="3" SUM="4"') + row(R2)], // one name differs
  [true, row(R1) + row(' SUM="1" FUEL="2" AZS="3" DT="4" RN="5"') + row(R1)], // the same names, reordered
  [true, row(R1) + row(' RN="1" DT="2" AZS="3" FUEL="4" SUM="5" EXTRA="6"') + row(R1)],
  [true, row(R1) + row(' RN="1" DTX="2" AZS="3"') + row(' RN="1" DT="2"')], // a name longer than the known one
  [true, row(R1) + row(' RN="1" D="2" AZS="3"') + row(' RN="1" DT="2"')], // a name shorter than the known one
  [true, row(R1) + row(' RN="1"  DT="2"\tAZS="3"\r\nFUEL="4" SUM = "5"') + row(R2)], // other whitespace
  [true, row(R1) + row(" RN='1' DT='2\"' AZS=\"3'\"") + row(R2)], // the other quote
  [true, row(' RN="&amp;&#65;&lt;" DT="a\tb\nc\rd" AZS="&quot;"') + row(R1)],
  [true, row(R1, '>') + '</ROW>\r\n' + row(R2, ' >') + 'text</ROW>' + row(R1)],
  [true, row(' Отчёт="1" RN="2"') + row(' Отчёт="1" RN="2"') + row(' RN="2" Отчёт="1"')],
  [true, row(' RN="1" Ёж="2"') + row(' RN="1" Ёж="3"') + row(' RN="1" Ё="3"')],
  [true, row(' a:b="1" a.c="2" _d-e="3"') + row(' a:b="1" a.c="2" _d-e="3"')],
  [true, '<ROW/>\r\n<ROW />' + row(R1) + '<ROW></ROW>' + row(R1)],
  [false, row(R1) + row(' RN="1" DT="2" RN="3"')], // a known name repeated
  [false, row(R1) + row(' RN="1" DT="2" AZS="3" FUEL="4" SUM="5" DT="6"')], // repeated past the known ones
  [false, row(R1) + row(' RN="1" XX="2" RN="3"')], // repeated after a different name
  [false, row(R1) + row(' XX="1" DT="2" XX="3"')],
  [false, row(R1) + row(' RN="1" DT="2" AZS="3" AZS="4"')],
  [false, row(' Ёж="1" RN="2"') + row(' Ёж="1" RN="2" Ёж="3"')],
  [false, row(R1) + row(' RN="1"DT="2"')],
  [false, row(R1) + row(' RN="1" DT=2')],
  [false, row(R1) + row(' RN="1" DT')],
  [false, row(R1) + row(' RN="1" DT="a<b"')],
  [false, row(R1) + row(' RN="1" DT="a&b"')],
  [false, row(R1) + row(' RN="1" DT="\u0001"')],
  [false, row(R1) + row(' RN="1" 1DT="2"')],
  [false, row(R1) + row(' RN="1" DT="2"/ >')],
  [false, row(R1) + row(' RN="1" DT="2" /x')],
  [false, row(R1) + row(' RN="1" DT="2"', '>') + '</ROWX>'],
  [false, row(R1) + row(' RN="1" D%="2"')],
  [false, row(R1) + '<ROW RN="1" DT="2" AZS="3\r\n<ROW RN="4"/>\r\n'], // a value left open
];

/** The documents: each body as windows-1251 and as UTF-8, declared, in a ClientDataSet. */
export function rowDocuments(): Array<{ name: string; ok: boolean; bytes: Buffer }> {
  const out: Array<{ name: string; ok: boolean; bytes: Buffer }> = [];
  BODIES.forEach(([ok, body], k) => {
    const text = `<DATAPACKET Version="2.0"><METADATA/><ROWDATA>\r\n${body}</ROWDATA></DATAPACKET>\r\n`;
    out.push({ name: `body ${k}, windows-1251`, ok, bytes: cp1251(DECL_1251 + text) });
    out.push({ name: `body ${k}, UTF-8`, ok, bytes: Buffer.from(DECL_UTF8 + text, 'utf8') });
  });
  return out;
}

const SNIPPETS = [
  ' ',
  '=',
  '"',
  "'",
  '/',
  '>',
  '<',
  '&',
  '&amp;',
  '\t',
  '\n',
  ' RN="9"',
  ' DT="9"',
  'R',
  'Ё',
  '\u0001',
];

/** `count` seeded mutations of `bases` after their XML declaration (a byte dropped or changed, a snippet inserted, a cut). */
export function mutate(seed: number, count: number, bases: Buffer[]): Buffer[] {
  let s = seed;
  const below = (n: number) => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return Math.floor((s / 0x80000000) * n);
  };
  const out: Buffer[] = [];
  for (let t = 0; t < count; t++) {
    let b = bases[below(bases.length)]!;
    const keep = b.indexOf('?>') + 2; // the XML declaration stays: the encoding is the declared one
    for (let k = 1 + below(2); k > 0; k--) {
      const at = keep + below(b.length - keep + 1);
      switch (below(5)) {
        case 0:
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          break;
        case 1:
          b = Buffer.from(b);
          if (at < b.length) b[at] = below(128);
          break;
        case 2:
          b = b.subarray(0, at);
          break;
        default:
          b = Buffer.concat([
            b.subarray(0, at),
            Buffer.from(SNIPPETS[below(SNIPPETS.length)]!, 'utf8'),
            b.subarray(at),
          ]);
      }
    }
    out.push(b);
  }
  return out;
}
