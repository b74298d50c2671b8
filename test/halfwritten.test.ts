// Guarantee 1: never picks up a half-written file. Real writers in child processes (so their
// timing does not depend on the agent's event loop) append to files in the outbox and on the office
// share while the agent runs cycles; what was taken, sent or delivered must always be the whole file.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs, { existsSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { filesIn, makeStation, read, sha256, type Station } from './helpers/station.js';
import type { CycleResult } from '../agent/route-context.js';
import { CHUNK_BYTES } from '../store/copy.js';

const SETTLE = 300;
/** The station's default is 100ms at top level; the routes override it (a second top-level key is a YAML error). */
const settled = { out: `    settle: ${SETTLE}ms`, in: `    settle: ${SETTLE}ms` };

let st: Station | undefined;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  st?.cleanup();
  st = undefined;
});

// ---- documents ---------------------------------------------------------------------------------

/** A ClientDataSet XML: no proper prefix of it is well-formed (the root closes at the very end). */
function datapacket(tag: string, rows: number): Buffer {
  const r = Array.from({ length: rows }, (_, i) => `<ROW ID="${i + 1}" NOTE="${tag} row ${i + 1}"/>`).join('');
  return Buffer.from(
    `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS><FIELD attrname="ID" fieldtype="i4"/></FIELDS></METADATA><ROWDATA>${r}</ROWDATA></DATAPACKET>`,
  );
}

/** Splits into `n` chunks of about equal size. */
function split(b: Buffer, n: number): Buffer[] {
  const size = Math.ceil(b.length / n);
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; at += size) out.push(b.subarray(at, at + size));
  return out;
}

/**
 * Chunks whose every prefix (at chunk boundaries) is well-formed XML: a whole root first, then
 * comments, which XML allows after the root. Only the settle check can tell these are unfinished.
 */
function alwaysWellFormed(tag: string, n: number): Buffer[] {
  const chunks = [Buffer.from(`<?xml version="1.0"?><DATAPACKET Version="2.0"><ROWDATA/></DATAPACKET>\n`)];
  for (let i = 1; i < n; i++) chunks.push(Buffer.from(`<!-- ${tag} part ${i} ${'.'.repeat(200)} -->\n`));
  return chunks;
}

// ---- writers in child processes ----------------------------------------------------------------

/** Appends one chunk per file every `interval` ms, then closes and prints {"doneAt": ms}. */
const SLOW_WRITER = `
const fs = require('fs');
const plan = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
const fds = plan.files.map((f) => fs.openSync(f.path, 'a'));
let i = 0;
const timer = setInterval(() => {
  let more = false;
  plan.files.forEach((f, k) => {
    if (i < f.chunks.length) fs.writeSync(fds[k], Buffer.from(f.chunks[i], 'base64'));
    if (i + 1 < f.chunks.length) more = true;
  });
  i++;
  if (!more) {
    clearInterval(timer);
    for (const fd of fds) fs.closeSync(fd);
    process.stdout.write(JSON.stringify({ doneAt: Date.now() }) + '\\n');
  }
}, plan.interval);
`;

/** Writes the first part, keeps the file open, says "paused"; on any stdin writes the rest and closes. */
const PAUSING_WRITER = `
const fs = require('fs');
const [path, first, rest] = process.argv.slice(1);
const fd = fs.openSync(path, 'w');
fs.writeSync(fd, Buffer.from(first, 'base64'));
fs.fsyncSync(fd);
process.stdout.write('paused\\n');
process.stdin.once('data', () => {
  fs.writeSync(fd, Buffer.from(rest, 'base64'));
  fs.closeSync(fd);
  process.stdout.write('done\\n');
  process.exit(0);
});
`;

function startChild(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['-e', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

/** Resolves with the first stdout line that satisfies `want`; rejects if the child exits first. */
function lineFrom(child: ChildProcess, want: (line: string) => boolean): Promise<string> {
  return new Promise((res, rej) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n').slice(0, -1)) {
        if (want(line)) {
          child.stdout!.off('data', onData);
          child.off('exit', onExit);
          return res(line);
        }
      }
    };
    const onExit = (code: number | null) => rej(new Error(`writer exited (${code}) before saying what we waited for`));
    child.stdout!.on('data', onData);
    child.on('exit', onExit);
  });
}

interface SlowWrite {
  /** Resolves with the time (ms since epoch) just after the writer's last write and close. */
  finished: Promise<number>;
  isDone(): boolean;
}

