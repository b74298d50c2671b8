// Named points in the pipelines where the kill -9 tests stop the process dead. Set
// SPRELAY_CRASH_AT=<point> (optionally <point>@<n> for the n-th time it is reached) and the agent
// SIGKILLs itself there: no cleanup, no flush, exactly like a power cut. Unset, this is a no-op.
import { writeSync } from 'node:fs';

/** Every named point, as data: the kill -9 tests kill the agent at each one. */
export const CRASH_POINTS = [
  'out:after-spool-rename', // bytes in the spool, ledger does not know yet
  'out:after-ledger-queued', // ledger knows, outbox copy not yet removed
  'out:after-put', // the sink wrote the file, ledger still says queued
  'out:after-sent-commit', // ledger says sent, spool copy not yet archived
  'in:after-download', // bytes in the inbox temp file, ledger does not know
  'in:after-ledger-delivered', // ledger says delivered (pending rename), temp not yet renamed
  'in:after-link', // the temp is hard-linked into the inbox, the temp name not yet removed
  'in:after-rename', // file is in the inbox, ledger still has the pending rename
  'in:before-ack', // everything local is done, remote not yet acknowledged
  'in:after-ack', // remote acknowledged, ledger does not know yet
  'office:before-receipt', // office: deliveries committed, their receipt not made yet
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];

const spec = process.env.SPRELAY_CRASH_AT;
const [target, nth] = spec ? spec.split('@') : [];
let seen = 0;

export function crashPoint(point: CrashPoint): void {
  if (!spec || point !== target) return;
  seen++;
  if (seen < Number(nth ?? 1)) return;
  // On Windows a process that kills itself ends through TerminateProcess with exit code 1 and no
  // signal, like any fatal exit: this line (written synchronously, nothing else is flushed) is
  // how a test tells the two apart there.
  try {
    writeSync(2, `SPRELAY_CRASH_AT ${point}@${seen}: killing this process\n`);
  } catch {
    // no stderr: the kill is what matters
  }
  process.kill(process.pid, 'SIGKILL');
}
