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
import { archiveSpool, eachAtOnce, landInInbox, syncPath, takeIntoSpool, writeSynced } from './local-steps.mjs';

async function out(src, share, work) {
  await fsp.mkdir(share, { recursive: true });
  const names = await takeIntoSpool(src, work);
  await eachAtOnce(names, async (name) => {
    const bytes = await fsp.readFile(join(work, 'spool', name));
    const part = join(share, `${name}.part`);
    await writeSynced(part, bytes, 'wx');
    await fsp.rename(part, join(share, name));
  });
  await syncPath(share);
  await archiveSpool(names, work);
}

async function into(share, dst) {
  await fsp.mkdir(dst, { recursive: true });
  const names = (await fsp.readdir(share)).sort();
  await landInInbox(names, dst, async (name, part) => writeSynced(part, await fsp.readFile(join(share, name)), 'wx'));
  await eachAtOnce(names, (name) => fsp.unlink(join(share, name)));
  await syncPath(share);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'out' && args.length === 3) await out(args[0], args[1], args[2]);
else if (mode === 'in' && args.length === 2) await into(args[0], args[1]);
else {
  process.stderr.write('usage: durable-steps.mjs out SRC SHARE WORK | in SHARE DST\n');
  process.exit(2);
}
