// SFTP with several requests in flight (issue 11): the requests a package costs out and in, WRITEs
// and READs kept in flight with the bytes still identical, what is in flight bounded however big
// the package, and a source used by `parallel` entries at once on its one connection.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { once } from 'node:events';
import { corkEachTick } from '../transports/sftp/connection.js';
import { createSftpTransport } from '../transports/sftp/index.js';
import { IN_FLIGHT, WINDOW } from '../transports/sftp/pipeline.js';
import type { Endpoint, OutgoingPackage, RemoteEntry, Source } from '../transports/types.js';
import { packageOf, readAll, sha256 } from './conformance/suite.js';
import { startSftpServer, type SftpServerOptions, type SftpTestServer, sftpProfileOf } from './servers/sftp-server.js';
import { testEndpoint } from './helpers/endpoint.js';

const signal = () => new AbortController().signal;
const REMOTE = '/in/azs017';
/** What ssh2 sends per READ/WRITE to a server that is not OpenSSH and states no limits (34000 - 2048). */
const SSH2_CHUNK = 31_952;
/** What OpenSSH states through limits@openssh.com. */
const OPENSSH_CHUNK = 255 * 1024;
/** Requests of that size in 2 MB (IN_FLIGHT): 8. */
const OPENSSH_WINDOW = Math.floor(IN_FLIGHT / OPENSSH_CHUNK);

