// The file-system steps of sprelay's guarantees on a lan route, and nothing else: what a courier
// that keeps them must at least do, in Node, on this machine (a floor in BENCH.md, never a peer).
// Plain JavaScript run by plain `node`, so that its time from spawn to exit counts Node's start
// as sprelay's does. No ledger, no XML check, no SHA-256, no logging: sprelay's own work on top
// of these steps is the difference between its time and this one.
//
//   out SRC SHARE WORK   SRC is an outbox (emptied), SHARE the destination folder, WORK a data folder
//   in  SHARE DST        SHARE is read and emptied (the acknowledgement), DST the inbox
//
// Per package, out: the outbox file read; copied into WORK/spool/.tmp, fsynced, renamed into the
// spool; the outbox copy removed; NAME.part created exclusively on the share, written, fsynced,
// renamed into place; the spool copy renamed into WORK/archive. Per package, in: the share's
// file read; .NAME.part created exclusively in the inbox, written, fsynced, linked to NAME and
// unlinked (a rename that never replaces); the share's file removed. Each folder is fsynced once
// per run after its renames (sprelay does it once per batch), and PACKAGES_AT_ONCE packages are
// worked on together (sprelay's default concurrency for lan).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

const PACKAGES_AT_ONCE = 4;

async function writeSynced(file, bytes, flags) {
  const fh = await fsp.open(file, flags, 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir) {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function eachAtOnce(names, step) {
  let next = 0;
  const lane = async () => {
    while (next < names.length) {
      const i = next++;
      await step(names[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PACKAGES_AT_ONCE, names.length) }, lane));
}

async function out(src, share, work) {
  const tmp = join(work, 'spool', '.tmp');
  const spool = join(work, 'spool');
  const archive = join(work, 'archive');
  for (const dir of [tmp, archive, share]) await fsp.mkdir(dir, { recursive: true });
  const names = (await fsp.readdir(src)).sort();
  await eachAtOnce(names, async (name, i) => {
    const bytes = await fsp.readFile(join(src, name));
    const temp = join(tmp, `${i}.part`);
    await writeSynced(temp, bytes, 'wx');
    await fsp.rename(temp, join(spool, name));
  });
  await syncDir(spool);
  await eachAtOnce(names, (name) => fsp.unlink(join(src, name)));
  await syncDir(src);
  await eachAtOnce(names, async (name) => {
    const bytes = await fsp.readFile(join(spool, name));
    const part = join(share, `${name}.part`);
    await writeSynced(part, bytes, 'wx');
    await fsp.rename(part, join(share, name));
  });
  await syncDir(share);
  await eachAtOnce(names, (name) => fsp.rename(join(spool, name), join(archive, name)));
  await syncDir(archive);
  await syncDir(spool);
}

async function into(share, dst) {
  await fsp.mkdir(dst, { recursive: true });
  const names = (await fsp.readdir(share)).sort();
  await eachAtOnce(names, async (name) => {
    const bytes = await fsp.readFile(join(share, name));
    const part = join(dst, `.${name}.part`);
    await writeSynced(part, bytes, 'wx');
    await fsp.link(part, join(dst, name));
    await fsp.unlink(part);
  });
  await syncDir(dst);
  await eachAtOnce(names, (name) => fsp.unlink(join(share, name)));
  await syncDir(share);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'out' && args.length === 3) await out(args[0], args[1], args[2]);
else if (mode === 'in' && args.length === 2) await into(args[0], args[1]);
else {
  process.stderr.write('usage: durable-steps.mjs out SRC SHARE WORK | in SHARE DST\n');
  process.exit(2);
}
