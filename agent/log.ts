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

export function createLogger(opts: LogOptions): Logger {
  const lineFormat = {
    colorize: false,
    singleLine: true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss o',
    ignore: 'pid,hostname,route,file',
    messageFormat: '{if route}[{route}] {end}{if file}"{file}" {end}{msg}',
  };
  // pino's JSON line -> one readable line, written at once (a line logged just before a crash is
  // on disk); names and server messages in it are untrusted, so controls and invisible characters
  // are escaped on the way out.
  const prettify = prettyFactory(lineFormat);
  // the console and the file get the same line: rendered once (multistream hands each stream the
  // same JSON string, one after the other)
  let lastJson = '';
  let lastLine = '';
  const render = (json: string) => {
    if (json !== lastJson) {
      lastLine = visibleLines(prettify(json));
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

/** The logger's file alone (silent without one): for lines the console gets another way. */
export function fileLogOf(logger: Logger): Logger {
  return fileOnly.get(logger) ?? logger;
}

/** Rotates the logger's file now if it has grown past its limit (the daemon calls this hourly). */
export function maintainLog(logger: Logger): boolean {
  return maintenance.get(logger)?.() ?? false;
}