describe('sftp with requests in flight', () => {
  const servers: SftpTestServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  const start = async (options: SftpServerOptions = {}) => {
    const server = await startSftpServer({ openSshExtensions: true, ...options });
    servers.push(server);
    return server;
  };
  const transportFor = (server: SftpTestServer) => createSftpTransport(sftpProfileOf(server));
  const endpoint = (o: Partial<Endpoint> = {}): Endpoint => testEndpoint('pipeline', REMOTE, o);
  const remotePath = (server: SftpTestServer, ...parts: string[]) => join(server.root, 'in', 'azs017', ...parts);
  /** Requests of each type since `before` (a copy of server.stats.requests). */
  const since = (server: SftpTestServer, before: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(server.stats.requests)
        .map(([type, n]) => [type, n - (before[type] ?? 0)] as const)
        .filter(([, n]) => n > 0),
    );

  it('a small package out costs STAT+OPEN, one WRITE, fsync+FSTAT+CLOSE, one rename: nothing more', async () => {
    const server = await start();
    const sink = await transportFor(server).openSink(endpoint(), signal());
    try {
      const bytes = randomBytes(20 * 1024);
      const before = { ...server.stats.requests };
      const result = await sink.put(packageOf('a.xml', bytes), signal());
      assert.equal(result.alreadyPresent, false);
      // no STAT/MKDIR of the folder per package (the sink made it once), no second STAT of the file
      assert.deepEqual(since(server, before), { STAT: 1, OPEN: 1, WRITE: 1, EXTENDED: 2, FSTAT: 1, CLOSE: 1 });
      assert.equal(server.stats.fsyncs, 1, 'fsync@openssh.com once, at the end');
      assert.equal(server.stats.posixRenames, 1);
      assert.deepEqual(await readFile(remotePath(server, 'a.xml')), bytes);
      assert.deepEqual(await readdir(remotePath(server)), ['a.xml'], 'no .part left');

      // a resend finds the identical file: read back, nothing written, the .part it opened is gone
      const again = await sink.put(packageOf('a.xml', bytes), signal());
      assert.equal(again.alreadyPresent, true);
      assert.equal(server.stats.fsyncs, 1);
      assert.deepEqual(await readdir(remotePath(server)), ['a.xml']);
    } finally {
      await sink.close();
    }
  });

  it('a folder removed while the sink is open is made again by the next put', async () => {
    const server = await start();
    const sink = await transportFor(server).openSink(endpoint(), signal());
    try {
      await rm(remotePath(server), { recursive: true });
      await sink.put(packageOf('b.xml', Buffer.from('<b/>')), signal());
      assert.deepEqual(await readFile(remotePath(server, 'b.xml'), 'utf8'), '<b/>');
    } finally {
      await sink.close();
    }
  });

  it('WRITEs of a big package are in flight together, at most a window of them; the bytes are identical', async () => {
    const server = await start();
    const sink = await transportFor(server).openSink(endpoint(), signal());
    try {
      const size = 24 * 1024 * 1024;
      const seed = randomBytes(1024 * 1024);
      let produced = 0;
      let mostAhead = 0;
      const part = remotePath(server, 'big.xml.part');
      const pkg: OutgoingPackage = {
        name: 'big.xml',
        size,
        sha256: sha256(Buffer.concat(Array.from({ length: 24 }, () => seed))),
        // made as it is read: how far the reading runs ahead of what the server holds is the
        // memory the upload takes
        open: () =>
          Readable.from(
            (function* () {
              for (let at = 0; at < size; at += 64 * 1024) {
                const onServer = (() => {
                  try {
                    return statSync(part).size;
                  } catch {
                    return 0;
                  }
                })();
                mostAhead = Math.max(mostAhead, produced - onServer);
                produced += 64 * 1024;
                yield seed.subarray(at % seed.length, (at % seed.length) + 64 * 1024);
              }
            })(),
          ),
      };
      await sink.put(pkg, signal());
      const written = await readFile(remotePath(server, 'big.xml'));
      assert.equal(sha256(written), pkg.sha256);
      const inFlight = server.stats.maxInFlight.WRITE ?? 0;
      assert.ok(inFlight > 1, `WRITEs in flight at once: ${inFlight}`);
      assert.ok(inFlight <= WINDOW, `WRITEs in flight at once: ${inFlight} (window ${WINDOW})`);
      // what is in flight (2 MB), and what the source's reads and the last partial request add
      const bound = IN_FLIGHT + 1024 * 1024;
      assert.ok(mostAhead <= bound, `read ${mostAhead} bytes ahead of the server (bound ${bound})`);
      assert.equal(server.stats.fsyncs, 1);
    } finally {
      await sink.close();
    }
  });

  it('a small entry in costs OPEN, FSTAT with the READs, one REMOVE; a big one keeps READs in flight', async () => {
    const server = await start();
    await mkdir(remotePath(server), { recursive: true });
    const small = randomBytes(20 * 1024);
    const big = randomBytes(5 * 1024 * 1024 + 17);
    await writeFile(remotePath(server, 'a.xml'), small);
    await writeFile(remotePath(server, 'b.xml'), big);
    const source = await transportFor(server).openSource(endpoint(), signal());
    try {
      const [a, b] = await source.list(signal());
      // the listing's CLOSE is sent, not waited for: counted before this entry's requests
      for (let i = 0; i < 400 && server.stats.requests.CLOSE !== 1; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(server.stats.requests.CLOSE, 1, 'the listing closed its handle');
      const before = { ...server.stats.requests };
      assert.deepEqual(await readAll(await source.open(a!, signal())), small);
      await source.acknowledge(a!, signal());
      // one READ for the bytes and one at the end that must say EOF (a file longer than listed is busy)
      assert.deepEqual(since(server, before), { OPEN: 1, FSTAT: 1, READ: 2, CLOSE: 1, REMOVE: 1 });

      assert.deepEqual(await readAll(await source.open(b!, signal())), big);
      const inFlight = server.stats.maxInFlight.READ ?? 0;
      assert.ok(inFlight > 1 && inFlight <= WINDOW + 1, `READs in flight at once: ${inFlight}`);
      // the channel's window was opened beyond ssh2's 2 MB before the READs went out, and kept
      // open: the server never had to hold an answer back for an adjustment to come
      const room = server.stats.minReadWindow ?? 0;
      assert.ok(room >= 4 * 1024 * 1024, `the window left ${room} bytes at a READ's answer`);
      await source.acknowledge(b!, signal());
      assert.deepEqual(await readdir(remotePath(server)), []);
    } finally {
      await source.close();
    }
  });

  it('a server that allows 255 KB requests (limits@openssh.com) gets 255 KB WRITEs and READs, 2 MB of them in flight', async () => {
    const server = await start({ limits: { maxReadLen: OPENSSH_CHUNK, maxWriteLen: OPENSSH_CHUNK } });
    const size = 5 * 1024 * 1024 + 17;
    const bytes = randomBytes(size);
    const requests = Math.ceil(size / OPENSSH_CHUNK);
    const sink = await transportFor(server).openSink(endpoint(), signal());
    try {
      const before = { ...server.stats.requests };
      // read in 64 KB pieces, as a package file is: gathered into whole requests
      await sink.put(packageOf('big.xml', bytes, 64 * 1024), signal());
      assert.equal(since(server, before).WRITE, requests, 'one WRITE per 255 KB');
      assert.ok((server.stats.maxInFlight.WRITE ?? 0) <= OPENSSH_WINDOW);
    } finally {
      await sink.close();
    }
    assert.deepEqual(await readFile(remotePath(server, 'big.xml')), bytes);

    const source = await transportFor(server).openSource(endpoint(), signal());
    try {
      const [entry] = await source.list(signal());
      const before = { ...server.stats.requests };
      assert.deepEqual(await readAll(await source.open(entry!, signal())), bytes);
      // one READ per 255 KB and the one that must say EOF
      assert.equal(since(server, before).READ, requests + 1);
      const inFlight = server.stats.maxInFlight.READ ?? 0;
      assert.ok(inFlight > 1 && inFlight <= OPENSSH_WINDOW + 1, `READs in flight at once: ${inFlight}`);
    } finally {
      await source.close();
    }
  });

  it('a server that answers less than a READ asks gets smaller READs from then on, more of them in flight', async () => {
    // as an OpenSSH before limits@openssh.com does: ssh2 asks 254 KB of it, it answers 64 KB
    const server = await start({
      limits: { maxReadLen: OPENSSH_CHUNK, maxWriteLen: OPENSSH_CHUNK },
      readAnswerMax: 64 * 1024,
    });
    await mkdir(remotePath(server), { recursive: true });
    const bytes = randomBytes(6 * 1024 * 1024 + 5);
    await writeFile(remotePath(server, 'c.xml'), bytes);
    const source = await transportFor(server).openSource(endpoint(), signal());
    try {
      const [entry] = await source.list(signal());
      assert.deepEqual(await readAll(await source.open(entry!, signal())), bytes);
      // 2 MB of 64 KB answers in flight once the first short answer came, not 8 of them
      const inFlight = server.stats.maxInFlight.READ ?? 0;
      assert.ok(inFlight > OPENSSH_WINDOW + 1, `READs in flight at once: ${inFlight}`);
      assert.ok(inFlight <= WINDOW + OPENSSH_WINDOW + 1, `READs in flight at once: ${inFlight}`);
    } finally {
      await source.close();
    }
  });

  for (const ack of ['delete', 'move'] as const) {
    it(`the source declares parallel and ${parallelName(ack)}`, async () => {
      const server = await start();
      await mkdir(remotePath(server), { recursive: true });
      const files = new Map<string, Buffer>();
      for (let i = 0; i < 40; i++) {
        // sizes from empty to a few windows' worth: short, exact and partial chunks
        const bytes = randomBytes([0, 1, 20 * 1024, SSH2_CHUNK, 3 * SSH2_CHUNK + 5, 300 * 1024][i % 6]!);
        files.set(`p${String(i).padStart(2, '0')}.xml`, bytes);
        await writeFile(remotePath(server, `p${String(i).padStart(2, '0')}.xml`), bytes);
      }
      // already in the move target under a name an entry has: never replaced
      const taken = randomBytes(10);
      await mkdir(join(server.root, 'done'), { recursive: true });
      await writeFile(join(server.root, 'done', 'p03.xml'), taken);
      const afterReceive: Endpoint['afterReceive'] =
        ack === 'move' ? { kind: 'move', to: '/done' } : { kind: 'delete' };
      const source = await transportFor(server).openSource(endpoint({ afterReceive }), signal());
      try {
        assert.ok((source.parallel ?? 1) > 1, `parallel: ${source.parallel}`);
        const entries = await source.list(signal());
        assert.equal(entries.length, files.size);
        const got = await workConcurrently(source, entries, source.parallel!);
        assert.equal(got.size, files.size);
        for (const [name, bytes] of files) assert.deepEqual(got.get(name), bytes, name);
        assert.deepEqual(await readdir(remotePath(server)), [], 'every entry acknowledged');
        assert.equal(server.stats.requests.OPEN, files.size, 'each entry opened once');
        assert.ok((server.stats.maxInFlight.OPEN ?? 0) > 1 || (server.stats.maxInFlight.READ ?? 0) > 1);
        if (ack === 'move') {
          const moved = await readdir(join(server.root, 'done'));
          assert.equal(moved.length, files.size + 1, moved.join(', '));
          assert.deepEqual(await readFile(join(server.root, 'done', 'p03.xml')), taken, 'not replaced');
          for (const [name, bytes] of files) {
            if (name !== 'p03.xml') assert.deepEqual(await readFile(join(server.root, 'done', name)), bytes, name);
          }
          const [elsewhere, ...more] = moved.filter((n) => !files.has(n));
          assert.equal(more.length, 0, moved.join(', '));
          assert.deepEqual(await readFile(join(server.root, 'done', elsewhere!)), files.get('p03.xml'));
          // the move target made once, not looked for per entry
          assert.ok((server.stats.requests.MKDIR ?? 0) === 0);
        }
      } finally {
        await source.close();
      }
    });
  }
});

function parallelName(ack: 'delete' | 'move'): string {
  return `is right with that many open/read/acknowledge at once (afterReceive ${ack})`;
}

/** What a pipeline with `parallel` workers does: open, read whole, acknowledge, per entry. */
async function workConcurrently(source: Source, entries: RemoteEntry[], parallel: number) {
  const got = new Map<string, Buffer>();
  const queue = [...entries];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let e = queue.shift(); e; e = queue.shift()) {
        const bytes = await readAll(await source.open(e, signal()));
        assert.ok(!got.has(e.name), `${e.name} twice`);
        got.set(e.name, bytes);
        await source.acknowledge(e, signal());
      }
    }),
  );
  return got;
}

