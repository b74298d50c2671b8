// `sprelay check` over SFTP: one connect reported as the steps it went through, then the folder,
// a probe file written and removed, and the move target.
import path from 'node:path';
import { probeFileName, refuseMoveIntoSelf } from '../common/names.js';
import { probeRun } from '../common/probe.js';
import { missingInFolder } from '../errors.js';
import type { Endpoint, ProbeStep, SftpProfile } from '../types.js';
import { newProgress, type Connection, type ConnectProgress } from './connection.js';
import { ensureDir, FILE_MODE, listDir, remoteDir, statOrNull } from './files.js';
import type { Scrub } from './upload.js';

/** `sprelay check`: connect, host key, log in, list (an in-route's folder must exist), probe file, move target. */
export async function probeSftp(
  profile: SftpProfile,
  connect: (ms: number, signal: AbortSignal, progress: ConnectProgress) => Promise<Connection>,
  scrub: Scrub,
  ep: Endpoint,
  direction: 'in' | 'out',
  signal: AbortSignal,
): Promise<ProbeStep[]> {
  const ms = ep.timeoutMs;
  const { steps, step, fail: failed } = probeRun(scrub);

  let dir: string;
  let moveDir: string | null;
  try {
    dir = remoteDir(ep.remote, 'remote');
    moveDir = ep.afterReceive.kind === 'move' ? remoteDir(ep.afterReceive.to, 'move target') : null;
  } catch (err) {
    await failed('remote path', err);
    return steps;
  }

  const progress = newProgress();
  let conn: Connection;
  try {
    conn = await connect(ms, signal, progress);
  } catch (err) {
    // one connect, reported as the steps it went through: the first one not reached failed
    if (progress.offered === undefined && scrub(err, 'connect').code === 'auth') {
      await failed('authenticate', err); // the key could not be read: nothing was sent anywhere
      return steps;
    }
    const phases: Array<[string, boolean, string]> = [
      ['connect', progress.offered !== undefined, `${profile.host}:${profile.port}`],
      ['host key', progress.hostKeyOk, hostKeyDetail(profile, progress)],
      ['authenticate', progress.authenticated, `as ${profile.user}`],
      ['start sftp', false, ''],
    ];
    for (const [name, ok, detail] of phases) {
      if (!ok) {
        await failed(name, err);
        break;
      }
      steps.push({ step: name, ok: true, detail });
    }
    return steps;
  }
  steps.push({ step: 'connect', ok: true, detail: `${profile.host}:${profile.port}` });
  steps.push({ step: 'host key', ok: true, detail: hostKeyDetail(profile, progress) });
  steps.push({ step: 'authenticate', ok: true, detail: `as ${profile.user}` });

  const probeName = probeFileName();
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
        refuseMoveIntoSelf(dir, to, to);
        await ensureDir(conn, to, ms, signal);
        return to;
      });
    }
    return steps;
  } finally {
    await conn.close();
  }
}

function hostKeyDetail(profile: SftpProfile, progress: ConnectProgress): string {
  return profile.hostKey === 'any'
    ? `${progress.offered} accepted without a check (hostKey: any); pin it with hostKey: ${progress.offered}`
    : `${progress.offered} matches the pinned key`;
}
