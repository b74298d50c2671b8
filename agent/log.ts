// Logging: one human-readable line per package event, to the console and optionally to a file.
// pino does the work; pino-pretty renders lines a station's IT support can read without tools,
// with local times and their UTC offset. Secrets never reach here as fields (redact is the second
// fence: scrub is applied to messages).
//
// The file rotates by size: when it is larger than `maxSize` it becomes `NAME.1` (`.1` -> `.2` ...,
// `keep` files kept), checked when a process opens the log and then hourly by `run` (pino's own
// answer to rotation: rename, then reopen the destination). Several sprelay processes may write
// one log (`run` and a Task Scheduler `once`); appends are whole lines, and a rename that Windows
// refuses because another process holds the file is simply tried again next time.
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../store/durable.js';
import { visibleLines } from '../transports/common/text.js';

export type { Logger };

export interface LogOptions {
  level: string;
  file?: string;
  /** Console output off (tests, --json commands). */
  quiet?: boolean;
  /** Rotate the file once it is larger than this (bytes). Default 10 MB. */
  maxSize?: number;
  /** Rotated files kept besides the current one. Default 5. */
  keep?: number;
}

const REDACT = ['password', 'passphrase', 'privateKey', '*.password', '*.passphrase', '*.privateKey'];

/** Per logger: rotate its file now if it is too large (no-op without a file). */
const maintenance = new WeakMap<Logger, () => boolean>();
/** Per logger: the same file without the console (lines the CLI already prints its own way). */
const fileOnly = new WeakMap<Logger, Logger>();

/**
 * Renames `file` to `file.1` (and `.1` to `.2` ..., dropping `.keep`) when it is at least
 * `maxSize` bytes. Returns whether it rotated. Never throws: a log must not stop the courier.
 */
