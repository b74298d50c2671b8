// The file names of sprelay's control files (receipts and heartbeats, agent/control/format.ts).
// They travel the routes packages travel (lan, ftp, sftp, e-mail attachments), so a name must be
// one safe file on Windows and Linux (agent/inspect.ts checkName), ASCII only, at most 100
// characters, never start with `.sprelay-` (our temp prefix) and never look like a SERVIO package
// (those end `.xml` / `.zip`; ours end `.json`):
//
//   sprelay-receipt_<from>_<yyyymmddThhmmssZ>_<8 hex>.json
//   sprelay-heartbeat_<station>_<yyyymmddThhmmssZ>_<8 hex>.json
//
// <from>/<station> is the config's `station` (1-64 of A-Z a-z 0-9 . _ -). Every one of those
// characters is file-name safe inside the name (the name starts with `sprelay-` and continues past
// it, so a station `..`, `CON` or `x.` cannot make the whole name a dot name, a device or end in a
// dot), but `_` is our field separator, so the station is written with `_` as `~` (not a station
// character, so the mapping is one to one). A station longer than 40 characters after that is
// written as its first 31 characters, `+` and the first 8 hex digits of the SHA-256 of the station
// (so the name stays <= 100 characters and two long stations still differ). The name is for people
// and listings only: the receiving agent takes the station from the file's content, never from the
// name.
//
// Recognition (controlKind) is by prefix alone, case-insensitive, on the name as Windows would open
// it (transports/include.ts includeKey): every name that starts `sprelay-receipt_` or
// `sprelay-heartbeat_` is a control file, whether or not the rest is well-formed, so a malformed or
// hostile one is decoded, refused and recorded, and never falls through to the include filter and
// into SERVIO's import folder.
import { createHash } from 'node:crypto';
import { includeKey } from '../../transports/include.js';
import { checkName } from '../inspect.js';

export type ControlKind = 'receipt' | 'heartbeat';

export const CONTROL_PREFIX: Record<ControlKind, string> = {
  receipt: 'sprelay-receipt_',
  heartbeat: 'sprelay-heartbeat_',
};

/** Include globs that list every control file (an in-route lists them whatever its own include). */
export const CONTROL_PATTERNS: readonly string[] = ['sprelay-receipt_*', 'sprelay-heartbeat_*'];

/** Longest control file name we write. */
export const MAX_CONTROL_NAME = 100;
/** Longest station segment written as is (after `_` -> `~`). */
const MAX_STATION_SEGMENT = 40;
const LONG_STATION_KEEP = 31;

/**
 * The config's station rule (agent/config/schemas.ts, not exported there), repeated because the
 * name safety above depends on exactly this alphabet; test/control-format.test.ts checks the two agree.
 */
export const STATION_RE = /^[A-Za-z0-9._-]{1,64}$/;
const RAND_RE = /^[0-9a-f]{8}$/;

/**
 * A station name that may also stand as one folder name on Windows and Linux: the station rule and
 * the package name rule (no `.`/`..`, no device name like CON or NUL, no trailing dot). A station
 * taken from a remote folder or a message header becomes a path segment (`{station}` in local or
 * remote): anything else is never used.
 */
export function isSafeStation(station: string): boolean {
  return STATION_RE.test(station) && checkName(station) === null;
}

/** Which control file a listed name is, or null for anything else (a package, a stranger). */
export function controlKind(name: string): ControlKind | null {
  const key = includeKey(name).toLowerCase();
  if (key.startsWith(CONTROL_PREFIX.receipt)) return 'receipt';
  if (key.startsWith(CONTROL_PREFIX.heartbeat)) return 'heartbeat';
  return null;
}

/** The station as written into a control file name (see the header). */
export function stationSegment(station: string): string {
  if (!STATION_RE.test(station)) throw new Error(`not a station name: ${JSON.stringify(station)}`);
  const plain = station.replace(/_/g, '~');
  if (plain.length <= MAX_STATION_SEGMENT) return plain;
  const hash = createHash('sha256').update(station, 'utf8').digest('hex').slice(0, 8);
  return `${plain.slice(0, LONG_STATION_KEEP)}+${hash}`;
}

/** `yyyymmddThhmmssZ` in UTC. */
export function utcStamp(now: Date | number): string {
  const d = new Date(now);
  if (Number.isNaN(d.getTime())) throw new Error('not a time');
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function controlName(kind: ControlKind, station: string, now: Date | number, rand: string): string {
  const r = rand.toLowerCase();
  if (!RAND_RE.test(r)) throw new Error('rand must be 8 hex digits (4 random bytes)');
  return `${CONTROL_PREFIX[kind]}${stationSegment(station)}_${utcStamp(now)}_${r}.json`;
}

/** File name of a receipt sent by office station `from`; `rand` = 8 hex digits (randomBytes(4)). */
export function receiptName(from: string, now: Date | number, rand: string): string {
  return controlName('receipt', from, now, rand);
}

/** File name of a heartbeat sent by `station`; `rand` = 8 hex digits (randomBytes(4)). */
export function heartbeatName(station: string, now: Date | number, rand: string): string {
  return controlName('heartbeat', station, now, rand);
}
