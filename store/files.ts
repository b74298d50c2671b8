// Durable local file operations: the only place that knows how to make a file survive kill -9 and
// power loss (write temp -> fsync -> rename -> fsync dir), and the Windows exceptions to that
// (directory fsync is not possible there; renames can be refused for a moment by antivirus).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errnoOf, fsyncDir, retryWhileLocked } from './durable.js';

export { fsyncDir } from './durable.js';

export interface WrittenFile {
  size: number;
  sha256: string;
}

export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`larger than the limit of ${limit} bytes`);
    this.name = 'TooLargeError';
  }
}

/** Counts and hashes what passes; fails with TooLargeError past `limit` bytes. */
export class HashCounter extends Transform {
  size = 0;
  private readonly hash = createHash('sha256');
  constructor(private readonly limit = Number.POSITIVE_INFINITY) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) return cb(new TooLargeError(this.limit));
    this.hash.update(chunk);
    cb(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

export async function hashFile(path: string, signal?: AbortSignal): Promise<WrittenFile> {
  const counter = new HashCounter();
  await pipeline(createReadStream(path), counter, nullSink(), signal ? { signal } : {});
  return { size: counter.size, sha256: counter.digest() };
}

function nullSink(): Transform {
  return new Transform({
    transform(_c, _e, cb) {
      cb();
    },
  });
}

/**
 * `data` into the new file `file` (never an existing one: O_EXCL), fsynced and closed. On a failure
 * the caller removes what was made.
 */
export async function writeNewFileDurably(file: string, data: Uint8Array | string, mode = 0o666): Promise<void> {
  const fh = await fsp.open(file, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * `file` replaced whole by `data`, or left as it was: a temp file beside it (`.<name>.<hex>.tmp`),
 * written and fsynced, renamed over `file`, the folder fsynced. The temp is removed on a failure
 * (a kill -9 can leave one: a few bytes, never under `file`'s name).
 */
export async function replaceFileDurably(file: string, data: Uint8Array | string, mode = 0o666): Promise<void> {
  const dir = dirname(file);
  const temp = join(dir, `.${basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeNewFileDurably(temp, data, mode);
    await renameRetrying(temp, file);
  } catch (err) {
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** Waits between `tries` attempts on a file Windows reports as held by someone else: 50 ms, doubling. */
const lockedWaits = (tries: number) => Array.from({ length: Math.max(0, tries - 1) }, (_, i) => 50 * 2 ** i);

/** rename, retried briefly while Windows reports the file as held by someone else (antivirus, indexer). */
export async function renameRetrying(from: string, to: string, tries = 6): Promise<void> {
  await retryWhileLocked(() => fsp.rename(from, to), lockedWaits(tries));
}

/**
 * Puts `from` at `to` only if nothing is at `to` (returns false then, leaving both as they were).
 * A hard link fails atomically with EEXIST; where links are not supported (FAT, some shares) it
 * falls back to check-then-rename, which is safe here because only this agent writes these names.
 */
export async function renameNoReplace(
  from: string,
  to: string,
  /** Runs between the link and the removal of `from` (the kill -9 tests stop the process there). */
  afterLink?: () => void,
): Promise<boolean> {
  const renamed = await renameNoReplaceUnsynced(from, to, afterLink);
  if (renamed) await fsyncDir(dirname(to));
  return renamed;
}

/**
 * Finishes a renameNoReplace(from, to) that a crash may have cut short, and says how it stood:
 * `done` (from is gone: it completed), `linked` (killed between the link and the removal of
 * `from`: from has a second name, `to` or wherever the reader moved it within the volume; only
 * `from` is removed, linking again would deliver twice), `renamed` (completed now), `taken` (`to`
 * is another file: nothing done). Undecidable and treated as not linked: a link whose `to` was
 * deleted since, leaving `from` alone again (a second delivery rather than a lost one).
 */
export async function resumeRenameNoReplace(
  from: string,
  to: string,
): Promise<'done' | 'linked' | 'renamed' | 'taken'> {
  if (!(await exists(from))) return 'done';
  const f = await fsp.stat(from);
  const t = await fsp.stat(to).catch(() => null);
  if (f.nlink > 1 || (t !== null && t.ino === f.ino && t.dev === f.dev && f.ino !== 0)) {
    await unlinkRetrying(from);
    return 'linked';
  }
  return (await renameNoReplace(from, to)) ? 'renamed' : 'taken';
}

export async function unlinkRetrying(path: string): Promise<void> {
  await retryWhileLocked(
    () =>
      fsp.unlink(path).catch((err: unknown) => {
        if (errnoOf(err) !== 'ENOENT') throw err;
      }),
    lockedWaits(6),
  );
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Streams `source` into `path` (created or truncated), hashing as it goes, and fsyncs the file
 * before returning. `observe`, when given, sees every chunk in order as it goes to the file (a
 * content check fed from the one pass over the bytes: nothing is read back from disk); it must not
 * keep the chunk. On failure the partial file is removed. The caller renames it into place.
 */
export async function writeDurably(
  source: Readable,
  path: string,
  opts: { maxBytes?: number; signal?: AbortSignal; mode?: number; observe?: (chunk: Buffer) => void } = {},
): Promise<WrittenFile> {
  const counter = opts.observe ? new ObservingCounter(opts.observe, opts.maxBytes) : new HashCounter(opts.maxBytes);
  const fh = await fsp.open(path, 'w', opts.mode ?? 0o666);
  try {
    const out = createWriteStream('', { fd: fh.fd, autoClose: false, highWaterMark: 256 * 1024 });
    await pipeline(source, counter, out, opts.signal ? { signal: opts.signal } : {});
    await fh.sync();
    await fh.close();
    return { size: counter.size, sha256: counter.digest() };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fsp.rm(path, { force: true }).catch(() => undefined);
    throw err;
  }
}

class ObservingCounter extends HashCounter {
  constructor(
    private readonly observe: (chunk: Buffer) => void,
    limit?: number,
  ) {
    super(limit);
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    super._transform(chunk, enc, (err, data) => {
      if (!err) this.observe(chunk);
      cb(err, data);
    });
  }
}

/**
 * renameNoReplace without its directory fsync: for a group of renames into one folder, followed by
 * ONE fsyncDir(folder) before anything relies on them being durable (group commit). Same
 * semantics otherwise (false, both left as they were, when `to` exists).
 */
export async function renameNoReplaceUnsynced(from: string, to: string, afterLink?: () => void): Promise<boolean> {
  try {
    await fsp.link(from, to);
    afterLink?.();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EXDEV' && code !== 'EINVAL') throw err;
    if (await exists(to)) return false;
    await renameRetrying(from, to);
    return true;
  }
  await unlinkRetrying(from);
  return true;
}
