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
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
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
  /**
   * E-mail in-routes only: a refused message (sender not allowed, no matching attachment, ...) is
   * recorded and then moved to this mailbox. Absent: `leave` (it stays where it is, unseen).
   */
  afterRefuse?: { kind: 'move'; to: string };
  settleMs: number;
  maxSize: number;
  timeoutMs: number;
  concurrency: number;
  overwrite: boolean;
  retry: RetryPolicy;
  /** Queued, failed or waiting packages older than this are a problem (status, once's exit code). */
  alertAfterMs: number;
}

/** A secret of a profile that is read when its transport connects, not when the config loads. */
export interface DeferredSecret {
  /** Where in the profile it goes, e.g. ['password'] or ['smtp', 'password']. */
  key: string[];
  /** Its config key path, for messages: `profiles.office-ftp.password`. */
  path: string;
  from: { env: string } | { file: string };
}

/** Language of the station-facing texts (status verdicts, the resend script); logs stay English. */
export type Lang = 'en' | 'ru' | 'uk';
export const LANGS: readonly Lang[] = ['en', 'ru', 'uk'];

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** A secret of a profile that is read when its transport connects, not when the config loads. */
export interface DeferredSecret {
  /** Where in the profile it goes, e.g. ['password'] or ['smtp', 'password']. */
  key: string[];
  /** Its config key path, for messages: `profiles.office-ftp.password`. */
  path: string;
  from: { env: string } | { file: string };
}

export interface Config {
  /** Absolute path of the config file. */
  file: string;
  station: string;
  /** Language of the station-facing texts. */
  lang: Lang;
  /** Absolute. */
  dataDir: string;
  log: { level: LogLevel; file?: string; maxSize: number; keep: number };
  profiles: Record<string, ProfileOptions>;
  routes: RouteConfig[];
  /** Every secret value (>= 4 chars), so other modules can scrub them from any text. */
  secrets: string[];
  /**
   * Secrets resolved only when a route's transport connects, per profile name: a `${VAR}` that
   * is not set in this account's environment, or a `passwordFile`. Reading commands (status,
   * list, show, ack, resend, purge) never need them.
   */
  deferredSecrets: Record<string, DeferredSecret[]>;
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
  alertAfterMs: HOUR,
  lang: 'en' as Lang,
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

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  k: KB,
  kb: KB,
  m: MB,
  mb: MB,
  g: GB,
  gb: GB,
  kib: KB,
  mib: MB,
  gib: GB,
};

/** `512KB`, `50MB`, `1GB` (1024-based), or plain integer bytes -> bytes. */
export function parseSize(text: string): number {
  const s = String(text).trim();
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(s);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase() || 'b'] : undefined;
  if (!m || unit === undefined || (unit === 1 && m[1]!.includes('.'))) {
    throw new Error(
      `invalid size "${s}": write whole bytes or a number with a unit KB, MB or GB (e.g. "512KB", "50MB")`,
    );
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
// eslint-disable-next-line no-control-regex -- a control character in a path is the mistake to catch
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
/**
 * A folder or file path: no control characters. "C:\new\test" in double quotes is a line break and
 * a tab to YAML, so that is what the hint says.
 */
const pathText = z.string().refine((s) => !CONTROL_RE.test(s), {
  error:
    'contains a control character (a line break or tab): in double quotes a backslash starts an escape ("C:\\new" is a line break); write Windows paths without quotes or in single quotes: \'C:\\ServioPump\\Export\'',
});
const pathField = pathText.pipe(z.string().min(1));
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
  timeout: durationField.refine((ms) => ms > 0, { error: 'must be longer than 0' }).optional(),
  concurrency: z.number().int().min(1).max(16).optional(),
  overwrite: z.boolean().optional(),
  retry: retrySchema.optional(),
  alertAfter: durationField.refine((ms) => ms > 0, { error: 'must be longer than 0' }).optional(),
};

const topSchema = obj({
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
  afterReceive: z.string().optional(),
  afterRefuse: z.string().optional(),
  ...routeDefaultsShape,
});

const tlsSchema = obj({ ca: pathField.optional(), rejectUnauthorized: z.boolean().optional() });

const lanSchema = obj({ type: z.literal('lan'), root: pathField });

