// `sprelay check` on a lan route: the share root, the route's folder listed (an in-route never
// creates it), a probe file written exclusively and removed, and the afterReceive move target.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { probeFileName } from '../common/names.js';
import { probeRun } from '../common/probe.js';
import { missingInFolder } from '../errors.js';
import type { Endpoint, ProbeStep } from '../types.js';
import { CREATE_FLAGS } from './files.js';
import { endpointDirs, relativeSegments, type Share } from './share.js';
import { listDir } from './source.js';

export async function probe(
  share: Share,
  ep: Endpoint,
  direction: 'in' | 'out',
  signal: AbortSignal,
): Promise<ProbeStep[]> {
  const ms = ep.timeoutMs;
  const { steps, step } = probeRun((err, name) => share.classify(err, name, ms, 'unavailable'));

  let dir = '';
  const probeName = probeFileName();
  if (
    !(await step('root reachable', async () => {
      await share.checkRoot(ms, signal);
      return share.root;
    }))
  ) {
    return steps;
  }
  if (
    !(await step('list remote', async () => {
      const segments = relativeSegments(ep.remote, 'remote');
      const rel = segments.join('/') || '.';
      const before = await share.folderOrNull(segments, ms, signal);
      // an in-route never creates its remote folder: a typo there would be polled forever
      if (before === null && direction === 'in') throw missingInFolder(rel);
      dir = await share.folder(segments, ms, signal, true);
      const entries = await listDir(share, dir, rel, ep.include, ms, signal);
      const refused = entries.filter((e) => e.refusal !== undefined).length;
      return (
        `${entries.length - refused} file(s) in ${rel}` +
        (refused ? `, ${refused} refused (links or special files, never read)` : '') +
        (before === null ? ' (created: it was not there)' : '')
      );
    }))
  ) {
    return steps;
  }
  const probeFile = path.join(dir, probeName);
  const written = await step('write probe file', async () => {
    const handle = await share.fsCall('write probe file', ms, signal, () => fsp.open(probeFile, CREATE_FLAGS, 0o666));
    let closed = false;
    try {
      await share.fsCall('write probe file', ms, signal, async () => {
        await handle.writeFile('sprelay probe\n');
        await handle.sync();
      });
      closed = true;
      await share.fsCall('write probe file', ms, signal, () => handle.close());
    } finally {
      if (!closed) share.closeLater(handle);
    }
    return probeName;
  });
  if (!written) {
    await share.removeQuietly(probeFile, ms);
    return steps;
  }
  const removed = await step('remove probe file', async () => {
    await share.fsCall('remove probe file', ms, signal, () => fsp.unlink(probeFile));
    return undefined;
  });
  if (!removed) await share.removeQuietly(probeFile, ms);
  if (removed && direction === 'in' && ep.afterReceive.kind === 'move') {
    const to = ep.afterReceive.to;
    await step('move target reachable', async () => {
      const { moveSegments } = endpointDirs(ep);
      await share.folder(moveSegments ?? [], ms, signal, true);
      return to;
    });
  }
  return steps;
}
