// The XML check of large packages on a worker thread (agent/check/parallel.ts, issue 11): the same
// verdict as in-thread for every document of the hostile corpus and for large ones, whatever the
// chunks; the memory in flight bounded; a worker that dies fails its checks loudly and later checks
// run in-thread; and through the real CLI (bin/sprelay.js, the bundle in dist/app/, where the worker
// runs beside cli.js), a large good package goes out and comes in byte-identical while a large bad
// one is refused on both sides. The worker runs from the compiled tree: under tsx (these tests'
// own imports) a worker gets no TypeScript loader, so the module is imported from dist/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createXmlCheck } from '../agent/check/xml.js';
import { DEFAULT_XML_LIMITS } from '../agent/check/limits.js';
import type * as Parallel from '../agent/check/parallel.js';
import type * as Copy from '../store/copy.js';
import { BIN, requireBuild } from './helpers/child.js';
import { ENTRIES } from './hostile/corpus.js';
import { makeStation, sha256 } from './helpers/station.js';

const MiB = 1024 * 1024;

async function compiled<T>(rel: string): Promise<T> {
  const url = new URL(`../dist/${rel}`, import.meta.url);
  assert.ok(existsSync(url), `dist/${rel} is missing: run npm run build (npm test does)`);
  return (await import(url.href)) as T;
}

/** A ClientDataSet of about `bytes`, with `bad` spliced in at `at` (a fraction of its length). */
function bigCds(bytes: number, bad?: { text: string; at: number }): Buffer {
  const head = '<?xml version="1.0" encoding="UTF-8"?><DATAPACKET Version="2.0"><METADATA/><ROWDATA>\n';
  const rows: string[] = [];
  let size = head.length;
  for (let i = 0; size < bytes; i++) {
    const row = `<ROW ID="${i}" FUEL="АИ-95" VOLUME="${(i * 1.37).toFixed(2)}" NOTE="смена ${i % 97} &amp; ok"/>\n`;
    rows.push(row);
    size += Buffer.byteLength(row);
  }
  if (bad) rows.splice(Math.floor(rows.length * bad.at), 0, bad.text);
  return Buffer.from(`${head}${rows.join('')}</ROWDATA></DATAPACKET>\n`);
}

async function feed(check: Parallel.FedCheck, bytes: Buffer, chunk: number): Promise<string | null> {
  for (let i = 0; i < bytes.length; i += chunk) {
    const r = await check.write(bytes.subarray(i, i + chunk));
    if (r !== null) {
      check.abandon?.();
      return r;
    }
  }
  return check.end();
}

function inThread(bytes: Buffer, chunk: number): string | null {
  const check = createXmlCheck(DEFAULT_XML_LIMITS, { size: bytes.length });
  for (let i = 0; i < bytes.length; i += chunk) {
    const r = check.write(bytes.subarray(i, i + chunk));
    if (r !== null) return r;
  }
  return check.end();
}

test('the worker thread gives the in-thread verdict: hostile corpus and large documents, in any chunks', async (t) => {
  const par = await compiled<typeof Parallel>('agent/check/parallel.js');
  const docs: Array<[string, Buffer]> = [];
  for (const e of ENTRIES) if (/\.xml$/i.test(e.name)) docs.push([e.id, await e.bytes()]);
  docs.push(
    ['large, good', bigCds(12 * MiB)],
    ['large, unclosed tag near the end', bigCds(12 * MiB, { text: '<ROW ID="x">\n', at: 0.97 })],
    ['large, undefined entity early', bigCds(12 * MiB, { text: '<ROW NOTE="&nbsp;"/>\n', at: 0.1 })],
    ['large, control character midway', bigCds(12 * MiB, { text: '<ROW NOTE="\u0001"/>\n', at: 0.5 })],
  );
  let refused = 0;
  for (const [what, bytes] of docs) {
    for (const chunk of [MiB, 64 * 1024 + 7]) {
      const expected = inThread(bytes, chunk);
      const check = par.workerXmlCheck(DEFAULT_XML_LIMITS, { size: bytes.length });
      assert.ok(check, 'no worker thread could be started from dist/');
      assert.equal(await feed(check, bytes, chunk), expected, `${what}, chunks of ${chunk}`);
      if (expected !== null) refused++;
    }
  }
  t.diagnostic(`${docs.length} documents, ${refused / 2} refused`);
  assert.ok(docs.length >= 19 && refused >= 2 * 3, 'the corpus has good and bad documents');
});

