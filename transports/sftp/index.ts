// The `sftp` transport (ssh2-sftp-client over ssh2): one SSH connection per route per cycle, the
// server's host key pinned by its SHA-256 fingerprint, `.part` then rename on the way out, and a
// deadline on every request, since an SFTP request the server never answers is never answered.
//
// ssh2-sftp-client owns connecting and ending (and its listeners keep ssh2's 'error' events from
// becoming uncaught exceptions, #579). The file operations go to ssh2's SFTP channel underneath it,
// because the wrapper's helpers lose what this transport needs: its `put` closes the handle itself
// (no fsync@openssh.com on it) and fchmods the new file to 0666, `stat` reports FAILURE as a missing
// file, `mkdir` reports FAILURE as permission denied, and its messages flatten the SFTP status.
// Transfers keep a window of READs / WRITEs in flight at ordered offsets (pipeline.ts: OpenSSH
// sftp's 64 x 32 KB), never fastPut/fastGet, which promise no order and lose the fsync.
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Stats as SftpStats } from 'ssh2';
import { plainName, refuseMoveIntoSelf } from '../common/names.js';
import { redactor } from '../common/redact.js';
import { ackBudgetMs, withBudget } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { Endpoint, OutgoingPackage, RemoteEntry, SftpProfile, Sink, Source, Transport } from '../types.js';
import { Connection, newProgress } from './connection.js';
import { classify, SSH_FX, sftpStatus } from './errors.js';
import { ensureDir, freeName, listDir, listFolders, notAFile, remoteDir, statOrNull } from './files.js';
import { probeSftp } from './probe.js';
import { put } from './upload.js';

export { hostKeyFingerprint } from './connection.js';

/**
 * Entries a source works on at once (Source.parallel), each with its own window of requests: at a
 * round trip of 100 ms, 100 entries of 20 KB took 33.7 s one at a time, 8.2 s four at a time and
 * 4.9 s eight at a time (issue 11). Eight handles open at once is little for any server.
 */
export const SOURCE_PARALLEL = 8;

export function createSftpTransport(profile: SftpProfile): Transport {
  const label = `${profile.user}@${profile.host}:${profile.port}`;
  const redact = redactor([profile.password, profile.passphrase, profile.privateKey]);

  /** No password, passphrase or key text in a message, whatever a library put there. */
  function scrub(err: unknown, what: string): TransportError {
    return redact(err instanceof TransportError ? err : classify(err, what, 'meta'));
  }

  const connect = (ms: number, signal: AbortSignal, progress = newProgress()) =>
    Connection.open(profile, label, ms, signal, progress);

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
      put: (pkg: OutgoingPackage, sig: AbortSignal) => put(c, scrub, ep, dir, pkg, sig),
      close: () => c.close(),
    } satisfies Sink;
  }

  // ---- in --------------------------------------------------------------------------------------

  async function openSource(ep: Endpoint, signal: AbortSignal): Promise<Source> {
    const dir = remoteDir(ep.remote, 'remote');
    const moveDir = ep.afterReceive.kind === 'move' ? remoteDir(ep.afterReceive.to, 'move target') : null;
    refuseMoveIntoSelf(dir, moveDir, moveDir ?? '');
    const ms = ep.timeoutMs;
    let conn: Connection;
    try {
      conn = await connect(ms, signal);
    } catch (err) {
      throw scrub(err, `open ${dir}`);
    }

    let moveDirReady: Promise<void> | undefined;

    async function acknowledgeWithin(file: string, name: string, what: string, sig: AbortSignal): Promise<void> {
      if (moveDir === null) {
        try {
          await conn.call<void>(what, ms, sig, 'meta', (s, cb) => s.unlink(file, cb));
        } catch (err) {
          if (sftpStatus(err) !== SSH_FX.NO_SUCH_FILE) throw err; // gone already: done
        }
        return;
      }
      // the move target once per source (several acknowledgements may wait for the same one);
      // a RENAME that finds it gone makes it again
      for (let attempt = 0; ; attempt++) {
        await (moveDirReady ??= ensureDir(conn, moveDir, ms, sig).catch((err: unknown) => {
          moveDirReady = undefined;
          throw err;
        }));
        // no STAT of `file` first: a file gone already makes the RENAME say NO_SUCH_FILE (below)
        const target = path.posix.join(moveDir, await freeName(conn, moveDir, name, what, ms, sig));
        try {
          // plain RENAME on purpose: it never replaces what is at the target
          await conn.call<void>(`${what}: move to ${target}`, ms, sig, 'meta', (s, cb) => s.rename(file, target, cb));
          return;
        } catch (err) {
          const status = sftpStatus(err);
          if (status === SSH_FX.NO_SUCH_FILE) {
            if (!(await statOrNull(conn, file, what, ms, sig))) return; // gone already: done
            moveDirReady = undefined; // the file is there: the move target went; make it again
            if (attempt < 2) continue;
          }
          // FAILURE: the free name was taken in the meantime; look again
          if (status !== SSH_FX.FAILURE || attempt >= 2) throw err;
        }
      }
    }

    const source = {
      // several entries at once on the one connection: SFTP requests carry their own ids, each
      // transfer keeps its own window (pipeline.ts), and the only state shared between entries is
      // the move target, made once (above)
      parallel: SOURCE_PARALLEL,

      async list(sig: AbortSignal): Promise<RemoteEntry[]> {
        try {
          return await listDir(conn, dir, ms, sig);
        } catch (err) {
          throw scrub(err, `list ${dir}`);
        }
      },

      async folders(sig: AbortSignal): Promise<string[]> {
        try {
          return await listFolders(conn, dir, ms, sig);
        } catch (err) {
          throw scrub(err, `list the folders of ${dir}`);
        }
      },

      async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
        const name = plainName(entry.ref, 'entry');
        const file = path.posix.join(dir, name);
        const what = `read ${file}`;
        try {
          const handle = await conn.call<Buffer>(what, ms, sig, 'read', (s, cb) => s.open(file, 'r', cb));
          // the first READs (sized as listed) go out with the FSTAT: its answer comes with theirs
          const stream = conn.readStream(handle, entry.size, what, ms, sig, ep.minRate);
          let st: SftpStats;
          try {
            st = await conn.call<SftpStats>(what, ms, sig, 'read', (s, cb) => s.fstat(handle, cb));
          } catch (err) {
            stream.destroy(); // closes the handle
            throw err;
          }
          if (notAFile(st) || st.size !== entry.size) {
            stream.destroy();
            if (notAFile(st)) throw new TransportError('not-found', `${what}: not a file`);
            throw new TransportError(
              'busy',
              `${what}: ${st.size} bytes now, ${entry.size} when listed (still changing)`,
            );
          }
          return stream;
        } catch (err) {
          throw scrub(err, what);
        }
      },

      async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
        const name = plainName(entry.ref, 'entry');
        const file = path.posix.join(dir, name);
        const what = `acknowledge ${file}`;
        try {
          // the whole acknowledgement within one budget: a server that keeps a move's free-name
          // search going is cut there (and by the free-name cap), never left to hold the route
          await withBudget(what, ackBudgetMs(ms), sig, (s) => acknowledgeWithin(file, name, what, s));
        } catch (err) {
          throw scrub(err, what);
        }
      },

      close: () => conn.close(),
    } satisfies Source;
    return source;
  }

  return {
    kind: 'sftp',
    features: { move: true, bundle: false, folders: true },
    openSink,
    openSource,
    probe: (ep, direction, signal) => probeSftp(profile, connect, scrub, ep, direction, signal),
  } satisfies Transport;
}
