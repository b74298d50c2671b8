// Who sent a message, strictly: exactly one From header holding exactly one plain address, as
// allowFrom needs it. Anything a mail program might read differently from us (two From headers,
// two addresses, a group, a source route, a second address hidden in the display name) is refused
// with the reason, never resolved by picking one of the addresses.
//
// The From lines come from the raw header (BODY.PEEK[HEADER.FIELDS (FROM ...)]), not from the
// server's ENVELOPE, which shows only one reading of one From header. The address list is parsed
// by nodemailer's addressparser (the parser of nodemailer, mailparser and mailauth); the checks
// around it catch what that parser silently forgives (it drops source routes and reads a second
// bare address as a display name).
import addressparser from 'nodemailer/lib/addressparser';

export type Sender = { address: string } | { reason: string; address?: string };

/** A plain addr-spec: one `@`, no spaces or angle brackets, something on both sides. */
const PLAIN_ADDRESS_RE = /^[^\s@<>()",;:\\[\]]+@[^\s@<>()",;:\\[\]]+$/;
const WORD_COUNT = ['no', 'one', 'two', 'three'];

const count = (n: number, what: string) => `${WORD_COUNT[n] ?? n} ${what}${n === 1 ? '' : 's'}`;

/** The values of every header field named `name` (case-insensitive), unfolded, in order. */
export function headerValues(headers: Buffer | undefined, name: string): string[] {
  if (!headers) return [];
  const unfolded = headers.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const out: string[] = [];
  const re = new RegExp(`^${name}[ \\t]*:(.*)$`, 'i');
  for (const line of unfolded.split(/\r?\n/)) {
    const m = re.exec(line);
    if (m) out.push(m[1]!.trim());
  }
  return out;
}

/** Drops quoted strings and comments (nested), so what is left is the address syntax itself. */
function outsideQuotesAndComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && (quoted || depth > 0)) {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) {
      if (c === '"') quoted = true;
      else out += c;
    }
  }
  return out;
}

/**
 * The one sender of a message, from its raw header lines (`From` among them), or why there is no
 * single sender to check against allowFrom.
 */
export function senderOf(headers: Buffer | undefined): Sender {
  const froms = headerValues(headers, 'from');
  if (froms.length === 0) return { reason: 'the message has no From header' };
  const first = addressparser(froms[0]!, { flatten: true })
    .find((a) => a.address)
    ?.address?.toLowerCase();
  const refuse = (reason: string): Sender => (first ? { reason, address: first } : { reason });
  if (froms.length > 1) return refuse(`${count(froms.length, 'From header')} (exactly one is accepted)`);
  const value = froms[0]!;
  const bare = outsideQuotesAndComments(value);
  // `<@relay.example:office@x>`: an obsolete route the parser drops without a word
  if (/<\s*@/.test(bare) || /<[^>]*:[^>]*>/.test(bare)) return refuse('From has a source route (<@host:...>)');
  if (/:/.test(bare)) return refuse('From is a group of addresses (name: ...;), not one sender');
  const parsed = addressparser(value);
  if (parsed.some((a) => 'group' in a && a.group)) return refuse('From is a group of addresses, not one sender');
  const angles = (bare.match(/</g) ?? []).length;
  if (parsed.length > 1 || angles > 1) return refuse(`From has ${Math.max(parsed.length, angles)} addresses`);
  const one = parsed[0];
  const address = (one && 'address' in one ? (one.address ?? '') : '').trim();
  if (!address) return { reason: 'From has no address' };
  if (!PLAIN_ADDRESS_RE.test(address)) return refuse(`From address ${JSON.stringify(address)} is malformed`);
  // `office@x evil@y` or `"office@x" <evil@y>`: a second address where a name should be
  const name = one && 'name' in one ? (one.name ?? '') : '';
  const inName = name.match(/[^\s<>()",;:]+@[^\s<>()",;:]+/g) ?? [];
  if (inName.some((a) => a.toLowerCase() !== address.toLowerCase())) {
    return refuse(`From has 2 addresses (one in the display name: ${JSON.stringify(inName[0])})`);
  }
  return { address: address.toLowerCase() };
}
