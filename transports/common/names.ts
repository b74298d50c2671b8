// File names on every transport: which names a listing shows, which names may be read or
// written, free names for a move, and the guard against moving into the listed folder itself.
// One rule for all transports, so a name refused on one is refused on every other.
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TransportError } from '../errors.js';

/** Suffix of a file still in transfer (ours or a peer's): never listed, never a package. */
export const PART = '.part';
/** Prefix of our own files (probe files): never listed. */
export const HIDDEN_PREFIX = '.sprelay-';

/** A name listing shows: not `.`/`..`, not a transfer in progress, not one of our own probe files. */
export function isVisible(name: string): boolean {
  const lower = name.toLowerCase();
  return name !== '.' && name !== '..' && !lower.endsWith(PART) && !lower.startsWith(HIDDEN_PREFIX);
}

/** The name of a probe file for `sprelay check`: hidden, a `.part`, random. */
export function probeFileName(): string {
  return `${HIDDEN_PREFIX}probe-${randomBytes(6).toString('hex')}${PART}`;
}

/**
 * A single path component that cannot leave its directory nor break a protocol command, the same
 * on every transport: not empty, `.` or `..`; no `/`, NUL, CR or LF (they would end an FTP
 * command). `\` and `:` are ordinary characters in a Unix file name, so a listed entry may carry
 * them and must still be readable (the pipeline quarantines it); they lead elsewhere only on
 * Windows (separator, drive letter, alternate data stream), so they are refused there, and in any
 * name we write (a Windows server takes `\` for a separator).
 */
export function plainName(name: string, what: string, forWriting = false): string {
  const bad =
    name === '' ||
    name === '.' ||
    name === '..' ||
    /[/\0\r\n]/.test(name) ||
    ((forWriting || process.platform === 'win32') && /[\\:]/.test(name));
  if (bad) throw new TransportError('invalid-name', `${what} ${JSON.stringify(name)} refused: not a plain file name`);
  return name;
}

/**
 * How many candidates freeName tries. A move target with a thousand copies of one name is a
 * folder nobody looks after, and a server that says every name exists (hostile or broken) would
 * otherwise keep the search going forever.
 */
export const FREE_NAME_MAX = 1000;

/**
 * `NAME.ext`, else `NAME (2).ext`, `NAME (3).ext`...: the first candidate `taken` says is free, so a
 * move never replaces what is there. After FREE_NAME_MAX candidates, TransportError('protocol'):
 * nothing is moved. `where` (the move target) goes into that message.
 */
export async function freeName(
  name: string,
  taken: (candidate: string) => Promise<boolean>,
  where?: string,
): Promise<string> {
  const ext = path.posix.extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let n = 1; n <= FREE_NAME_MAX; n++) {
    const candidate = n === 1 ? name : `${stem} (${n})${ext}`;
    if (!(await taken(candidate))) return candidate;
  }
  const last = JSON.stringify(`${stem} (${FREE_NAME_MAX})${ext}`);
  throw new TransportError(
    'protocol',
    `no free name to move ${JSON.stringify(name)} to${where === undefined ? '' : ` in ${where}`}: the server says ` +
      `it and every numbered copy up to ${last} exist (${FREE_NAME_MAX} names tried); refused, the file ` +
      `stays where it is. Clear out the move target, or check the server`,
  );
}

/**
 * Moving acknowledged entries into the listed folder would hand the same file back next cycle,
 * forever: refused. `to` is the target as configured (for the message).
 */
export function refuseMoveIntoSelf(dir: string, moveDir: string | null, to: string): void {
  if (moveDir !== null && moveDir === dir) {
    throw new TransportError('invalid-name', `move target ${JSON.stringify(to)} is the remote directory itself`);
  }
}
