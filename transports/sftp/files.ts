// Paths and directories on an SFTP server: `remote` as a server path, stat that says null for a
// missing file, `mkdir -p`, listings as a Source shows them (bounded), free names for a move,
// read-back hashes.
import path from 'node:path';
import type { FileEntry, Stats as SftpStats } from 'ssh2';
import { isFolderName, sortedNames } from '../common/folders.js';
import { ListingBudget } from '../common/listing.js';
import { freeName as firstFree, isVisible } from '../common/names.js';
import { sha256Of } from '../common/streams.js';
import { withDeadline, type MinRate } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { RemoteEntry } from '../types.js';
import type { Connection } from './connection.js';
import { classify, SSH_FX, sftpStatus } from './errors.js';

/** Mode asked for when creating a file (the server's umask still applies). */
export const FILE_MODE = 0o644;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** `remote` / `move:` as an SFTP path: `/`-separated, normalized, '' = the login directory. */
export function remoteDir(remote: string, what: string): string {
  if (remote.includes('\0')) throw new TransportError('invalid-name', `${what} ${JSON.stringify(remote)} refused`);
  // SFTP paths are always `/`-separated, also on Windows servers
  const norm = path.posix.normalize(remote.replace(/\\/g, '/') || '.');
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

export async function statOrNull(
  conn: Connection,
  p: string,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<SftpStats | null> {
  return conn.call<SftpStats | null>(what, ms, signal, 'meta', (s, cb) =>
    s.stat(p, (err, stats) => (sftpStatus(err) === SSH_FX.NO_SUCH_FILE ? cb(undefined, null) : cb(err, stats))),
  );
}

/** `mkdir -p`, one level at a time; a level someone else created meanwhile is fine. */
export async function ensureDir(conn: Connection, dir: string, ms: number, signal: AbortSignal): Promise<void> {
  if (dir === '.' || dir === '/') return;
  const what = `create ${dir}`;
  const st = await statOrNull(conn, dir, `stat ${dir}`, ms, signal);
  if (st) {
    if (isDir(st)) return;
    throw new TransportError('unavailable', `${dir} exists but is not a directory`);
  }
  let at = dir.startsWith('/') ? '/' : '';
  for (const segment of dir.split('/').filter(Boolean)) {
    at = at === '' ? segment : path.posix.join(at, segment);
    const level = at;
    try {
      await conn.call<void>(what, ms, signal, 'meta', (s, cb) => s.mkdir(level, cb));
    } catch (err) {
      const there = await statOrNull(conn, level, what, ms, signal).catch(() => null);
      if (there && isDir(there)) continue;
      throw err;
    }
  }
}

export async function hashRemote(
  conn: Connection,
  file: string,
  what: string,
  ms: number,
  signal: AbortSignal,
  minRate?: MinRate,
) {
  const handle = await conn.call<Buffer>(what, ms, signal, 'read', (s, cb) => s.open(file, 'r', cb));
  const st = await conn
    .call<SftpStats>(what, ms, signal, 'read', (s, cb) => s.fstat(handle, cb))
    .catch(async (err) => {
      await conn.closeHandleQuietly(handle);
      throw err;
    });
  return sha256Of(conn.readStream(handle, st.size, what, ms, signal, minRate));
}

const modeIs = (attrs: { mode?: number }, type: number) =>
  typeof attrs.mode === 'number' && (attrs.mode & S_IFMT) === type;
export const isFile = (attrs: { mode?: number }) => modeIs(attrs, S_IFREG);
export const isDir = (attrs: { mode?: number }) => modeIs(attrs, S_IFDIR);
export const isLink = (attrs: { mode?: number }) => modeIs(attrs, S_IFLNK);
/** Only when the server says so: some servers send no permissions at all. */
export const notAFile = (attrs: { mode?: number }) => typeof attrs.mode === 'number' && !isFile(attrs);

/**
 * The files of `dir` as a Source lists them; a missing directory is created (and empty). The whole
 * listing (READDIRs and the STATs of symbolic links) is done within `ms`, as one request was, and
 * is bounded by the listing caps (common/listing.ts): a server that never ends it costs a
 * 'protocol' error, not the agent's memory.
 */
export async function listDir(conn: Connection, dir: string, ms: number, signal: AbortSignal): Promise<RemoteEntry[]> {
  const what = `list ${dir}`;
  return withDeadline(what, ms, signal, (sig) => listWithin(conn, dir, what, ms, sig));
}

async function listWithin(
  conn: Connection,
  dir: string,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<RemoteEntry[]> {
  let items: FileEntry[];
  try {
    items = await readDir(conn, dir, what, ms, signal);
  } catch (err) {
    if (sftpStatus(err) !== SSH_FX.NO_SUCH_FILE) throw err;
    try {
      await ensureDir(conn, dir, ms, signal);
    } catch (mkErr) {
      const e = mkErr instanceof TransportError ? mkErr : classify(mkErr, what, 'meta');
      if (e.code === 'timeout' || e.code === 'aborted' || e.code === 'network') throw e;
      const detail = `${what}: the directory is missing and could not be created: ${e.message}`;
      throw new TransportError('unavailable', detail, { cause: e });
    }
    return [];
  }
  const entries: RemoteEntry[] = [];
  for (const item of items) {
    if (!isVisible(item.filename)) continue;
    let attrs: { mode?: number; size?: number; mtime?: number } = item.attrs;
    if (isLink(attrs)) {
      // a symlink to a file is a file; to a directory, or dangling, it is skipped
      const target = await statOrNull(conn, path.posix.join(dir, item.filename), what, ms, signal);
      if (!target) continue;
      attrs = target;
    }
    const regular = attrs.mode === undefined ? item.longname.startsWith('-') : isFile(attrs);
    if (!regular || typeof attrs.size !== 'number') continue;
    const entry: RemoteEntry = { name: item.filename, size: attrs.size, ref: item.filename };
    if (typeof attrs.mtime === 'number') entry.modifiedAt = new Date(attrs.mtime * 1000);
    entries.push(entry);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The folders directly inside `dir` (Source.folders): OPENDIR, READDIR until EOF, CLOSE, and a STAT
 * only for a symbolic link (a link whose target is a folder counts; to a file, or dangling, not).
 * Names by the common folder rule, sorted. A missing `dir` is [] and is not created. All of it
 * within `ms`, bounded by the listing caps, as `listDir`.
 */
export async function listFolders(conn: Connection, dir: string, ms: number, signal: AbortSignal): Promise<string[]> {
  const what = `list the folders of ${dir}`;
  return withDeadline(what, ms, signal, async (sig) => {
    let items: FileEntry[];
    try {
      items = await readDir(conn, dir, what, ms, sig);
    } catch (err) {
      if (sftpStatus(err) === SSH_FX.NO_SUCH_FILE) return [];
      throw err;
    }
    const names: string[] = [];
    for (const item of items) {
      if (!isFolderName(item.filename)) continue;
      let attrs: { mode?: number } = item.attrs;
      if (isLink(attrs)) {
        const target = await statOrNull(conn, path.posix.join(dir, item.filename), what, ms, sig);
        if (!target) continue;
        attrs = target;
      }
      if (attrs.mode === undefined ? item.longname.startsWith('d') : isDir(attrs)) names.push(item.filename);
    }
    return sortedNames(names);
  });
}

/**
 * OPENDIR, READDIR until EOF, CLOSE: the visible entries (no `.part`, no probe files). ssh2's own
 * readdir(path) collects every batch until EOF, however many come; here each batch is counted
 * against the listing caps first, and the handle is closed whichever way it ends.
 */
async function readDir(
  conn: Connection,
  dir: string,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<FileEntry[]> {
  const handle = await conn.call<Buffer>(what, ms, signal, 'meta', (s, cb) => s.opendir(dir, cb));
  const budget = new ListingBudget(`SFTP listing of ${dir}`);
  const kept: FileEntry[] = [];
  try {
    for (;;) {
      const batch = await conn.call<FileEntry[] | null>(what, ms, signal, 'meta', (s, cb) =>
        s.readdir(handle, (err, list) => (sftpStatus(err) === SSH_FX.EOF ? cb(undefined, null) : cb(err, list))),
      );
      if (batch === null) return kept;
      let bytes = 0;
      for (const item of batch) bytes += Buffer.byteLength(item.filename) + Buffer.byteLength(item.longname);
      budget.take(batch.length, bytes);
      for (const item of batch) if (isVisible(item.filename)) kept.push(item);
    }
  } finally {
    // not waited for: the answer changes nothing, and the next request queues behind it anyway
    void conn.closeHandleQuietly(handle);
  }
}

/** A name in `dir` nothing has yet: a move never replaces what is there. */
export async function freeName(
  conn: Connection,
  dir: string,
  name: string,
  what: string,
  ms: number,
  signal: AbortSignal,
): Promise<string> {
  return firstFree(
    name,
    async (candidate) => {
      const st = await conn.call<SftpStats | null>(what, ms, signal, 'meta', (s, cb) =>
        s.lstat(path.posix.join(dir, candidate), (err, stats) =>
          sftpStatus(err) === SSH_FX.NO_SUCH_FILE ? cb(undefined, null) : cb(err, stats),
        ),
      );
      return st !== null;
    },
    dir,
  );
}
