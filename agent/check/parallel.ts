// The XML check of a large package on a worker thread (issue 11: on a 200 MB package the check was
// about 0.6 s of main-thread time, in turn with the SHA-256 and the copy's own work; on a second core
// it runs beside them). The worker runs the very same createXmlCheck on a copy of each chunk, so the
// verdict is the same; the caller learns a refusal a chunk or a few later than it would in-thread,
// and the copy it was making is removed all the same.
//
// One worker per process, started on the first large package and kept (unref'd while idle: it never
// keeps the process alive). At most WINDOW_BYTES are in flight to it per check: a write beyond that
// waits for the worker to catch up, so memory stays bounded whatever the package's size. Where the
// worker's file is absent (the portable Windows bundle is one file) or the worker fails to start,
// checks run in-thread as before; a worker that dies fails the checks it had (the package is tried
// again next cycle) and later checks run in-thread.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { XmlLimits } from './limits.js';
import type { FromWorker, ToWorker } from './parallel-protocol.js';
import { createXmlCheck, type XmlCheckOptions } from './xml.js';

/** A check fed a package's bytes in order; a write or the end may answer later (a promise). */
export interface FedCheck {
  /** Null while nothing is wrong, else the reason. The chunk is not kept after the call. */
  write(chunk: Uint8Array): string | null | Promise<string | null>;
  /** No more bytes: the verdict. */
  end(): string | null | Promise<string | null>;
  /** The caller stops before end() (its copy failed or was too long): the check is let go. */
  abandon?(): void;
}

const MiB = 1024 * 1024;

/** A package at least this large (its listed size) is checked on the worker thread. */
export const PARALLEL_MIN_BYTES = 8 * MiB;

/** Bytes sent to the worker and not yet checked, per check, at most (about 4 chunks of a copy). */
export const WINDOW_BYTES = 4 * MiB;

/** Buffers kept for chunks, and their least size (a copy's chunk: store/copy.ts CHUNK_BYTES). */
const SPARE_BUFFERS = 8;
const CHUNK_MIN = MiB;

/**
 * The XML check for a package of `opts.size` bytes: on the worker thread when it is large and the
 * worker can run, in-thread otherwise.
 */
export function createPackageXmlCheck(limits: XmlLimits, opts: XmlCheckOptions = {}): FedCheck {
  if ((opts.size ?? 0) >= PARALLEL_MIN_BYTES) {
    const worker = checkWorker();
    if (worker) return worker.check(limits, opts);
  }
  return createXmlCheck(limits, opts);
}

/** The check on the worker thread whatever the size (tests), or null when no worker can run. */
export function workerXmlCheck(limits: XmlLimits, opts: XmlCheckOptions = {}): FedCheck | null {
  return checkWorker()?.check(limits, opts) ?? null;
}

/** Ends the worker thread, as if it had died (tests: what that does to its checks). */
export function stopCheckWorkerForTests(): Promise<number> | undefined {
  return shared?.terminate();
}

// ---- the worker ---------------------------------------------------------------------------------

/**
 * Beside this module as tsc writes it, or beside the bundle's entry (dist/app/, this module being in
 * cli.js or in chunks/). Run from the TypeScript sources (tsx: the tests) there is none, and the
 * checks run in-thread: a worker does not get tsx's loader; test/xml-check-thread.test.ts runs the
 * compiled worker.
 */
function workerFile(): string | null {
  for (const rel of ['./check-worker.js', '../check-worker.js']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(file)) return file;
  }
  return null;
}

let shared: CheckWorker | null | undefined;

function checkWorker(): CheckWorker | null {
  if (shared === undefined) {
    const file = workerFile();
    try {
      shared = file ? new CheckWorker(file) : null;
    } catch {
      shared = null; // no worker threads here: in-thread
    }
  }
  return shared?.broken ? null : (shared ?? null);
}

class CheckWorker {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly live = new Map<number, WorkerCheck>();
  /** Chunk memory the worker has handed back, for the next chunks (no allocation per chunk). */
  private readonly spare: ArrayBuffer[] = [];
  broken: Error | null = null;

