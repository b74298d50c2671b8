// The `lan` transport: a folder under a path the OS opens (UNC share, mapped drive, mounted share,
// local directory). Owns the file-system rules of the exchange: `.part` then rename, names that can
// never leave the route's directory, and a deadline on every call that a dead share could hang.
// This file joins the parts: share.ts, gate.ts, files.ts, read.ts, put.ts, source.ts, probe.ts.

// What is below the share root belongs to the office and is not trusted (issue 10): where the
// station follows the share's symbolic links (NFS, CIFS with unix extensions, a synced or local
// folder), a link could lead a read, a write or a delete to the station's own files. So nothing
// below the root is ever followed: every folder component is looked at with lstat and refused when
// it is a link (or a junction: Windows' lstat reports both as links); files are opened with
// O_NOFOLLOW | O_NONBLOCK where the OS has them and the handle's fstat must be the regular file
// lstat showed; `.part` is created exclusively (O_CREAT | O_EXCL: never through what is there);
// entries that are not regular files (links, pipes, sockets, devices, folders) are listed as
// refused, never opened, moved or removed. Unlink and rename act on the name itself, never on what a
// link points to. Residual: Node has no openat/renameat, so an office that swaps a checked folder
// for a link in the microseconds between our lstat and our call is not caught by the folder check
// (a file opened through it is still refused on Linux/macOS when the last component is a link, and
// everywhere when fstat shows another file than lstat did).
//
// And a share that hangs (a dead NFS mount, a FIFO) must not take Node's I/O threads from the other
// routes: every file-system call on one share goes through that share's gate (CALLS_PER_SHARE at
// once). A call the deadline gave up on keeps its slot until the OS answers, so a dead share holds
// at most CALLS_PER_SHARE threads of the pool; its later calls wait for a slot and time out.
//
// Bytes that move (a delivery read, the copy into `.part`, the read-back hash of a file already
// there) keep the route's minimum rate (Endpoint.minRate) besides the idle deadline.
import type { Endpoint, LanProfile, OutgoingPackage, Sink, Transport } from '../types.js';
import { probe } from './probe.js';
import { put } from './put.js';
import { endpointDirs, Share } from './share.js';
import { openSource } from './source.js';

export { CALLS_PER_SHARE, shareCallsInFlight } from './gate.js';

export function createLanTransport(profile: LanProfile): Transport {
  const share = new Share(profile.root);

  async function openSink(ep: Endpoint, signal: AbortSignal): Promise<Sink> {
    const { segments } = endpointDirs(ep);
    try {
      await share.folder(segments, ep.timeoutMs, signal, true);
    } catch (err) {
      throw await share.classify(err, `open ${ep.remote || '.'}`, ep.timeoutMs, 'unavailable');
    }
    // Puts leave the folder's fsync of their rename to `flush` (one per batch, not one per file);
    // any put since the last flush, even one that found its file already there, makes it due.
    let unflushed = false;
    const sink = {
      put: (pkg: OutgoingPackage, sig: AbortSignal) => {
        unflushed = true;
        return put(share, ep, segments, pkg, sig, false);
      },
      flush: async (sig: AbortSignal) => {
        if (!unflushed) return;
        unflushed = false;
        const what = `sync ${ep.remote || '.'}`;
        try {
          const dir = await share.folder(segments, ep.timeoutMs, sig, false);
          await share.fsyncDir(dir, ep.timeoutMs, sig);
        } catch (err) {
          unflushed = true;
          throw await share.classify(err, what, ep.timeoutMs, 'unavailable');
        }
      },
      // a caller that never flushed (a wrapper that does not pass flush on) still gets the folder
      // synced once at the end; close never throws
      close: async () => {
        if (!unflushed) return;
        const ctl = new AbortController();
        await sink.flush(ctl.signal).catch(() => undefined);
      },
    } satisfies Sink;
    return sink;
  }

  return {
    kind: 'lan',
    features: { move: true, bundle: false, folders: true },
    openSink,
    openSource: (ep: Endpoint, signal: AbortSignal) => openSource(share, ep, signal),
    probe: (ep: Endpoint, direction: 'in' | 'out', signal: AbortSignal) => probe(share, ep, direction, signal),
  } satisfies Transport;
}
