// Windows only: files held by another process. On a station, SERVIO PUMP GAS, an antivirus scanner
// or an office reader holds a file for a moment, and Windows then refuses to rename or delete it
// (EBUSY for a sharing violation, EPERM for a rename onto a file that is open). store/files.ts
// (renameRetrying, unlinkRetrying) and the lan transport (`whileLocked`: the rename of a `.part`,
// the delete or move that acknowledges a received file) wait and try again; held for longer than
// they wait, the file stays where it is and the error says so. The holder is a second node.exe
// (test/windows/win.ts) with a deny-all share mode.
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { renameRetrying, unlinkRetrying } from '../../store/files.js';
import { TransportError } from '../../transports/errors.js';
import { createLanTransport } from '../../transports/lan/index.js';
import type { Endpoint } from '../../transports/types.js';
import { packageOf } from '../conformance/suite.js';
import { holdFile, releaseAll, requireWindows, sleep } from './win.js';
import { testEndpoint } from '../helpers/endpoint.js';

let dir = '';
before(() => {
  requireWindows();
  dir = mkdtempSync(join(tmpdir(), 'sprelay-locked-'));
});
afterEach(() => releaseAll());
after(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));

let seq = 0;
function fresh(content = '<a/>'): string {
  const file = join(dir, `file ${++seq}.xml`);
  writeFileSync(file, content);
  return file;
}

/** Runs `op`, calling `release` `ms` after the start; resolves with how long `op` itself took. */
async function releasedDuring(op: () => Promise<unknown>, release: () => Promise<void>, ms: number) {
  const started = Date.now();
  const releasing = sleep(ms).then(release);
  try {
    await op();
    return Date.now() - started;
  } finally {
    await releasing;
  }
}

describe('what Windows does to a file another process holds (the premise of the retries)', () => {
  it('deny-all holder: open r+, rename and unlink fail with EBUSY; the file stays', async () => {
    const file = fresh();
    const h = await holdFile(file);
    await assert.rejects(fsp.open(file, 'r+'), { code: 'EBUSY' });
    await assert.rejects(fsp.rename(file, file + '.moved'), { code: 'EBUSY' });
    await assert.rejects(fsp.unlink(file), { code: 'EBUSY' });
    assert.ok(existsSync(file));
    await h.release();
    await fsp.unlink(file);
    assert.equal(existsSync(file), false);
  });

  it('a rename onto a file that is open (ordinary share mode) fails with EPERM', async () => {
    const target = fresh('<old/>');
    const from = fresh('<new/>');
    const fd = openSync(target, 'r'); // Node opens with read/write/delete sharing, like most readers
    try {
      await assert.rejects(fsp.rename(from, target), { code: 'EPERM' });
    } finally {
      closeSync(fd);
    }
    await fsp.rename(from, target);
    assert.equal(readFileSync(target, 'utf8'), '<new/>');
  });

  it('an unlink of a file that is open (ordinary share mode) succeeds', async () => {
    // Windows 10 NTFS deletes with POSIX semantics: the name is gone at once. Wine keeps the name
    // until the last handle closes (a "delete pending" file). Either way the unlink succeeds and
    // the name is gone once the reader has closed; that is all sprelay relies on.
    const file = fresh();
    const fd = openSync(file, 'r');
    try {
      await fsp.unlink(file);
    } finally {
      closeSync(fd);
    }
    assert.equal(existsSync(file), false);
  });
});

describe('store/files.ts: renameRetrying and unlinkRetrying', () => {
  it('unlinkRetrying waits for a holder that lets go', async () => {
    const file = fresh();
    const h = await holdFile(file);
    const took = await releasedDuring(() => unlinkRetrying(file), h.release, 300);
    assert.equal(existsSync(file), false);
    assert.ok(took >= 300, `unlink returned after ${took} ms, before the holder let go`);
  });

  it('renameRetrying waits for a holder that lets go', async () => {
    const file = fresh('<moved/>');
    const to = file + '.renamed';
    const h = await holdFile(file);
    const took = await releasedDuring(() => renameRetrying(file, to), h.release, 300);
    assert.equal(existsSync(file), false);
    assert.equal(readFileSync(to, 'utf8'), '<moved/>');
    assert.ok(took >= 300, `rename returned after ${took} ms, before the holder let go`);
  });

  it('held for longer than they wait: EBUSY, and the file is untouched', async () => {
    const file = fresh('<kept/>');
    const h = await holdFile(file);
    const started = Date.now();
    await assert.rejects(unlinkRetrying(file), { code: 'EBUSY' });
    await assert.rejects(renameRetrying(file, file + '.renamed'), { code: 'EBUSY' });
    // 6 tries each, 50 ms doubling in between: about 1.5 s per call
    assert.ok(Date.now() - started >= 2 * 1400, `gave up after ${Date.now() - started} ms`);
    await h.release();
    assert.equal(readFileSync(file, 'utf8'), '<kept/>');
    assert.equal(existsSync(file + '.renamed'), false);
  });
});

