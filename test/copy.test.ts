// store/copy.ts (issue 11): one pass over a file with the file handle, no stream: a small file in
// one read, a large one in CHUNK_BYTES pieces; the bytes hashed and checked from the same read,
// the copy fsynced and kept, or removed (a refusal, a file longer than it was listed).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CHUNK_BYTES, copyChecked, type CopyCheck } from '../store/copy.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sprelay-copy-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A check that sees every byte (in order) and refuses at `refuseAt` bytes, if given. */
function seeing(refuseAt = Number.POSITIVE_INFINITY) {
  const seen: Buffer[] = [];
  let n = 0;
  const check: CopyCheck = {
    write(chunk) {
      seen.push(Buffer.from(chunk));
      n += chunk.length;
      return n >= refuseAt ? 'refused here' : null;
    },
    end: () => null,
  };
  return { check, seen: () => Buffer.concat(seen) };
}

describe('copyChecked', () => {
  for (const [what, size] of [
    ['an empty file', 0],
    ['a small file (one read)', 20_000],
    ['a file of exactly one chunk', CHUNK_BYTES],
    ['a large file (several chunks, not a multiple)', 3 * CHUNK_BYTES + 12_345],
  ] as const) {
    it(`${what}: copied whole, hashed, every byte checked once in order`, async () => {
      const bytes = randomBytes(size);
      const src = join(dir, 'src');
      const dest = join(dir, 'dest');
      writeFileSync(src, bytes);
      const s = seeing();
      const copy = await copyChecked(src, dest, { check: s.check, maxBytes: size });
      assert.deepEqual(copy, { size, sha256: sha256(bytes), refused: null, tooLong: false });
      assert.ok(readFileSync(dest).equals(bytes));
      assert.ok(s.seen().equals(bytes));
      // without a listed size: read to the end all the same
      const again = await copyChecked(src, join(dir, 'dest2'));
      assert.equal(again.sha256, sha256(bytes));
      assert.ok(readFileSync(join(dir, 'dest2')).equals(bytes));
    });
  }

  it('a large file goes through three buffers in turn: the memory held is bounded, and a chunk is checked while the next is read and the one before written', async () => {
    const size = 6 * CHUNK_BYTES + 7;
    const bytes = randomBytes(size);
    const src = join(dir, 'src');
    writeFileSync(src, bytes);
    const held: ArrayBufferLike[] = [];
    const check: CopyCheck = {
      write(chunk) {
        held.push(chunk.buffer);
        return null;
      },
      end: () => null,
    };
    const copy = await copyChecked(src, join(dir, 'dest'), { check, maxBytes: size });
    assert.equal(copy.sha256, sha256(bytes));
    assert.ok(readFileSync(join(dir, 'dest')).equals(bytes));
    assert.equal(held.length, 7);
    assert.equal(new Set(held).size, 3, 'three buffers whatever the size');
    // chunk k's buffer is neither k-1's (being written) nor k+1's (being read)
    for (let k = 2; k < held.length; k++) assert.equal(new Set(held.slice(k - 2, k + 1)).size, 3, `chunk ${k}`);
  });

  it('longer than listed (grown since): tooLong, no copy left', async () => {
    for (const size of [1000, 2 * CHUNK_BYTES + 7]) {
      const src = join(dir, `grown-${size}`);
      const dest = join(dir, `grown-${size}.copy`);
      writeFileSync(src, randomBytes(size));
      const copy = await copyChecked(src, dest, { maxBytes: size - 1 });
      assert.equal(copy.tooLong, true, `${size}`);
      assert.equal(copy.sha256, '');
      assert.equal(existsSync(dest), false, `${size}: the copy is removed`);
    }
  });

  it('shorter than listed (shrunk since): the bytes there are copied; the size says it is short', async () => {
    const bytes = randomBytes(5000);
    const src = join(dir, 'src');
    writeFileSync(src, bytes);
    const copy = await copyChecked(src, join(dir, 'dest'), { maxBytes: 6000 });
    assert.equal(copy.size, 5000);
    assert.equal(copy.tooLong, false);
  });

  it('refused by the check: in a small file nothing is created; in a large one the copy is removed', async () => {
    for (const [size, refuseAt] of [
      [20_000, 10],
      [3 * CHUNK_BYTES, 2 * CHUNK_BYTES],
    ] as const) {
      const src = join(dir, `r-${size}`);
      const dest = join(dir, `r-${size}.copy`);
      writeFileSync(src, randomBytes(size));
      const copy = await copyChecked(src, dest, { check: seeing(refuseAt).check, maxBytes: size });
      assert.equal(copy.refused, 'refused here');
      assert.equal(existsSync(dest), false);
    }
  });

  it('a missing source rejects with ENOENT and creates nothing', async () => {
    await assert.rejects(copyChecked(join(dir, 'gone'), join(dir, 'dest'), { maxBytes: 10 }), { code: 'ENOENT' });
    assert.equal(existsSync(join(dir, 'dest')), false);
  });
});