test('a large package is checked on the worker, a small one in-thread; at most the window is in flight', async () => {
  const par = await compiled<typeof Parallel>('agent/check/parallel.js');
  const small = par.createPackageXmlCheck(DEFAULT_XML_LIMITS, { size: par.PARALLEL_MIN_BYTES - 1 });
  assert.equal(small.write(Buffer.from('<r/>')), null, 'in-thread: answers at once');
  assert.equal(small.end(), null);
  const large = par.createPackageXmlCheck(DEFAULT_XML_LIMITS, { size: par.PARALLEL_MIN_BYTES });
  // writes answer at once until more than the window is in flight, then with a promise
  const bytes = bigCds(16 * MiB);
  let sentBeforeWait = 0;
  let i = 0;
  for (; i < bytes.length; i += MiB) {
    const r = large.write(bytes.subarray(i, i + MiB));
    if (r !== null && typeof r === 'object') {
      sentBeforeWait = Math.min(i + MiB, bytes.length);
      assert.equal(await r, null);
      i += MiB;
      break;
    }
    assert.equal(r, null);
  }
  assert.ok(sentBeforeWait > 0, 'the check never asked the writer to wait');
  assert.ok(sentBeforeWait <= par.WINDOW_BYTES + MiB, `${sentBeforeWait} bytes went out before the first wait`);
  for (; i < bytes.length; i += MiB) assert.equal(await large.write(bytes.subarray(i, i + MiB)), null);
  assert.equal(await large.end(), null);
});

test('copyChecked with the worker: a large good file is copied whole, a large bad one refused and its copy removed', async () => {
  const par = await compiled<typeof Parallel>('agent/check/parallel.js');
  const { copyChecked } = await compiled<typeof Copy>('store/copy.js');
  const st = makeStation();
  try {
    const good = bigCds(10 * MiB);
    const bad = bigCds(10 * MiB, { text: '</WRONG>\n', at: 0.6 });
    writeFileSync(join(st.dir, 'good.xml'), good);
    writeFileSync(join(st.dir, 'bad.xml'), bad);
    const g = await copyChecked(join(st.dir, 'good.xml'), join(st.dir, 'good.copy'), {
      check: par.createPackageXmlCheck(DEFAULT_XML_LIMITS, { size: good.length }),
    });
    assert.deepEqual(
      { refused: g.refused, size: g.size, sha256: g.sha256 },
      { refused: null, size: good.length, sha256: sha256(good) },
    );
    assert.ok(readFileSync(join(st.dir, 'good.copy')).equals(good), 'the copy is the file');
    const b = await copyChecked(join(st.dir, 'bad.xml'), join(st.dir, 'bad.copy'), {
      check: par.createPackageXmlCheck(DEFAULT_XML_LIMITS, { size: bad.length }),
    });
    assert.match(b.refused ?? '', /unmatched closing tag: WRONG/);
    assert.equal(existsSync(join(st.dir, 'bad.copy')), false, 'the refused copy is removed');
  } finally {
    st.cleanup();
  }
});