describe('lan transport: whileLocked', () => {
  const signal = () => AbortSignal.timeout(30_000);
  const endpoint = (o: Partial<Endpoint> = {}): Endpoint =>
    testEndpoint('lan', 'exchange', { timeoutMs: 10_000, ...o });
  let root = '';
  const remoteDir = () => join(root, 'exchange');
  const lan = () => createLanTransport({ type: 'lan', root });

  async function received(name: string, bytes: string, o: Partial<Endpoint> = {}) {
    root = mkdtempSync(join(dir, 'share-'));
    await fsp.mkdir(remoteDir());
    writeFileSync(join(remoteDir(), name), bytes);
    const src = await lan().openSource(endpoint(o), signal());
    const entry = (await src.list(signal())).find((e) => e.name === name);
    assert.ok(entry, `${name} listed`);
    return { src, entry, file: join(remoteDir(), name) };
  }

  it('acknowledge (delete) of a file the office still holds waits until it lets go', async () => {
    const { src, entry, file } = await received('Сменный отчёт.xml', '<a/>');
    const h = await holdFile(file);
    const took = await releasedDuring(() => src.acknowledge(entry, signal()), h.release, 600);
    assert.deepEqual(readdirSync(remoteDir()), []);
    assert.ok(took >= 600, `acknowledged after ${took} ms, before the holder let go`);
  });

  it('acknowledge (move) of a held file waits until it lets go', async () => {
    const { src, entry, file } = await received('GSMARCHIVE_3 11_05_2023.XML', '<b/>', {
      afterReceive: { kind: 'move', to: 'done' },
    });
    const h = await holdFile(file);
    await releasedDuring(() => src.acknowledge(entry, signal()), h.release, 600);
    assert.deepEqual(readdirSync(remoteDir()), []);
    assert.equal(readFileSync(join(root, 'done', 'GSMARCHIVE_3 11_05_2023.XML'), 'utf8'), '<b/>');
  });

  it('held past the last attempt: busy (retryable, this package only), and the file is still there', async () => {
    const { src, entry, file } = await received('held.xml', '<c/>');
    const h = await holdFile(file);
    const started = Date.now();
    const err = await src.acknowledge(entry, signal()).then(
      () => assert.fail('acknowledged a file that is held'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TransportError, String(err));
    assert.equal(err.code, 'busy', err.message);
    assert.equal(err.retryable, true);
    assert.equal(err.scope, 'package');
    assert.match(err.message, /still locked after 5 attempts \(EBUSY\)/);
    assert.ok(Date.now() - started >= 1800, `gave up after ${Date.now() - started} ms`);
    await h.release();
    assert.equal(readFileSync(file, 'utf8'), '<c/>');
  });

  it('put over a file the office has open: the rename of the .part is retried (EPERM), then lands', async () => {
    root = mkdtempSync(join(dir, 'share-'));
    await fsp.mkdir(remoteDir());
    const target = join(remoteDir(), 'TANKS.XML');
    writeFileSync(target, '<old version="1"/>');
    const sink = await lan().openSink(endpoint({ overwrite: true }), signal());
    const fd = openSync(target, 'r'); // an office reader with the ordinary share mode
    const bytes = Buffer.from('<TANKS><T N="1"/></TANKS>');
    const took = await releasedDuring(
      () => sink.put(packageOf('TANKS.XML', bytes), signal()),
      async () => closeSync(fd),
      400,
    );
    assert.ok(took >= 400, `put returned after ${took} ms, before the reader closed`);
    assert.deepEqual(readFileSync(target), bytes);
    assert.deepEqual(readdirSync(remoteDir()), ['TANKS.XML'], 'no .part left behind');
  });
});
