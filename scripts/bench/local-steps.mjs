// The local file-system steps of sprelay's guarantees, shared by the bench's two references
// (durable-steps.mjs on the lan rows, library-steps.mjs on the ftp and sftp rows): plain
// JavaScript, no code of sprelay's, so that what they measure shares nothing with what is measured.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/** Packages worked on at once: sprelay's default concurrency. */
export const PACKAGES_AT_ONCE = 4;

/** `step(name, index, lane)` for every name, PACKAGES_AT_ONCE at a time (lane: 0..PACKAGES_AT_ONCE-1). */
export async function eachAtOnce(names, step) {
  let next = 0;
  const lane = async (l) => {
    while (next < names.length) {
      const i = next++;
      await step(names[i], i, l);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PACKAGES_AT_ONCE, names.length) }, (_, l) => lane(l)));
}

export async function writeSynced(file, bytes, flags) {
  const fh = await fsp.open(file, flags, 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a file or folder that exists. */
export async function syncPath(path, flags = 'r') {
  const fh = await fsp.open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The outbound steps before a send: every file of `src` (sorted names, returned) read, copied
 * into WORK/spool/.tmp, fsynced and renamed into WORK/spool; the spool fsynced; the outbox
 * copies removed and the outbox fsynced.
 */
export async function takeIntoSpool(src, work) {
  const tmp = join(work, 'spool', '.tmp');
  const spool = join(work, 'spool');
  for (const dir of [tmp, join(work, 'archive')]) await fsp.mkdir(dir, { recursive: true });
  const names = (await fsp.readdir(src)).sort();
  await eachAtOnce(names, async (name, i) => {
    const bytes = await fsp.readFile(join(src, name));
    const temp = join(tmp, `${i}.part`);
    await writeSynced(temp, bytes, 'wx');
    await fsp.rename(temp, join(spool, name));
  });
  await syncPath(spool);
  await eachAtOnce(names, (name) => fsp.unlink(join(src, name)));
  await syncPath(src);
  return names;
}

/** The outbound steps after a send: each spool copy renamed into WORK/archive; both folders fsynced. */
export async function archiveSpool(names, work) {
  const spool = join(work, 'spool');
  const archive = join(work, 'archive');
  await eachAtOnce(names, (name) => fsp.rename(join(spool, name), join(archive, name)));
  await syncPath(archive);
  await syncPath(spool);
}

/**
 * The inbound steps: for every name, `fetchTo(name, part, lane)` writes the package into
 * DST/.NAME.part and fsyncs it; the part is then linked to NAME and unlinked (a rename that never
 * replaces); the inbox fsynced once at the end.
 */
export async function landInInbox(names, dst, fetchTo) {
  await eachAtOnce(names, async (name, _i, lane) => {
    const part = join(dst, `.${name}.part`);
    await fetchTo(name, part, lane);
    await fsp.link(part, join(dst, name));
    await fsp.unlink(part);
  });
  await syncPath(dst);
}
