// The one conformance suite every transport runs (in the spirit of rclone's fstests): each case
// states a rule from transports/types.ts and proves it against a real remote. A transport's test
// file only builds a ConformanceFixture and calls runConformance.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { TRANSPORT_ERROR_CODES, TransportError, type TransportErrorCode } from '../../transports/errors.js';
import type { Endpoint, OutgoingPackage, RemoteEntry, Sink, Source, Transport } from '../../transports/types.js';
import { folderCases } from './folders.js';

export interface ConformanceFixture {
  transport: Transport;
  /** A fresh endpoint onto the empty remote dir. */
  endpoint(overrides?: Partial<Endpoint>): Endpoint;
  /** Put a file at the remote behind the transport's back (as the office would). */
  placeRemote(name: string, bytes: Buffer): Promise<void>;
  /** Every name in the remote dir, including .part files. */
  remoteNames(): Promise<string[]>;
  readRemote(name: string): Promise<Buffer>;
  /** Make the remote unreachable; returns a function that restores it. */
  breakRemote(): Promise<() => Promise<void>>;
  /**
   * Where `afterReceive: move` puts entries, for transports that can move: the `to` value for the
   * endpoint and a look at that place behind the transport's back. Required when the transport
   * declares `features.move`.
   */
  moveTarget?: { to: string; names(): Promise<string[]>; read(name: string): Promise<Buffer> };
  cleanup(): Promise<void>;
}

const SERVIO_NAME = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC_NAME = 'Реализация топлива АЗС 17 за 11.05.2023.xml';
const CASE_TIMEOUT = 30_000;

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** An OutgoingPackage over `bytes`, delivered in chunks of `chunk` bytes. */
export function packageOf(name: string, bytes: Buffer, chunk = 64 * 1024): OutgoingPackage {
  return {
    name,
    size: bytes.length,
    sha256: sha256(bytes),
    open: () => Readable.from(chunksOf(bytes, chunk)),
  };
}

