// Small files read whole from a share (transports/whole.ts, lan's readWhole): the listed bytes in
// one read, the calls made on the share counted, every change since the listing refused as open()
// refuses it; and the inbound pipeline's look at the inbox: one listing per group of entries.
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it, type TestContext } from 'node:test';
import { createLanTransport } from '../transports/lan/index.js';
import { readExactly } from '../transports/lan/read.js';
import { Share } from '../transports/lan/share.js';
import type { Endpoint, Source } from '../transports/types.js';
import { wholeReadOf } from '../transports/whole.js';
import { rejectsWith } from './conformance/suite.js';
import { testEndpoint } from './helpers/endpoint.js';
import { cdsXml, filesIn, makeStation, read, sha256, type Station } from './helpers/station.js';

const signal = () => new AbortController().signal;

/** Counts the file-system calls the lan transport makes (the real calls still run). */
async function countCalls(t: TestContext, probeFile: string) {
  const handle = await fsp.open(probeFile, 'r');
  const proto = Object.getPrototypeOf(handle) as FileHandle;
  await handle.close();
  const spies = {
    stat: t.mock.method(fsp, 'stat'),
    lstat: t.mock.method(fsp, 'lstat'),
    open: t.mock.method(fsp, 'open'),
    unlink: t.mock.method(fsp, 'unlink'),
    readdir: t.mock.method(fsp, 'readdir'),
    fstat: t.mock.method(proto, 'stat'),
    read: t.mock.method(proto, 'read'),
  };
  return {
    /** Calls of each kind since the last take, zero counts left out. */
    take(): Record<string, number> {
      const out: Record<string, number> = {};
      for (const [k, s] of Object.entries(spies)) {
        if (s.mock.callCount() > 0) out[k] = s.mock.callCount();
        s.mock.resetCalls();
      }
      return out;
    },
    /** The paths given to one kind of call since the last take. */
    paths: (k: 'lstat' | 'readdir') => spies[k].mock.calls.map((c) => String(c.arguments[0])),
  };
}

describe('lan: small files read whole', () => {
  let base: string;
  let root: string;
  let dir: string;
  const endpoint = (o: Partial<Endpoint> = {}): Endpoint => testEndpoint('lan-whole', 'from-station', o);
  const whole = async () => {
    const src = wholeReadOf(await createLanTransport({ type: 'lan', root }).openSource(endpoint(), signal()));
    assert.ok(src, 'the lan source reads small files whole');
    return src;
  };
  const entryOf = async (src: Source, name: string) => {
    const e = (await src.list(signal())).find((x) => x.name === name);
    assert.ok(e, `${name} listed`);
    return e;
  };

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'sprelay-lan-whole-'));
    root = join(base, 'share');
    dir = join(root, 'from-station');
    await mkdir(dir, { recursive: true });
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('a 20 KB package: its exact bytes in ONE read; open + acknowledge cost 8 calls on the share', async (t) => {
    const bytes = Buffer.concat([cdsXml('whole', 200), Buffer.alloc(20_000 - cdsXml('whole', 200).length, 0x20)]);
    await writeFile(join(dir, 'A.XML'), bytes);
    const src = await whole();
    const entry = await entryOf(src, 'A.XML');
    assert.ok(entry.size <= src.wholeMax);
    const calls = await countCalls(t, join(dir, 'A.XML'));
    const got = await src.readWhole(entry, signal());
    assert.equal(sha256(got), sha256(bytes));
    // the folder below the root (no stat of the root itself), the file, the open, its fstat, one read
    assert.deepEqual(calls.take(), { lstat: 2, open: 1, fstat: 1, read: 1 });
    await src.acknowledge(entry, signal());
    assert.deepEqual(calls.take(), { lstat: 2, unlink: 1 });
    assert.deepEqual(await readdir(dir), [], 'acknowledged: removed from the share');
  });

  it('an empty file is read whole too (zero bytes, one read that finds the end)', async () => {
    await writeFile(join(dir, 'EMPTY.XML'), '');
    const src = await whole();
    assert.equal((await src.readWhole(await entryOf(src, 'EMPTY.XML'), signal())).length, 0);
  });

  it('changed since it was listed (grown, shrunk, replaced by a link, gone): refused as open() refuses, left there', async () => {
    const src = await whole();
    await writeFile(join(dir, 'grow.xml'), '<a/>');
    await writeFile(join(dir, 'shrink.xml'), '<a>long</a>');
    await writeFile(join(dir, 'link.xml'), '<a/>');
    await writeFile(join(dir, 'gone.xml'), '<a/>');
    await writeFile(join(base, 'station-secret.xml'), '<secret/>');
    const [grow, shrink, link, gone] = await Promise.all(
      ['grow.xml', 'shrink.xml', 'link.xml', 'gone.xml'].map((n) => entryOf(src, n)),
    );
    await writeFile(join(dir, 'grow.xml'), '<a>more</a>');
    await writeFile(join(dir, 'shrink.xml'), '<a/>');
    await unlink(join(dir, 'link.xml'));
    await symlink(join(base, 'station-secret.xml'), join(dir, 'link.xml'));
    await unlink(join(dir, 'gone.xml'));
    await rejectsWith(src.readWhole(grow!, signal()), 'busy');
    await rejectsWith(src.readWhole(shrink!, signal()), 'busy');
    await rejectsWith(src.readWhole(link!, signal()), 'busy');
    await rejectsWith(src.readWhole(gone!, signal()), 'not-found');
    assert.equal((await readFile(join(dir, 'grow.xml'))).toString(), '<a>more</a>');
    assert.equal((await readFile(join(dir, 'shrink.xml'))).toString(), '<a/>');
    // listed as a link: refused outright, never opened
    const refused = await entryOf(src, 'link.xml');
    assert.ok(refused.refusal);
    await rejectsWith(src.readWhole(refused, signal()), 'rejected');
    // the share root gone: unavailable, as for open()
    await rm(root, { recursive: true });
    await rejectsWith(src.readWhole(grow!, signal()), 'unavailable');
  });

  it('readExactly: a file with more or fewer bytes than the size asked for is busy, exactly that size is read', async () => {
    const file = join(dir, 'x.xml');
    await writeFile(file, '0123456789');
    const share = new Share(root);
    for (const [size, ok] of [
      [9, false],
      [11, false],
      [10, true],
    ] as const) {
      const handle = await fsp.open(file, 'r');
      try {
        const read = readExactly(share, handle, size, 'read x.xml', 10_000, signal());
        if (ok) assert.equal((await read).toString(), '0123456789');
        else await rejectsWith(read, 'busy');
      } finally {
        await handle.close();
      }
    }
  });
});