export function rotateLogFile(file: string, maxSize: number, keep: number): boolean {
  try {
    if (!existsSync(file) || statSync(file).size < maxSize) return false;
    rmSync(`${file}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) if (existsSync(`${file}.${i}`)) renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    renameSync(file, `${file}.1`);
    return true;
  } catch {
    // another process holds a file Windows will not rename now, or the disk is full: next time
    return false;
  }
}

/** pino-pretty's options for our line (fastLine writes the common line the same way). */
export const LINE_FORMAT = {
  colorize: false,
  singleLine: true,
  translateTime: 'SYS:yyyy-mm-dd HH:MM:ss o',
  ignore: 'pid,hostname,route,file',
  messageFormat: '{if route}[{route}] {end}{if file}"{file}" {end}{msg}',
};

export function createLogger(opts: LogOptions): Logger {
  // pino's JSON line -> one readable line, written at once (a line logged just before a crash is
  // on disk); names and server messages in it are untrusted, so controls and invisible characters
  // are escaped on the way out.
  const prettify = prettyFactory(LINE_FORMAT);
  // the console and the file get the same line: rendered once (multistream hands each stream the
  // same JSON string, one after the other); the common line by fastLine, the same text for less
  // CPU (issue 11: two lines per package), anything unusual by pino-pretty itself
  let lastJson = '';
  let lastLine = '';
  const render = (json: string) => {
    if (json !== lastJson) {
      lastLine = visibleLines(fastLine(json) ?? prettify(json));
      lastJson = json;
    }
    return lastLine;
  };
  const lines = (dest: { write(text: string): unknown }): pino.DestinationStream => ({
    write: (json: string) => dest.write(render(json)),
  });
  const streams: { level: pino.Level; stream: pino.DestinationStream }[] = [];
  const level = opts.level as pino.Level;
  // stderr, so that `status --json` / `list --json` keep stdout for their JSON
  if (!opts.quiet) streams.push({ level, stream: lines(pino.destination({ dest: 2, sync: true })) });
  let rotate: (() => boolean) | undefined;
  let fileStream: pino.DestinationStream | undefined;
  if (opts.file) {
    const file = opts.file;
    const maxSize = opts.maxSize ?? 10 * 1024 * 1024;
    const keep = opts.keep ?? 5;
    rotateLogFile(file, maxSize, keep);
    // 0600: the log names packages and routes of the business (no effect on Windows, where the
    // folder's ACL decides);
    // folders it creates are 0700 (an existing one is left as it is)
    mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
    const dest = pino.destination({ dest: file, sync: true, append: true, mode: PRIVATE_FILE_MODE });
    fileStream = lines(dest);
    streams.push({ level, stream: fileStream });
    rotate = () => {
      const rotated = rotateLogFile(file, maxSize, keep);
      if (rotated) dest.reopen();
      return rotated;
    };
  }
  if (streams.length === 0) return pino({ level: 'silent' });
  const logger = pino({ level, redact: { paths: REDACT, censor: '***' } }, pino.multistream(streams));
  if (rotate) maintenance.set(logger, rotate);
  fileOnly.set(
    logger,
    fileStream
      ? pino({ level, redact: { paths: REDACT, censor: '***' } }, pino.multistream([{ level, stream: fileStream }]))
      : pino({ level: 'silent' }),
  );
  return logger;
}

// ---- the common line without pino-pretty -------------------------------------------------------

/** pino's numeric levels and pino-pretty's words for them. */
const LEVEL_WORDS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Keys that never reach the trailing JSON: the line's own parts and what `ignore` names. */
const LINE_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'route', 'file']);
/**
 * Keys pino-pretty treats in ways of its own (metadata, error objects, its own timestamp key,
 * an `Error` line): a line with any of them goes to pino-pretty.
 */
const SPECIAL_KEYS = ['name', 'caller', 'timestamp', 'type', 'stack', 'err', 'error'];
// eslint-disable-next-line no-control-regex -- the characters pino-pretty strips from a message
const UNSAFE_CONTROLS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

/** dateformat's `yyyy-mm-dd HH:MM:ss o` in local time, as pino-pretty's translateTime writes it. */
function localTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number, len = 2) => String(n).padStart(len, '0');
  const o = d.getTimezoneOffset();
  const offset = (o > 0 ? '-' : '+') + pad(Math.floor(Math.abs(o) / 60) * 100 + (Math.abs(o) % 60), 4);
  return (
    `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${offset}`
  );
}

/** A route or file name that pino-pretty's messageFormat passes through as it is. */
const plainPart = (v: unknown) => v === undefined || (typeof v === 'string' && !/[${}]/.test(v));

/**
 * The line pino-pretty renders for `json` with createLogger's format (`[time] LEVEL: [route]
 * "file" msg {other fields}`), or null when the line is not the common kind (pino-pretty renders
 * it). The same text, each step as pino-pretty 13 takes it: the message format's conditionals,
 * its whitespace collapsed and trimmed, unsafe controls stripped from the message, the remaining
 * fields as one JSON object with escaped backslashes unescaped (test/log.test.ts compares the two
 * on lines of every kind).
 */
export function fastLine(json: string): string | null {
  // secure-json-parse drops or refuses these: pino-pretty's own way
  if (json.includes('__proto__') || json.includes('constructor')) return null;
  let log: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(json);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
    log = v as Record<string, unknown>;
  } catch {
    return null;
  }
  const { level, time, msg, route, file } = log;
  if (typeof level !== 'number' || !LEVEL_WORDS[level] || typeof time !== 'number' || typeof msg !== 'string') {
    return null;
  }
  if (!Number.isFinite(new Date(time).getTime()) || !plainPart(route) || !plainPart(file)) return null;
  for (const k of SPECIAL_KEYS) if (k in log) return null;
  let format = `${route ? `[${route as string}] ` : ''}${file ? `"${file as string}" ` : ''}`;
  format = format
    .replace(/[^\S\r\n]+/g, ' ')
    .replace(/\n[^\S\r\n]*\n/g, '\n')
    .trim();
  const message = (format === '' ? msg : `${format} ${msg}`).replace(UNSAFE_CONTROLS, '');
  let line = `[${localTime(time)}] ${LEVEL_WORDS[level]}: ${message}`;
  let rest: Record<string, unknown> | null = null;
  for (const k of Object.keys(log)) {
    if (LINE_KEYS.has(k)) continue;
    (rest ??= {})[k] = log[k];
  }
  if (rest) line += ' ' + JSON.stringify(rest).replace(/\\\\/g, '\\');
  return line + '\n';
}

/** The logger's file alone (silent without one): for lines the console gets another way. */
export function fileLogOf(logger: Logger): Logger {
  return fileOnly.get(logger) ?? logger;
}

/** Rotates the logger's file now if it has grown past its limit (the daemon calls this hourly). */
export function maintainLog(logger: Logger): boolean {
  return maintenance.get(logger)?.() ?? false;
}