const ftpSchema = obj({
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

const sftpSchema = obj({
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

const mailServerSchema = obj({
  host: nonEmpty,
  port: port.optional(),
  security: z.enum(['none', 'starttls', 'tls']).optional(),
  user: nonEmpty.optional(),
  password: z.string().optional(),
  passwordFile: pathField.optional(),
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

// ---- paths and files -----------------------------------------------------------------------------

/** Absolute by the rules of this OS or of Windows (UNC `\\srv\share`, `C:\dir`): kept verbatim. */
function isAbsoluteAnyOS(p: string): boolean {
  return path.isAbsolute(p) || path.win32.isAbsolute(p);
}

/** Relative paths resolve against the config file's folder (Task Scheduler starts in System32). */
function resolveLocalPath(p: string, baseDir: string): string {
  return isAbsoluteAnyOS(p) ? p : path.resolve(baseDir, p);
}

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'file not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a folder, not a file';
    default:
      return code ? `cannot be read (${code})` : 'cannot be read';
  }
}

/** Why a lan `remote` / move target is unusable, or undefined. It must stay under the share root. */
function lanRelativeProblem(p: string): string | undefined {
  if (isAbsoluteAnyOS(p) || /^[A-Za-z]:/.test(p))
    return 'must be a folder relative to the profile root, not an absolute path';
  if (p.split(/[\\/]+/).includes('..')) return 'must not contain ".." (it must stay under the profile root)';
  return undefined;
}

/** `./a/b/`, `a\b` -> `a/b`; `''`, `.` -> `''` (the root). */
function normalizeLanRelative(p: string): string {
  return p
    .split(/[\\/]+/)
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function looksLikeKeyText(s: string): boolean {
  const t = s.trimStart();
  return t.startsWith('-----BEGIN') || t.startsWith('PuTTY-User-Key-File-');
}

// ---- YAML ----------------------------------------------------------------------------------------

// `${NAME}` is swapped for a same-length placeholder before parsing, so that it is legal even where
// YAML gives `{`/`}` a meaning (`{ password: ${FTP_PASSWORD} }` in a flow mapping) and line/column
// positions stay exact. Placeholders are resolved in string values only.
const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const PH_OPEN = '\uE000\uE000';
const PH_CLOSE = '\uE001';
const PH_RE = /\uE000\uE000([A-Za-z_][A-Za-z0-9_]*)\uE001/g;

function restorePlaceholders(s: string): string {
  return s.replace(PH_RE, (_m, name: string) => '${' + name + '}');
}

const STAR_HINT = 'a value starting with "*" must be put in quotes, e.g. schedule: "*/5 * * * *"';

function yamlMessage(code: string, message: string, lineText: string): string {
  let msg =
    code === 'BAD_DQ_ESCAPE'
      ? "invalid escape sequence in a double-quoted string (write Windows paths without quotes or in single quotes: 'C:\\ServioPump\\Export')"
      : // the part after ': ' quotes source text, which may be a secret
        message.replace(/:\s.*$/s, '');
  if (code !== 'BAD_DQ_ESCAPE' && /(^|[:,[{-])\s*\*/.test(lineText)) msg += ` (${STAR_HINT})`;
  return msg;
}

/** The document as plain data (placeholders still in), or undefined when it is not valid YAML. */
function readYaml(text: string, issues: Issues): { value: unknown } | undefined {
  const source = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).replace(
    ENV_RE,
    (_m, name: string) => PH_OPEN + name + PH_CLOSE,
  );
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) {
    const lines = source.split(/\r?\n/);
    const seen = new Set<number>();
    for (const e of doc.errors) {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      if (seen.has(line)) continue; // one error per line: the rest are usually echoes of the first
      seen.add(line);
      issues.list.push({ path: `line ${line}:${col}`, message: yamlMessage(e.code, e.message, lines[line - 1] ?? '') });
    }
    return undefined;
  }
  const before = issues.list.length;
  walkYaml(doc.contents, [], lineCounter, issues, new Set());
  if (issues.list.length > before) return undefined;
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (e) {
    issues.add([], `cannot read the YAML: ${(e as Error).message.replace(/:\s.*$/s, '')}`);
    return undefined;
  }
}

/** Duplicate keys (with their paths and lines) and aliases that name no anchor. */
function walkYaml(node: unknown, segs: Seg[], lc: LineCounter, issues: Issues, anchors: Set<string>): void {
  if (!node || typeof node !== 'object') return;
  const n = node as YamlNode;
  const at = (x: unknown) => {
    const range = (x as { range?: [number, number, number] } | null)?.range;
    return range ? lc.linePos(range[0]) : undefined;
  };
  if (isAlias(n)) {
    if (!anchors.has(n.source)) {
      const pos = at(n);
      issues.add(
        segs,
        `${pos ? `line ${pos.line}:${pos.col}: ` : ''}${STAR_HINT} (or define the anchor "&${n.source}")`,
      );
    }
    return;
  }
  if ((isScalar(n) || isMap(n) || isSeq(n)) && n.anchor) anchors.add(n.anchor);
  if (isMap(n)) {
    const firstLine = new Map<string, number>();
    for (const pair of n.items) {
      const key = restorePlaceholders(isScalar(pair.key) ? String(pair.key.value) : String(pair.key));
      const line = at(pair.key)?.line ?? 0;
      const first = firstLine.get(key);
      if (first !== undefined) issues.add([...segs, key], `duplicate key (on line ${first} and again on line ${line})`);
      else firstLine.set(key, line);
      walkYaml(pair.value, [...segs, key], lc, issues, anchors);
    }
  } else if (isSeq(n)) {
    n.items.forEach((item, i) => walkYaml(item, [...segs, i], lc, issues, anchors));
  }
}

interface EnvState {
  env: NodeJS.ProcessEnv;
  issues: Issues;
  /** Paths whose value lacked a variable: further complaints about them would only be noise. */
  missing: string[];
  secrets: Set<string>;
  /** Values of secret-looking keys, whatever their type: scrubbed from messages. */
  scrub: Set<string>;
  /** Secret fields whose variable is not set here: resolved when the transport connects. */
  deferred: { segs: Seg[]; name: string }[];
}

function substituteEnv(value: unknown, segs: Seg[], st: EnvState, secretField: boolean, keyField: boolean): unknown {
  if (typeof value === 'string') {
    let missing = false;
    const fromEnv: string[] = [];
    const deferrable = secretField && !keyField && PH_RE.test(value) && value.replace(PH_RE, '') === '';
    PH_RE.lastIndex = 0;
    const out = value.replace(PH_RE, (_m, name: string) => {
      const v = st.env[name];
      if (v === undefined && deferrable) {
        // a password for a transport: needed when it connects, not to read the ledger (the
        // cashier's account has no such variable)
        st.deferred.push({ segs, name });
        return '';
      }
      if (v === undefined) {
        st.issues.add(segs, `environment variable ${name} is not set`);
        missing = true;
        return '';
      }
      fromEnv.push(v);
      return v;
    });
    if (missing) st.missing.push(formatPath(segs));
    const isSecret = secretField || (keyField && looksLikeKeyText(out));
    if (isSecret) for (const s of [...fromEnv, out]) st.secrets.add(s);
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...segs, i], st, secretField, keyField));
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k0, v] of Object.entries(value)) {
      const k = restorePlaceholders(k0);
      if (k === '__proto__') {
        st.issues.add([...segs, k], 'unknown key');
        continue;
      }
      const secretKey = secretField || SECRET_KEY_RE.test(k);
      if (secretKey && v !== null && typeof v !== 'object') st.scrub.add(restorePlaceholders(String(v)));
      out[k] = substituteEnv(v, [...segs, k], st, secretKey, keyField || k === 'privateKey');
    }
    return out;
  }
  return value;
}

