// The byte-at-a-time states of the XML scanner (xml-scan.ts): everything but character data and
// attribute values, which xml-scan.ts reads in tight loops.
import {
  Refusal,
  MAX_TAG_PIECES,
  MISC,
  TEXT,
  LT,
  NAME,
  TAG,
  EQ,
  QUOTE,
  VALUE,
  SLASH,
  CLOSE_END,
  REF,
  CHARREF,
  BANG,
  COMMENT,
  CDATA,
  PI_AFTER,
  PI,
  OPEN_CDATA,
  COMMENT_START,
  OPEN_DOCTYPE,
  K_ELEM,
  K_ATTR,
  K_CLOSE,
  K_PI,
  K_ENTITY,
  STOP,
  CONT,
  LF,
  CR,
  TAB,
  SP,
  isWs,
  ASCII_START,
  ASCII_NAME,
  isNameStart,
  isNameChar,
  isChar,
  PREDEFINED,
  KIND_NAMES,
  same,
  HASH_SEED,
} from './xml-chars.js';
import { ScanBase } from './xml-scan-base.js';

export abstract class MarkupSteps extends ScanBase {
  /** One byte in any state but TEXT and VALUE. */
  protected step(buf: Uint8Array, i: number): Refusal | null {
    const c = buf[i]!;
    if (this.bad[c] === 1) return this.fail(buf, i, 'disallowed character');
    if (c === LF) {
      this.line++;
      this.lineStart = this.base + i;
    }
    return this.stepState(buf, i, c);
  }

  protected stepState(buf: Uint8Array, i: number, c: number): Refusal | null {
    switch (this.state) {
      case MISC:
        if (c === 0x3c) {
          this.state = LT;
          this.pieces = 0;
          return null;
        }
        if (isWs(c)) return null;
        return this.fail(buf, i, 'text data outside of root node');
      case LT: {
        if (c === 0x3f) return this.startName(K_PI);
        if (c === 0x21) {
          this.state = BANG;
          return null;
        }
        if (this.run > 0) {
          // the characters since the last tag were a text node
          const r = this.node(i);
          if (r) return r;
        }
        if (c === 0x2f) {
          if (this.depth === 0) return this.fail(buf, i, 'unexpected close tag');
          return this.startName(K_CLOSE);
        }
        if (this.depth === 0 && this.sawRoot) return this.fail(buf, i, 'documents may contain only one root');
        this.startName(K_ELEM);
        return this.nameByte(buf, i, c);
      }
      case NAME:
        return this.nameByte(buf, i, c);
      case TAG:
        if (isWs(c)) {
          this.spaced = true;
          if (c !== SP && ++this.pieces > MAX_TAG_PIECES) return this.memoryAttack(buf, i);
          return null;
        }
        if (c === 0x3e) return this.startTagDone(false);
        if (c === 0x2f) {
          this.state = SLASH;
          return null;
        }
        if (!this.spaced) return this.fail(buf, i, 'no whitespace between attributes');
        if (++this.attrs > this.limits.maxAttributes)
          return this.limit(
            buf,
            i,
            `element <${this.text(this.stack.subarray(this.stackAt[this.depth - 1], this.stackAt[this.depth]))}> has more than ${this.limits.maxAttributes} attributes`,
            'maxAttributes',
          );
        this.startName(K_ATTR);
        return this.nameByte(buf, i, c);
      case EQ:
        if (isWs(c)) return null;
        if (c !== 0x3d) return this.fail(buf, i, 'attribute without value');
        this.state = QUOTE;
        return null;
      case QUOTE:
        if (isWs(c)) return null;
        if (c !== 0x22 && c !== 0x27) return this.fail(buf, i, 'unquoted attribute value');
        this.quote = c;
        this.value = 0;
        this.state = VALUE;
        return null;
      case SLASH:
        if (c !== 0x3e) return this.fail(buf, i, 'forward-slash in opening tag not followed by >');
        return this.startTagDone(true);
      case CLOSE_END:
        if (isWs(c)) return null;
        if (c !== 0x3e) return this.fail(buf, i, 'disallowed character in closing tag');
        return this.closed();
      case REF:
        return this.refByte(buf, i, c);
      case CHARREF:
        return this.charRefByte(buf, i, c);
      case BANG:
        if (c === 0x2d) {
          this.state = COMMENT_START;
          return null;
        }
        if (c === 0x5b) {
          if (this.depth === 0) return this.fail(buf, i, 'text data outside of root node');
          this.state = OPEN_CDATA;
          this.matched = 0;
          return null;
        }
        if ((c | 0x20) === 0x64) {
          // the raw scan (encoding.ts) refuses it with its byte offset once the word is complete
          this.state = OPEN_DOCTYPE;
          this.matched = 1;
          return null;
        }
        return this.fail(buf, i, 'incorrect syntax');
      case OPEN_DOCTYPE:
        if ((c | 0x20) !== 'doctype'.charCodeAt(this.matched)) return this.fail(buf, i, 'incorrect syntax');
        if (++this.matched === 7) return this.fail(buf, i, 'DOCTYPE is not allowed');
        return null;
      case COMMENT_START:
        if (c !== 0x2d) return this.fail(buf, i, 'incorrect syntax');
        this.state = COMMENT;
        this.dashes = 0;
        return null;
      case OPEN_CDATA:
        if (c !== 'CDATA['.charCodeAt(this.matched)) return this.fail(buf, i, 'incorrect syntax');
        if (++this.matched === 6) {
          this.state = CDATA;
          this.brackets = 0;
        }
        return null;
      case COMMENT:
      case CDATA:
      case PI:
      case PI_AFTER:
        return this.bodyByte(buf, i, c);
    }
    return null;
  }

