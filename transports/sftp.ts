// The `sftp` transport (ssh2-sftp-client over ssh2): one SSH connection per route per cycle, the
// server's host key pinned by its SHA-256 fingerprint, `.part` then rename on the way out, and a
// deadline on every request, since an SFTP request the server never answers is never answered.
//
// ssh2-sftp-client owns connecting and ending (and its listeners keep ssh2's 'error' events from
// becoming uncaught exceptions, #579). The file operations go to ssh2's SFTP channel underneath it,
// because the wrapper's helpers lose what this transport needs: its `put` closes the handle itself
// (no fsync@openssh.com on it) and fchmods the new file to 0666, `stat` reports FAILURE as a missing
// file, `mkdir` reports FAILURE as permission denied, and its messages flatten the SFTP status.
// Uploads are still a plain sequential stream of WRITEs (never fastPut's parallel writes).
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { Client, ConnectConfig, FileEntry, SFTPWrapper, Stats as SftpStats } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { IdleWatch, formatMs, withDeadline } from './deadline.js';
import {
  TransportError,
  errnoCode,
  fromSystemError,
  isAbortError,
  LOGIN_REFUSED,
  missingInFolder,
  networkWords,
  type TransportErrorCode,
} from './errors.js';
import type {
  Endpoint,
  OutgoingPackage,
  ProbeStep,
  PutResult,
  RemoteEntry,
  SftpProfile,
  Sink,
  Source,
  Transport,
} from './types.js';

const PART = '.part';
const HIDDEN_PREFIX = '.sprelay-';
/** ssh2 sends no keepalive unless asked: a dead peer is noticed after interval x (countMax + 1). */
const KEEPALIVE_INTERVAL_MS = 10_000;
const KEEPALIVE_COUNT_MAX = 3;
/** Mode asked for when creating a file (the server's umask still applies). */
const FILE_MODE = 0o644;
/** How long close() waits for a polite goodbye before it cuts the socket. */
const CLOSE_GRACE_MS = 2000;
/** Cleanup after a failed put (close the handle, remove the `.part`) never takes longer than this. */
const CLEANUP_MS = 2000;

// SFTP v3 status codes (ssh2 is a dependency of ssh2-sftp-client, not of ours: no runtime import)
const SSH_FX = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** FAILURE messages of servers that say why (ProFTPD, Bitvise, ...); OpenSSH only says "Failure". */
const NO_SPACE_RE = /no space|disk full|quota|ENOSPC|EDQUOT|insufficient (disk )?space/i;

/** What a failed request was doing: decides how an SFTP FAILURE status reads. */
type RequestKind = 'read' | 'write' | 'meta';

const neverAborted = new AbortController().signal;