// ---- profiles ------------------------------------------------------------------------------------

interface Ctx {
  baseDir: string;
  issues: Issues;
  secrets: Set<string>;
  /** passwordFile entries, per profile name, read when the transport connects. */
  files: Map<string, DeferredSecret[]>;
}

/** `password` or `passwordFile` (not both, and one is needed where `required`). */
function passwordSource(
  raw: Record<string, unknown>,
  segs: Seg[],
  key: string[],
  ctx: Ctx,
  required: boolean,
  why = 'required',
): void {
  const has = raw.password !== undefined;
  const file = raw.passwordFile;
  if (has && file !== undefined)
    ctx.issues.add([...segs, 'passwordFile'], 'give "password" or "passwordFile", not both');
  if (!has && file === undefined && required) ctx.issues.add([...segs, 'password'], `${why} (or "passwordFile")`);
  if (typeof file !== 'string' || file === '') return;
  const profile = String(segs[1]);
  const list = ctx.files.get(profile) ?? [];
  list.push({
    key,
    path: formatPath([...segs, 'passwordFile']),
    from: { file: resolveLocalPath(file, ctx.baseDir) },
  });
  ctx.files.set(profile, list);
}

/** A CA bundle or private key: a file path (relative to the config folder) or the PEM text itself. */
function loadText(value: unknown, segs: Seg[], kind: 'ca' | 'key', ctx: Ctx): string | undefined | null {
  if (typeof value !== 'string' || value === '') return null; // absent or already reported by the schema
  if (looksLikeKeyText(value)) return value;
  const file = resolveLocalPath(value, ctx.baseDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    ctx.issues.add(segs, `cannot read file "${file}": ${describeFsError(e)}`);
    return undefined;
  }
  if (kind === 'ca' && !text.includes('-----BEGIN')) {
    ctx.issues.add(segs, `file "${file}" is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
    return undefined;
  }
  if (kind === 'key' && !looksLikeKeyText(text)) {
    ctx.issues.add(
      segs,
      `file "${file}" does not look like a private key (expected an OpenSSH, PEM or PuTTY key file)`,
    );
    return undefined;
  }
  if (kind === 'key') ctx.secrets.add(text);
  return text;
}

function loadTls(raw: unknown, segs: Seg[], ctx: Ctx): TlsOptions | undefined {
  if (raw === undefined) return { rejectUnauthorized: true };
  if (!isRecord(raw)) return undefined; // reported by the schema
  const ca = loadText(raw.ca, [...segs, 'ca'], 'ca', ctx);
  if (ca === undefined) return undefined;
  const tls: TlsOptions = { rejectUnauthorized: raw.rejectUnauthorized !== false };
  if (ca !== null) tls.ca = ca;
  return tls;
}

const PROFILE_TYPES = ['lan', 'ftp', 'sftp', 'email'] as const;
type ProfileType = (typeof PROFILE_TYPES)[number];

function profileTypeOf(raw: unknown): ProfileType | undefined {
  return isRecord(raw) && PROFILE_TYPES.includes(raw.type as ProfileType) ? (raw.type as ProfileType) : undefined;
}

function checkProfile(raw: unknown, segs: Seg[], ctx: Ctx): ProfileOptions | undefined {
  const { issues } = ctx;
  if (!isRecord(raw)) {
    issues.add(segs, `expected a mapping with "type" and the connection settings, got ${describeType(raw)}`);
    return undefined;
  }
  const allowed = PROFILE_TYPES.map((t) => `"${t}"`).join(', ');
  switch (profileTypeOf(raw)) {
    case 'lan': {
      const p = issues.check(lanSchema, raw, segs);
      if (!p) return undefined;
      return { type: 'lan', root: resolveLocalPath(p.root, ctx.baseDir) } satisfies LanProfile;
    }
    case 'ftp': {
      const p = issues.check(ftpSchema, raw, segs);
      const tls = loadTls(raw.tls, [...segs, 'tls'], ctx);
      passwordSource(raw, segs, ['password'], ctx, true);
      if (!p || !tls) return undefined;
      const security = p.security ?? 'explicit';
      if (p.password) ctx.secrets.add(p.password);
      return {
        type: 'ftp',
        host: p.host,
        port: p.port ?? (security === 'implicit' ? 990 : 21),
        security,
        user: p.user,
        password: p.password ?? '',
        tls,
        encoding: p.encoding ?? 'utf8',
      } satisfies FtpProfile;
    }
    case 'sftp': {
      const p = issues.check(sftpSchema, raw, segs);
      const key = loadText(raw.privateKey, [...segs, 'privateKey'], 'key', ctx);
      if (raw.password === undefined && raw.passwordFile === undefined && raw.privateKey === undefined) {
        issues.add(segs, 'needs "password" (or "passwordFile") or "privateKey" (or both)');
      }
      passwordSource(raw, segs, ['password'], ctx, false);
      if (raw.passphrase !== undefined && raw.privateKey === undefined) {
        issues.add([...segs, 'passphrase'], 'only used together with "privateKey"');
      }
      if (!p || key === undefined) return undefined;
      const out: SftpProfile = { type: 'sftp', host: p.host, port: p.port ?? 22, user: p.user, hostKey: p.hostKey };
      if (p.password !== undefined || p.passwordFile !== undefined) out.password = p.password ?? '';
      if (key !== null) out.privateKey = key;
      if (p.passphrase !== undefined) out.passphrase = p.passphrase;
      for (const s of [p.password, p.passphrase]) if (s) ctx.secrets.add(s);
      return out;
    }
    case 'email': {
      const p = issues.check(emailSchema, raw, segs);
      const tls = loadTls(raw.tls, [...segs, 'tls'], ctx);
      for (const kind of ['smtp', 'imap'] as const) {
        const server = raw[kind];
        if (!isRecord(server)) continue;
        if ((server.password !== undefined || server.passwordFile !== undefined) && server.user === undefined) {
          issues.add([...segs, kind, 'user'], 'required when a password is given');
        }
        passwordSource(
          server,
          [...segs, kind],
          [kind, 'password'],
          ctx,
          server.user !== undefined,
          'required when a user is given',
        );
      }
      if (raw.smtp === undefined && raw.imap === undefined) {
        issues.add(segs, 'needs "smtp" (to send), "imap" (to receive), or both');
      }
      if (!p || !tls) return undefined;
      const out: EmailProfile = { type: 'email', tls, maxPerMessage: p.maxPerMessage ?? 1 };
      if (p.from !== undefined) out.from = p.from.trim();
      if (p.smtp) out.smtp = mailServer(p.smtp, 'smtp', ctx);
      if (p.imap) out.imap = mailServer(p.imap, 'imap', ctx);
      return out;
    }
    default:
      issues.add(
        [...segs, 'type'],
        raw.type === undefined ? `required: one of ${allowed}` : `expected one of ${allowed}`,
      );
      return undefined;
  }
}

function mailServer(p: z.output<typeof mailServerSchema>, kind: 'smtp' | 'imap', ctx: Ctx): MailServer {
  const tlsPort = kind === 'smtp' ? 465 : 993;
  const security =
    p.security ?? (p.port === tlsPort ? 'tls' : p.port !== undefined || kind === 'smtp' ? 'starttls' : 'tls');
  const port =
    p.port ??
    (kind === 'smtp'
      ? { none: 25, starttls: 587, tls: 465 }[security]
      : { none: 143, starttls: 143, tls: 993 }[security]);
  const out: MailServer = { host: p.host, port, security };
  if (p.user !== undefined) out.user = p.user;
  if (p.password !== undefined || p.passwordFile !== undefined) {
    out.password = p.password ?? '';
    if (p.password) ctx.secrets.add(p.password);
  }
  return out;
}

// ---- routes --------------------------------------------------------------------------------------

type RouteData = z.output<typeof routeSchema>;
type Defaults = Pick<
  RouteData,
  'settle' | 'maxSize' | 'timeout' | 'concurrency' | 'overwrite' | 'retry' | 'alertAfter'
>;

function parseAck(text: string): AckAction | undefined {
  if (text.trim() === 'delete') return { kind: 'delete' };
  const m = /^\s*move:(.*)$/s.exec(text);
  const to = m?.[1]?.trim();
  return to ? { kind: 'move', to } : undefined;
}

/** `leave` -> null, `move:<mailbox>` -> the move, anything else -> undefined. */
function parseRefuse(text: string): { kind: 'move'; to: string } | null | undefined {
  if (text.trim() === 'leave') return null;
  const ack = parseAck(text);
  return ack?.kind === 'move' ? ack : undefined;
}

/** IMAP mailbox names compare case-sensitively, except INBOX. */
function sameMailboxName(a: string, b: string): boolean {
  const norm = (s: string) => (s.trim().toUpperCase() === 'INBOX' ? 'INBOX' : s.trim());
  return norm(a) === norm(b);
}

interface RouteCheck {
  rawProfiles: Record<string, unknown>;
  seenNames: Map<string, number>;
}

function checkRoute(raw: unknown, i: number, rc: RouteCheck, ctx: Ctx): RouteData | undefined {
  const { issues } = ctx;
  const segs: Seg[] = ['routes', i];
  const at = (...k: Seg[]) => [...segs, ...k];
  if (!isRecord(raw)) {
    issues.add(
      segs,
      `expected a mapping with name, direction, profile, local, remote and schedule, got ${describeType(raw)}`,
    );
    return undefined;
  }
  const before = issues.list.length;
  const r: Record<string, unknown> = { ...raw };
  for (const k of ['to', 'allowFrom', 'include']) if (typeof r[k] === 'string') r[k] = [r[k]]; // a single item
  const parsed = issues.check(routeSchema, r, segs);

  if (typeof r.name === 'string' && NAME_RE.test(r.name)) {
    const key = r.name.toLowerCase(); // route names become folder names: Windows ignores case
    const other = rc.seenNames.get(key);
    if (other !== undefined) {
      issues.add(
        at('name'),
        `duplicate route name "${r.name}" (also routes[${other}]; names must differ even ignoring case)`,
      );
    } else rc.seenNames.set(key, i);
  }

  const direction = r.direction === 'in' || r.direction === 'out' ? r.direction : undefined;
  let type: ProfileType | undefined;
  if (typeof r.profile === 'string' && r.profile !== '') {
    if (!Object.hasOwn(rc.rawProfiles, r.profile)) {
      const names = Object.keys(rc.rawProfiles);
      issues.add(
        at('profile'),
        `unknown profile "${r.profile}" (${names.length ? `defined: ${names.join(', ')}` : 'no profiles are defined'})`,
      );
    } else type = profileTypeOf(rc.rawProfiles[r.profile]);
  }
  const rawProfile = type ? (rc.rawProfiles[r.profile as string] as Record<string, unknown>) : {};

  if (direction === 'out' && r.afterReceive !== undefined)
    issues.add(at('afterReceive'), 'only for in-routes (direction: in)');
  if (direction === 'in' && r.afterSend !== undefined)
    issues.add(at('afterSend'), 'only for out-routes (direction: out)');
  if (r.afterRefuse !== undefined && (direction === 'out' || (type !== undefined && type !== 'email')))
    issues.add(at('afterRefuse'), 'only for e-mail in-routes (direction: in, an email profile)');
  let ack: AckAction | undefined;
  if (direction !== 'out' && typeof r.afterReceive === 'string') {
    ack = parseAck(r.afterReceive);
    if (!ack) issues.add(at('afterReceive'), 'expected "delete" or "move:<remote folder or mailbox>"');
  }

  if (type === 'email' && direction === 'out') {
    if (r.to === undefined) issues.add(at('to'), 'required for e-mail out-routes (the recipients)');
    if (r.remote !== undefined) issues.add(at('remote'), 'not used on e-mail out-routes: put the recipients in "to"');
    if (r.allowFrom !== undefined) issues.add(at('allowFrom'), 'only for e-mail in-routes');
    if (rawProfile.smtp === undefined)
      issues.add(at('profile'), `profile "${String(r.profile)}" has no "smtp" server to send with`);
    if (rawProfile.from === undefined)
      issues.add(at('profile'), `profile "${String(r.profile)}" has no "from" address to send as`);
  } else if (type === 'email' && direction === 'in') {
    if (r.allowFrom === undefined) issues.add(at('allowFrom'), 'required for e-mail in-routes');
    if (r.to !== undefined) issues.add(at('to'), 'only for e-mail out-routes');
    if (typeof r.remote === 'string' && r.remote.trim() === '')
      issues.add(at('remote'), 'must name a mailbox (e.g. INBOX)');
    if (rawProfile.imap === undefined)
      issues.add(at('profile'), `profile "${String(r.profile)}" has no "imap" server to receive with`);
    if (typeof r.afterRefuse === 'string') {
      const refuse = parseRefuse(r.afterRefuse);
      const mailbox = typeof r.remote === 'string' ? r.remote : DEFAULTS.mailbox;
      if (refuse === undefined) issues.add(at('afterRefuse'), 'expected "leave" or "move:<mailbox>"');
      else if (refuse && sameMailboxName(refuse.to, mailbox))
        issues.add(at('afterRefuse'), `the move target is the listed mailbox "${mailbox}" itself`);
    }
  } else if (type !== undefined) {
    if (r.to !== undefined) issues.add(at('to'), 'only for e-mail routes');
    if (r.allowFrom !== undefined) issues.add(at('allowFrom'), 'only for e-mail routes');
    if (r.remote === undefined) {
      issues.add(
        at('remote'),
        type === 'lan'
          ? 'required: the folder under the profile root ("" or "." for the root itself)'
          : 'required: the remote directory ("." for the login directory)',
      );
    } else if (typeof r.remote === 'string') {
      const problem =
        type === 'lan'
          ? lanRelativeProblem(r.remote)
          : r.remote.trim() === ''
            ? 'must not be empty ("." for the login directory)'
            : undefined;
      if (problem) issues.add(at('remote'), problem);
    }
    if (type === 'lan' && ack?.kind === 'move') {
      const problem = lanRelativeProblem(ack.to);
      if (problem) issues.add(at('afterReceive'), `the move target ${problem}`);
    }
  }
  return parsed && issues.list.length === before ? parsed : undefined;
}

function checkRetry(
  base: number,
  max: number,
  segs: Seg[],
  setHere: { baseDelay?: number; maxDelay?: number } | undefined,
  issues: Issues,
): void {
  if (max >= base || !setHere || (setHere.baseDelay === undefined && setHere.maxDelay === undefined)) return;
  if (setHere.maxDelay !== undefined) {
    issues.add([...segs, 'maxDelay'], `must not be shorter than baseDelay (${formatDuration(base)})`);
  } else issues.add([...segs, 'baseDelay'], `must not be longer than maxDelay (${formatDuration(max)})`);
}

function buildRoute(
  r: RouteData,
  top: Defaults,
  profiles: Record<string, ProfileOptions>,
  baseDir: string,
): RouteConfig {
  const profile = profiles[r.profile]!;
  const ack =
    r.afterReceive !== undefined && r.direction === 'in' ? parseAck(r.afterReceive)! : { kind: 'delete' as const };
  let remote: string;
  if (profile.type === 'email') remote = r.direction === 'in' ? (r.remote ?? DEFAULTS.mailbox) : '';
  else if (profile.type === 'lan') remote = normalizeLanRelative(r.remote!);
  else remote = r.remote!;
  const afterReceive: AckAction =
    ack.kind === 'move' && profile.type === 'lan' ? { kind: 'move', to: normalizeLanRelative(ack.to) } : ack;
  const route: RouteConfig = {
    name: r.name,
    direction: r.direction,
    profileName: r.profile,
    profile,
    local: resolveLocalPath(r.local, baseDir),
    remote,
    include: r.include ?? [...DEFAULTS.include],
    schedule: r.schedule,
    afterSend: r.afterSend ?? 'archive',
    afterReceive,
    settleMs: r.settle ?? top.settle ?? DEFAULTS.settleMs,
    maxSize: r.maxSize ?? top.maxSize ?? DEFAULTS.maxSize,
    timeoutMs: r.timeout ?? top.timeout ?? DEFAULTS.timeoutMs,
    concurrency: r.concurrency ?? top.concurrency ?? DEFAULTS.concurrency,
    overwrite: r.overwrite ?? top.overwrite ?? DEFAULTS.overwrite,
    retry: {
      maxAttempts: r.retry?.maxAttempts ?? top.retry?.maxAttempts ?? DEFAULTS.retry.maxAttempts,
      baseDelayMs: r.retry?.baseDelay ?? top.retry?.baseDelay ?? DEFAULTS.retry.baseDelayMs,
      maxDelayMs: r.retry?.maxDelay ?? top.retry?.maxDelay ?? DEFAULTS.retry.maxDelayMs,
    },
    alertAfterMs: r.alertAfter ?? top.alertAfter ?? DEFAULTS.alertAfterMs,
  };
  if (r.to) route.to = r.to.map((s) => s.trim());
  if (r.allowFrom) route.allowFrom = r.allowFrom.map((s) => s.trim());
  const refuse = r.afterRefuse !== undefined && r.direction === 'in' ? parseRefuse(r.afterRefuse) : null;
  if (refuse && profile.type === 'email') route.afterRefuse = refuse;
  return route;
}

/** Folder identity for "same folder" checks: Windows-style paths compare case-insensitively. */
function folderKey(p: string): string {
  const winStyle = path.win32.isAbsolute(p) && !path.posix.isAbsolute(p);
  return winStyle
    ? path.win32.normalize(p).replace(/\\+$/, '').toLowerCase()
    : path.posix.normalize(p).replace(/\/+$/, '');
}

// ---- entry points --------------------------------------------------------------------------------

function scrubIssues(issues: ConfigIssue[], secrets: Iterable<string>): ConfigIssue[] {
  const list = [...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  if (list.length === 0) return issues;
  const scrub = (s: string) => list.reduce((acc, secret) => acc.split(secret).join('***'), s);
  return issues.map((i) => ({ path: scrub(i.path), message: scrub(i.message) }));
}

/** Validates the YAML text of a config file. `file` locates relative paths (its folder) and names errors. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = path.resolve(file);
  const baseDir = path.dirname(abs);
  const issues = new Issues();
  const secrets = new Set<string>();
  const fail = (extraScrub: Iterable<string> = []) =>
    new ConfigError(abs, scrubIssues(issues.list, [...secrets, ...extraScrub]));

  const doc = readYaml(text, issues);
  if (!doc) throw fail();
  if (doc.value === null || doc.value === undefined) {
    issues.add([], 'the file is empty: expected station, profiles and routes');
    throw fail();
  }
  if (!isRecord(doc.value)) {
    issues.add(
      [],
      `expected a mapping of keys (station, profiles, routes, ...) at the top level, got ${describeType(doc.value)}`,
    );
    throw fail();
  }

  const envIssues = new Issues();
  const st: EnvState = { env, issues: envIssues, missing: [], secrets, scrub: new Set(), deferred: [] };
  const root = substituteEnv(doc.value, [], st, false, false) as Record<string, unknown>;
  const ctx: Ctx = { baseDir, issues, secrets, files: new Map() };

  const top = issues.check(topSchema, root, []);
  const rawProfiles = isRecord(root.profiles) ? root.profiles : {};
  if (isRecord(root.profiles) && Object.keys(rawProfiles).length === 0) {
    issues.add(['profiles'], 'at least one profile is required');
  }
  const profiles: Record<string, ProfileOptions> = {};
  for (const [name, rawProfile] of Object.entries(rawProfiles)) {
    if (!NAME_RE.test(name)) {
      issues.add(
        ['profiles', name],
        'profile names must start with a letter or digit and contain only letters, digits, ".", "_" or "-" (at most 64)',
      );
    }
    const p = checkProfile(rawProfile, ['profiles', name], ctx);
    if (p) profiles[name] = p;
  }

  const rawRoutes = Array.isArray(root.routes) ? root.routes : [];
  const rc: RouteCheck = { rawProfiles, seenNames: new Map() };
  const parsedRoutes = rawRoutes.map((r, i) => checkRoute(r, i, rc, ctx));

  // Retry delays are checked once merged: route > top level > default, per field.
  const topRetry = {
    base: top?.retry?.baseDelay ?? DEFAULTS.retry.baseDelayMs,
    max: top?.retry?.maxDelay ?? DEFAULTS.retry.maxDelayMs,
  };
  if (top) checkRetry(topRetry.base, topRetry.max, ['retry'], top.retry, issues);
  parsedRoutes.forEach((r, i) => {
    if (!r?.retry) return;
    const base = r.retry.baseDelay ?? topRetry.base;
    const max = r.retry.maxDelay ?? topRetry.max;
    checkRetry(base, max, ['routes', i, 'retry'], r.retry, issues);
  });

  // An outbox belongs to one route: two routes taking files from one folder would race for them.
  const folders = new Map<string, number>();
  rawRoutes.forEach((r, i) => {
    if (!isRecord(r) || typeof r.local !== 'string' || r.local === '') return;
    const key = folderKey(resolveLocalPath(r.local, baseDir));
    const other = folders.get(key);
    if (other === undefined) {
      folders.set(key, i);
      return;
    }
    const otherRoute = rawRoutes[other] as Record<string, unknown>;
    if (r.direction === 'out' || otherRoute.direction === 'out') {
      issues.add(
        ['routes', i, 'local'],
        `same folder as routes[${other}]: an out-route's outbox must not be shared with another route`,
      );
    }
  });

  const shadowed = (p: string) => st.missing.some((m) => p === m || p.startsWith(`${m}.`) || p.startsWith(`${m}[`));
  const all = [...envIssues.list, ...issues.list.filter((i) => !shadowed(i.path))];
  if (all.length > 0 || !top) {
    issues.list.splice(0, issues.list.length, ...all);
    throw fail(st.scrub);
  }

  const routes = parsedRoutes.map((r) => buildRoute(r!, top, profiles, baseDir));
  const log: Config['log'] = {
    level: top.log?.level ?? DEFAULTS.logLevel,
    maxSize: top.log?.maxSize ?? 10 * MB,
    keep: top.log?.keep ?? 5,
  };
  if (top.log?.file !== undefined) log.file = resolveLocalPath(top.log.file, baseDir);
  return {
    file: abs,
    station: top.station,
    lang: top.lang ?? DEFAULTS.lang,
    dataDir: resolveLocalPath(top.dataDir ?? DEFAULTS.dataDir, baseDir),
    log,
    profiles,
    routes,
    secrets: [...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length),
    deferredSecrets: deferredOf(st.deferred, ctx.files),
  };
}

function deferredOf(
  fromEnv: { segs: Seg[]; name: string }[],
  files: Map<string, DeferredSecret[]>,
): Record<string, DeferredSecret[]> {
  const out: Record<string, DeferredSecret[]> = {};
  for (const d of fromEnv) {
    if (d.segs[0] !== 'profiles' || d.segs.length < 3) continue;
    const name = String(d.segs[1]);
    (out[name] ??= []).push({ key: d.segs.slice(2).map(String), path: formatPath(d.segs), from: { env: d.name } });
  }
  for (const [name, list] of files) (out[name] ??= []).push(...list);
  return out;
}

/** Reads and validates a config file (synchronously). */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    const message =
      (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'config file not found (create one with "sprelay init DIR", or name it with --config FILE or $SPRELAY_CONFIG)'
        : `cannot read the config file: ${describeFsError(e)}`;
    throw new ConfigError(abs, [{ path: '', message }]);
  }
  return parseConfig(text, abs, env);
}
