// Child of hung-exit.test.ts: a process with one file-system call on a "share" that never returns
// (a FIFO opened for reading, no writer: the I/O thread blocks in open(2)), ending as the
// `sprelay` command ends (`endProcess`), or with a plain process.exit for comparison.
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { endProcess } from '../../agent/cli.js';
import { gateOf } from '../../transports/lan/gate.js';

const [fifo, how] = process.argv.slice(2) as [string, 'endProcess' | 'exit' | 'endProcess-nothing-hung'];
if (how !== 'endProcess-nothing-hung') {
  gateOf(dirname(fifo))
    .run(() => fsp.open(fifo, 'r'), new AbortController().signal)
    .catch(() => undefined);
}
setTimeout(() => {
  if (how === 'exit') process.exit(2);
  else endProcess(2, 300);
}, 200);
