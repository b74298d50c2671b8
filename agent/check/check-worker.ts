// The worker thread of agent/check/parallel.ts: runs XML checks (createXmlCheck, the very same code
// as on the main thread) on the chunks it is sent, several checks at once by id, in order per id.
import { parentPort } from 'node:worker_threads';
import { createXmlCheck, type ContentCheck } from './xml.js';
import type { ToWorker, FromWorker } from './parallel-protocol.js';

const port = parentPort;
if (!port) throw new Error('agent/check/check-worker.js runs only as a worker thread');

const checks = new Map<number, { check: ContentCheck; verdict: string | null }>();
const send = (m: FromWorker) => port.postMessage(m);

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'start':
      checks.set(m.id, { check: createXmlCheck(m.limits, m.opts), verdict: null });
      return;
    case 'chunk': {
      const c = checks.get(m.id);
      if (c && c.verdict === null) c.verdict = c.check.write(m.bytes);
      // acknowledged even when dropped meanwhile: the memory goes back
      const buffer = m.bytes.buffer as ArrayBuffer;
      port.postMessage(
        { t: 'ack', id: m.id, bytes: m.bytes.byteLength, refused: c?.verdict ?? null, buffer } satisfies FromWorker,
        [buffer],
      );
      return;
    }
    case 'end': {
      const c = checks.get(m.id);
      if (!c) return;
      checks.delete(m.id);
      send({ t: 'verdict', id: m.id, verdict: c.verdict ?? c.check.end() });
      return;
    }
    case 'drop':
      checks.delete(m.id);
      return;
  }
});