  /** Comments, CDATA sections and PI bodies: rare, so byte by byte. */
  protected bodyByte(buf: Uint8Array, i: number, c: number): Refusal | null {
    const k = this.bodyCls[c]!;
    if (k === CONT) return null;
    if (k === STOP && c >= 0x80) return this.fail(buf, i, 'disallowed character');
    if (++this.run > this.limits.maxTextLength) return this.tooLong(buf, i);
    if (c === TAB || c === LF || c === CR) {
      if (++this.pieces > MAX_TAG_PIECES) return this.memoryAttack(buf, i);
    }
    switch (this.state) {
      case COMMENT:
        if (c === 0x2d) {
          if (this.dashes >= 2) return this.fail(buf, i, 'malformed comment');
          this.dashes++;
          return null;
        }
        if (this.dashes >= 2) {
          if (c !== 0x3e) return this.fail(buf, i, 'malformed comment');
          return this.bodyDone();
        }
        this.dashes = 0;
        return null;
      case CDATA:
        if (c === 0x5d) {
          this.brackets++;
          return null;
        }
        if (c === 0x3e && this.brackets >= 2) return this.bodyDone();
        this.brackets = 0;
        return null;
      case PI_AFTER:
        if (c === 0x3f) {
          this.dashes = 1; // a `?` seen
          this.state = PI;
          return null;
        }
        if (!isWs(c)) return this.fail(buf, i, 'processing instruction without whitespace after its target');
        this.state = PI;
        this.dashes = 0;
        return null;
      default: // PI
        if (c === 0x3e && this.dashes === 1) return this.bodyDone();
        this.dashes = c === 0x3f ? 1 : 0;
        return null;
    }
  }

  protected bodyDone(): null {
    this.state = this.depth > 0 ? TEXT : MISC;
    return null;
  }

  protected startName(kind: number): null {
    this.state = NAME;
    this.nameKind = kind;
    this.nameBytes = 0;
    this.nameChars = 0;
    this.nameHash = HASH_SEED;
    this.need = 0;
    return null;
  }

