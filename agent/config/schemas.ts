// The zod schemas of the top level, routes and the four profile types. Field-level rules live
// here; rules that need two fields or another part of the file live in profiles.ts and routes.ts.
import { validate as cronValidate } from 'node-cron';
import { z } from 'zod';
import type { AckAction } from '../../transports/types.js';
import { describeType, KNOWN_KEYS } from './messages.js';
import { parseDuration, parseSize } from './units.js';
import { CONTROL_CHARS } from '../../transports/common/text.js';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const STATION_RE = /^[A-Za-z0-9._-]{1,64}$/;

// ---- zod schemas ---------------------------------------------------------------------------------

function obj<S extends z.core.$ZodLooseShape>(shape: S) {
  for (const k of Object.keys(shape)) KNOWN_KEYS.add(k);
  return z.strictObject(shape);
}

const nonEmpty = z.string().min(1);
// a control character in a path is the mistake to catch
const CONTROL_RE = CONTROL_CHARS;
/**
 * A folder or file path: no control characters. "C:\new\test" in double quotes is a line break and
 * a tab to YAML, so that is what the hint says.
 */
const pathText = z.string().refine((s) => !CONTROL_RE.test(s), {
  error:
    'contains a control character (a line break or tab): in double quotes a backslash starts an escape ("C:\\new" is a line break); write Windows paths without quotes or in single quotes: \'C:\\ServioPump\\Export\'',
});
const pathField = pathText.pipe(z.string().min(1));
export const port = z.number().int().min(1).max(65535);

const durationField = z
  .string({
    error: (iss) =>
      iss.input === undefined
        ? 'required'
        : typeof iss.input === 'number'
          ? 'a bare number is not a duration: add a unit ms, s, m, h or d (e.g. "30s", "5m")'
          : `expected a duration like "30s" (units ms, s, m, h, d), got ${describeType(iss.input)}`,
  })
  .transform((s, ctx) => {
    try {
      return parseDuration(s);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: s });
      return z.NEVER;
    }
  });

/** A duration, or "off" (null): for settings where "never" is a choice. */
const durationOrOffField = z
  .string({
    error: (iss) =>
      iss.input === undefined
        ? 'required'
        : `expected a duration like "15m" (units ms, s, m, h, d) or "off", got ${describeType(iss.input)}`,
  })
  .transform((s, ctx) => {
    if (/^\s*off\s*$/i.test(s)) return null;
    try {
      return parseDuration(s);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: `${(e as Error).message}, or "off"`, input: s });
      return z.NEVER;
    }
  });

const sizeField = z
  .union([z.string(), z.number()], {
    error: (iss) =>
      iss.input === undefined ? 'required' : `expected a size like "50MB" (units KB, MB, GB) or whole bytes`,
  })
  .transform((v, ctx) => {
    try {
      if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error('a size in bytes must be a whole number');
      const n = typeof v === 'number' ? v : parseSize(v);
      if (n < 1) throw new Error('must be at least 1 byte');
      return n;
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: v });
      return z.NEVER;
    }
  });

const RATE_HINT = 'write a size per second like "1KB/s" or "512B/s", or 0 (or "off") for no minimum';
/** `1KB/s`, `512B/s` (a size as everywhere, per second) -> bytes per second; 0 or "off": none. */
const rateField = z
  .union([z.string(), z.number()], {
    error: (iss) => (iss.input === undefined ? 'required' : `expected a rate: ${RATE_HINT}`),
  })
  .transform((v, ctx) => {
    if (v === 0 || (typeof v === 'string' && /^\s*(0|off)\s*$/i.test(v))) return 0;
    const m = typeof v === 'string' ? /^(.+?)\s*\/\s*s$/i.exec(v.trim()) : null;
    let n: number;
    try {
      n = m ? parseSize(m[1]!) : 0;
    } catch {
      n = 0;
    }
    if (n < 1) {
      ctx.issues.push({ code: 'custom', message: `invalid rate ${JSON.stringify(v)}: ${RATE_HINT}`, input: v });
      return z.NEVER;
    }
    return n;
  });

const retrySchema = obj({
  maxAttempts: z.number().int().min(1).max(1000).optional(),
  baseDelay: durationField.optional(),
  maxDelay: durationField.optional(),
});

