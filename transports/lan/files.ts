// What a file on the share is, in the lan transport's rules: the open flags that never follow a
// link nor wait on a pipe, what a non-regular entry is called in the ledger and the log, and when
// two stats are the same file (the identity checks of open and acknowledge). No I/O here.
import { constants as fsc, type Stats } from 'node:fs';

// O_NOFOLLOW: the open fails (ELOOP) when the last component is a link. O_NONBLOCK: opening a FIFO
// returns at once instead of waiting for a writer forever. Windows has neither (undefined there):
// it gets lstat before the open and the handle's fstat after, compared (sameFile).
const NOFOLLOW = fsc.O_NOFOLLOW ?? 0;
const NONBLOCK = fsc.O_NONBLOCK ?? 0;
export const READ_FLAGS = fsc.O_RDONLY | NOFOLLOW | NONBLOCK;
/** A new file, never an existing one and never through a link, even a dangling one (O_EXCL). */
export const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | NOFOLLOW;

export const LINK_WORDS = process.platform === 'win32' ? 'a symbolic link or junction' : 'a symbolic link';

/** What a non-regular entry is, in words for the ledger and the log. */
export function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return LINK_WORDS;
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  if (st.isFile()) return 'a file';
  return 'not a regular file';
}

export function refusalOf(st: Stats): string {
  return (
    `${kindOf(st)} on the share, not a regular file: refused, not read and left where it is ` +
    '(sprelay never follows links nor opens special files on a share)'
  );
}

/**
 * Whether two stats are of the same file. POSIX: device and inode. Windows: the file index, where
 * the file system gives one (not its volume number: the path and the handle calls may word it
 * differently); where it gives none (0), size and modification time stand in.
 */
export function sameFile(a: Stats, b: Stats): boolean {
  if (process.platform !== 'win32') return a.dev === b.dev && a.ino === b.ino;
  if (a.ino !== 0 && b.ino !== 0) return a.ino === b.ino;
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/**
 * Whether the file read (`read`: its handle's fstat) is still what is there (`now`: lstat) and
 * unchanged. POSIX also compares size and time: a file system may give a freed inode number to the
 * next new file at once. Windows' file index carries a sequence number that a reused record changes.
 */
export function unchanged(read: Stats, now: Stats): boolean {
  if (!sameFile(read, now)) return false;
  return process.platform === 'win32' || (read.size === now.size && read.mtimeMs === now.mtimeMs);
}
