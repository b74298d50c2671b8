// sprelay.yaml: read, substitute ${VAR}s, validate, resolve paths and defaults. Everything else in the
// agent works from the `Config` this produces and never looks at the YAML again.
//
// Every problem found is collected (not just the first) and reported as one ConfigError whose lines
// name the key path (`routes[1].schedule`) and say in plain words what is wrong. No message ever
// echoes the value of a secret field; as a last safeguard every known secret value is scrubbed from
// the messages before they are thrown.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { validate as cronValidate } from 'node-cron';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import type {
  AckAction,
  EmailProfile,
  FtpProfile,
  LanProfile,
  MailServer,
  ProfileOptions,
  SftpProfile,
  TlsOptions,
} from '../transports/types.js';

// ---- public types --------------------------------------------------------------------------------

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface RouteConfig {
  name: string;
  direction: 'in' | 'out';
  profileName: string;
  profile: ProfileOptions;
  /** Absolute path of the outbox (out) or inbox (in); a Windows absolute path is kept verbatim. */
  local: string;
  /** lan: dir relative to the profile root ('' = root); ftp/sftp: dir; email in: mailbox; email out: ''. */
  remote: string;
  /** E-mail out-routes only. */
  to?: string[];
  /** E-mail in-routes only. */
  allowFrom?: string[];
  include: string[];
  schedule: string;
  afterSend: 'archive' | 'delete';
  afterReceive: AckAction;
  settleMs: number;
  maxSize: number;
  timeoutMs: number;
  concurrency: number;
  overwrite: boolean;
  retry: RetryPolicy;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface Config {
  /** Absolute path of the config file. */
  file: string;
  station: string;
  /** Absolute. */
  dataDir: string;
  log: { level: LogLevel; file?: string };
  profiles: Record<string, ProfileOptions>;
  routes: RouteConfig[];
  /** Every secret value (>= 4 chars), so other modules can scrub them from any text. */
  secrets: string[];
}

export interface ConfigIssue {
  /** Key path like `routes[1].schedule`, `profiles.office-ftp.port`, `station`; '' for the file itself. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  readonly file: string;

  constructor(file: string, issues: ConfigIssue[]) {
    super(`${file}:\n` + issues.map((i) => (i.path ? `  ${i.path}: ${i.message}` : `  ${i.message}`)).join('\n'));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

// ---- defaults ------------------------------------------------------------------------------------

const KB = 1024;
const MB = 1024 * KB;
const GB = 1024 * MB;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const DEFAULTS = {
  settleMs: 2 * SECOND,
  maxSize: 50 * MB,
  timeoutMs: 60 * SECOND,
  concurrency: 1,
  overwrite: false,
  retry: { maxAttempts: 10, baseDelayMs: MINUTE, maxDelayMs: HOUR } satisfies RetryPolicy,
  include: ['*.xml', '*.zip'],
  dataDir: './data',
  logLevel: 'info' as LogLevel,
  mailbox: 'INBOX',
};

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const STATION_RE = /^[A-Za-z0-9._-]{1,64}$/;
const SECRET_KEY_RE = /pass|secret|token|privatekey/i;
const MIN_SECRET_LENGTH = 4;

// ---- config file location ------------------------------------------------------------------------

/** `--config` wins, then $SPRELAY_CONFIG, then ./sprelay.yaml; relative paths against `cwd`. */
export function resolveConfigPath(cliPath: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  const chosen = cliPath?.trim() ? cliPath : env.SPRELAY_CONFIG?.trim() ? env.SPRELAY_CONFIG : 'sprelay.yaml';
  return resolveLocalPath(chosen, cwd);
}

// ---- durations and sizes -------------------------------------------------------------------------

const DURATION_UNITS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };

/** `500ms`, `30s`, `5m`, `1h`, `2d` (also `1.5h`, `1h30m`) -> milliseconds. */
export function parseDuration(text: string): number {
  const s = String(text).trim();
  const hint = 'write a number with a unit: ms, s, m, h or d (e.g. "500ms", "30s", "5m", "1h", "2d")';
  if (/^\d+(\.\d+)?$/.test(s)) throw new Error(`invalid duration "${s}": a bare number has no unit; ${hint}`);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) throw new Error(`invalid duration "${s}": ${hint}`);
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  if (!Number.isFinite(total)) throw new Error(`invalid duration "${s}": too large`);
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = { b: 1, k: KB, kb: KB, m: MB, mb: MB, g: GB, gb: GB, kib: KB, mib: MB, gib: GB };

/** `512KB`, `50MB`, `1GB` (1024-based), or plain integer bytes -> bytes. */
export function parseSize(text: string): number {
  const s = String(text).trim();
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(s);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase() || 'b'] : undefined;
  if (!m || unit === undefined || (unit === 1 && m[1]!.includes('.'))) {
    throw new Error(`invalid size "${s}": write whole bytes or a number with a unit KB, MB or GB (e.g. "512KB", "50MB")`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new Error(`invalid size "${s}": too large`);
  return bytes;
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', DAY],
    ['h', HOUR],
    ['m', MINUTE],
    ['s', SECOND],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

// ---- issue formatting ----------------------------------------------------------------------------

type Seg = string | number;

function formatPath(segs: readonly Seg[]): string {
  let out = '';
  for (const s of segs) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z0-9_$-][A-Za-z0-9_.$-]*$/.test(s) && !s.endsWith('.')) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

function describeType(v: unknown): string {
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return 'text';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true/false';
    case 'object':
      return 'a mapping';
    default:
      return typeof v;
  }
}

const EXPECTED_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  record: 'a mapping (key: value)',
  array: 'a list',
};