/** Keys a route may set, and the top level may set once for all routes. */
const routeDefaultsShape = {
  settle: durationField.optional(),
  /**
   * In-routes: how far a server's clock may be behind ours. A remote file whose time is older than
   * settle + this is taken in the cycle that first lists it; "off": every new file is listed twice.
   */
  clockSkew: durationOrOffField.optional(),
  maxSize: sizeField.optional(),
  timeout: durationField.refine((ms) => ms > 0, { error: 'must be longer than 0' }).optional(),
  concurrency: z.number().int().min(1).max(16).optional(),
  overwrite: z.boolean().optional(),
  retry: retrySchema.optional(),
  alertAfter: durationField.refine((ms) => ms > 0, { error: 'must be longer than 0' }).optional(),
  /** Slowest average a transfer may keep over max(60s, timeout); 0 / "off": no minimum. */
  minRate: rateField.optional(),
  /** In-routes: remote entries handled in one cycle at most; the rest waits for the next cycle. */
  maxPerCycle: z
    .number({ error: 'expected a whole number of packages per cycle, like 500' })
    .int({ error: 'expected a whole number of packages per cycle, like 500' })
    .min(1, { error: 'must be at least 1' })
    .max(100_000, { error: 'must be at most 100000' })
    .optional(),
};

/** A positive whole-number limit of the package checks (config `check:`). */
const checkCount = (unit: string, max: number) =>
  z
    .number({ error: `expected a whole number of ${unit}` })
    .int({ error: `expected a whole number of ${unit}` })
    .min(1, { error: 'must be at least 1' })
    .max(max, { error: `must be at most ${max}` });

/** Limits of the XML and zip content checks (agent/check/limits.ts has the defaults and why). */
const checkSchema = obj({
  xml: obj({
    maxDepth: checkCount('nested elements, like 64', 10_000).optional(),
    maxAttributes: checkCount('attributes, like 1000', 1_000_000).optional(),
    maxNameLength: checkCount('characters, like 256', 1_000_000).optional(),
    maxAttributeLength: sizeField.optional(),
    maxTextLength: sizeField.optional(),
    maxNodesPerMB: checkCount('nodes per MB, like 250000', 10_000_000).optional(),
  }).optional(),
  zip: obj({
    maxUncompressed: sizeField.optional(),
    maxRatio: checkCount('times (uncompressed / compressed), like 500', 100_000).optional(),
    maxEntries: checkCount('members, like 10000', 1_000_000).optional(),
  }).optional(),
});

/** The name of a route (`receipts:`, `heartbeat.route`): the same rule as a route's own name. */
const routeNameField = z.string({ error: 'expected the name of an out-route' }).regex(NAME_RE, {
  error: 'expected the name of an out-route (letters, digits, ".", "_" or "-")',
});

export const topSchema = obj({
  station: z.string().regex(STATION_RE, {
    error: (iss) =>
      iss.input === undefined
        ? 'required'
        : 'expected 1 to 64 characters: letters A-Z, digits, ".", "_" or "-" (it goes into e-mail subjects)',
  }),
  dataDir: pathField.optional(),
  lang: z.enum(['en', 'ru', 'uk']).optional(),
  log: obj({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).optional(),
    maxSize: sizeField.refine((n) => n >= 64 * 1024, { error: 'must be at least 64KB' }).optional(),
    keep: z.number().int().min(1).max(100).optional(),
    file: pathField.optional(),
  }).optional(),
  profiles: z.record(z.string(), z.unknown()),
  routes: z.array(z.unknown()).min(1, { error: 'at least one route is required' }),
  /** Limits of the XML and zip package checks; every key optional. */
  check: checkSchema.optional(),
  /** What dataDir/quarantine may hold; over it a rejected package's bytes are not kept (its ledger row is). */
  quarantine: obj({
    maxSize: sizeField.optional(),
    maxCount: z
      .number({ error: 'expected a whole number of files, like 1000' })
      .int({ error: 'expected a whole number of files, like 1000' })
      .min(0, { error: 'must be 0 (keep no rejected files) or more' })
      .max(1_000_000, { error: 'must be at most 1000000' })
      .optional(),
  }).optional(),
  /** Office: the out-route that carries receipts back to the stations (its remote has {station}). */
  receipts: routeNameField.optional(),
  /** Station: a status snapshot every `every` over the out-route `route`. */
  heartbeat: obj({
    route: routeNameField,
    every: durationField.refine((ms) => ms >= 60_000, { error: 'must be at least 1m' }),
  }).optional(),
  ...routeDefaultsShape,
});

const ADDRESS_RE = /^[^\s@<>]+@[^\s@<>]+$/;
const ADDRESS_WITH_NAME_RE = /^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/;

const addressField = z.string().refine((s) => ADDRESS_RE.test(s.trim()) || ADDRESS_WITH_NAME_RE.test(s.trim()), {
  error: 'expected an e-mail address like office@example.com',
});

const allowFromField = z
  .string()
  .refine((s) => ADDRESS_RE.test(s.trim()), {
    error: 'expected a bare e-mail address like office@example.com',
  })
  // `{station}` binds each station to its sender address (an office): once, in the part before @
  .refine((s) => !s.includes('{station}') || /^[^@{}]*\{station\}[^@{}]*@[^{}]+$/.test(s.trim()), {
    error: 'may hold {station} once, before the @ (like {station}@stations.example)',
  });

