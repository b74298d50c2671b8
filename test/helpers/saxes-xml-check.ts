// The XML check as it was before the byte scanner (agent/check/xml-scan.ts): decoding with
// TextDecoder and parsing with saxes, under the same limits. Kept only as the reference the new
// check is compared with in test/xml-check.test.ts (the strictness corpus and the differential
// test over mutated documents): it is not used by the agent.
import { TextDecoder } from 'node:util';
import { SaxesParser } from 'saxes';
import { MarkupScan, plan, SNIFF_BYTES, UNDECLARED_FALLBACK, utf8Cut, type Plan } from '../../agent/check/encoding.js';
import { DEFAULT_XML_LIMITS, type XmlLimits } from '../../agent/check/limits.js';
/** A check fed the bytes of one package in order. */
export interface ContentCheck {
  /**
   * The next bytes: null while nothing is wrong, else the reason (and every later call returns it
   * too). The chunk is not kept after the call.
   */
  write(chunk: Uint8Array): string | null;
  /** No more bytes: the verdict. */
  end(): string | null;
}

export interface XmlCheckOptions {
  /** The package's size when known: lets the nodes-per-MB limit stop the check early. */
  size?: number;
}

const MiB = 1024 * 1024;

/**
 * saxes builds an attribute value (and a comment) by appending a piece for each entity reference,
 * tab or line break: about 40 bytes of memory each, so 48 MB of `&amp;` or line breaks in one value
 * took 0.4-1.7 GB. A real tag has a few thousand at most; this bounds the pieces held at once.
 */
const MAX_TAG_PIECES = 1_000_000;

/** A limit or a refusal found inside a saxes event handler: thrown to stop the parser at once. */
class Stop extends Error {}

