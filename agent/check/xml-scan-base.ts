// The scanner's state and bookkeeping (xml-scan.ts): positions and reasons, the node budget, the
// stack of open elements, the attributes of the start tag being read.
import type { XmlLimits } from './limits.js';
import {
  Refusal,
  MAX_TAG_PIECES,
  MiB,
  MISC,
  TEXT,
  TAG,
  VALUE,
  K_ELEM,
  PLAIN,
  CONT,
  badBytes,
  classes,
  same,
  copy,
  grow,
  type Charset,
  slotOf,
} from './xml-chars.js';

export abstract class ScanBase {
  protected state = MISC;
  protected readonly textCls: Uint8Array;
  protected readonly valueCls: Uint8Array;
  /** valueCls with UTF-8 continuation bytes plain (fastAttributes counts them only when it must). */
  protected readonly valueFastCls: Uint8Array;
  protected readonly bodyCls: Uint8Array;
  protected table: Int32Array | null;
  protected bad: Uint8Array;
  /** Bytes fed before the current chunk. */
  protected base = 0;
  protected line = 1;
  /** Offset of the last line feed (-1 before the first line's first byte). */
  protected lineStart = -1;
  /** UTF-8 continuation bytes since `lineStart` in earlier chunks (for the column in characters). */
  protected lineCont = 0;
  protected sawRoot = false;
  protected depth = 0;
  // the name being read
  protected nameKind = K_ELEM;
  protected readonly nameBuf: Uint8Array;
  protected nameBytes = 0;
  protected nameChars = 0;
  protected nameHash = 0;
  protected need = 0; // UTF-8 continuation bytes still to come in a name's character
  protected cp = 0;
  // open elements
  protected stack: Uint8Array = new Uint8Array(4096);
  protected readonly stackAt: Int32Array;
  // the start tag being read
  protected attrs = 0;
  protected spaced = false;
  protected readonly attrHash: Int32Array;
  /** Open addressing over the start tag's attribute names: slot -> attribute, valid when its stamp is `tagStamp`. */
  protected readonly slotAttr: Int32Array;
  protected readonly slotStamp: Int32Array;
  protected tagStamp = 0;
  /**
   * Attribute names 0..known-1 in attrNames/attrAt/attrHash are distinct (those of the latest start
   * tags, ROW after ROW): while a start tag's attributes so far are exactly those names in that
   * order (`matching`), none of them can repeat one before it and the slot table is not touched.
   */
  protected known = 0;
  protected matching = false;
  /** Known name k has a byte >= 0x80 (read by the states, never matched without them). */
  protected readonly attrWide: Uint8Array;
  protected readonly attrAt: Int32Array;
  protected attrNames: Uint8Array = new Uint8Array(1024);
  protected quote = 0;
  protected value = 0; // characters of the value (a reference counts as what it stands for)
  protected pieces = 0;
  // references
  protected refReturn = TEXT;
  protected refValue = 0;
  protected refDigits = 0;
  protected refHex = false;
  // text runs between tags (comments, CDATA and PIs in them included)
  protected run = 0;
  protected lastBracket = -2;
  protected brackets = 0;
  protected dashes = 0;
  protected matched = 0;
  protected nodes = 0;
  protected budgetFor = -1;
  protected budget = 0;

  constructor(
    charset: Charset,
    protected readonly limits: XmlLimits,
    protected readonly size: number | undefined,
  ) {
    this.table = charset.table;
    this.bad = badBytes(charset);
    this.textCls = classes('<&>]', charset);
    this.valueCls = classes('<&"\'', charset);
    this.valueFastCls = this.valueCls.map((k) => (k === CONT ? PLAIN : k));
    this.bodyCls = classes('-?]', charset);
    this.nameBuf = new Uint8Array(4 * limits.maxNameLength + 8);
    this.stackAt = new Int32Array(limits.maxDepth + 2);
    this.attrHash = new Int32Array(limits.maxAttributes + 2);
    let slots = 16;
    while (slots < 2 * (limits.maxAttributes + 1)) slots *= 2;
    this.slotAttr = new Int32Array(slots);
    this.slotStamp = new Int32Array(slots);
    this.attrAt = new Int32Array(limits.maxAttributes + 2);
    this.attrWide = new Uint8Array(limits.maxAttributes + 2);
  }

  /** At the end: the node count judged against the whole file. */
  protected checkNodes(): Refusal | null {
    return this.nodes > this.allowed(this.base) ? new Refusal(this.tooMany()) : null;
  }

  protected allowed(seen: number): number {
    if (this.budgetFor !== seen) {
      this.budgetFor = seen;
      this.budget = (this.limits.maxNodesPerMB * Math.max(MiB, seen, this.size ?? 0)) / MiB;
    }
    return this.budget;
  }

  protected tooMany(): string {
    const bytes = Math.max(this.base, this.size ?? 0);
    return `too many XML nodes: more than ${Math.floor(this.allowed(this.base))} elements, attributes and text nodes in ${bytes} bytes (limit check.xml.maxNodesPerMB: ${this.limits.maxNodesPerMB} per MB)`;
  }

  /** One more node: judged as it comes when the size is known, else at the end. */
  protected node(at: number): Refusal | null {
    if (++this.nodes > this.budget && this.size !== undefined && this.nodes > this.allowed(this.base + at))
      return new Refusal(this.tooMany());
    return null;
  }

  protected text(bytes: Uint8Array): string {
    const s =
      this.table === null
        ? Buffer.from(bytes).toString('utf8')
        : Array.from(bytes, (b) => String.fromCodePoint(b < 0x80 ? b : Math.max(0, this.table![b]!))).join('');
    return s.length > 40 ? `${s.slice(0, 40)}…` : s;
  }