export function createSftpTransport(profile: SftpProfile): Transport {
  const label = `${profile.user}@${profile.host}:${profile.port}`;
  const secrets = [profile.password, profile.passphrase, profile.privateKey].filter(
    (s): s is string => typeof s === 'string' && s.length >= 4,
  );

  /** No password, passphrase or key text in a message, whatever a library put there. */
  function scrub(err: unknown, what: string): TransportError {
    const e = err instanceof TransportError ? err : classify(err, what, 'meta');
    if (!secrets.some((s) => e.message.includes(s))) return e;
    let message = e.message;
    for (const s of secrets) message = message.split(s).join('***');
    return new TransportError(e.code, message); // the cause may carry the secret too: dropped
  }

  const connect = (ms: number, signal: AbortSignal, progress = newProgress()) =>
    Connection.open(profile, label, ms, signal, progress);

  // ---- out -------------------------------------------------------------------------------------

  async function put(
    conn: Connection,
    ep: Endpoint,
    dir: string,
    pkg: OutgoingPackage,
    signal: AbortSignal,
  ): Promise<PutResult> {
    const ms = ep.timeoutMs;
    const name = plainName(pkg.name, 'package name', true);
    const what = `put ${name}`;
    const final = path.posix.join(dir, name);
    const part = final + PART;
    let wrotePart = false;
    try {
      if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
      await ensureDir(conn, dir, ms, signal);
      const existing = await statOrNull(conn, final, `${what}: stat ${final}`, ms, signal);
      let gone = false;
      if (existing) {
        if (notAFile(existing)) throw new TransportError('exists', `${what}: ${final} exists and is not a file`);
        let unreadable = false;
        if (existing.size === pkg.size) {
          // drop boxes often let us write but not read: then identity cannot be shown
          const sha = await hashRemote(conn, final, `${what}: read back ${final}`, ms, signal).catch((err: unknown) => {
            // taken away by its reader while we looked (the office imported it): write ours
            if (sftpStatus(err) === SSH_FX.NO_SUCH_FILE) gone = true;
            else if (sftpStatus(err) === SSH_FX.PERMISSION_DENIED) unreadable = true;
            else throw err;
          });
          if (sha === pkg.sha256.toLowerCase()) return { remoteRef: final, alreadyPresent: true };
        }
        if (!gone && !ep.overwrite) {
          const why = unreadable ? 'is already there and cannot be read back to compare' : 'is already there';
          throw new TransportError('exists', `${what}: a different ${final} ${why}`);
        }
      }
      wrotePart = true;
      await writePart(conn, part, pkg, what, ms, signal);
      await moveIntoPlace(conn, part, final, ep.overwrite, what, ms, signal);
      wrotePart = false;
      return { remoteRef: final, alreadyPresent: false };
    } catch (err) {
      const e = scrub(err, what);
      if (e.code === 'aborted') conn.kill(e);
      if (wrotePart) await conn.removeQuietly(part); // best effort: a `.part` is invisible and overwritten next time
      throw e;
    }
  }

  /** Streams the package into `part` with sequential WRITEs, fsyncs it where offered, checks the size. */
  async function writePart(
    conn: Connection,
    part: string,
    pkg: OutgoingPackage,
    what: string,
    ms: number,
    signal: AbortSignal,
  ): Promise<void> {
    const handle = await conn.call<Buffer>(`${what}: create ${part}`, ms, signal, 'write', (s, cb) =>
      s.open(part, 'w', { mode: FILE_MODE }, cb),
    );
    let open = true;
    try {
      let source: Readable;
      try {
        source = pkg.open();
      } catch (err) {
        throw localReadError(err, what);
      }
      const hash = createHash('sha256');
      let written = 0;
      // One WRITE at a time, each under its own deadline: a server that stops acknowledging costs
      // one timeout, and the offsets are always in order (what fastPut does not promise).
      for await (const chunk of watched(source, what, ms, signal, (err) => localReadError(err, what))) {
        const buf = chunk as Buffer;
        hash.update(buf);
        const at = written;
        await conn.call<void>(`${what}: write`, ms, signal, 'write', (s, cb) =>
          s.write(handle, buf, 0, buf.length, at, (err) => cb(err)),
        );
        written += buf.length;
      }
      if (written !== pkg.size) {
        throw new TransportError('corrupt', `${what}: the package gave ${written} bytes, ${pkg.size} expected`);
      }
      if (hash.digest('hex') !== pkg.sha256.toLowerCase()) {
        throw new TransportError('corrupt', `${what}: the package bytes do not match its SHA-256`);
      }
      if (conn.canFsync) {
        await conn.call<void>(`${what}: fsync`, ms, signal, 'write', (s, cb) =>
          s.ext_openssh_fsync(handle, (err) => cb(err)),
        );
      }
      const st = await conn.call<SftpStats>(`${what}: stat ${part}`, ms, signal, 'meta', (s, cb) =>
        s.fstat(handle, cb),
      );
      if (st.size !== pkg.size) {
        throw new TransportError('corrupt', `${what}: ${st.size} bytes on the server, ${pkg.size} written`);
      }
      open = false;
      // some servers report a failed write only at CLOSE: it counts
      await conn.call<void>(`${what}: close ${part}`, ms, signal, 'write', (s, cb) => s.close(handle, cb));
    } catch (err) {
      // shutting down: no cleanup round trips, the connection goes (a `.part` may stay behind)
      if (signal.aborted || (err instanceof TransportError && err.code === 'aborted')) {
        conn.kill(err instanceof TransportError ? err : new TransportError('aborted', `${what}: aborted`));
      }
      throw err;
    } finally {
      if (open) await conn.closeHandleQuietly(handle);
    }
  }

  /**
   * `part` -> `final`. posix-rename@openssh.com replaces atomically. Without it (SFTP v3 RENAME
   * refuses an existing target on most servers) an overwrite is delete-then-rename, which costs a
   * moment in which `final` does not exist at all (a reader polling then sees it vanish and come
   * back), and a crash in that moment leaves only `NAME.part`: the old bytes are gone (overwrite
   * asked for that) and the package is still in our spool, so the retry puts it again.
   */
  async function moveIntoPlace(
    conn: Connection,
    part: string,
    final: string,
    overwrite: boolean,
    what: string,
    ms: number,
    signal: AbortSignal,
  ): Promise<void> {
    const rename = () =>
      conn.call<void>(`${what}: rename to ${final}`, ms, signal, 'meta', (s, cb) => s.rename(part, final, cb));
    if (conn.canPosixRename) {
      await conn.call<void>(`${what}: rename to ${final}`, ms, signal, 'meta', (s, cb) =>
        s.ext_openssh_rename(part, final, cb),
      );
      return;
    }
    try {
      await rename();
    } catch (err) {
      if (sftpStatus(err) !== SSH_FX.FAILURE) throw err;
      const there = await statOrNull(conn, final, `${what}: stat ${final}`, ms, signal);
      if (!there) throw err;
      if (!overwrite) throw new TransportError('exists', `${what}: ${final} appeared while uploading`);
      await conn.call<void>(`${what}: remove old ${final}`, ms, signal, 'meta', (s, cb) => s.unlink(final, cb));
      await rename();
    }
  }

  async function openSink(ep: Endpoint, signal: AbortSignal): Promise<Sink> {
    const dir = remoteDir(ep.remote, 'remote');
    let conn: Connection | undefined;
    try {
      conn = await connect(ep.timeoutMs, signal);
      await ensureDir(conn, dir, ep.timeoutMs, signal);
    } catch (err) {
      await conn?.close();
      throw scrub(err, `open ${dir}`);
    }
    const c = conn;
    return {
      put: (pkg: OutgoingPackage, sig: AbortSignal) => put(c, ep, dir, pkg, sig),
      close: () => c.close(),
    } satisfies Sink;
  }

  // ---- in --------------------------------------------------------------------------------------

  async function listDir(conn: Connection, dir: string, ms: number, signal: AbortSignal): Promise<RemoteEntry[]> {
    const what = `list ${dir}`;
    let items: FileEntry[];
    try {
      items = await conn.call<FileEntry[]>(what, ms, signal, 'meta', (s, cb) => s.readdir(dir, cb));
    } catch (err) {
      if (sftpStatus(err) !== SSH_FX.NO_SUCH_FILE) throw err;
      try {
        await ensureDir(conn, dir, ms, signal);
      } catch (mkErr) {
        const e = scrub(mkErr, what);
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

  async function openSource(ep: Endpoint, signal: AbortSignal): Promise<Source> {
    const dir = remoteDir(ep.remote, 'remote');
    const moveDir = ep.afterReceive.kind === 'move' ? remoteDir(ep.afterReceive.to, 'move target') : null;
    // moving into the listed directory would hand the same file back next cycle, forever
    if (moveDir !== null && moveDir === dir) {
      throw new TransportError('invalid-name', `move target ${JSON.stringify(moveDir)} is the remote directory itself`);
    }
    const ms = ep.timeoutMs;
    let conn: Connection;
    try {
      conn = await connect(ms, signal);
    } catch (err) {
      throw scrub(err, `open ${dir}`);
    }

    const source = {
      async list(sig: AbortSignal): Promise<RemoteEntry[]> {
        try {
          return await listDir(conn, dir, ms, sig);
        } catch (err) {
          throw scrub(err, `list ${dir}`);
        }
      },

      async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
        const name = plainName(entry.ref, 'entry');
        const file = path.posix.join(dir, name);
        const what = `read ${file}`;
        try {
          const handle = await conn.call<Buffer>(what, ms, sig, 'read', (s, cb) => s.open(file, 'r', cb));
          let st: SftpStats;
          try {
            st = await conn.call<SftpStats>(what, ms, sig, 'read', (s, cb) => s.fstat(handle, cb));
          } catch (err) {
            await conn.closeHandleQuietly(handle);
            throw err;
          }
          if (notAFile(st) || st.size !== entry.size) {
            await conn.closeHandleQuietly(handle);
            if (notAFile(st)) throw new TransportError('not-found', `${what}: not a file`);
            throw new TransportError(
              'busy',
              `${what}: ${st.size} bytes now, ${entry.size} when listed (still changing)`,
            );
          }
          return conn.readStream(file, handle, entry.size, what, ms, sig);
        } catch (err) {
          throw scrub(err, what);
        }
      },

      async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
        const name = plainName(entry.ref, 'entry');
        const file = path.posix.join(dir, name);
        const what = `acknowledge ${file}`;
        try {
          if (moveDir === null) {
            try {
              await conn.call<void>(what, ms, sig, 'meta', (s, cb) => s.unlink(file, cb));
            } catch (err) {
              if (sftpStatus(err) !== SSH_FX.NO_SUCH_FILE) throw err; // gone already: done
            }
            return;
          }
          await ensureDir(conn, moveDir, ms, sig);
          for (let attempt = 0; ; attempt++) {
            if (!(await statOrNull(conn, file, what, ms, sig))) return; // gone already: done
            const target = path.posix.join(moveDir, await freeName(conn, moveDir, name, what, ms, sig));
            try {
              // plain RENAME on purpose: it never replaces what is at the target
              await conn.call<void>(`${what}: move to ${target}`, ms, sig, 'meta', (s, cb) =>
                s.rename(file, target, cb),
              );
              return;
            } catch (err) {
              const status = sftpStatus(err);
              if (status === SSH_FX.NO_SUCH_FILE && !(await statOrNull(conn, file, what, ms, sig))) return;
              // FAILURE: the free name was taken in the meantime; look again
              if (status !== SSH_FX.FAILURE || attempt >= 2) throw err;
            }
          }
        } catch (err) {
          throw scrub(err, what);
        }
      },

      close: () => conn.close(),
    } satisfies Source;
    return source;
  }

  /** `NAME.ext`, else `NAME (2).ext`, `NAME (3).ext`...: a move never replaces what is there. */
  async function freeName(
    conn: Connection,
    dir: string,
    name: string,
    what: string,
    ms: number,
    signal: AbortSignal,
  ): Promise<string> {
    const ext = path.posix.extname(name);
    const stem = name.slice(0, name.length - ext.length);
    for (let n = 1; ; n++) {
      const candidate = n === 1 ? name : `${stem} (${n})${ext}`;
      const st = await conn.call<SftpStats | null>(what, ms, signal, 'meta', (s, cb) =>
        s.lstat(path.posix.join(dir, candidate), (err, stats) =>
          sftpStatus(err) === SSH_FX.NO_SUCH_FILE ? cb(undefined, null) : cb(err, stats),
        ),
      );
      if (!st) return candidate;
    }
  }

  // ---- check -----------------------------------------------------------------------------------

  async function probe(ep: Endpoint, direction: 'in' | 'out', signal: AbortSignal): Promise<ProbeStep[]> {
    const ms = ep.timeoutMs;
    const steps: ProbeStep[] = [];
    const failed = (step: string, err: unknown) => {
      const e = scrub(err, step);
      steps.push({ step, ok: false, detail: e.message, code: e.code });
    };
    const step = async (name: string, fn: () => Promise<string | undefined>): Promise<boolean> => {
      try {
        const detail = await fn();
        steps.push(detail === undefined ? { step: name, ok: true } : { step: name, ok: true, detail });
        return true;
      } catch (err) {
        failed(name, err);
        return false;
      }
    };

    let dir: string;
    let moveDir: string | null;
    try {
      dir = remoteDir(ep.remote, 'remote');
      moveDir = ep.afterReceive.kind === 'move' ? remoteDir(ep.afterReceive.to, 'move target') : null;
    } catch (err) {
      failed('remote path', err);
      return steps;
    }

    const progress = newProgress();
    let conn: Connection;
    try {
      conn = await connect(ms, signal, progress);
    } catch (err) {
      // one connect, reported as the steps it went through: the first one not reached failed
      if (progress.offered === undefined && scrub(err, 'connect').code === 'auth') {
        failed('authenticate', err); // the key could not be read: nothing was sent anywhere
        return steps;
      }
      const phases: Array<[string, boolean, string]> = [
        ['connect', progress.offered !== undefined, `${profile.host}:${profile.port}`],
        ['host key', progress.hostKeyOk, hostKeyDetail(progress)],
        ['authenticate', progress.authenticated, `as ${profile.user}`],
        ['start sftp', false, ''],
      ];
      for (const [name, ok, detail] of phases) {
        if (!ok) {
          failed(name, err);
          break;
        }
        steps.push({ step: name, ok: true, detail });
      }
      return steps;
    }
    steps.push({ step: 'connect', ok: true, detail: `${profile.host}:${profile.port}` });
    steps.push({ step: 'host key', ok: true, detail: hostKeyDetail(progress) });
    steps.push({ step: 'authenticate', ok: true, detail: `as ${profile.user}` });

    const probeName = `${HIDDEN_PREFIX}probe-${randomBytes(6).toString('hex')}${PART}`;
    const probeFile = path.posix.join(dir, probeName);
    try {
      if (
        !(await step('list remote', async () => {
          const before = await statOrNull(conn, dir, `stat ${dir}`, ms, signal);
          // an in-route never creates its remote folder: a typo there would be polled forever
          if (!before && direction === 'in') throw missingInFolder(dir);
          await ensureDir(conn, dir, ms, signal);
          const entries = await listDir(conn, dir, ms, signal);
          return `${entries.length} file(s) in ${dir}${before ? '' : ' (created: it was not there)'}`;
        }))
      ) {
        return steps;
      }
      const written = await step('write probe file', async () => {
        const handle = await conn.call<Buffer>('write probe file', ms, signal, 'write', (s, cb) =>
          s.open(probeFile, 'wx', { mode: FILE_MODE }, cb),
        );
        let open = true;
        try {
          const bytes = Buffer.from('sprelay probe\n');
          await conn.call<void>('write probe file', ms, signal, 'write', (s, cb) =>
            s.write(handle, bytes, 0, bytes.length, 0, (err) => cb(err)),
          );
          if (conn.canFsync) {
            await conn.call<void>('write probe file: fsync', ms, signal, 'write', (s, cb) =>
              s.ext_openssh_fsync(handle, (err) => cb(err)),
            );
          }
          open = false;
          await conn.call<void>('write probe file: close', ms, signal, 'write', (s, cb) => s.close(handle, cb));
        } finally {
          if (open) await conn.closeHandleQuietly(handle);
        }
        const extensions = [conn.canFsync && 'fsync', conn.canPosixRename && 'posix-rename'].filter(Boolean);
        return `${probeName} (server offers ${extensions.length ? extensions.join(', ') : 'no fsync, no posix-rename'})`;
      });
      if (!written) {
        await conn.removeQuietly(probeFile);
        return steps;
      }
      const removed = await step('remove probe file', async () => {
        await conn.call<void>('remove probe file', ms, signal, 'meta', (s, cb) => s.unlink(probeFile, cb));
        return undefined;
      });
      if (!removed) await conn.removeQuietly(probeFile);
      if (removed && direction === 'in' && moveDir !== null) {
        const to = moveDir;
        await step('move target reachable', async () => {
          if (to === dir)
            throw new TransportError(
              'invalid-name',
              `move target ${JSON.stringify(to)} is the remote directory itself`,
            );
          await ensureDir(conn, to, ms, signal);
          return to;
        });
      }
      return steps;
    } finally {
      await conn.close();
    }
  }

  function hostKeyDetail(progress: ConnectProgress): string {
    return profile.hostKey === 'any'
      ? `${progress.offered} accepted without a check (hostKey: any); pin it with hostKey: ${progress.offered}`
      : `${progress.offered} matches the pinned key`;
  }

  return { kind: 'sftp', openSink, openSource, probe } satisfies Transport;
}

// ---- the connection ----------------------------------------------------------------------------

interface ConnectProgress {
  /** Fingerprint of the host key the server offered, once it has. */
  offered?: string;
  hostKeyOk: boolean;
  authenticated: boolean;
}

const newProgress = (): ConnectProgress => ({ hostKeyOk: false, authenticated: false });

/** `SHA256:<base64 without padding>` of a host key blob, as `ssh-keygen -l` prints it. */
export function hostKeyFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

type Level = 'client-authentication' | 'client-timeout' | 'client-socket' | 'client-dns' | 'handshake' | 'protocol';

/**
 * One SSH connection with its SFTP channel. Once it is lost (network, keepalive, or killed after a
 * timeout) every request fails at once with a retryable TransportError('network'); it never comes back.
 */
class Connection {
  private lost: TransportError | undefined;
  private closing: Promise<void> | undefined;
  private readonly waiters = new Set<(err: TransportError) => void>();
  readonly canFsync: boolean;
  readonly canPosixRename: boolean;

  private constructor(
    private readonly client: SftpClient,
    private readonly raw: Client,
    private readonly sftp: SFTPWrapper,
    private readonly label: string,
  ) {
    const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
    this.canFsync = extensions['fsync@openssh.com'] === '1';
    this.canPosixRename = extensions['posix-rename@openssh.com'] === '1';
    // The SFTP channel emits 'error' on a malformed packet and nobody else listens for it there.
    sftp.on('error', (err: Error) => this.markLost(`SFTP channel failed: ${err.message}`));
    sftp.on('close', () => this.markLost('SFTP channel closed'));
  }

  static async open(
    profile: SftpProfile,
    label: string,
    ms: number,
    signal: AbortSignal,
    progress: ConnectProgress,
  ): Promise<Connection> {
    // Our own callbacks: the defaults print to the console.
    const client = new SftpClient('sprelay', { error: () => undefined, end: () => undefined, close: () => undefined });
    const raw = (client as unknown as { client: Client }).client;
    let lastError: (Error & { level?: Level; code?: unknown }) | undefined;
    let conn: Connection | undefined;
    raw.on('error', (err: Error) => {
      lastError = err;
      conn?.markLost(err.message);
    });
    let closedEarly = false; // between the library's resolve and our constructor
    raw.on('end', () => conn?.markLost('the server ended the connection'));
    raw.on('close', () => {
      closedEarly = true;
      conn?.markLost('the connection closed');
    });
    raw.on('ready', () => (progress.authenticated = true));
    // ssh2 leaves Nagle on: every request/answer round trip then waits for delayed ACKs (~90 ms
    // each on loopback, a connect took ~500 ms instead of ~15 ms)
    raw.on('connect', () => raw.setNoDelay(true));

    const config: ConnectConfig = {
      host: profile.host,
      port: profile.port,
      username: profile.user,
      readyTimeout: ms,
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      hostVerifier: (key: Buffer) => {
        const offered = hostKeyFingerprint(key);
        progress.offered = offered;
        progress.hostKeyOk = hostKeyMatches(profile.hostKey, offered);
        return progress.hostKeyOk;
      },
    };
    if (profile.password !== undefined) config.password = profile.password;
    if (profile.privateKey !== undefined) config.privateKey = profile.privateKey;
    if (profile.passphrase !== undefined) config.passphrase = profile.passphrase;

    try {
      const sftp = await withDeadline(`connect to ${label}`, ms, signal, () => client.connect(config));
      conn = new Connection(client, raw, sftp, label);
      if (closedEarly) conn.markLost('the connection closed');
      return conn;
    } catch (err) {
      hardClose(raw);
      throw connectError(err, lastError, profile, label, progress, ms);
    }
  }

  /** Runs one SFTP request under the deadline; a timeout or abort ends the connection. */
  async call<T>(
    what: string,
    ms: number,
    signal: AbortSignal,
    kind: RequestKind,
    fn: (sftp: SFTPWrapper, cb: (err: Error | null | undefined, value?: T) => void) => void,
  ): Promise<T> {
    if (this.lost) throw new TransportError('network', `${what}: ${this.lost.message}`);
    try {
      return await withDeadline(
        what,
        ms,
        signal,
        () =>
          new Promise<T>((resolve, reject) => {
            const onLost = (err: TransportError) => reject(err);
            this.waiters.add(onLost);
            const done = (err: Error | null | undefined, value?: T) => {
              this.waiters.delete(onLost);
              if (err) reject(err);
              else resolve(value as T);
            };
            try {
              fn(this.sftp, done);
            } catch (err) {
              done(err as Error);
            }
          }),
      );
    } catch (err) {
      throw this.failure(err, what, kind);
    }
  }

  /** Maps a failure of a request on this connection; timeouts and aborts end the connection. */
  failure(err: unknown, what: string, kind: RequestKind): TransportError {
    if (err instanceof TransportError) {
      if (err.code === 'timeout' || err.code === 'aborted') this.kill(err);
      if (err.code === 'network' && this.lost && !err.message.startsWith(what)) {
        return new TransportError('network', `${what}: ${err.message}`, { cause: err });
      }
      return err;
    }
    if (this.lost) return new TransportError('network', `${what}: ${this.lost.message}`, { cause: err });
    return classify(err, what, kind);
  }

  /**
   * The entry's bytes: exactly `size` of them or an error, a stalled server costs a 'timeout' (and
   * the connection), and the handle is closed whichever way the reader stops.
   */
  readStream(file: string, handle: Buffer, size: number, what: string, ms: number, signal: AbortSignal): Readable {
    const remote = this.sftp.createReadStream(file, { handle, autoClose: true });
    const counted = exactLength(size, what);
    remote.on('error', (err: Error) => counted.destroy(this.failure(err, what, 'read')));
    counted.on('close', () => remote.destroy());
    const stream = watched(remote.pipe(counted), what, ms, signal);
    stream.on('error', (err) => {
      if (err instanceof TransportError && (err.code === 'timeout' || err.code === 'aborted')) this.kill(err);
    });
    return stream;
  }

  async closeHandleQuietly(handle: Buffer): Promise<void> {
    if (this.lost) return;
    try {
      await this.call<void>('close handle', CLEANUP_MS, neverAborted, 'meta', (s, cb) => s.close(handle, cb));
    } catch {
      // the error that got us here is the one worth reporting
    }
  }

  async removeQuietly(file: string): Promise<void> {
    if (this.lost) return;
    try {
      await this.call<void>(`remove ${file}`, CLEANUP_MS, neverAborted, 'meta', (s, cb) => s.unlink(file, cb));
    } catch {
      // best effort: a `.part` left behind is invisible to readers and overwritten next time
    }
  }

  markLost(reason: string): void {
    if (this.lost) return;
    this.lost = new TransportError('network', `connection to ${this.label} lost: ${reason}`);
    for (const w of this.waiters) w(this.lost);
    this.waiters.clear();
    hardClose(this.raw);
  }

  /** Ends the connection at once: after a timeout or an abort nothing may be left waiting on it. */
  kill(reason: TransportError): void {
    if (this.lost) return;
    this.markLost(`closed after: ${reason.message}`);
  }

  /** Polite goodbye, cut short after CLOSE_GRACE_MS. Never throws; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.lost) {
        this.lost = new TransportError('network', `connection to ${this.label} was closed`);
        for (const w of this.waiters) w(this.lost);
        this.waiters.clear();
        try {
          await withDeadline('close', CLOSE_GRACE_MS, neverAborted, () => this.client.end());
        } catch {
          // cut below
        }
      }
      hardClose(this.raw);
    })();
    return this.closing;
  }
}

/** Destroys the socket, also when ssh2 has already half-closed it (its destroy() then does nothing). */
function hardClose(raw: Client): void {
  try {
    raw.destroy();
    (raw as unknown as { _sock?: Socket })._sock?.destroy();
  } catch {
    // nothing left to close
  }
}

function hostKeyMatches(pin: string, offered: string): boolean {
  if (pin === 'any') return true;
  if (!pin.startsWith('SHA256:')) return false;
  return pin.replace(/=+$/, '') === offered;
}

function connectError(
  err: unknown,
  lastError: (Error & { level?: Level; code?: unknown }) | undefined,
  profile: SftpProfile,
  label: string,
  progress: ConnectProgress,
  ms: number,
): TransportError {
  if (progress.offered !== undefined && !progress.hostKeyOk)
    return hostKeyError(profile.hostKey, progress.offered, label);
  if (err instanceof TransportError) {
    if (err.code !== 'timeout') return err;
    const stage =
      progress.offered === undefined
        ? 'no SSH handshake'
        : progress.authenticated
          ? 'the SFTP subsystem did not start'
          : 'no answer to authentication';
    return new TransportError('timeout', `connect to ${label}: ${stage} within ${formatMs(ms)}`, { cause: err });
  }
  const e = (lastError ?? err) as Error & { level?: Level; code?: unknown };
  const detail = e instanceof Error ? e.message : String(e);
  const errno = errnoCode(e) ?? errnoCode(err);
  if (e.level === 'client-authentication' || /authentication methods failed/i.test(detail)) {
    const methods = [profile.password !== undefined && 'password', profile.privateKey !== undefined && 'private key']
      .filter(Boolean)
      .join(', ');
    return new TransportError('auth', `connect to ${label}: ${LOGIN_REFUSED} (tried: ${methods || 'none'})`, {
      cause: err,
    });
  }
  if (/privateKey|private key|passphrase|decrypt/i.test(detail) && !progress.offered) {
    return new TransportError('auth', `connect to ${label}: the private key cannot be used: ${detail}`);
  }
  if (e.level === 'client-timeout')
    return new TransportError('timeout', `connect to ${label}: ${detail}`, { cause: err });
  if (e.level === 'client-dns' || errno === 'ENOTFOUND' || errno === 'EAI_AGAIN') {
    return new TransportError('dns', `connect to ${label}: ${networkWords('ENOTFOUND', { hostname: profile.host })}`, {
      cause: err,
    });
  }
  if (errno && errno !== 'ERR_GENERIC_CLIENT') return fromSystemError(e, `connect to ${label}`);
  if (e.level === 'handshake') {
    // no common algorithm and the like: the server must change, retrying will not help
    return new TransportError('protocol', `connect to ${label}: SSH handshake failed: ${detail}`, { cause: err });
  }
  return new TransportError('network', `connect to ${label}: ${detail}`, { cause: err });
}

function hostKeyError(pin: string, offered: string, label: string): TransportError {
  if (pin.trim() === '') {
    return new TransportError(
      'host-key',
      `host key of ${label} is not pinned: the server offered ${offered}. Confirm it with the server's ` +
        `administrator, then set hostKey: ${offered} in the profile`,
    );
  }
  if (pin !== 'any' && !pin.startsWith('SHA256:')) {
    return new TransportError(
      'host-key',
      `hostKey ${JSON.stringify(pin)} is not a SHA256:<base64> fingerprint (nor the word any); ` +
        `the server ${label} offered ${offered}`,
    );
  }
  return new TransportError(
    'host-key',
    `host key of ${label} does not match: the server offered ${offered}, the profile pins ${pin}. ` +
      `If the server's key was changed on purpose, update hostKey; otherwise the connection may be intercepted`,
  );
}

/** The SFTP status of a failure (numeric `code` of ssh2's error), through a TransportError's cause. */
function sftpStatus(err: unknown): number | undefined {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

function classify(err: unknown, what: string, kind: RequestKind): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  const detail = err instanceof Error ? err.message : String(err);
  const status = (err as { code?: unknown } | null)?.code;
  if (typeof status === 'number') {
    const said = `${what}: ${detail} (SFTP status ${status})`;
    let code: TransportErrorCode;
    switch (status) {
      case SSH_FX.NO_SUCH_FILE:
        code = 'not-found';
        break;
      case SSH_FX.PERMISSION_DENIED:
        code = 'permission';
        break;
      case SSH_FX.FAILURE:
        if (NO_SPACE_RE.test(detail)) code = 'no-space';
        else if (kind === 'write') {
          // OpenSSH answers ENOSPC, EDQUOT and EIO alike with a bare "Failure"
          return new TransportError(
            'unavailable',
            `${said}: the server refused the write without saying why (a full disk or quota on OpenSSH)`,
            { cause: err },
          );
        } else code = 'unavailable';
        break;
      case SSH_FX.NO_CONNECTION:
      case SSH_FX.CONNECTION_LOST:
        code = 'network';
        break;
      case SSH_FX.OP_UNSUPPORTED:
        code = 'unsupported';
        break;
      default:
        code = 'protocol';
    }
    return new TransportError(code, said, { cause: err });
  }
  if (detail === 'No response from server') {
    return new TransportError('network', `${what}: the connection closed before the server answered`, { cause: err });
  }
  if (errnoCode(err)) return fromSystemError(err, what);
  return new TransportError('protocol', `${what}: ${detail}`, { cause: err });
}

// ---- directories -------------------------------------------------------------------------------

/** `remote` / `move:` as an SFTP path: `/`-separated, normalized, '' = the login directory. */
function remoteDir(remote: string, what: string): string {
  if (remote.includes('\0')) throw new TransportError('invalid-name', `${what} ${JSON.stringify(remote)} refused`);
  // SFTP paths are always `/`-separated, also on Windows servers
  const norm = path.posix.normalize(remote.replace(/\\/g, '/') || '.');
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

async function statOrNull(
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
async function ensureDir(conn: Connection, dir: string, ms: number, signal: AbortSignal): Promise<void> {
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

async function hashRemote(conn: Connection, file: string, what: string, ms: number, signal: AbortSignal) {
  const handle = await conn.call<Buffer>(what, ms, signal, 'read', (s, cb) => s.open(file, 'r', cb));
  const st = await conn
    .call<SftpStats>(what, ms, signal, 'read', (s, cb) => s.fstat(handle, cb))
    .catch(async (err) => {
      await conn.closeHandleQuietly(handle);
      throw err;
    });
  const hash = createHash('sha256');
  for await (const chunk of conn.readStream(file, handle, st.size, what, ms, signal)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const modeIs = (attrs: { mode?: number }, type: number) =>
  typeof attrs.mode === 'number' && (attrs.mode & S_IFMT) === type;
const isFile = (attrs: { mode?: number }) => modeIs(attrs, S_IFREG);
const isDir = (attrs: { mode?: number }) => modeIs(attrs, S_IFDIR);
const isLink = (attrs: { mode?: number }) => modeIs(attrs, S_IFLNK);
/** Only when the server says so: some servers send no permissions at all. */
const notAFile = (attrs: { mode?: number }) => typeof attrs.mode === 'number' && !isFile(attrs);

// ---- names -------------------------------------------------------------------------------------

/** A name listing shows: not a transfer in progress, not one of our own probe files. */
function isVisible(name: string): boolean {
  const lower = name.toLowerCase();
  return name !== '.' && name !== '..' && !lower.endsWith(PART) && !lower.startsWith(HIDDEN_PREFIX);
}

/**
 * A single path component that cannot leave its directory. `\` is an ordinary character in a name
 * on a Unix server, so a listed entry may carry it; we never create one.
 */
function plainName(name: string, what: string, forWriting = false): string {
  const bad =
    name === '' ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    name.includes('\0') ||
    (forWriting && name.includes('\\'));
  if (bad) throw new TransportError('invalid-name', `${what} ${JSON.stringify(name)} refused: not a plain file name`);
  return name;
}

// ---- streams -----------------------------------------------------------------------------------

/**
 * `source` through an IdleWatch. Errors of the source reach the reader as TransportErrors; when
 * the reader stops (or the watch fires) the source is destroyed, so no handle is left open.
 */
function watched(
  source: Readable,
  what: string,
  ms: number,
  signal: AbortSignal,
  mapError: (err: unknown) => TransportError = (err) => classify(err, what, 'read'),
): Readable {
  const watch = new IdleWatch(what, ms, signal);
  source.on('error', (err) => watch.destroy(mapError(err)));
  watch.on('close', () => source.destroy());
  source.pipe(watch);
  // The reader gets errors through its pipeline / for-await; this only keeps a reader that has not
  // attached a listener yet from turning a dead connection into a crash.
  watch.on('error', () => undefined);
  return watch;
}

/** Passes exactly `expected` bytes or fails: a file that changes while read is not delivered. */
function exactLength(expected: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > expected) cb(new TransportError('busy', `${what}: the file grew while being read`));
      else cb(null, chunk);
    },
    flush(cb) {
      if (seen !== expected) cb(new TransportError('busy', `${what}: ${seen} bytes read, ${expected} listed`));
      else cb();
    },
  });
}

/** The package's own stream failed: that is our local disk, not the server. */
function localReadError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  return fromSystemError(err, `${what}: reading the package`);
}