/** Null when the XML is acceptable, else a reason fit for the ledger and the log. */
export function createSaxesXmlCheck(limits: XmlLimits = DEFAULT_XML_LIMITS, opts: XmlCheckOptions = {}): ContentCheck {
  let verdict: string | null = null;
  let ended = false;
  let head: Buffer[] | null = [];
  let headLength = 0;
  let bytes = 0;
  const scan = new MarkupScan();
  let text: TextStage | null = null;

  const feedBytes = (chunk: Buffer): string | null => {
    bytes += chunk.length;
    const found = scan.write(chunk);
    if (found) return found;
    if (head) {
      head.push(Buffer.from(chunk)); // the caller may reuse its buffer
      headLength += chunk.length;
      if (headLength < SNIFF_BYTES) return null;
      const all = Buffer.concat(head);
      head = null;
      const planned = plan(all, true); // headLength >= SNIFF_BYTES
      if (typeof planned === 'string') return planned;
      text = new TextStage(planned, limits, opts.size);
      return text.write(all, bytes);
    }
    return text!.write(chunk, bytes);
  };

  return {
    write(chunk) {
      if (verdict !== null) return verdict;
      if (ended) throw new Error('XML check: write() after end()');
      verdict = feedBytes(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      return verdict;
    },
    end() {
      if (verdict !== null || ended) return verdict;
      ended = true;
      if (head) {
        const all = Buffer.concat(head);
        head = null;
        if (all.length === 0) return (verdict = 'not well-formed XML: the file is empty');
        const planned = plan(all, false);
        if (typeof planned === 'string') return (verdict = planned);
        text = new TextStage(planned, limits, opts.size);
        verdict = text.write(all, bytes);
        if (verdict !== null) return verdict;
      }
      verdict = text!.end(bytes);
      return verdict;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding and parsing under the limits

class TextStage {
  private readonly parser = new SaxesParser();
  private decoder: TextDecoder;
  private readonly undeclared: boolean;
  /** UTF-8 bytes of an incomplete sequence at the end of the last chunk (undeclared files). */
  private carry: Buffer = Buffer.alloc(0);
  private depth = 0;
  private element = '';
  private attributes = 0;
  private nodes = 0;
  private bytes = 0;
  /** Parser position (characters) just after the last `>` of a tag. */
  private lastTagEnd = 0;
  /** Entity references, tabs and line breaks since the last `<`: see MAX_TAG_PIECES. */
  private pieces = 0;
  /** Attribute values and text runs share saxes' buffer: it may hold the larger of the two limits. */
  private readonly pendingMax: number;

  constructor(
    private readonly plan: Plan,
    private readonly limits: XmlLimits,
    private readonly size: number | undefined,
  ) {
    this.undeclared = plan.encoding === null;
    this.decoder = this.undeclared
      ? new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
      : new TextDecoder(plan.encoding!, { fatal: true });
    this.pendingMax = Math.max(limits.maxAttributeLength, limits.maxTextLength);
    const p = this.parser;
    // No 'text' (or 'opentag') handler: with one, saxes parses 4 times slower, and a 'text'
    // handler makes it keep every text run in memory. A text node is seen instead as characters
    // between the end of one tag and the start of the next (comments, CDATA and PIs there count as
    // that one node; a space before an open tag's `>` may count as one too).
    p.on('opentagstart', (tag) => {
      this.between(p.position - tag.name.length - 2); // `<name` and the character after it
      if (++this.depth > limits.maxDepth) {
        this.stop(`XML elements nested more than ${limits.maxDepth} deep`, 'check.xml.maxDepth');
      }
      this.name(tag.name);
      this.element = tag.name;
      this.attributes = 0;
      this.node();
      this.lastTagEnd = p.position; // exact for `<name>`; moved on by attributes and `/>`
    });
    p.on('attribute', (attr) => {
      if (++this.attributes > limits.maxAttributes) {
        this.stop(
          `element <${short(this.element)}> has more than ${limits.maxAttributes} attributes`,
          'check.xml.maxAttributes',
        );
      }
      this.name(attr.name);
      if (attr.value.length > limits.maxAttributeLength) {
        this.stop(
          `attribute "${short(attr.name)}" is longer than ${limits.maxAttributeLength} characters`,
          'check.xml.maxAttributeLength',
        );
      }
      this.node();
      this.lastTagEnd = p.position + 1; // the closing quote, then (without spaces) `>`
    });
    p.on('closetag', (tag) => {
      this.depth--;
      if (!tag.isSelfClosing) this.between(p.position - tag.name.length - 3); // `</name>`
      this.lastTagEnd = p.position;
    });
    const unparsed = (t: string) => {
      if (t.length > limits.maxTextLength) {
        this.stop(`XML text longer than ${limits.maxTextLength} characters`, 'check.xml.maxTextLength');
      }
    };
    p.on('cdata', unparsed);
    p.on('comment', unparsed);
    p.on('processinginstruction', (pi) => unparsed(pi.body));
    p.on('doctype', () => {
      throw new Stop(doctypeReason(p.line, p.column));
    });
  }

  /** Feeds `chunk`; `total` is the bytes seen so far, this chunk included. */
  write(chunk: Buffer, total: number): string | null {
    this.bytes = total;
    const text = this.decode(chunk);
    if (typeof text !== 'string') return text.refused;
    return this.feed(text);
  }

  end(total: number): string | null {
    this.bytes = total;
    let rest: string;
    if (this.undeclared) {
      const text = this.carry.length > 0 ? this.decode(Buffer.alloc(0), true) : '';
      if (typeof text !== 'string') return text.refused;
      rest = text;
    } else {
      try {
        rest = this.decoder.decode();
      } catch {
        return this.undecodable();
      }
    }
    const last = this.feed(rest);
    if (last !== null) return last;
    try {
      this.parser.close();
    } catch (err) {
      return this.describe(err);
    }
    return this.nodes > this.budget(total) ? this.tooManyNodes(total) : null;
  }

  private decode(chunk: Buffer, final = false): string | { refused: string } {
    if (!this.undeclared) {
      try {
        return this.decoder.decode(chunk, { stream: true });
      } catch {
        return { refused: this.undecodable() };
      }
    }
    // Undeclared: UTF-8 while the bytes are UTF-8, windows-1251 from the first chunk that is not
    // (the parser keeps its state; markup is ASCII and reads the same in both).
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    if (this.decoder.encoding === 'utf-8') {
      const cut = final ? data.length : utf8Cut(data);
      try {
        const text = this.decoder.decode(data.subarray(0, cut));
        this.carry = Buffer.from(data.subarray(cut));
        return text;
      } catch {
        this.decoder = new TextDecoder(UNDECLARED_FALLBACK);
        this.carry = Buffer.alloc(0);
      }
    }
    return this.decoder.decode(data, { stream: true });
  }

  private undecodable(): string {
    return `not well-formed XML: bytes are not valid ${this.plan.encoding} (the encoding its ${this.plan.source} implies)`;
  }

  private feed(text: string): string | null {
    if (text.length === 0) return null;
    const lt = text.lastIndexOf('<');
    this.pieces = (lt === -1 ? this.pieces : 0) + countPieces(text, lt + 1);
    const p = this.parser;
    try {
      p.write(text);
    } catch (err) {
      return this.describe(err);
    }
    // What saxes holds of the token it is reading (an attribute value, comment, CDATA, PI, or a
    // name) is bounded here between chunks, so that no token grows past its limit in memory before
    // the event that would report it.
    const pending = pendingLengths(p);
    if (pending.name > this.limits.maxNameLength) {
      return this.reason(`XML name longer than ${this.limits.maxNameLength} characters`, 'check.xml.maxNameLength');
    }
    if (pending.text > this.pendingMax) {
      const key =
        this.pendingMax === this.limits.maxTextLength ? 'check.xml.maxTextLength' : 'check.xml.maxAttributeLength';
      return this.reason(`XML text or attribute value longer than ${this.pendingMax} characters`, key);
    }
    if (pending.text > 0 && this.pieces > MAX_TAG_PIECES) {
      return `more than ${MAX_TAG_PIECES} entity references, tabs or line breaks in one tag's attribute values (or one comment) at line ${p.line}, column ${p.column}: refused as a memory attack`;
    }
    return null;
  }

  /** Characters between two tags: a text node (or comment, CDATA, PI) when there are any. */
  private between(start: number): void {
    const length = start - this.lastTagEnd;
    if (length <= 0) return;
    if (length > this.limits.maxTextLength) {
      this.stop(`XML text longer than ${this.limits.maxTextLength} characters`, 'check.xml.maxTextLength');
    }
    this.node();
  }

  /** Nodes allowed for `seen` bytes: a file under 1 MiB counts as 1 MiB; a known size counts whole. */
  private budget(seen: number): number {
    return (this.limits.maxNodesPerMB * Math.max(MiB, seen, this.size ?? 0)) / MiB;
  }

  private tooManyNodes(seen: number): string {
    const bytes = Math.max(seen, this.size ?? 0);
    return `too many XML nodes: more than ${Math.floor(this.budget(seen))} elements, attributes and text nodes in ${bytes} bytes (limit check.xml.maxNodesPerMB: ${this.limits.maxNodesPerMB} per MB)`;
  }

  private name(name: string): void {
    if (name.length > this.limits.maxNameLength) {
      this.stop(`XML name longer than ${this.limits.maxNameLength} characters`, 'check.xml.maxNameLength');
    }
  }

  private node(): void {
    // Without a known size the count is judged at the end (the file may still grow its allowance).
    if (++this.nodes > this.budget(this.bytes) && this.size !== undefined) {
      throw new Stop(this.tooManyNodes(this.bytes));
    }
  }

  private stop(what: string, key: string): never {
    throw new Stop(this.reason(what, key));
  }

  private reason(what: string, key: string): string {
    return `${what} at line ${this.parser.line}, column ${this.parser.column} (limit ${key})`;
  }

  private describe(err: unknown): string {
    if (err instanceof Stop) return err.message;
    const message = err instanceof Error ? err.message : String(err);
    // saxes prefixes "line:column: " taken at the moment of failure; prefer it to the live position.
    const m = /^(\d+):(\d+): ([\s\S]*)$/.exec(message);
    const [line, column, detail] = m ? [m[1], m[2], m[3] ?? ''] : [this.parser.line, this.parser.column, message];
    return `not well-formed XML at line ${line}, column ${column}: ${detail.replace(/\.$/, '')}`;
  }
}

function doctypeReason(line: number, column: number): string {
  return `DOCTYPE is not allowed (line ${line}, column ${column}): entity declarations and external references are refused`;
}

/**
 * What saxes holds of the token it is in the middle of. saxes keeps these in fields its typings
 * call private (`text`: a text run, attribute value, comment, CDATA or PI; `name`: a tag or
 * attribute name); when a later saxes renames them this reads 0 and the limits still hold at each
 * event, only later. test/inspect.test.ts pins that they are read.
 */
function pendingLengths(parser: SaxesParser): { text: number; name: number } {
  const inner = parser as unknown as { text?: unknown; name?: unknown };
  return {
    text: typeof inner.text === 'string' ? inner.text.length : 0,
    name: typeof inner.name === 'string' ? inner.name.length : 0,
  };
}

/** Entity references, tabs and line breaks from `from` on: each is a separate piece saxes appends. */
function countPieces(text: string, from: number): number {
  let n = 0;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x26 || c === 0x0a || c === 0x0d || c === 0x09) n++;
  }
  return n;
}

function short(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}…` : name;
}