function* chunksOf(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/**
 * A package whose stream gives its first chunk, then one chunk every `everyMs` (or never again
 * when `everyMs` is null). `firstTaken` resolves once the transport has asked for more than the
 * first chunk; `streams` holds every stream handed out, to check that the transport let go of it.
 */
export function slowPackage(name: string, bytes: Buffer, chunk: number, everyMs: number | null) {
  let tookFirst!: () => void;
  const firstTaken = new Promise<void>((resolve) => (tookFirst = resolve));
  const streams: Readable[] = [];
  const pkg: OutgoingPackage = {
    name,
    size: bytes.length,
    sha256: sha256(bytes),
    open() {
      let at = 0;
      let timer: NodeJS.Timeout | undefined;
      const stream = new Readable({
        read() {
          if (at > 0) tookFirst();
          if (at >= bytes.length) return void this.push(null);
          const push = () => {
            const piece = bytes.subarray(at, at + chunk);
            at += piece.length;
            this.push(piece);
          };
          if (at === 0) push();
          else if (everyMs !== null) timer = setTimeout(push, everyMs);
        },
        destroy(err, cb) {
          clearTimeout(timer);
          cb(err);
        },
      });
      streams.push(stream);
      return stream;
    },
  };
  return { pkg, firstTaken, streams };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/** Awaits a rejection and checks it is a TransportError with `code` and the table's retry mark. */
export async function rejectsWith(promise: Promise<unknown>, code: TransportErrorCode): Promise<TransportError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected TransportError('${code}'), but the call succeeded`);
  assert.ok(caught instanceof TransportError, `expected a TransportError, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected code '${code}', got '${caught.code}': ${caught.message}`);
  assert.equal(caught.retryable, TRANSPORT_ERROR_CODES[code].retryable);
  assert.equal(caught.scope, TRANSPORT_ERROR_CODES[code].scope);
  return caught;
}

/** Awaits a rejection and checks it is a retryable TransportError (any code). */
async function rejectsRetryable(promise: Promise<unknown>, what: string): Promise<TransportError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `${what}: expected a retryable TransportError, but the call succeeded`);
  assert.ok(caught instanceof TransportError, `${what}: expected a TransportError, got ${String(caught)}`);
  assert.ok(caught.retryable, `${what}: expected a retryable error, got '${caught.code}': ${caught.message}`);
  return caught;
}

const signal = () => new AbortController().signal;

export function runConformance(name: string, setup: () => Promise<ConformanceFixture>): void {
  describe(`${name}: transport conformance`, () => {
    let fx: ConformanceFixture;
    const opened: Array<Sink | Source> = [];

    beforeEach(async () => {
      fx = await setup();
    });
    afterEach(async () => {
      for (const c of opened.splice(0)) await c.close();
      await fx.cleanup();
    });

    const sink = async (overrides?: Partial<Endpoint>) => {
      const s = await fx.transport.openSink(fx.endpoint(overrides), signal());
      opened.push(s);
      return s;
    };
    const source = async (overrides?: Partial<Endpoint>) => {
      const s = await fx.transport.openSource(fx.endpoint(overrides), signal());
      opened.push(s);
      return s;
    };
    const entryNamed = async (src: Source, n: string): Promise<RemoteEntry> => {
      const entry = (await src.list(signal())).find((e) => e.name === n);
      assert.ok(entry, `${n} is not listed`);
      return entry;
    };
    const noPartNames = async () => {
      const parts = (await fx.remoteNames()).filter((n) => n.toLowerCase().endsWith('.part'));
      assert.deepEqual(parts, [], 'no .part file is left on the remote');
    };

    const roundTrips: Array<[string, string, () => Buffer]> = [
      ['a SERVIO archive name', SERVIO_NAME, () => Buffer.from('<?xml version="1.0"?><DATAPACKET Version="2.0"/>')],
      ['a Cyrillic name with spaces', CYRILLIC_NAME, () => Buffer.from([0x3c, 0x61, 0xc0, 0xe1, 0xe2, 0x2f, 0x3e])],
      ['an empty file', 'empty table.xml', () => Buffer.alloc(0)],
      ['a 3 MB file', 'bundle 3MB.zip', () => randomBytes(3 * 1024 * 1024)],
    ];
    for (const [label, fileName, bytesOf] of roundTrips) {
      it(`put, list, open round trip: ${label}`, { timeout: CASE_TIMEOUT }, async () => {
        const bytes = bytesOf();
        const result = await (await sink()).put(packageOf(fileName, bytes), signal());
        assert.equal(result.alreadyPresent, false);
        assert.ok(result.remoteRef.length > 0, 'remoteRef names where it went');

        const src = await source();
        const listed = await src.list(signal());
        assert.deepEqual(
          listed.map((e) => e.name),
          [fileName],
          'the listing shows exactly the name that was put',
        );
        assert.equal(listed[0]!.size, bytes.length);
        assert.deepEqual(
          (await src.list(signal())).map((e) => [e.name, e.size, e.ref]),
          listed.map((e) => [e.name, e.size, e.ref]),
          'listing twice with nothing changed gives the same entries',
        );

        const read = await readAll(await src.open(listed[0]!, signal()));
        assert.equal(read.length, bytes.length);
        assert.equal(sha256(read), sha256(bytes), 'open gives back the bytes that were put');
        assert.equal(sha256(await fx.readRemote(fileName)), sha256(bytes), 'the remote holds the bytes that were put');
        await noPartNames();
      });
    }

    it(
      'put of an identical file again reports alreadyPresent and leaves it alone',
      { timeout: CASE_TIMEOUT },
      async () => {
        const bytes = Buffer.from('<DATAPACKET><ROWDATA/></DATAPACKET>');
        const s = await sink();
        await s.put(packageOf(SERVIO_NAME, bytes), signal());
        const before = await fx.remoteNames();
        const again = await s.put(packageOf(SERVIO_NAME, bytes), signal());
        assert.equal(again.alreadyPresent, true);
        assert.deepEqual(await fx.readRemote(SERVIO_NAME), bytes);
        assert.deepEqual((await fx.remoteNames()).sort(), before.sort());
      },
    );

    it('put of different bytes under an existing name fails with exists', { timeout: CASE_TIMEOUT }, async () => {
      const original = Buffer.from('original bytes');
      await fx.placeRemote(SERVIO_NAME, original);
      const s = await sink();
      await rejectsWith(s.put(packageOf(SERVIO_NAME, Buffer.from('other bytes!!!')), signal()), 'exists');
      // same size, different bytes: size alone must not pass for identity
      await rejectsWith(s.put(packageOf(SERVIO_NAME, Buffer.from('ORIGINAL BYTES')), signal()), 'exists');
      assert.deepEqual(await fx.readRemote(SERVIO_NAME), original, 'the remote file is unchanged');
      await noPartNames();
    });

    it('put with overwrite replaces an existing different file', { timeout: CASE_TIMEOUT }, async () => {
      await fx.placeRemote(SERVIO_NAME, Buffer.from('old version'));
      const replacement = Buffer.from('<DATAPACKET>new version</DATAPACKET>');
      const result = await (await sink({ overwrite: true })).put(packageOf(SERVIO_NAME, replacement), signal());
      assert.equal(result.alreadyPresent, false);
      assert.deepEqual(await fx.readRemote(SERVIO_NAME), replacement);
      await noPartNames();
    });

    it(
      'abort mid-put rejects with aborted promptly and never shows the final name',
      { timeout: CASE_TIMEOUT },
      async () => {
        const bytes = randomBytes(64 * 1024);
        const slow = slowPackage('aborted.xml', bytes, 1024, 100);
        const s = await sink();
        const ctl = new AbortController();
        const putting = s.put(slow.pkg, ctl.signal);
        const outcome = rejectsWith(putting, 'aborted');
        await Promise.race([slow.firstTaken, putting.catch(() => undefined)]);
        await new Promise((resolve) => setTimeout(resolve, 250)); // a few chunks are on their way
        assert.ok(!(await fx.remoteNames()).includes('aborted.xml'), 'a put in progress is not under its final name');
        assert.deepEqual(await (await source()).list(signal()), [], 'a put in progress is not listed');
        const abortedAt = Date.now();
        ctl.abort();
        await outcome;
        assert.ok(Date.now() - abortedAt < 2000, `rejected ${Date.now() - abortedAt} ms after the abort`);
        assert.ok(!(await fx.remoteNames()).includes('aborted.xml'), 'no final name after an abort');
        assert.ok(!(await (await source()).list(signal())).some((e) => e.name === 'aborted.xml'));
        assert.ok(
          slow.streams.every((st) => st.destroyed),
          'the package stream is released',
        );
      },
    );

    it('a put whose source stalls fails with timeout in bounded time', { timeout: CASE_TIMEOUT }, async () => {
      const slow = slowPackage('stalled.xml', randomBytes(8 * 1024), 1024, null);
      const s = await sink({ timeoutMs: 300 });
      const startedAt = Date.now();
      await rejectsWith(s.put(slow.pkg, signal()), 'timeout');
      assert.ok(Date.now() - startedAt < 10_000, `gave up after ${Date.now() - startedAt} ms with timeoutMs 300`);
      assert.ok(!(await fx.remoteNames()).includes('stalled.xml'), 'no final name after a stall');
      assert.ok(
        slow.streams.every((st) => st.destroyed),
        'the package stream is released',
      );
    });

    it('put with an already aborted signal writes nothing', { timeout: CASE_TIMEOUT }, async () => {
      const s = await sink();
      await rejectsWith(s.put(packageOf('never.xml', Buffer.from('x')), AbortSignal.abort()), 'aborted');
      assert.deepEqual(await fx.remoteNames(), []);
    });

    it('list never returns .part files', { timeout: CASE_TIMEOUT }, async () => {
      await fx.placeRemote('in progress.xml.part', Buffer.from('half'));
      await fx.placeRemote('SHOUTING.XML.PART', Buffer.from('half'));
      await fx.placeRemote('done.xml', Buffer.from('<a/>'));
      const names = (await (await source()).list(signal())).map((e) => e.name);
      assert.deepEqual(names, ['done.xml']);
    });

    it('open of a missing entry fails with not-found', { timeout: CASE_TIMEOUT }, async () => {
      await fx.placeRemote('gone.xml', Buffer.from('<a/>'));
      const src = await source();
      const entry = await entryNamed(src, 'gone.xml');
      await src.acknowledge(entry, signal());
      await rejectsWith(src.open(entry, signal()), 'not-found');
    });

    it(
      'acknowledge (delete) removes the entry; a second acknowledge is a no-op',
      { timeout: CASE_TIMEOUT },
      async () => {
        await fx.placeRemote('import me.xml', Buffer.from('<a/>'));
        await fx.placeRemote('stay.xml', Buffer.from('<b/>'));
        const src = await source();
        const entry = await entryNamed(src, 'import me.xml');
        await src.acknowledge(entry, signal());
        assert.deepEqual(await fx.remoteNames(), ['stay.xml']);
        assert.deepEqual(
          (await src.list(signal())).map((e) => e.name),
          ['stay.xml'],
        );
        await src.acknowledge(entry, signal());
        assert.deepEqual(await fx.remoteNames(), ['stay.xml'], 'the repeat touched nothing else');
      },
    );

    // What the transport declares decides what each case proves: a declared feature works, an
    // undeclared one is refused. Every case runs for every transport; none is skipped.
    it(
      'afterReceive move: done when the transport declares it, refused when it does not',
      { timeout: CASE_TIMEOUT },
      async () => {
        const bytes = Buffer.from('<DATAPACKET/>');
        await fx.placeRemote(SERVIO_NAME, bytes);
        if (!fx.transport.features.move) {
          const moving = (async () => {
            const src = await source({ afterReceive: { kind: 'move', to: 'done' } });
            await src.acknowledge(await entryNamed(src, SERVIO_NAME), signal());
          })();
          await rejectsWith(moving, 'unsupported');
          assert.deepEqual(await fx.remoteNames(), [SERVIO_NAME], 'left where it was');
          return;
        }
        const target = fx.moveTarget;
        assert.ok(target, 'the transport declares features.move but the fixture gives no moveTarget');
        const src = await source({ afterReceive: { kind: 'move', to: target.to } });
        const entry = await entryNamed(src, SERVIO_NAME);
        await src.acknowledge(entry, signal());
        assert.ok(!(await fx.remoteNames()).includes(SERVIO_NAME), 'gone from the remote dir');
        assert.deepEqual(await target.names(), [SERVIO_NAME]);
        assert.deepEqual(await target.read(SERVIO_NAME), bytes);
        await src.acknowledge(entry, signal());
        assert.deepEqual(await target.names(), [SERVIO_NAME], 'a repeat moves nothing');
      },
    );

    it('a sink offers bundle exactly when the transport declares it', { timeout: CASE_TIMEOUT }, async () => {
      const s = await sink();
      assert.equal(s.bundle !== undefined, fx.transport.features.bundle);
      if (s.bundle) assert.ok(s.bundle.maxCount > 1 && s.bundle.maxBytes > 0, 'a bundle carries more than one package');
    });

    it('a broken remote gives retryable errors, and works again once restored', { timeout: CASE_TIMEOUT }, async () => {
      const ep = { timeoutMs: 2000 };
      const s = await sink(ep);
      const src = await source(ep);
      const restore = await fx.breakRemote();
      try {
        await rejectsRetryable(src.list(signal()), 'list');
        await rejectsRetryable(s.put(packageOf('during outage.xml', Buffer.from('<a/>')), signal()), 'put');
        const steps = await fx.transport.probe(fx.endpoint(ep), 'out', signal());
        const failed = steps.find((st) => !st.ok);
        assert.ok(failed, 'probe reports a failing step');
        assert.ok(
          failed.code && TRANSPORT_ERROR_CODES[failed.code as TransportErrorCode]?.retryable,
          `code ${failed.code}`,
        );
        await s.close();
        await src.close();
      } finally {
        await restore();
      }
      const bytes = Buffer.from('<after/>');
      await (await sink(ep)).put(packageOf('after outage.xml', bytes), signal());
      const again = await source(ep);
      const entry = await entryNamed(again, 'after outage.xml');
      assert.deepEqual(await readAll(await again.open(entry, signal())), bytes);
      assert.ok(!(await fx.remoteNames()).includes('during outage.xml'));
    });

    for (const direction of ['out', 'in'] as const) {
      it(
        `probe (${direction}) on a good endpoint: every step ok, no probe file left`,
        { timeout: CASE_TIMEOUT },
        async () => {
          // an in-route's folder is the office's to make: have it there (an out probe makes it)
          if (direction === 'in') await fx.transport.probe(fx.endpoint(), 'out', signal());
          const steps = await fx.transport.probe(fx.endpoint(), direction, signal());
          assert.ok(steps.length >= 2, 'probe reports its steps');
          for (const st of steps) assert.equal(st.ok, true, `${st.step}: ${st.detail ?? ''}`);
          assert.deepEqual(await fx.remoteNames(), [], 'the probe cleaned up after itself');
        },
      );
    }

    it(
      'probe (in) on a remote folder that is not there fails at list remote and creates nothing; probe (out) creates it and says so',
      { timeout: CASE_TIMEOUT },
      async () => {
        const typo = { remote: `${fx.endpoint().remote}/typo-folder` };
        const steps = await fx.transport.probe(fx.endpoint(typo), 'in', signal());
        const list = steps.find((st) => st.step === 'list remote');
        assert.ok(list, `a list remote step: ${JSON.stringify(steps)}`);
        assert.equal(list.ok, false);
        assert.equal(list.code, 'not-found');
        assert.match(list.detail ?? '', /typo-folder does not exist; an in-route does not create it/);
        const out = await fx.transport.probe(fx.endpoint(typo), 'out', signal());
        assert.match(out.find((st) => st.step === 'list remote')?.detail ?? '', /\(created: it was not there\)/);
        const again = await fx.transport.probe(fx.endpoint(typo), 'in', signal());
        for (const st of again) assert.equal(st.ok, true, `${st.step}: ${st.detail ?? ''}`);
      },
    );

    folderCases({ fx: () => fx, source, sink, caseTimeout: CASE_TIMEOUT });

    it('close never throws and is safe to call twice', { timeout: CASE_TIMEOUT }, async () => {
      const s = await fx.transport.openSink(fx.endpoint(), signal());
      const src = await fx.transport.openSource(fx.endpoint(), signal());
      await s.close();
      await s.close();
      await src.close();
      await src.close();
    });
  });
}
