// The `ftp` transport: FTP and FTPS (explicit AUTH TLS or implicit TLS) through basic-ftp. Owns
// what FTP makes hard to get right: one connection per route per cycle with every command on it
// serialized; an outer deadline on every call (basic-ftp's own timeout only runs while a command
// is active and its promises can stay unsettled, #123/#167/#209); passive data connections only to
// the host the control connection goes to; names in windows-1251 for old servers; and `.part`,
// SIZE, rename for every upload so that no reader sees a partial file under its final name.
import { Readable } from 'node:stream';
import { FTPError } from 'basic-ftp';
import { plainName, probeFileName, PART, refuseMoveIntoSelf } from '../common/names.js';
import { probeRun } from '../common/probe.js';
import { sha256 } from '../common/streams.js';
import { ackBudgetMs, withBudget } from '../deadline.js';
import { TransportError, missingInFolder } from '../errors.js';
import type {
  Endpoint,
  FtpProfile,
  OutgoingPackage,
  ProbeStep,
  PutResult,
  RemoteEntry,
  Sink,
  Source,
  Transport,
} from '../types.js';
import { FtpSession, inDir, tlsOptionsFor } from './session.js';
import { download, hashOf, upload } from './transfer.js';
import { wireFor } from './wire.js';

export { ftpWireName } from './wire.js';

