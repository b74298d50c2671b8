// The `ftp` transport: FTP and FTPS (explicit AUTH TLS or implicit TLS) through basic-ftp. Owns
// what FTP makes hard to get right: per route and cycle, one control connection per transfer under
// way (lanes, lane.ts), every command on one serialized, none the server does not need; an outer deadline on every call (basic-ftp's own timeout only runs while a command
// is active and its promises can stay unsettled, #123/#167/#209); passive data connections only to
// the host the control connection goes to; names in windows-1251 for old servers; and `.part`,
// SIZE, rename for every upload so that no reader sees a partial file under its final name.
import { Readable } from 'node:stream';
import { FTPError } from 'basic-ftp';
import { probeFileName, refuseMoveIntoSelf } from '../common/names.js';
import { probeRun } from '../common/probe.js';
import { sha256 } from '../common/streams.js';
import { missingInFolder } from '../errors.js';
import type { Endpoint, FtpProfile, ProbeStep, Sink, Source, Transport } from '../types.js';
import { Lanes, MAX_LANES } from './lane.js';
import { FtpSession, inDir, tlsOptionsFor, type ServerFacts } from './session.js';
import { ftpSink } from './sink.js';
import { ftpSource } from './source.js';
import { upload } from './transfer.js';
import { wireFor } from './wire.js';

export { ftpWireName } from './wire.js';

export function createFtpTransport(profile: FtpProfile): Transport {
  const wire = wireFor(profile.encoding);
  const tls = tlsOptionsFor(profile);
  const newSession = (ep: Endpoint, facts?: ServerFacts) =>
    new FtpSession(profile, wire, ep.timeoutMs, tls, ep.minRate, facts);

  /**
   * The lanes of a sink or source: the first connected, logged in and in its directory (created if
   * missing) here, so that an unreachable server fails the open; more as the caller asks for them.
   */
  async function openLanes(
    ep: Endpoint,
    signal: AbortSignal,
  ): Promise<{ lanes: Lanes; dir: string; resolve: (remote: string) => string }> {
    const facts: ServerFacts = {};
    const what = `open ${ep.remote || '.'}`;
    const enter = async (session: FtpSession, dir: string | null, sig: AbortSignal) => {
      try {
        await session.ready(sig);
        const at = dir ?? session.resolve(ep.remote);
        await session.enterDir(at, true, sig);
        return at;
      } catch (err) {
        session.close();
        throw session.classify(err, what, { missing: 'unavailable' });
      }
    };
    const first = newSession(ep, facts);
    const dir = await enter(first, null, signal);
    const more = async (sig: AbortSignal) => {
      const session = newSession(ep, facts);
      await enter(session, dir, sig);
      return session;
    };
    return { lanes: new Lanes(first, MAX_LANES, more), dir, resolve: (remote) => first.resolve(remote) };
  }

  async function openSink(ep: Endpoint, signal: AbortSignal): Promise<Sink> {
    const { lanes, dir } = await openLanes(ep, signal);
    return ftpSink(lanes, ep, dir, wire);
  }

  async function openSource(ep: Endpoint, signal: AbortSignal): Promise<Source> {
    const { lanes, dir, resolve } = await openLanes(ep, signal);
    let moveTo: string | null = null;
    try {
      // resolved against the login directory, which every lane shares
      if (ep.afterReceive.kind === 'move') moveTo = resolve(ep.afterReceive.to);
      refuseMoveIntoSelf(dir, moveTo, ep.afterReceive.kind === 'move' ? ep.afterReceive.to : '');
    } catch (err) {
      lanes.close();
      throw err;
    }
    return ftpSource(lanes, ep, dir, moveTo);
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

  return {
    kind: 'ftp',
    features: { move: true, bundle: false, folders: true },
    openSink,
    openSource,
    probe,
  } satisfies Transport;
}