  constructor(file: string) {
    // an ES module (the package is "type": "module"; the bundle's chunks are ESM)
    this.worker = new Worker(pathToFileURL(file));
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => {
      if (m.t === 'ack' && this.spare.length < SPARE_BUFFERS) this.spare.push(m.buffer);
      this.live.get(m.id)?.receive(m);
    });
    this.worker.on('error', (err: Error) => this.fail(err));
    this.worker.on('exit', (code: number) => this.fail(new Error(`the XML check thread ended (exit code ${code})`)));
  }

  check(limits: XmlLimits, opts: XmlCheckOptions): FedCheck {
    const id = this.nextId++;
    const c = new WorkerCheck(
      id,
      (m, transfer) => this.post(m, transfer),
      (bytes) => this.bufferFor(bytes),
      () => this.finished(id),
    );
    this.live.set(id, c);
    if (this.live.size === 1) this.worker.ref(); // a check is waiting for it
    this.post({ t: 'start', id, limits: { ...limits }, opts: { ...opts } });
    return c;
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  /** A spare buffer of at least `bytes`, or a new one (of a copy chunk's size at least). */
  private bufferFor(bytes: number): ArrayBuffer {
    for (let i = this.spare.length - 1; i >= 0; i--) {
      if (this.spare[i]!.byteLength >= bytes) return this.spare.splice(i, 1)[0]!;
    }
    return new ArrayBuffer(Math.max(bytes, CHUNK_MIN));
  }

  private post(m: ToWorker, transfer?: ArrayBuffer[]): void {
    if (!this.broken) this.worker.postMessage(m, transfer);
  }

  private finished(id: number): void {
    this.live.delete(id);
    if (this.live.size === 0) this.worker.unref();
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    const checks = [...this.live.values()];
    this.live.clear();
    for (const c of checks) c.fail(err);
  }
}

class WorkerCheck implements FedCheck {
  /** Bytes sent and not yet acknowledged. */
  private inFlight = 0;
  private refused: string | null = null;
  private failed: Error | null = null;
  private state: 'open' | 'ending' | 'done' = 'open';
  private waiting: { resolve: (r: string | null) => void; reject: (e: Error) => void } | null = null;
  private ending: { resolve: (r: string | null) => void; reject: (e: Error) => void } | null = null;

  constructor(
    private readonly id: number,
    private readonly post: (m: ToWorker, transfer?: ArrayBuffer[]) => void,
    private readonly bufferFor: (bytes: number) => ArrayBuffer,
    private readonly finished: () => void,
  ) {}

  write(chunk: Uint8Array): string | null | Promise<string | null> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.refused !== null) return this.refused;
    if (this.state !== 'open') throw new Error('XML check: write() after end()');
    // a copy, handed over: the caller reuses its buffer
    const buffer = this.bufferFor(chunk.byteLength);
    const bytes = new Uint8Array(buffer, 0, chunk.byteLength);
    bytes.set(chunk);
    this.inFlight += bytes.byteLength;
    this.post({ t: 'chunk', id: this.id, bytes }, [buffer]);
    if (this.inFlight <= WINDOW_BYTES) return null;
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  end(): Promise<string | null> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.state !== 'open') throw new Error('XML check: end() twice');
    this.state = 'ending';
    this.post({ t: 'end', id: this.id });
    return new Promise((resolve, reject) => (this.ending = { resolve, reject }));
  }

  abandon(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.post({ t: 'drop', id: this.id });
    this.finished();
  }

  receive(m: FromWorker): void {
    if (m.t === 'ack') {
      this.inFlight -= m.bytes;
      if (m.refused !== null) this.refused = m.refused;
      if (this.waiting && (this.inFlight <= WINDOW_BYTES || this.refused !== null)) {
        const w = this.waiting;
        this.waiting = null;
        w.resolve(this.refused);
      }
      return;
    }
    this.state = 'done';
    this.finished();
    this.ending?.resolve(m.verdict);
    this.ending = null;
  }

  fail(err: Error): void {
    this.failed = new Error(`XML check: ${err.message}`, { cause: err });
    this.state = 'done';
    this.waiting?.reject(this.failed);
    this.ending?.reject(this.failed);
    this.waiting = this.ending = null;
  }
}
