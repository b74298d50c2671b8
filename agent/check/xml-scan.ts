// The XML 1.0 well-formedness scanner the XML check runs (xml.ts): a state machine over bytes
// that never builds a string of the document, so that it reads a package at several hundred MB/s
// in a fixed, small memory. It reads bytes of an ASCII-compatible encoding, every markup
// character being the ASCII byte: UTF-8 (validated before it gets here, xml.ts) or a single-byte
// encoding whose non-ASCII bytes it looks up in a table (`Charset`); xml.ts transcodes UTF-16.
//
// What it refuses is what XML 1.0 (fifth edition) calls not well-formed in a document without a
// DTD: tags that do not nest or match, a second root, text or CDATA outside the root, names that
// are not Names, attributes unquoted, without a value, repeated or holding `<`, references other
// than the five predefined entities and character references to a Char, `]]>` in text, `--`
// inside a comment, PIs named `xml` after the start, characters outside Char, anything left open
// at the end, and a malformed XML declaration. test/xml-check.test.ts holds the corpus that
// decides, and compares it with saxes on thousands of mutated documents.
//
// The limits of check.xml are judged as the bytes go by, at the first byte past a limit.
//
// In four modules: xml-chars.ts (character and byte classes), xml-scan-base.ts (state, positions,
// reasons, limits), xml-markup.ts (the states read a byte at a time) and this one: the tight loops
// over text, attribute values and ASCII tags that make nearly all of a real package. A start tag's
// attributes are read in one loop (fastAttributes), and a ClientDataSet's ROW after ROW repeats
// the names of the row before: those are matched in place, byte for byte, and need no duplicate
// check (xml-scan-base.ts, `known`). Every fast path gives up where its construct is not whole in
// the chunk, leaving the byte to the states: test/xml-fast-path.test.ts splits at every byte.
import {
  Refusal,
  MAX_TAG_PIECES,
  MISC,
  TEXT,
  LT,
  NAME,
  TAG,
  VALUE,
  REF,
  PLAIN,
  STOP,
  NL,
  CONT,
  PIECE,
  LF,
  SP,
  ASCII_START,
  ASCII_NAME,
  badBytes,
  grow,
  type Charset,
  HASH_SEED,
} from './xml-chars.js';
import { MarkupSteps } from './xml-markup.js';

export { MAX_TAG_PIECES, Refusal, type Charset } from './xml-chars.js';

export class XmlScan extends MarkupSteps {
  /** From here on non-ASCII bytes are single-byte `charset` (the undeclared fallback). */
  switchTo(charset: Charset): void {
    this.table = charset.table;
    this.bad = badBytes(charset);
    const swap = (t: Uint8Array) => {
      for (let c = 0x80; c < 256; c++) t[c] = this.bad[c] ? STOP : PLAIN;
    };
    swap(this.textCls);
    swap(this.valueCls);
    swap(this.valueFastCls);
    swap(this.bodyCls);
  }

  /** The next bytes of the document. */
  write(buf: Uint8Array): Refusal | null {
    const r = this.scan(buf);
    this.afterChunk(buf);
    this.base += buf.length;
    return r;
  }

  /** Bytes read before the scan (a byte order mark, the XML declaration): lines counted only. */
  skip(buf: Uint8Array, bom = false): void {
    for (let k = buf.indexOf(LF); k !== -1; k = buf.indexOf(LF, k + 1)) {
      this.line++;
      this.lineStart = this.base + k;
    }
    this.base += buf.length;
    if (bom) this.lineStart = this.base - 1; // columns count from after it
  }

  /** A refusal at the next byte (found before the scanner saw it: U+FFFE, U+FFFF). */
  refuseNext(detail: string): Refusal {
    return this.fail(null, 0, detail);
  }

  end(): Refusal | null {
    const at = -1; // the last byte fed
    if (this.state === MISC && this.sawRoot && this.depth === 0) return this.checkNodes();
    if (this.depth > 0 && this.state === TEXT) {
      const top = this.stackAt[this.depth - 1]!;
      return this.fail(null, at, `unclosed tag: ${this.text(this.stack.subarray(top, this.stackAt[this.depth]))}`);
    }
    if (this.state === MISC && !this.sawRoot) return this.fail(null, at, 'document must contain a root element');
    return this.fail(null, at, 'unexpected end');
  }