/** Plain-words message for a zod issue. Never includes the input value (it may be a secret). */
function plainMessage(iss: z.core.$ZodRawIssue): string {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
      const quoteHint =
        iss.expected === 'string' && (typeof iss.input === 'number' || typeof iss.input === 'boolean')
          ? ' (put the value in quotes)'
          : '';
      return `expected ${expected}, got ${describeType(iss.input)}${quoteHint}`;
    }
    case 'invalid_value': {
      const allowed = iss.values.map((v) => JSON.stringify(v)).join(', ');
      return iss.input === undefined ? `required: one of ${allowed}` : `expected one of ${allowed}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters`;
      if (iss.origin === 'array') return min <= 1 ? 'must not be an empty list' : `must have at least ${min} items`;
      return iss.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      if (iss.origin === 'array') return `must have at most ${max} items`;
      return iss.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'invalid_format':
      return 'has the wrong format';
    default:
      return iss.message ?? 'invalid value';
  }
}

const KNOWN_KEYS = new Set<string>();

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

function unknownKeyMessage(key: string): string {
  let best: string | undefined;
  let bestDist = 3;
  for (const k of KNOWN_KEYS) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDist) [best, bestDist] = [k, d];
  }
  return best && best !== key ? `unknown key (did you mean "${best}"?)` : 'unknown key';
}

/** A collector of issues with the path prefix of the part of the document being checked. */
class Issues {
  readonly list: ConfigIssue[] = [];
  add(segs: readonly Seg[], message: string): void {
    this.list.push({ path: formatPath(segs), message });
  }
  /** Runs a zod schema; issues are added under `segs`. Returns the data, or undefined on failure. */
  check<T extends z.ZodType>(schema: T, value: unknown, segs: readonly Seg[]): z.output<T> | undefined {
    const r = schema.safeParse(value, { error: plainMessage });
    if (r.success) return r.data;
    for (const iss of r.error.issues) {
      const at = [...segs, ...iss.path.map((p) => (typeof p === 'number' ? p : String(p)))];
      if (iss.code === 'unrecognized_keys') for (const k of iss.keys) this.add([...at, k], unknownKeyMessage(k));
      else this.add(at, iss.message);
    }
    return undefined;
  }
}

