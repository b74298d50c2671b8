// The content of sprelay's control files: receipts (office -> station: "I delivered these
// packages") and heartbeats (station -> office: "this is how I am"). File names: ./names.ts.
//
// Wire format. UTF-8 JSON (a leading BOM is tolerated), at most 1 MB (MAX_CONTROL_BYTES: bigger is
// refused before it is parsed; the pipeline can refuse it from the listing's size), nesting at most
// 16 levels deep, one object:
//   receipt   {"sprelay":"receipt","v":1,"from":STATION,"to":STATION,
//              "items":[{"name","sha256","size","deliveredAt"}]}                 1..1000 items
//   heartbeat {"sprelay":"heartbeat","v":1,"station","sentAt",
//              "agent":{"version","node","os","ledgerDriver"},
//              "routes":[{"name","direction","profile","verdict","since","counts":{STATE:n},
//                         "oldestUnsentAt","lastRunAt","lastSuccessAt","lastError"}], 0..100 routes
//              "unconfirmed":n,"disk":{"free","total"} | null}
// Times are ISO 8601 UTC (`2026-12-02T05:00:00.000Z`; null where a time is unknown or none yet);
// sha256 is 64 hex digits (read in either case, kept lower case); sizes and counts are whole
// numbers >= 0; `counts` is `status --json`'s per-state map (any lower-case state name, so a newer
// agent's states pass); `verdict` is ok | attention | failing; `unconfirmed` is the station's sent packages not confirmed within
// their route's confirmWithin (overdue ones, not merely in flight); `disk` is the data folder's
// volume in bytes, null when the OS would not say.
//
// Versioning rule. `v` is an integer, 1 today (CONTROL_VERSION). A reader accepts v <= its own and
// v = own + 1: unknown fields are ignored and known fields keep their meaning across one version,
// so a writer that adds fields bumps v, and a writer that changes what a known field means (or
// drops it) must wait until every reader is at least one version up. A v newer than own + 1 is
// refused ("recorded and ignored") with a reason that says which version and what to do.
//
// Trust. Nothing in a control file is trusted: decoding validates every field with zod and returns
// either the typed object or a refusal that says what and where ("receipt item 3: sha256 is not 64
// hex characters"); item names pass the package name rules (agent/inspect.ts checkName); every
// string is length-capped; agent texts and lastError are flattened to one printable line
// (flatLine). No secret ever travels: a heartbeat's lastError is the route's lastError from our
// own status (already scrubbed of credentials by the transports' redaction before it reaches the
// ledger), capped at MAX_ERROR_CHARS.
import { z } from 'zod';
import { NAME_RE } from '../config/schemas.js';
import { checkName } from '../inspect.js';
import { flatLine } from '../../transports/common/text.js';
import { STATION_RE, type ControlKind } from './names.js';

export const CONTROL_VERSION = 1;
export const MAX_CONTROL_BYTES = 1024 * 1024;
export const MAX_RECEIPT_ITEMS = 1000;
export const MAX_HEARTBEAT_ROUTES = 100;
export const MAX_NESTING = 16;
/** lastError is flattened and cut to this many characters (longer than 10 000 raw is refused). */
export const MAX_ERROR_CHARS = 500;

const ISO_UTC_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;
const STATE_KEY_RE = /^[a-z][a-z_-]{0,31}$/;

const station = z.string().regex(STATION_RE, {
  error: 'is not a station name (1 to 64 of A-Z, a-z, 0-9, ".", "_", "-")',
});
const isoTime = z.string().refine((s) => ISO_UTC_RE.test(s) && Number.isFinite(Date.parse(s)), {
  error: 'is not an ISO UTC time (like 2026-12-02T05:00:00Z)',
});
const whole = z.number().refine((n) => Number.isSafeInteger(n) && n >= 0, { error: 'is not a whole number >= 0' });
const shortText = (max: number) =>
  z
    .string()
    .max(max * 4, { error: `is longer than ${max} characters` })
    .transform((s) => flatLine(s))
    .refine((s) => s.length <= max, { error: `is longer than ${max} characters` });
const configName = z.string().regex(NAME_RE, { error: 'is not a route or profile name' });