  protected afterChunk(buf: Uint8Array): void {
    const nl = this.lineStart - this.base; // a line feed in this chunk?
    const from = nl >= 0 ? nl + 1 : 0;
    if (nl >= 0) this.lineCont = 0;
    if (this.table === null) for (let k = from; k < buf.length; k++) if ((buf[k]! & 0xc0) === 0x80) this.lineCont++;
  }

  protected scan(buf: Uint8Array): Refusal | null {
    const n = buf.length;
    const limits = this.limits;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case TEXT: {
          // the hot loop: character data inside the root
          const cls = this.textCls;
          const plain = PLAIN; // locals: see fastAttributes
          const contK = CONT;
          const nl = NL;
          const start = i;
          let cont = 0;
          let c = 0;
          for (; i < n; i++) {
            c = buf[i]!;
            const k = cls[c]!;
            if (k === plain) continue;
            if (k === contK) cont++;
            else if (k === nl) {
              this.line++;
              this.lineStart = this.base + i;
            } else break;
          }
          this.run += i - start - cont;
          if (this.run > limits.maxTextLength) return this.tooLong(buf, i - 1);
          if (i === n) break;
          if (c === 0x3c) {
            this.pieces = 0;
            if (this.run > 0) {
              // the characters since the last tag were a text node
              const r = this.node(i);
              if (r) return r;
              this.run = 0;
            }
            const j = this.fastTag(buf, i);
            if (j < 0) this.state = LT;
            else {
              if (buf[i + 1] !== 0x2f) {
                // a start tag's name: open it (a close tag was done in fastTag)
                const r = this.openElement(buf, j, j - i - 1, true);
                if (r) return r;
              }
              i = j;
              break;
            }
          } else if (c === 0x26) {
            this.refReturn = TEXT;
            this.state = REF;
            this.run++;
          } else if (c === 0x5d) {
            this.brackets = this.lastBracket === this.base + i - 1 ? this.brackets + 1 : 1;
            this.lastBracket = this.base + i;
            this.run++;
          } else if (c === 0x3e) {
            if (this.brackets >= 2 && this.lastBracket === this.base + i - 1)
              return this.fail(buf, i, 'the string "]]>" is disallowed in char data');
            this.run++;
          } else return this.fail(buf, i, 'disallowed character');
          i++;
          break;
        }
        case VALUE: {
          // the other hot loop: an attribute value
          const cls = this.valueCls;
          const start = i;
          let cont = 0;
          let c = 0;
          for (; i < n; i++) {
            c = buf[i]!;
            const k = cls[c]!;
            if (k === PLAIN) continue;
            if (k === CONT) cont++;
            else if (k === PIECE) this.pieces++;
            else if (k === NL) {
              this.line++;
              this.lineStart = this.base + i;
              this.pieces++;
            } else break;
          }
          this.value += i - start - cont;
          if (this.value > limits.maxAttributeLength) return this.valueTooLong(buf, i - 1);
          if (this.pieces > MAX_TAG_PIECES) return this.memoryAttack(buf, i - 1);
          if (i === n) break;
          if (c === this.quote) {
            const r = this.node(i);
            if (r) return r;
            this.state = TAG;
            this.spaced = false;
          } else if (c === 0x22 || c === 0x27) {
            this.value++;
          } else if (c === 0x26) {
            this.refReturn = VALUE;
            this.state = REF;
            if (++this.pieces > MAX_TAG_PIECES) return this.memoryAttack(buf, i);
          } else if (c === 0x3c) {
            return this.fail(buf, i, 'disallowed character "<" in attribute value');
          } else return this.fail(buf, i, 'disallowed character');
          i++;
          break;
        }
        case TAG: {
          if (buf[i] === SP) {
            const j = this.fastAttributes(buf, i);
            if (typeof j !== 'number') return j;
            if (j >= 0) {
              i = j;
              break;
            }
          }
          const r = this.step(buf, i);
          if (r) return r;
          i++;
          break;
        }
        case NAME: {
          if (this.nameChars > 0 && this.need === 0) {
            // ASCII name characters after the first, in a tight loop
            const nbuf = this.nameBuf;
            const max = limits.maxNameLength;
            let nb = this.nameBytes;
            let nc = this.nameChars;
            let h = this.nameHash;
            for (; i < n; i++) {
              const c = buf[i]!;
              if (c >= 0x80 || ASCII_NAME[c] === 0 || nc === max) break;
              nc++;
              nbuf[nb++] = c;
              h = Math.imul(h ^ c, 0x01000193);
            }
            this.nameBytes = nb;
            this.nameChars = nc;
            this.nameHash = h;
            if (i === n) break;
          }
          const r = this.step(buf, i);
          if (r) return r;
          i++;
          break;
        }
        default: {
          const r = this.step(buf, i);
          if (r) return r;
          i++;
        }
      }
    }
    return null;
  }

  /** Lookahead at `<` (byte i) in text: `<name` or `</name>` whole in this chunk, ASCII. -1: not here. */
  protected fastTag(buf: Uint8Array, i: number): number {
    const n = buf.length;
    let j = i + 1;
    const close = buf[j] === 0x2f;
    if (close) j++;
    const max = this.limits.maxNameLength;
    let c = j < n ? buf[j]! : 0;
    if (c >= 0x80 || ASCII_START[c] === 0) return -1;
    if (close) {
      // compared with the open element's name as it is read
      if (this.depth === 0) return -1;
      const stack = this.stack;
      const from = this.stackAt[this.depth - 1]!;
      const len = this.stackAt[this.depth]! - from;
      let k = 0;
      for (; j < n; j++, k++) {
        c = buf[j]!;
        if (k === len || c !== stack[from + k]) break;
      }
      if (k !== len || j === n || c !== 0x3e) return -1;
      this.depth--;
      this.state = this.depth > 0 ? TEXT : MISC;
      return j + 1;
    }
    // a start tag's name, read onto the stack of open elements (committed by openElement)
    const at = this.stackAt[this.depth]!;
    if (at + max > this.stack.length) this.stack = grow(this.stack, at + max);
    const stack = this.stack;
    let len = 0;
    for (; j < n; j++) {
      c = buf[j]!;
      if (c >= 0x80 || ASCII_NAME[c] === 0) break;
      if (len === max) return -1;
      stack[at + len++] = c;
    }
    if (j === n) return -1;
    if (c !== SP && c !== 0x3e && c !== 0x2f) return -1;
    return j;
  }

  /**
   * At a space (byte i) in a start tag: ` name="value"` after ` name="value"`, each whole in this
   * chunk and plain, then `/>` or `>`, read here without going through the states byte by byte
   * (the VALUE case's loop and checks; the names the tags before had, matched in place). Returns
   * where the states go on, its state set; -1 when nothing here was read.
   */
  protected fastAttributes(buf: Uint8Array, i: number): number | Refusal {
    const n = buf.length;
    const cls = this.valueFastCls; // UTF-8 continuation bytes are plain: counted below only when needed
    // the byte classes as locals: an imported binding is a load (and a check) on every byte
    const plain = PLAIN;
    const pieceK = PIECE;
    const nl = NL;
    const attrAt = this.attrAt;
    const wide = this.attrWide;
    const maxAttrs = this.limits.maxAttributes;
    const maxValue = this.limits.maxAttributeLength;
    let names = this.attrNames;
    let a = this.attrs;
    let q = 0;
    let pieces = this.pieces;
    // the names of the tags before, while this one's are the same (newAttribute changes both)
    let matching = this.matching;
    let known = this.known;
    for (let first = true; ; first = false) {
      // byte i is a space in a start tag (state TAG, `a` attributes read)
      let j = -1;
      if (matching && a < known && a < maxAttrs && wide[a] === 0) {
        // ROW after ROW: the name the tags before had here (an ASCII Name, distinct from those before it)?
        const at = a === 0 ? 0 : attrAt[a]!;
        const from = i + 1;
        const end = from + attrAt[a + 1]! - at;
        if (end + 1 < n && buf[end] === 0x3d) {
          let k = from;
          for (let p = at; k < end && buf[k] === names[p]; k++, p++);
          q = buf[end + 1]!;
          if (k === end && (q === 0x22 || q === 0x27)) {
            j = end + 2;
            a++;
          }
        }
      }
      if (j < 0) {
        this.attrs = a;
        const r = a < maxAttrs ? this.newAttribute(buf, i, a) : -1;
        if (typeof r !== 'number') return r;
        if (r < 0) {
          if (first) return -1;
          this.state = TAG; // after a value's closing quote
          this.spaced = false;
          return i;
        }
        j = r;
        a = this.attrs;
        q = this.quote;
        names = this.attrNames;
        matching = this.matching;
        known = this.known;
      }
      // the value from byte j, as the VALUE case reads it
      const start = j;
      // four plain bytes at a time (PLAIN is 0: their classes or to 0), then byte by byte
      while (j + 4 <= n && (cls[buf[j]!]! | cls[buf[j + 1]!]! | cls[buf[j + 2]!]! | cls[buf[j + 3]!]!) === plain)
        j += 4;
      for (; j < n; j++) {
        const k = cls[buf[j]!]!;
        if (k === plain) continue;
        if (k === pieceK) pieces++;
        else if (k === nl) {
          this.line++;
          this.lineStart = this.base + j;
          pieces++;
        } else break;
      }
      // in characters: bytes but UTF-8 continuation bytes, counted when the value is left open or
      // its bytes are over the limit (there are never more characters than bytes)
      let value = j - start;
      const open = j === n || buf[j] !== q;
      if ((open || value > maxValue) && this.table === null) value -= continuations(buf, start, j);
      this.pieces = pieces;
      if (open || value > maxValue || pieces > MAX_TAG_PIECES) {
        // the VALUE state goes on from byte j (the limits judged here, as its loop would)
        this.attrs = a;
        this.quote = q;
        this.value = value;
        this.state = VALUE;
        if (value > maxValue) return this.valueTooLong(buf, j - 1);
        if (pieces > MAX_TAG_PIECES) return this.memoryAttack(buf, j - 1);
        return j;
      }
      // its closing quote: a node
      const r = this.node(j);
      if (r) return r;
      i = j + 1;
      const c = i < n ? buf[i]! : 0;
      if (c === SP) continue;
      this.attrs = a;
      this.state = TAG;
      this.spaced = false;
      if (c === 0x2f && i + 1 < n && buf[i + 1] === 0x3e) {
        this.startTagDone(true);
        return i + 2;
      }
      if (c === 0x3e) {
        this.startTagDone(false);
        return i + 1;
      }
      return i;
    }
  }

  /** ` name="` at byte i, whole in this chunk and ASCII: attribute `a` read (state VALUE); else -1. */
  protected newAttribute(buf: Uint8Array, i: number, a: number): number | Refusal {
    const n = buf.length;
    const from = i + 1;
    let j = from;
    let c = j < n ? buf[j]! : 0;
    if (c >= 0x80 || ASCII_START[c] === 0) return -1;
    const max = this.limits.maxNameLength;
    for (const end = Math.min(n, from + max + 1); j < end; j++) {
      c = buf[j]!;
      if (c >= 0x80 || ASCII_NAME[c] === 0) break;
    }
    const len = j - from;
    if (len > max || j + 1 >= n || c !== 0x3d) return -1;
    const q = buf[j + 1]!;
    if (q !== 0x22 && q !== 0x27) return -1;
    this.attrs = a + 1;
    // read in place after the tag's other attribute names (committed by addAttribute)
    const at = a === 0 ? 0 : this.attrAt[a]!;
    if (at + len > this.attrNames.length) this.attrNames = grow(this.attrNames, at + len);
    const to = this.attrNames;
    let h = HASH_SEED;
    for (let k = 0; k < len; k++) {
      const b = buf[from + k]!;
      to[at + k] = b;
      h = Math.imul(h ^ b, 0x01000193);
    }
    const r = this.addAttribute(buf, j, len, h, true);
    if (r) return r;
    this.quote = q;
    this.value = 0;
    this.state = VALUE;
    return j + 2;
  }
}

/** UTF-8 continuation bytes in buf[from, to). */
function continuations(buf: Uint8Array, from: number, to: number): number {
  let cont = 0;
  for (let k = from; k < to; k++) if ((buf[k]! & 0xc0) === 0x80) cont++;
  return cont;
}