function slowWriter(files: { path: string; chunks: Buffer[] }[], interval: number): SlowWrite {
  const planFile = join(st!.dir, `plan-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    planFile,
    JSON.stringify({
      interval,
      files: files.map((f) => ({ path: f.path, chunks: f.chunks.map((c) => c.toString('base64')) })),
    }),
  );
  const child = startChild([SLOW_WRITER, planFile]);
  let done = false;
  const finished = lineFrom(child, (l) => l.startsWith('{')).then((l) => {
    done = true;
    return (JSON.parse(l) as { doneAt: number }).doneAt;
  });
  return { finished, isDone: () => done };
}

// ---- the cases ---------------------------------------------------------------------------------

describe('half-written files (guarantee 1)', () => {
  it('outbound: a file appended to slowly is not taken until it stops changing, then sent whole', async () => {
    st = makeStation(settled);
    const agent = st.agent();
    try {
      const doc = datapacket('slow', 600);
      const chunks = split(doc, 20);
      const tricky = alwaysWellFormed('slow', 20);
      const files = [
        { path: join(st.outbox, 'SLOW.XML'), chunks },
        { path: join(st.outbox, 'COMMENTS.xml'), chunks: tricky },
      ];
      const writer = slowWriter(files, 100); // ~2 s
      const during: CycleResult[] = [];
      while (!writer.isDone()) {
        const [r] = await agent.runOnce(['export']);
        during.push(r!);
      }
      const doneAt = await writer.finished;
      assert.ok(during.length >= 3, `ran ${during.length} cycles while the writer wrote`);
      assert.equal(
        during.reduce((n, r) => n + r.refused, 0),
        0,
        'never even looked at an unfinished file (the settle check, not the XML check, kept it out)',
      );
      // Whatever was taken while we were looping must have been taken after the writer finished.
      for (const row of agent.ledger.list({ route: 'export' })) {
        assert.ok(
          row.createdAt >= doneAt,
          `${row.name} queued at ${row.createdAt}, before the writer finished at ${doneAt}`,
        );
      }

      for (let i = 0; i < 3 && filesIn(st.outbox).length > 0; i++) await agent.runOnce(['export']);
      assert.deepEqual(filesIn(st.outbox), []);
      assert.deepEqual(filesIn(st.exchange), ['COMMENTS.xml', 'SLOW.XML']);
      assert.equal(sha256(read(st.exchange, 'SLOW.XML')), sha256(doc), 'SLOW.XML whole at the office');
      assert.equal(sha256(read(st.exchange, 'COMMENTS.xml')), sha256(Buffer.concat(tricky)), 'COMMENTS.xml whole');
      const rows = agent.ledger.list({ route: 'export' });
      assert.deepEqual(rows.map((r) => [r.name, r.state]).sort(), [
        ['COMMENTS.xml', 'sent'],
        ['SLOW.XML', 'sent'],
      ]);
      for (const row of rows) assert.ok(row.createdAt >= doneAt, `${row.name} queued after the writer finished`);
    } finally {
      agent.close();
    }
  });

  it(
    'outbound: files last written longer than settle ago are taken at once (settle 1h: a cycle that waited would time the test out)',
    { timeout: 30_000 },
    async () => {
      st = makeStation({ out: '    settle: 1h' });
      const docs = ['A.XML', 'B.XML', 'C.XML'].map((n) => ({ n, doc: datapacket(n, 50) }));
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      for (const { n, doc } of docs) {
        writeFileSync(join(st.outbox, n), doc);
        fs.utimesSync(join(st.outbox, n), twoHoursAgo, twoHoursAgo);
      }
      const agent = st.agent();
      try {
        const [r] = await agent.runOnce(['export']);
        assert.equal(r!.sent, 3, r!.error ?? '');
        for (const { n, doc } of docs) assert.equal(sha256(read(st.exchange, n)), sha256(doc), `${n} whole`);
      } finally {
        agent.close();
      }
    },
  );

  it('outbound: one file still being written among old ones: the cycle waits; the old ones go, the growing one stays until it stops', async () => {
    st = makeStation(settled);
    const old = datapacket('old', 50);
    writeFileSync(join(st.outbox, 'OLD.XML'), old);
    const hourAgo = new Date(Date.now() - 3600_000);
    fs.utimesSync(join(st.outbox, 'OLD.XML'), hourAgo, hourAgo);
    const doc = datapacket('growing', 600);
    const writer = slowWriter([{ path: join(st.outbox, 'GROWING.XML'), chunks: split(doc, 20) }], 100);
    const agent = st.agent();
    try {
      const [first] = await agent.runOnce(['export']);
      assert.equal(first!.sent, 1, 'the old file went');
      assert.deepEqual(filesIn(st.exchange), ['OLD.XML']);
      const doneAt = await writer.finished;
      for (let i = 0; i < 3 && filesIn(st.outbox).length > 0; i++) await agent.runOnce(['export']);
      assert.equal(sha256(read(st.exchange, 'GROWING.XML')), sha256(doc), 'GROWING.XML whole at the office');
      const growing = agent.ledger.list({ route: 'export' }).find((row) => row.name === 'GROWING.XML');
      assert.ok(growing && growing.createdAt >= doneAt, 'queued only after the writer finished');
    } finally {
      agent.close();
    }
  });

  it('outbound: a writer that pauses mid-document with the file open: left in the outbox as not well-formed, sent whole after', async () => {
    st = makeStation(settled);
    const agent = st.agent();
    try {
      const doc = datapacket('paused', 400);
      const cut = Math.floor(doc.length / 2);
      const path = join(st.outbox, 'PAUSED.XML');
      const child = startChild([
        PAUSING_WRITER,
        path,
        doc.subarray(0, cut).toString('base64'),
        doc.subarray(cut).toString('base64'),
      ]);
      await lineFrom(child, (l) => l === 'paused');

      for (let i = 0; i < 2; i++) {
        // size and mtime stay put for longer than settle; only the XML check can catch it
        const [r] = await agent.runOnce(['export']);
        assert.equal(r!.refused, 1, 'reported as refused (not well-formed)');
        assert.equal(r!.taken, 0);
        assert.equal(r!.sent, 0);
        assert.deepEqual(filesIn(st.outbox), ['PAUSED.XML'], 'left in the outbox');
        assert.equal(sha256(read(st.outbox, 'PAUSED.XML')), sha256(doc.subarray(0, cut)), 'untouched');
        assert.deepEqual(filesIn(st.exchange), [], 'nothing at the office');
        assert.deepEqual(
          agent.ledger.list({ route: 'export' }).map((x) => [x.name, x.state, x.sha256]),
          [['PAUSED.XML', 'refused', null]],
          'only a refused mark in the ledger, no package',
        );
      }

      const done = lineFrom(child, (l) => l === 'done');
      child.stdin!.write('go\n');
      await done;
      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.refused, 0);
      assert.equal(r!.sent, 1);
      assert.deepEqual(filesIn(st.exchange), ['PAUSED.XML']);
      assert.equal(sha256(read(st.exchange, 'PAUSED.XML')), sha256(doc), 'the complete bytes');
      assert.deepEqual(
        agent.ledger.list({ route: 'export' }).map((x) => x.state),
        ['sent'],
        'the refused mark went once the file was taken',
      );
    } finally {
      agent.close();
    }
  });

  it('outbound: a file rewritten while it is being copied into the spool is not queued with torn bytes', async () => {
    st = makeStation(settled);
    const agent = st.agent();
    const path = resolve(st.outbox, 'TORN.XML');
    const v1 = datapacket('AAAA', 40000); // more than one read (store/copy.ts reads 1 MB at a time)
    const v2 = datapacket('BBBB', 40000); // same size, other bytes
    assert.equal(v1.length, v2.length);
    assert.ok(v1.length > CHUNK_BYTES);
    writeFileSync(path, v1);
    // Deterministic: the spool copy's reader (fs.promises.open(src, 'r') in store/copy.ts) gets the
    // first chunk of v1, then the file is rewritten as v2, then it reads on.
    let fired = 0;
    const restore = hookOpenForRead((p) => {
      if (resolve(String(p)) !== path) return null;
      fired++;
      return () => writeFileSync(path, v2);
    });
    try {
      const [r] = await agent.runOnce(['export']);
      restore();
      assert.equal(fired, 1, 'the hook saw the spool copy (if 0, store/copy.ts no longer reads this way)');
      assert.equal(r!.taken, 0, 'not taken');
      assert.equal(r!.sent, 0);
      assert.deepEqual(filesIn(st.exchange), []);
      assert.deepEqual(agent.ledger.list({ route: 'export' }), [], 'nothing queued');
      assert.deepEqual(filesIn(st.outbox), ['TORN.XML'], 'left in the outbox');
      assert.equal(sha256(read(st.outbox, 'TORN.XML')), sha256(v2));
      const spool = join(st.data, 'spool', 'export');
      assert.deepEqual(filesIn(spool), ['.tmp'], 'nothing in the spool');
      assert.deepEqual(filesIn(join(spool, '.tmp')), [], 'the torn copy was removed');

      const [r2] = await agent.runOnce(['export']);
      assert.equal(r2!.sent, 1);
      assert.equal(sha256(read(st.exchange, 'TORN.XML')), sha256(v2), 'the new bytes, whole');
      const rows = agent.ledger.list({ route: 'export' });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.sha256, sha256(v2));
    } finally {
      restore();
      agent.close();
    }
  });

  it('inbound: a file growing on the office share is not taken until it stops; no partial file ever in the inbox', async () => {
    st = makeStation(settled);
    const agent = st.agent();
    const doc = datapacket('grow', 600);
    const tricky = alwaysWellFormed('grow', 20);
    const finals = new Map([
      ['GROW.XML', doc],
      ['GROWC.xml', Buffer.concat(tricky)],
    ]);
    // Watch the inbox: whatever appears under a final name must be the whole file, every time.
    const seen: string[] = [];
    const violations: string[] = [];
    const look = (name: string) => {
      const want = finals.get(name);
      if (!want) {
        if (!name.startsWith('.sprelay-import-') || !name.endsWith('.part')) violations.push(`unexpected ${name}`);
        return;
      }
      const p = join(st!.inbox, name);
      if (!existsSync(p)) return;
      seen.push(name);
      const got = readFileSync(p);
      if (!got.equals(want)) violations.push(`${name} appeared with ${got.length} of ${want.length} bytes`);
    };
    const watcher = watch(st.inbox, (_e, name) => name && look(name.toString()));
    const poll = setInterval(() => readdirSync(st!.inbox).forEach(look), 5);
    try {
      const writer = slowWriter(
        [
          { path: join(st.exchange, 'GROW.XML'), chunks: split(doc, 20) },
          { path: join(st.exchange, 'GROWC.xml'), chunks: tricky },
        ],
        100,
      );
      const during: CycleResult[] = [];
      while (!writer.isDone()) {
        const [r] = await agent.runOnce(['import']);
        during.push(r!);
      }
      const doneAt = await writer.finished;
      assert.ok(during.length >= 3, `ran ${during.length} cycles while the writer wrote`);
      assert.equal(
        during.reduce((n, r) => n + r.quarantined, 0),
        0,
        'no unfinished file was fetched (it would have been quarantined as not well-formed)',
      );
      for (const row of agent.ledger.list({ route: 'import' })) {
        assert.ok(row.createdAt >= doneAt, `${row.name} received at ${row.createdAt}, before the writer finished`);
      }

      for (let i = 0; i < 3 && filesIn(st.exchange).length > 0; i++) await agent.runOnce(['import']);
      assert.deepEqual(filesIn(st.exchange), [], 'acknowledged once whole');
      assert.deepEqual(filesIn(st.inbox), [...finals.keys()].sort());
      for (const [n, b] of finals) assert.equal(sha256(read(st.inbox, n)), sha256(b), `${n} whole in the inbox`);
      const rows = agent.ledger.list({ route: 'import' });
      assert.deepEqual(rows.map((r) => [r.name, r.state]).sort(), [
        ['GROW.XML', 'delivered'],
        ['GROWC.xml', 'delivered'],
      ]);
      for (const row of rows) assert.ok(row.createdAt >= doneAt, `${row.name} received after the writer finished`);
      readdirSync(st.inbox).forEach(look);
      assert.deepEqual(violations, [], 'nothing partial ever appeared in the inbox');
      assert.ok(seen.length >= 2, 'the watcher saw the deliveries');
    } finally {
      watcher.close();
      clearInterval(poll);
      agent.close();
    }
  });
});

// ---- the spool-copy hook -----------------------------------------------------------------------

type Open = typeof fs.promises.open;

/**
 * Routes `fs.promises.open(path, 'r')` (store/copy.ts calls it through the `promises` object)
 * through `pick`: when `pick` returns a function, the handle opened calls it once, after its first
 * read has returned (the bytes of that read are v1's, the next ones whatever is there then).
 * `pick` returns null to pass a call through. Returns restore().
 */
function hookOpenForRead(pick: (path: Parameters<Open>[0]) => (() => void) | null): () => void {
  const promises = fs.promises as unknown as { open: Open };
  const original = promises.open;
  promises.open = (async (...args: Parameters<Open>) => {
    const handle = await original(...args);
    const between = args[1] === 'r' ? pick(args[0]) : null;
    if (!between) return handle;
    let first = true;
    const read = handle.read.bind(handle) as (...a: unknown[]) => ReturnType<typeof handle.read>;
    return new Proxy(handle, {
      get(target, key) {
        if (key === 'read') {
          return async (...a: unknown[]) => {
            const got = await read(...a);
            if (first) {
              first = false;
              between();
            }
            return got;
          };
        }
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }) as Open;
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    promises.open = original;
  };
}