test('a worker that dies fails the checks it had, loudly; later checks run in-thread', async () => {
  // its own process: the worker is one per process, and this test ends it
  const url = new URL('../dist/agent/check/parallel.js', import.meta.url).href;
  const limits = JSON.stringify(DEFAULT_XML_LIMITS);
  const script = `
    const par = await import(${JSON.stringify(url)});
    const { Worker } = await import('node:worker_threads');
    const big = Buffer.from('<r>' + 'x'.repeat(9 * 1024 * 1024) + '</r>');
    const c = par.workerXmlCheck(${limits}, { size: big.length });
    await c.write(big.subarray(0, 1024 * 1024));
    par.stopCheckWorkerForTests();
    let error = null;
    try { await c.write(big.subarray(1024 * 1024, 2 * 1024 * 1024)); await c.end(); } catch (e) { error = e.message; }
    const after = par.createPackageXmlCheck(${limits}, { size: big.length });
    const sync = after.write(big);
    console.log(JSON.stringify({ error, sync, end: after.end(), worker: par.workerXmlCheck(${limits}, {}) === null }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  assert.match(String(out.error), /^XML check: the XML check thread ended/);
  assert.deepEqual({ sync: out.sync, end: out.end, worker: out.worker }, { sync: null, end: null, worker: true });
});

test('the CLI (dist/app bundle): a 9 MB good package goes out and comes in byte-identical, a 9 MB bad one is refused both ways', () => {
  requireBuild();
  assert.ok(existsSync(new URL('../dist/app/check-worker.js', import.meta.url)), 'the bundle has no check-worker.js');
  const st = makeStation({ out: '    maxSize: 50MB', in: '    maxSize: 50MB' });
  try {
    const good = bigCds(9 * MiB);
    const bad = bigCds(9 * MiB, { text: '<ROW NOTE="&bogus;"/>\n', at: 0.8 });
    const old = new Date(Date.now() - 60_000);
    for (const [dir, name, bytes] of [
      [st.outbox, 'GOOD_OUT.XML', good],
      [st.outbox, 'BAD_OUT.XML', bad],
      [st.exchange, 'GOOD_IN.XML', good],
      [st.exchange, 'BAD_IN.XML', bad],
    ] as const) {
      writeFileSync(join(dir, name), bytes);
      utimesSync(join(dir, name), old, old);
    }
    const once = (route: string) =>
      spawnSync(process.execPath, [BIN, '--config', st.configFile, 'once', '--route', route], {
        encoding: 'utf8',
        cwd: st.dir,
      });
    // in first: the exchange then holds only the office's two files
    const inRun = once('import');
    assert.ok(existsSync(join(st.inbox, 'GOOD_IN.XML')), `${inRun.stdout}\n${inRun.stderr}`);
    assert.ok(readFileSync(join(st.inbox, 'GOOD_IN.XML')).equals(good), 'the good package came in whole');
    assert.equal(existsSync(join(st.inbox, 'BAD_IN.XML')), false, 'the bad package is not in the inbox');
    assert.match(`${inRun.stdout}${inRun.stderr}`, /BAD_IN\.XML/);
    const outRun = once('export');
    assert.ok(existsSync(join(st.exchange, 'GOOD_OUT.XML')), `${outRun.stdout}\n${outRun.stderr}`);
    assert.ok(readFileSync(join(st.exchange, 'GOOD_OUT.XML')).equals(good), 'the good package went out whole');
    assert.equal(existsSync(join(st.exchange, 'BAD_OUT.XML')), false, 'the bad package did not go out');
    const list = spawnSync(process.execPath, [BIN, '--config', st.configFile, 'list', '--json'], {
      encoding: 'utf8',
      cwd: st.dir,
    });
    const rows = JSON.parse(list.stdout) as Array<{ name: string; state: string; lastError?: string | null }>;
    const byName = new Map(rows.map((r) => [r.name, r]));
    assert.equal(byName.get('GOOD_OUT.XML')?.state, 'sent');
    assert.equal(byName.get('GOOD_IN.XML')?.state, 'delivered');
    for (const name of ['BAD_OUT.XML', 'BAD_IN.XML']) {
      assert.match(
        JSON.stringify(byName.get(name)),
        /undefined entity/,
        `${name}: ${JSON.stringify(byName.get(name))}`,
      );
    }
  } finally {
    st.cleanup();
    rmSync(st.dir, { recursive: true, force: true });
  }
});

test('the bundle lists its worker beside cli.js', () => {
  requireBuild();
  const app = new URL('../dist/app/', import.meta.url);
  assert.deepEqual(
    readdirSync(app)
      .filter((n) => n.endsWith('.js'))
      .sort(),
    ['check-worker.js', 'cli.js'],
  );
});
