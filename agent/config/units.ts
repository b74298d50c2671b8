// Units (bytes, milliseconds), the defaults a config may leave out, and the duration and size
// notations ("30s", "1h30m", "50MB") with their plain-words errors.
import type { Lang, LogLevel, RetryPolicy } from './types.js';

// ---- defaults ------------------------------------------------------------------------------------

export const KB = 1024;
export const MB = 1024 * KB;
export const GB = 1024 * MB;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const DEFAULTS = {
  settleMs: 2 * SECOND,
  /**
   * A remote's clock may be this far behind ours and its old files are still judged safely by
   * their time (a Windows domain keeps clocks within 5 minutes; NTP far closer; FTP LIST without
   * MLSD gives no time at all, so those entries are always listed twice).
   */
  clockSkewMs: 15 * MINUTE,
  maxSize: 50 * MB,
  timeoutMs: 60 * SECOND,
  /**
   * 1 KB/s = 8 kbit/s averaged over a minute: below GSM data (9.6 kbit/s) and far below what a
   * working GPRS/EDGE/3G link carries, so only a peer that drips (or a link that is as good as
   * dead) trips it.
   */
  minRate: KB,
  /**
   * Transfers (out) and entries (in) a route works on at once, per transport, chosen from the
   * bench (issue 11, BENCH.md): on a link with 100 ms of round trip, several in flight hide the
   * latency (sftp: requests on one channel; ftp: one control connection each, so fewer). lan
   * calls into one share are gated to 2 at once whatever this says (transports/lan/gate.ts);
   * e-mail sends one message at a time over its one SMTP connection (so out-routes keep 1: the
   * oldest goes first), and fetches and files up to 16 IMAP messages together.
   */
  concurrency: {
    lan: { out: 4, in: 4 },
    ftp: { out: 4, in: 4 },
    sftp: { out: 8, in: 8 },
    email: { out: 1, in: 16 },
  },
  overwrite: false,
  retry: { maxAttempts: 10, baseDelayMs: MINUTE, maxDelayMs: HOUR } satisfies RetryPolicy,
  alertAfterMs: HOUR,
  /** Remote entries an in-route handles per cycle: a flood of mail or files waits its turn. */
  maxPerCycle: 500,
  /**
   * 1 GB / 1000 files: room for 20 packages at the default maxSize or hundreds of ordinary ones,
   * a small share of a station PC's disk; 1000 is also what a person can still look through.
   */
  quarantine: { maxSize: GB, maxCount: 1000 },
  lang: 'en' as Lang,
  include: ['*.xml', '*.zip'],
  dataDir: './data',
  logLevel: 'info' as LogLevel,
  mailbox: 'INBOX',
};

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

export function formatDuration(ms: number): string {
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