export function createFtpTransport(profile: FtpProfile): Transport {
  const wire = wireFor(profile.encoding);
  const tls = tlsOptionsFor(profile);
  const newSession = (ep: Endpoint) => new FtpSession(profile, wire, ep.timeoutMs, tls, ep.minRate);

  /** Opens a session for an endpoint: connected, logged in, its directory there (created if missing). */
  async function openSession(ep: Endpoint, signal: AbortSignal): Promise<{ session: FtpSession; dir: string }> {
    const session = newSession(ep);
    try {
      const release = await session.lane.acquire(signal, `open ${ep.remote || '.'}`);
      try {
        await session.ready(signal);
        const dir = session.resolve(ep.remote);
        await session.enterDir(dir, true, signal);
        return { session, dir };
      } finally {
        release();
      }
    } catch (err) {
      session.close();
      throw session.classify(err, `open ${ep.remote || '.'}`, { missing: 'unavailable' });
    }
  }

  async function openSink(ep: Endpoint, signal: AbortSignal): Promise<Sink> {
    const { session, dir } = await openSession(ep, signal);
    const sink = {
      put: (pkg: OutgoingPackage, sig: AbortSignal) => put(session, ep, dir, pkg, sig),
      close: () => {
        session.close();
        return Promise.resolve();
      },
    } satisfies Sink;
    return sink;
  }

  async function put(
    session: FtpSession,
    ep: Endpoint,
    dir: string,
    pkg: OutgoingPackage,
    signal: AbortSignal,
  ): Promise<PutResult> {
    const name = plainName(pkg.name, 'package name', true);
    const what = `put ${name}`;
    const final = inDir(dir, name);
    const part = final + PART;
    const remoteRef = final;
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    // a name the server's charset cannot write is refused before anything is sent
    wire.out(name, what);
    const release = await session.lane.acquire(signal, what);
    let partStarted = false;
    let renamed = false;
    try {
      await session.ready(signal);
      await session.enterDir(dir, true, signal);
      let existing = await session.sizeOf(final, `${what}: look for ${final}`, signal);
      if (existing !== null) {
        // FTP has no portable remote hash (HASH / XSHA256 are rare extensions), and size alone
        // would take a different file of the same size for ours: a same-size file is read back
        // and hashed. That costs a download only when a package is sent again (after a crash).
        if (existing === pkg.size) {
          const sha = await hashOf(session, final, existing, `${what}: compare with ${final}`, signal).catch(
            (err: unknown) => {
              // taken away by its reader while we looked (the office imported it): write ours
              if (err instanceof TransportError && err.code === 'not-found') return null;
              throw err;
            },
          );
          if (sha === pkg.sha256.toLowerCase()) return { remoteRef, alreadyPresent: true };
          if (sha === null) existing = null;
        }
      }
      if (existing !== null) {
        if (!ep.overwrite) {
          throw new TransportError('exists', `${what}: a different ${final} (${existing} bytes) is already there`);
        }
      }

      partStarted = true;
      await upload(session, pkg, part, what, signal);
      const stored = await session.sizeOf(part, `${what}: size of ${name}${PART}`, signal);
      if (stored !== pkg.size) {
        throw new TransportError(
          'corrupt',
          `${what}: the server holds ${stored ?? 'no'} bytes of ${name}${PART}, ${pkg.size} were sent`,
        );
      }
      await session.renameOnto(part, final, existing !== null, `${what}: rename ${name}${PART}`, signal);
      renamed = true;
      return { remoteRef, alreadyPresent: false };
    } catch (err) {
      // Best effort, and only while the connection is still good: after a timeout or an abort
      // the `.part` stays; readers skip it and the next put of this name overwrites it.
      if (partStarted && !renamed) await session.removeQuietly(part);
      throw session.classify(err, what, { missing: 'unavailable' });
    } finally {
      release();
    }
  }

  async function openSource(ep: Endpoint, signal: AbortSignal): Promise<Source> {
    const { session, dir } = await openSession(ep, signal);
    const moveTo = ep.afterReceive.kind === 'move' ? session.resolve(ep.afterReceive.to) : null;
    try {
      refuseMoveIntoSelf(dir, moveTo, ep.afterReceive.kind === 'move' ? ep.afterReceive.to : '');
    } catch (err) {
      session.close();
      throw err;
    }

    const source = {
      async list(sig: AbortSignal): Promise<RemoteEntry[]> {
        const what = `list ${dir}`;
        const release = await session.lane.acquire(sig, what);
        try {
          await session.ready(sig);
          await session.enterDir(dir, true, sig);
          return await session.listHere(dir, what, sig);
        } catch (err) {
          throw session.classify(err, what, { missing: 'unavailable' });
        } finally {
          release();
        }
      },

      async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
        const name = plainName(entry.ref, 'entry');
        const file = inDir(dir, name);
        const what = `read ${file}`;
        const release = await session.lane.acquire(sig, what);
        let handedOver = false;
        try {
          await session.ready(sig);
          const size = await session.sizeOf(file, what, sig);
          if (size === null) throw new TransportError('not-found', `${what}: no such file on the server`);
          if (size !== entry.size) {
            throw new TransportError('busy', `${what}: ${size} bytes now, ${entry.size} when listed (still changing)`);
          }
          const stream = download(session, file, entry.size, what, sig, release);
          handedOver = true;
          // The reader gets errors through its pipeline / for-await; this only keeps a reader that
          // has not attached its handler yet from turning a broken transfer into a crash.
          stream.on('error', () => undefined);
          return stream;
        } catch (err) {
          throw session.classify(err, what, { missing: 'not-found' });
        } finally {
          if (!handedOver) release();
        }
      },

      async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
        const name = plainName(entry.ref, 'entry');
        const file = inDir(dir, name);
        const what = `acknowledge ${file}`;
        const release = await session.lane.acquire(sig, what);
        try {
          // the whole acknowledgement within one budget: a server that keeps a move's free-name
          // search going is cut there (and by the free-name cap), never left to hold the route
          await withBudget(what, ackBudgetMs(ep.timeoutMs), sig, async (s) => {
            await session.ready(s);
            if (moveTo) {
              await session.enterDir(moveTo, true, s);
              const free = await session.freeName(moveTo, name, s);
              await session.moveOrGone(file, inDir(moveTo, free), `${what}: move to ${moveTo}`, s);
            } else {
              await session.deleteOrGone(file, what, s);
            }
          });
        } catch (err) {
          throw session.classify(err, what, { missing: 'unavailable' });
        } finally {
          release();
        }
      },

      close: () => {
        session.close();
        return Promise.resolve();
      },
    } satisfies Source;
    return source;
  }

  async function probe(ep: Endpoint, direction: 'in' | 'out', signal: AbortSignal): Promise<ProbeStep[]> {
    const session = newSession(ep);
    const { steps, step } = probeRun((err, name) => session.classify(err, name, { missing: 'unavailable' }));
    try {
      // connect, TLS and login report themselves step by step
      try {
        await session.ready(signal, steps);
      } catch {
        return steps;
      }
      let dir = '';
      const listed = await step('list remote', async () => {
        dir = session.resolve(ep.remote);
        let created = false;
        try {
          await session.enterDir(dir, false, signal);
        } catch (err) {
          // vsftpd says "550 Failed to change directory." for a folder that is not there
          const missing =
            (err instanceof FTPError && err.code === 550) ||
            session.classify(err, `open ${dir}`, { missing: 'not-found' }).code === 'not-found';
          if (!missing) throw err;
          // an in-route never creates its remote folder: a typo there would be polled forever
          if (direction === 'in') throw missingInFolder(dir);
          await session.enterDir(dir, true, signal);
          created = true;
        }
        const entries = await session.listHere(dir, `list ${dir}`, signal);
        return `${entries.length} file(s) in ${dir}${created ? ' (created: it was not there)' : ''}`;
      });
      if (!listed) return steps;
      const probeName = probeFileName();
      const probeFile = inDir(dir, probeName);
      const bytes = Buffer.from('sprelay probe\n');
      const written = await step('write probe file', async () => {
        await upload(
          session,
          { name: probeName, size: bytes.length, sha256: sha256(bytes), open: () => Readable.from([bytes]) },
          probeFile,
          'write probe file',
          signal,
        );
        return probeFile;
      });
      if (!written) {
        await session.removeQuietly(probeFile);
        return steps;
      }
      const removed = await step('remove probe file', async () => {
        await session.command('remove probe file', signal, (c) => c.remove(wire.out(probeFile, 'remove probe file')));
        return undefined;
      });
      if (!removed) await session.removeQuietly(probeFile);
      if (removed && direction === 'in' && ep.afterReceive.kind === 'move') {
        const to = ep.afterReceive.to;
        await step('move target reachable', async () => {
          const target = session.resolve(to);
          refuseMoveIntoSelf(dir, target, to);
          await session.enterDir(target, true, signal);
          return target;
        });
      }
      return steps;
    } finally {
      session.close();
    }
  }

  return { kind: 'ftp', features: { move: true, bundle: false }, openSink, openSource, probe } satisfies Transport;
}