const receiptItem = z.object({
  name: z
    .string()
    .max(255, { error: 'is longer than 255 characters' })
    .superRefine((s, ctx) => {
      const bad = checkName(s);
      if (bad) ctx.addIssue({ code: 'custom', message: `is refused (${bad})` });
    }),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, { error: 'is not 64 hex characters' })
    .transform((s) => s.toLowerCase()),
  size: whole,
  deliveredAt: isoTime,
});

const receiptSchema = z.object({
  from: station,
  to: station,
  items: z
    .array(z.unknown())
    .min(1, { error: 'is empty' })
    .max(MAX_RECEIPT_ITEMS, { error: `has more than ${MAX_RECEIPT_ITEMS} entries` })
    .pipe(z.array(receiptItem)),
});

const heartbeatRoute = z.object({
  name: configName,
  direction: z.enum(['in', 'out']),
  profile: configName,
  verdict: z.enum(['ok', 'attention', 'failing']),
  since: isoTime.nullable(),
  counts: z
    .record(z.string().regex(STATE_KEY_RE, { error: 'is not a state name' }), whole)
    .refine((c) => Object.keys(c).length <= 32, { error: 'has more than 32 states' }),
  oldestUnsentAt: isoTime.nullable(),
  lastRunAt: isoTime.nullable(),
  lastSuccessAt: isoTime.nullable(),
  lastError: z
    .string()
    .max(10_000, { error: 'is longer than 10000 characters' })
    .transform((s) => cutError(s))
    .nullable(),
});

const heartbeatSchema = z.object({
  station,
  sentAt: isoTime,
  agent: z.object({
    version: shortText(64),
    node: shortText(64),
    os: shortText(64),
    ledgerDriver: shortText(200),
  }),
  routes: z
    .array(z.unknown())
    .max(MAX_HEARTBEAT_ROUTES, { error: `has more than ${MAX_HEARTBEAT_ROUTES} entries` })
    .pipe(z.array(heartbeatRoute)),
  unconfirmed: whole,
  disk: z.object({ free: whole, total: whole }).nullable(),
});

export type Receipt = z.output<typeof receiptSchema>;
export type ReceiptItem = Receipt['items'][number];
export type Heartbeat = z.output<typeof heartbeatSchema>;
export type HeartbeatRoute = Heartbeat['routes'][number];

export type Decoded<T> =
  { ok: true; value: T; /** the version the writer declared */ v: number } | { ok: false; reason: string };

/** A heartbeat's lastError as it travels: one printable line, at most MAX_ERROR_CHARS. */
export function cutError(text: string): string {
  const flat = flatLine(text);
  return flat.length <= MAX_ERROR_CHARS ? flat : `${flat.slice(0, MAX_ERROR_CHARS - 1)}…`;
}

// ---------------------------------------------------------------------------------------------
// Decoding

export function decodeReceipt(bytes: Uint8Array): Decoded<Receipt> {
  return decode('receipt', bytes, receiptSchema);
}

export function decodeHeartbeat(bytes: Uint8Array): Decoded<Heartbeat> {
  return decode('heartbeat', bytes, heartbeatSchema);
}

/** Decodes by the kind its name says (controlKind); the content must say the same kind. */
export function decodeControl(
  kind: ControlKind,
  bytes: Uint8Array,
): ({ kind: 'receipt' } & Decoded<Receipt>) | ({ kind: 'heartbeat' } & Decoded<Heartbeat>) {
  return kind === 'receipt' ? { kind, ...decodeReceipt(bytes) } : { kind, ...decodeHeartbeat(bytes) };
}

function decode<S extends z.ZodType>(kind: ControlKind, bytes: Uint8Array, schema: S): Decoded<z.output<S>> {
  const refuse = (why: string): { ok: false; reason: string } => ({ ok: false, reason: `${kind}: ${why}` });
  if (bytes.byteLength > MAX_CONTROL_BYTES)
    return refuse(`file is ${bytes.byteLength} bytes, more than ${MAX_CONTROL_BYTES} (1 MB)`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return refuse('file is not UTF-8 text');
  }
  const depth = nestingDepth(text);
  if (depth > MAX_NESTING) return refuse(`JSON is nested deeper than ${MAX_NESTING} levels`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    // V8's wording changes between Node versions; the position is what a person needs
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : '');
    return refuse(at ? `file is not valid JSON (at character ${Number(at[1]) + 1})` : 'file is not valid JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    return refuse(`content is ${typeName(data)}, expected one JSON object`);
  const top = data as Record<string, unknown>;
  if (top.sprelay !== kind)
    return refuse(`"sprelay" is ${quote(top.sprelay)}, expected "${kind}" (the name says ${kind})`);
  const v = top.v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    return refuse(`v is ${quote(v)}, expected a whole number >= 1`);
  if (v > CONTROL_VERSION + 1)
    return refuse(
      `version ${v} is newer than this agent reads (${CONTROL_VERSION} and ${CONTROL_VERSION + 1}): recorded and ignored; update sprelay here`,
    );
  const parsed = schema.safeParse(data, { reportInput: true });
  if (!parsed.success) return { ok: false, reason: issueText(kind, parsed.error.issues[0]!) };
  return { ok: true, value: parsed.data, v };
}

/** Deepest nesting of arrays/objects, counted without parsing (strings skipped). */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
      if (max > MAX_NESTING) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'an object';
  if (typeof x === 'string') return 'a string';
  if (typeof x === 'number') return 'a number';
  if (typeof x === 'boolean') return 'true/false';
  return 'missing';
}

