// The durable-file primitives the store and the transports share: directory fsync with the one
// set of refusals that only cost durability, the errno codes of a file held by someone else and
// the retry loop for them, and the errno codes that mean "our local disk failed". A leaf: it
// imports nothing of this project, so the lan transport may use it without knowing the ledger.
import { chmodSync, closeSync, mkdirSync, openSync, promises as fsp, statSync } from 'node:fs';

/** A file held open by another process (Windows: antivirus, indexer, a reader): retry briefly. */
export const LOCKED_ERRNOS: ReadonlySet<string> = new Set(['EBUSY', 'EPERM', 'EACCES']);

/** Our own disk cannot take or give the bytes: full, read-only, refused or failing. */
export const LOCAL_DISK_ERRNOS: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO']);

/** Directory fsync is refused on Windows and by some SMB/CIFS mounts; losing it costs durability only. */
const DIR_FSYNC_TOLERATED: ReadonlySet<string> = new Set([
  'EPERM',
  'EISDIR',
  'EACCES',
  'EINVAL',
  'ENOTSUP',
  'EOPNOTSUPP',
]);

export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isLocalDiskError(err: unknown): boolean {
  const code = errnoOf(err);
  return code !== undefined && LOCAL_DISK_ERRNOS.has(code);
}

/**
 * Modes of what sprelay keeps in dataDir (ledger, spool, archive, quarantine) and of its log: the
 * business's data, for the account that runs sprelay only. POSIX only: Windows has no modes (a
 * folder's ACL decides, and new files inherit it), so these are no-ops there.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
const POSIX = process.platform !== 'win32';

/**
 * Creates `dir` (and missing parents) 0700; an existing `dir` of ours that others can read is
 * narrowed to 0700 (a dataDir made by an older sprelay or by hand). Someone else's folder is left
 * as it is.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (!POSIX) return;
  const st = statSync(dir);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Creates `file` empty and 0600 if it does not exist; an existing one of ours is narrowed to 0600. */
export function ensurePrivateFile(file: string): void {
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  if (!POSIX) return;
  const st = statSync(file);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(file, PRIVATE_FILE_MODE);
}

/** fsync a directory so a rename in it survives power loss. Windows (NTFS) has none: skipped there. */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = errnoOf(err);
    if (code && DIR_FSYNC_TOLERATED.has(code)) return;
    throw err;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * Runs `fn`, again after each of `waitsMs` while it fails with a LOCKED_ERRNOS code; then the last
 * error is thrown (its code tells the caller it was still locked). A fired `signal` ends the wait
 * with an AbortError.
 */
export async function retryWhileLocked<T>(fn: () => Promise<T>, waitsMs: readonly number[], signal?: AbortSignal) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = errnoOf(err);
      if (!code || !LOCKED_ERRNOS.has(code) || attempt >= waitsMs.length) throw err;
      await pause(waitsMs[attempt]!, signal);
    }
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => Object.assign(new Error('aborted'), { name: 'AbortError' });
    if (signal?.aborted) return reject(aborted());
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