const nameField = z.string().regex(NAME_RE, {
  error: 'must start with a letter or digit and contain only letters, digits, ".", "_" or "-" (at most 64)',
});

export const routeSchema = obj({
  name: nameField,
  direction: z.enum(['in', 'out']),
  profile: nonEmpty,
  local: pathField,
  remote: pathText.optional(),
  to: z.array(addressField).min(1).optional(),
  allowFrom: z.array(allowFromField).min(1).optional(),
  include: z.array(nonEmpty).min(1).optional(),
  schedule: z.string().superRefine((s, ctx) => {
    if (!isValidCron(s)) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid cron expression "${s}" (5 fields "min hour day month weekday", or 6 with seconds first)`,
      });
    }
  }),
  afterSend: z.enum(['archive', 'delete']).optional(),
  afterReceive: z.string().transform(parseAck).optional(),
  afterRefuse: z.string().transform(parseRefuse).optional(),
  /** Out-routes: a package sent but not confirmed by the office's receipt within this is a problem. */
  confirmWithin: durationField.refine((ms) => ms > 0, { error: 'must be longer than 0' }).optional(),
  requireAuth: z
    .enum(['dkim'], {
      error: 'expected "dkim" (a valid DKIM signature of the sender\'s domain), or leave the key out',
    })
    .optional(),
  ...routeDefaultsShape,
});

/**
 * afterReceive/afterRefuse text that names no action. Not an issue by itself: the route's rules
 * (routes.ts) say what is wrong, as that depends on the route's direction and profile.
 */
export const UNKNOWN_ACTION = { kind: 'unknown' } as const;
export type RefuseAction = { kind: 'move'; to: string };

/** `delete` or `move:<folder or mailbox>`. */
function parseAck(text: string): AckAction | typeof UNKNOWN_ACTION {
  if (text.trim() === 'delete') return { kind: 'delete' };
  const m = /^\s*move:(.*)$/s.exec(text);
  const to = m?.[1]?.trim();
  return to ? { kind: 'move', to } : UNKNOWN_ACTION;
}

/** `leave` or `move:<mailbox>`. */
function parseRefuse(text: string): RefuseAction | { kind: 'leave' } | typeof UNKNOWN_ACTION {
  if (text.trim() === 'leave') return { kind: 'leave' };
  const ack = parseAck(text);
  return ack.kind === 'move' ? ack : UNKNOWN_ACTION;
}

const tlsSchema = obj({ ca: pathField.optional(), rejectUnauthorized: z.boolean().optional() });

export const lanSchema = obj({ type: z.literal('lan'), root: pathField });

export const ftpSchema = obj({
  type: z.literal('ftp'),
  host: nonEmpty,
  port: port.optional(),
  security: z.enum(['none', 'explicit', 'implicit']).optional(),
  user: nonEmpty,
  password: z.string().optional(),
  passwordFile: pathField.optional(),
  tls: tlsSchema.optional(),
  encoding: z.enum(['utf8', 'cp1251']).optional(),
});

const HOST_KEY_RE = /^SHA256:[A-Za-z0-9+/]{43}=?$/;
const HOST_KEY_HELP =
  'expected "SHA256:<base64>" as printed by `ssh-keygen -lf` or `ssh-keyscan HOST | ssh-keygen -lf -`, or the word "any" (no host key check)';

export const sftpSchema = obj({
  type: z.literal('sftp'),
  host: nonEmpty,
  port: port.optional(),
  user: nonEmpty,
  password: z.string().optional(),
  passwordFile: pathField.optional(),
  privateKey: nonEmpty.optional(),
  passphrase: z.string().optional(),
  hostKey: z
    .string({
      error: (iss) =>
        iss.input === undefined
          ? `required: the server's SSH host key fingerprint, ${HOST_KEY_HELP}`
          : `expected a string, ${HOST_KEY_HELP}`,
    })
    .refine((s) => s === 'any' || (HOST_KEY_RE.test(s) && Buffer.from(s.slice(7), 'base64').length === 32), {
      error: HOST_KEY_HELP,
    }),
});

export const mailServerSchema = obj({
  host: nonEmpty,
  port: port.optional(),
  security: z.enum(['none', 'starttls', 'tls']).optional(),
  user: nonEmpty.optional(),
  password: z.string().optional(),
  passwordFile: pathField.optional(),
});

export const emailSchema = obj({
  type: z.literal('email'),
  from: addressField.optional(),
  smtp: mailServerSchema.optional(),
  imap: mailServerSchema.optional(),
  tls: tlsSchema.optional(),
  maxPerMessage: z.number().int().min(1).max(100).optional(),
});

KNOWN_KEYS.add('type');

function isValidCron(expr: string): boolean {
  try {
    return cronValidate(expr);
  } catch {
    return false;
  }
}