// ---- zod schemas ---------------------------------------------------------------------------------

function obj<S extends z.core.$ZodLooseShape>(shape: S) {
  for (const k of Object.keys(shape)) KNOWN_KEYS.add(k);
  return z.strictObject(shape);
}

const nonEmpty = z.string().min(1);
const port = z.number().int().min(1).max(65535);

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

const retrySchema = obj({
  maxAttempts: z.number().int().min(1).max(1000).optional(),
  baseDelay: durationField.optional(),
  maxDelay: durationField.optional(),
});

/** Keys a route may set, and the top level may set once for all routes. */
const routeDefaultsShape = {
  settle: durationField.optional(),
  maxSize: sizeField.optional(),
  timeout: durationField.optional(),
  concurrency: z.number().int().min(1).max(16).optional(),
  overwrite: z.boolean().optional(),
  retry: retrySchema.optional(),
};

const topSchema = obj({
  station: z.string().regex(STATION_RE, {
    error: (iss) =>
      iss.input === undefined
        ? 'required'
        : 'expected 1 to 64 characters: letters A-Z, digits, ".", "_" or "-" (it goes into e-mail subjects)',
  }),
  dataDir: nonEmpty.optional(),
  log: obj({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).optional(),
    file: nonEmpty.optional(),
  }).optional(),
  profiles: z.record(z.string(), z.unknown()),
  routes: z.array(z.unknown()).min(1, { error: 'at least one route is required' }),
  ...routeDefaultsShape,
});

const ADDRESS_RE = /^[^\s@<>]+@[^\s@<>]+$/;
const ADDRESS_WITH_NAME_RE = /^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/;

const addressField = z.string().refine((s) => ADDRESS_RE.test(s.trim()) || ADDRESS_WITH_NAME_RE.test(s.trim()), {
  error: 'expected an e-mail address like office@example.com',
});

const allowFromField = z.string().refine((s) => ADDRESS_RE.test(s.trim()), {
  error: 'expected a bare e-mail address like office@example.com',
});

const nameField = z.string().regex(NAME_RE, {
  error: 'must start with a letter or digit and contain only letters, digits, ".", "_" or "-" (at most 64)',
});

const routeSchema = obj({
  name: nameField,
  direction: z.enum(['in', 'out']),
  profile: nonEmpty,
  local: nonEmpty,
  remote: z.string().optional(),
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
  afterReceive: z.string().optional(),
  ...routeDefaultsShape,
});

const tlsSchema = obj({ ca: nonEmpty.optional(), rejectUnauthorized: z.boolean().optional() });

const lanSchema = obj({ type: z.literal('lan'), root: nonEmpty });

const ftpSchema = obj({
  type: z.literal('ftp'),
  host: nonEmpty,
  port: port.optional(),
  security: z.enum(['none', 'explicit', 'implicit']).optional(),
  user: nonEmpty,
  password: z.string(),
  tls: tlsSchema.optional(),
  encoding: z.enum(['utf8', 'cp1251']).optional(),
});

const HOST_KEY_RE = /^SHA256:[A-Za-z0-9+/]{43}=?$/;
const HOST_KEY_HELP =
  'expected "SHA256:<base64>" as printed by `ssh-keygen -lf` or `ssh-keyscan HOST | ssh-keygen -lf -`, or the word "any" (no host key check)';

const sftpSchema = obj({
  type: z.literal('sftp'),
  host: nonEmpty,
  port: port.optional(),
  user: nonEmpty,
  password: z.string().optional(),
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

const mailServerSchema = obj({
  host: nonEmpty,
  port: port.optional(),
  security: z.enum(['none', 'starttls', 'tls']).optional(),
  user: nonEmpty.optional(),
  password: z.string().optional(),
});

const emailSchema = obj({
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