/** A peer's value, quoted for a refusal line: one line, at most 40 characters. */
function quote(x: unknown): string {
  if (x === undefined) return 'missing';
  if (typeof x === 'string') {
    const flat = flatLine(x);
    return JSON.stringify(flat.length > 40 ? `${flat.slice(0, 39)}…` : flat);
  }
  if (typeof x === 'number' || typeof x === 'boolean' || x === null) return String(x);
  return typeName(x);
}

const EXPECTED: Record<string, string> = {
  string: 'text',
  number: 'a number',
  object: 'an object',
  array: 'a list',
  boolean: 'true/false',
};

/** One zod issue as a refusal line that says where: `receipt item 3: sha256 is not 64 hex characters`. */
function issueText(kind: ControlKind, issue: z.core.$ZodIssue): string {
  const path = [...issue.path];
  let where: string = kind;
  if ((path[0] === 'items' || path[0] === 'routes') && typeof path[1] === 'number') {
    where = `${kind} ${path[0] === 'items' ? 'item' : 'route'} ${path[1] + 1}`;
    path.splice(0, 2);
  }
  const field = path.map(String).join('.') || (kind === 'receipt' ? 'receipt' : 'heartbeat');
  let what: string;
  if (issue.code === 'invalid_type') {
    what =
      issue.input === undefined
        ? 'is missing'
        : `is ${typeName(issue.input)}, expected ${EXPECTED[issue.expected] ?? issue.expected}`;
  } else if (issue.code === 'invalid_value') {
    what = `is ${quote(issue.input)}, expected one of ${issue.values.map(String).join(', ')}`;
  } else if (issue.code === 'invalid_key') {
    what = issue.issues[0]?.message ?? 'is not an allowed key';
  } else what = issue.message;
  return `${where}: ${field} ${what}`;
}

// ---------------------------------------------------------------------------------------------
// Encoding (what our own agent writes; a value that would not decode is a bug here, so it throws)

export type ReceiptInput = Receipt;
export type HeartbeatInput = Heartbeat;

export function encodeReceipt(r: ReceiptInput): Buffer {
  return encode('receipt', { sprelay: 'receipt', v: CONTROL_VERSION, from: r.from, to: r.to, items: r.items });
}

export function encodeHeartbeat(h: HeartbeatInput): Buffer {
  const routes = h.routes.map((r) => ({ ...r, lastError: r.lastError === null ? null : cutError(r.lastError) }));
  return encode('heartbeat', { sprelay: 'heartbeat', v: CONTROL_VERSION, ...h, routes });
}

function encode(kind: ControlKind, value: Record<string, unknown>): Buffer {
  const bytes = Buffer.from(JSON.stringify(value), 'utf8');
  const back = kind === 'receipt' ? decodeReceipt(bytes) : decodeHeartbeat(bytes);
  if (!back.ok) throw new Error(`sprelay would write an invalid ${kind}: ${back.reason}`);
  return bytes;
}

/** A cycle's deliveries for one station as receipts of at most MAX_RECEIPT_ITEMS items each. */
export function receiptsFor(from: string, to: string, items: ReceiptItem[]): ReceiptInput[] {
  const out: ReceiptInput[] = [];
  for (let i = 0; i < items.length; i += MAX_RECEIPT_ITEMS)
    out.push({ from, to, items: items.slice(i, i + MAX_RECEIPT_ITEMS) });
  return out;
}