describe('inbound: the inbox looked at once per group', () => {
  let st: Station;
  afterEach(() => st?.cleanup());

  it('five packages: no look at the inbox per entry; a name already there is still found (identical: duplicate, other bytes: waiting)', async (t) => {
    st = makeStation({ top: 'settle: 0s' });
    const names = ['P1.XML', 'P2.XML', 'P3.XML', 'P4.XML', 'P5.XML'];
    for (const n of names) await writeFile(join(st.exchange, n), cdsXml(n));
    const calls = await countCalls(t, join(st.exchange, names[0]!));
    const agent = st.agent();
    try {
      const [r1] = await agent.runOnce(['import']);
      assert.equal(r1!.delivered, 5);
      const inboxLooks = calls.paths('lstat').filter((p) => p.startsWith(st.inbox));
      assert.deepEqual(inboxLooks, [], 'no lstat of an inbox name per entry');
      const inboxLists = calls.paths('readdir').filter((p) => p === st.inbox);
      // the stale-temp sweep at the start of the cycle, and one for the group
      assert.equal(inboxLists.length, 2);
      for (const n of names) assert.equal(sha256(read(st.inbox, n)), sha256(cdsXml(n)));
      assert.deepEqual(filesIn(st.exchange), []);

      // P1 again with the same bytes (the file is still in the inbox): duplicate; P2 with other
      // bytes: waiting, the inbox file untouched
      await writeFile(join(st.exchange, 'P1.XML'), cdsXml('P1.XML'));
      await writeFile(join(st.exchange, 'P2.XML'), cdsXml('other'));
      calls.take();
      const [r2] = await agent.runOnce(['import']);
      assert.equal(r2!.delivered, 0);
      assert.equal(r2!.duplicates, 1);
      assert.equal(r2!.waiting, 1);
      assert.equal(sha256(read(st.inbox, 'P2.XML')), sha256(cdsXml('P2.XML')), 'never overwritten');
      assert.deepEqual(filesIn(st.exchange), ['P2.XML'], 'the waiting one stays on the share');
      assert.equal(filesIn(st.inbox).length, 5, 'never two copies in the inbox');
    } finally {
      agent.close();
    }
  });
});