  protected nameByte(buf: Uint8Array, i: number, c: number): Refusal | null {
    let cp: number;
    if (c < 0x80) {
      if (this.need > 0) return this.fail(buf, i, 'disallowed character in name');
      if (this.nameChars === 0 ? ASCII_START[c] === 1 : ASCII_NAME[c] === 1) return this.nameAdd(buf, i, c);
      if (this.nameChars === 0) return this.fail(buf, i, `disallowed character in ${KIND_NAMES[this.nameKind]} name`);
      return this.nameEnd(buf, i, c);
    }
    if (this.table !== null) {
      cp = this.table[c]!;
      if (cp < 0) return this.fail(buf, i, 'disallowed character');
    } else if (c >= 0xc0) {
      this.need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
      this.cp = c & (c >= 0xf0 ? 0x07 : c >= 0xe0 ? 0x0f : 0x1f);
      return this.nameAppend(c);
    } else {
      this.cp = (this.cp << 6) | (c & 0x3f);
      if (--this.need > 0) return this.nameAppend(c);
      cp = this.cp;
    }
    if (!(this.nameChars === 0 ? isNameStart(cp) : isNameChar(cp)))
      return this.fail(buf, i, `disallowed character in ${KIND_NAMES[this.nameKind]} name`);
    return this.nameAdd(buf, i, c);
  }

  /** A name character whose last byte is `c`. */
  protected nameAdd(buf: Uint8Array, i: number, c: number): Refusal | null {
    if (++this.nameChars > this.limits.maxNameLength)
      return this.limit(buf, i, `XML name longer than ${this.limits.maxNameLength} characters`, 'maxNameLength');
    return this.nameAppend(c);
  }

  protected nameAppend(c: number): null {
    this.nameBuf[this.nameBytes++] = c;
    this.nameHash = Math.imul(this.nameHash ^ c, 0x01000193);
    return null;
  }

  /** The name ended at byte `c` (not part of it), which the next state reads. */
  protected nameEnd(buf: Uint8Array, i: number, c: number): Refusal | null {
    const name = this.nameBuf;
    const len = this.nameBytes;
    switch (this.nameKind) {
      case K_ELEM:
        return this.openElement(buf, i, len) ?? this.stepState(buf, i, c);
      case K_ATTR:
        this.state = EQ;
        return this.addAttribute(buf, i, len, this.nameHash) ?? this.stepState(buf, i, c);
      case K_CLOSE: {
        const from = this.stackAt[this.depth - 1]!;
        if (!same(this.stack, from, this.stackAt[this.depth]!, name, 0, len))
          return this.fail(buf, i, `unmatched closing tag: ${this.text(name.subarray(0, len))}`);
        this.state = CLOSE_END;
        return this.stepState(buf, i, c);
      }
      case K_PI: {
        if (len === 3 && (name[0]! | 0x20) === 0x78 && (name[1]! | 0x20) === 0x6d && (name[2]! | 0x20) === 0x6c)
          return this.fail(buf, i, 'the XML declaration must appear at the start of the document');
        this.state = PI_AFTER;
        return this.bodyByte(buf, i, c);
      }
      default: {
        // an entity reference's name
        if (c !== 0x3b) return this.fail(buf, i, 'malformed entity reference');
        if (!PREDEFINED.some((p) => same(p, 0, p.length, name, 0, len))) return this.fail(buf, i, 'undefined entity');
        return this.refDone(1);
      }
    }
  }

  protected refByte(buf: Uint8Array, i: number, c: number): Refusal | null {
    if (c === 0x23) {
      this.state = CHARREF;
      this.refValue = 0;
      this.refDigits = 0;
      this.refHex = false;
      return null;
    }
    if (c === 0x3b) return this.fail(buf, i, 'empty entity name');
    this.startName(K_ENTITY);
    return this.nameByte(buf, i, c);
  }

  protected charRefByte(buf: Uint8Array, i: number, c: number): Refusal | null {
    if (c === 0x78 && this.refDigits === 0 && !this.refHex) {
      this.refHex = true;
      return null;
    }
    if (c === 0x3b) {
      if (this.refDigits === 0 || !isChar(this.refValue)) return this.fail(buf, i, 'malformed character entity');
      return this.refDone(this.refValue > 0xffff ? 2 : 1);
    }
    let d = -1;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (this.refHex && (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) d = (c | 0x20) - 0x61 + 10;
    if (d < 0) return this.fail(buf, i, 'malformed character entity');
    this.refValue = Math.min(this.refValue * (this.refHex ? 16 : 10) + d, 0x7fffffff);
    this.refDigits++;
    return null;
  }
}
