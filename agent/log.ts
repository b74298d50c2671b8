// Logging: one human-readable line per package event, to the console and optionally to a file.
// pino does the work; pino-pretty renders lines a station's IT support can read without tools.
// Secrets never reach here as fields (redact is the second fence: scrub is applied to messages).
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  level: string;
  file?: string;
  /** Console output off (tests, --json commands). */
  quiet?: boolean;
}

const REDACT = ['password', 'passphrase', 'privateKey', '*.password', '*.passphrase', '*.privateKey'];

export function createLogger(opts: LogOptions): Logger {
  const lineFormat = {
    colorize: false,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss',
    ignore: 'pid,hostname,route,file',
    messageFormat: '{if route}[{route}] {end}{if file}"{file}" {end}{msg}',
  };
  const streams: { level: pino.Level; stream: NodeJS.WritableStream }[] = [];
  const level = opts.level as pino.Level;
  // stderr, so that `status --json` / `list --json` keep stdout for their JSON
  if (!opts.quiet) streams.push({ level, stream: pretty({ ...lineFormat, destination: 2 }) });
  if (opts.file) {
    const dest = pino.destination({ dest: opts.file, mkdir: true, sync: true });
    streams.push({ level, stream: pretty({ ...lineFormat, destination: dest }) });
  }
  if (streams.length === 0) return pino({ level: 'silent' });
  return pino({ level, redact: { paths: REDACT, censor: '***' } }, pino.multistream(streams));
}