describe('sftp socket writes', () => {
  it('the pieces written in one turn of the event loop go to the kernel in one call, in order', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const received: Buffer[] = [];
    let peer: Socket | undefined;
    server.on('connection', (s: Socket) => {
      peer = s;
      s.on('data', (d: Buffer) => received.push(d));
    });
    const { port } = server.address() as { port: number };
    const sock = connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.setNoDelay(true); // as ssh2's socket is (connection.ts)
    corkEachTick(sock);
    // what reaches libuv: one call per write, or the corked ones together
    const calls: number[] = [];
    const internal = sock as unknown as {
      _write: (...a: unknown[]) => void;
      _writev: (chunks: unknown[], ...a: unknown[]) => void;
    };
    const write1 = internal._write.bind(sock);
    const writev = internal._writev.bind(sock);
    internal._write = (...a) => (calls.push(1), write1(...a));
    internal._writev = (chunks, ...a) => (calls.push(chunks.length), writev(chunks, ...a));
    try {
      const pieces = Array.from({ length: 12 }, (_, i) => Buffer.from(`piece ${i};`));
      for (const p of pieces.slice(0, 8)) sock.write(p); // one turn: an SSH packet in 3-4 pieces, twice
      await new Promise((r) => setImmediate(r));
      for (const p of pieces.slice(8)) sock.write(p); // the next turn: a batch of its own
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(calls, [8, 4]);
      const all = Buffer.concat(pieces);
      for (let i = 0; i < 200 && Buffer.concat(received).length < all.length; i++)
        await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(Buffer.concat(received), all);
    } finally {
      sock.destroy();
      peer?.destroy();
      server.close();
    }
  });
});