  /** Column (characters) of the byte at chunk offset `i`. */
  protected position(buf: Uint8Array | null, i: number): string {
    let col = this.base + i - this.lineStart;
    if (this.table === null && buf) {
      const from = Math.max(0, this.lineStart + 1 - this.base);
      let cont = this.lineStart >= this.base ? 0 : this.lineCont;
      for (let k = from; k <= i && k < buf.length; k++) if ((buf[k]! & 0xc0) === 0x80) cont++;
      col -= cont;
    } else if (this.table === null) col -= this.lineCont;
    return `line ${this.line}, column ${col}`;
  }

  protected fail(buf: Uint8Array | null, i: number, detail: string): Refusal {
    return new Refusal(`not well-formed XML at ${this.position(buf, i)}: ${detail}`);
  }

  protected limit(buf: Uint8Array, i: number, what: string, key: string): Refusal {
    return new Refusal(`${what} at ${this.position(buf, i)} (limit check.xml.${key})`);
  }

  protected tooLong(buf: Uint8Array, i: number): Refusal {
    return this.limit(buf, i, `XML text longer than ${this.limits.maxTextLength} characters`, 'maxTextLength');
  }

  protected valueTooLong(buf: Uint8Array, i: number): Refusal {
    return this.limit(
      buf,
      i,
      `attribute "${this.text(this.attrNames.subarray(this.attrAt[this.attrs - 1], this.attrAt[this.attrs]))}" is longer than ${this.limits.maxAttributeLength} characters`,
      'maxAttributeLength',
    );
  }

  protected memoryAttack(buf: Uint8Array, i: number): Refusal {
    return new Refusal(
      `more than ${MAX_TAG_PIECES} entity references, tabs or line breaks in one tag's attribute values (or one comment) at ${this.position(buf, i)}: refused as a memory attack`,
    );
  }

  /** The start tag whose name is in nameBuf[0, len) ends its name at byte `i`. */
  protected openElement(buf: Uint8Array, i: number, len: number, inPlace = false): Refusal | null {
    if (++this.depth > this.limits.maxDepth)
      return this.limit(buf, i, `XML elements nested more than ${this.limits.maxDepth} deep`, 'maxDepth');
    const at = this.stackAt[this.depth - 1]!;
    if (!inPlace) {
      if (at + len > this.stack.length) this.stack = grow(this.stack, at + len);
      copy(this.nameBuf, 0, len, this.stack, at);
    }
    this.stackAt[this.depth] = at + len;
    this.sawRoot = true;
    this.attrs = 0;
    this.matching = true; // the slot table is filled only once the names differ from the known ones
    this.spaced = false;
    this.state = TAG;
    return this.node(i);
  }

  /** Attribute number `attrs` (counted) ends its name at byte `i`; `inPlace`: already in attrNames. */
  protected addAttribute(buf: Uint8Array, i: number, len: number, h: number, inPlace = false): Refusal | null {
    const n = this.attrs - 1;
    if (this.matching) {
      // inPlace names come from newAttribute, after fastAttributes found them not the known one
      if (
        !inPlace &&
        n < this.known &&
        same(this.attrNames, this.attrAt[n]!, this.attrAt[n + 1]!, this.nameBuf, 0, len)
      )
        return null;
      this.diverge(n);
    }
    const at = n === 0 ? 0 : this.attrAt[n]!;
    let wide = 0;
    if (!inPlace) {
      if (at + len > this.attrNames.length) this.attrNames = grow(this.attrNames, at + len);
      copy(this.nameBuf, 0, len, this.attrNames, at);
      for (let k = 0; k < len; k++) wide |= this.nameBuf[k]! >> 7;
    }
    const names = this.attrNames;
    const mask = this.slotAttr.length - 1;
    let s = slotOf(h, mask);
    for (; this.slotStamp[s] === this.tagStamp; s = (s + 1) & mask) {
      const k = this.slotAttr[s]!;
      if (this.attrHash[k] === h && same(names, this.attrAt[k]!, this.attrAt[k + 1]!, names, at, len))
        return this.fail(buf, i, `duplicate attribute: ${this.text(names.subarray(at, at + len))}`);
    }
    this.slotStamp[s] = this.tagStamp;
    this.slotAttr[s] = n;
    this.attrAt[n + 1] = at + len;
    this.attrHash[n] = h;
    this.attrWide[n] = wide;
    this.known = n + 1;
    return null;
  }

  /** Attribute `n` of the start tag is not known name `n`: the slot table gets names 0..n-1 (distinct). */
  protected diverge(n: number): void {
    this.matching = false;
    if (++this.tagStamp === 0x7fffffff) {
      this.slotStamp.fill(0);
      this.tagStamp = 1;
    }
    const mask = this.slotAttr.length - 1;
    for (let k = 0; k < n; k++) {
      let s = slotOf(this.attrHash[k]!, mask);
      while (this.slotStamp[s] === this.tagStamp) s = (s + 1) & mask;
      this.slotStamp[s] = this.tagStamp;
      this.slotAttr[s] = k;
    }
    this.known = n;
  }

  /** A start tag ends (`/>` when `empty`). */
  protected startTagDone(empty: boolean): null {
    if (empty) return this.closed();
    this.state = TEXT;
    this.run = 0;
    return null;
  }

  /** An element ends at byte `i` (its `>`). */
  /** An element ends. */
  protected closed(): null {
    this.depth--;
    this.state = this.depth > 0 ? TEXT : MISC;
    this.run = 0;
    return null;
  }

  /** A reference ended; it stands for `chars` characters of a value. */
  protected refDone(chars: number): null {
    this.state = this.refReturn;
    if (this.refReturn === VALUE) this.value += chars;
    return null;
  }
}
