// The FTP transport's lanes and round trips (issue 11): N puts or downloads at once run on N
// control connections at the same time; a package costs the commands the server needs and no
// more (counted at the in-process ftp-srv); the listing a sink takes instead of a SIZE per package
// still finds every file that is there (identical: nothing written; different: 'exists'); packages
// of one name never run at once; a server that takes no more connections leaves the lanes there are.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { TransportError } from '../transports/errors.js';
import { createFtpTransport } from '../transports/ftp/index.js';
import { Lanes } from '../transports/ftp/lane.js';
import { FtpSession, tlsOptionsFor } from '../transports/ftp/session.js';
import { wireFor } from '../transports/ftp/wire.js';
import type { Endpoint, FtpProfile, OutgoingPackage, Sink, Source } from '../transports/types.js';
import { packageOf, readAll, rejectsWith, sha256 } from './conformance/suite.js';
import { startFtpServer, type FtpServerOptions, type TestFtpServer } from './servers/ftp-server.js';
import { testEndpoint } from './helpers/endpoint.js';

const T = { timeout: 30_000 };
/** A case that would deadlock without lanes fails on this instead of hanging. */
const bounded = () => AbortSignal.timeout(10_000);
const signal = () => new AbortController().signal;
const endpoint = (o: Partial<Endpoint> = {}): Endpoint => testEndpoint('ftp-lanes', 'in/azs017', o);

interface Logged {
  directive: string;
  arg: string | null;
  connection: number;
}

/** N latches: `wait(i)` resolves once every one of the N has arrived. */
function barrier(n: number) {
  let arrived = 0;
  let open!: () => void;
  const all = new Promise<void>((resolve) => (open = resolve));
  return {
    arrive: () => {
      if (++arrived === n) open();
    },
    all,
  };
}

/** A package whose bytes flow only once every package of the barrier was opened by the transport. */
function gatedPackage(name: string, bytes: Buffer, gate: ReturnType<typeof barrier>): OutgoingPackage {
  return {
    name,
    size: bytes.length,
    sha256: sha256(bytes),
    open: () => {
      gate.arrive();
      return Readable.from(
        (async function* () {
          await gate.all;
          yield bytes;
        })(),
      );
    },
  };
}

describe('ftp lanes and round trips', () => {
  const servers: TestFtpServer[] = [];
  const opened: Array<Sink | Source> = [];
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
    for (const s of servers.splice(0)) await s.close();
  });

  const serve = async (opts: FtpServerOptions = {}) => {
    const log: Logged[] = [];
    const s = await startFtpServer({
      ...opts,
      onCommand: (directive, arg, connection) => log.push({ directive, arg, connection }),
    });
    servers.push(s);
    return { s, log };
  };
  const profileFor = (s: TestFtpServer): FtpProfile => ({
    type: 'ftp',
    host: s.host,
    port: s.port,
    security: 'none',
    user: s.user,
    password: s.password,
    tls: { rejectUnauthorized: true },
    encoding: 'utf8',
  });
  const sinkOn = async (s: TestFtpServer, ep: Partial<Endpoint> = {}) => {
    const sink = await createFtpTransport(profileFor(s)).openSink(endpoint(ep), signal());
    opened.push(sink);
    return sink;
  };
  const sourceOn = async (s: TestFtpServer, ep: Partial<Endpoint> = {}) => {
    const source = await createFtpTransport(profileFor(s)).openSource(endpoint(ep), signal());
    opened.push(source);
    return source;
  };
  const directives = (log: Logged[]) => log.map((l) => l.directive);
  const count = (log: Logged[], d: string) => log.filter((l) => l.directive === d).length;

  it('N puts at once run on N connections at the same time, and all arrive', T, async () => {
    const { s } = await serve();
    const sink = await sinkOn(s);
    const gate = barrier(4);
    const files = Array.from({ length: 4 }, (_, i) => [`lane ${i}.xml`, randomBytes(30_000 + i)] as const);
    // each package's bytes wait for all four to be opened: one connection at a time would never get there
    const results = await Promise.all(files.map(([n, b]) => sink.put(gatedPackage(n, b, gate), bounded())));
    assert.deepEqual(
      results.map((r) => r.alreadyPresent),
      [false, false, false, false],
    );
    assert.equal(s.connections(), 4, 'one control connection per put under way');
    const dir = join(s.root, 'in', 'azs017');
    for (const [n, b] of files) assert.deepEqual(await readFile(join(dir, n)), b);
    assert.deepEqual((await readdir(dir)).sort(), files.map(([n]) => n).sort(), 'no .part left');
  });

  it(
    'a package costs EPSV, STOR, SIZE of the .part, RNFR, RNTO; the folder is listed once, the login is once',
    T,
    async () => {
      const { s, log } = await serve();
      await mkdir(join(s.root, 'in', 'azs017'), { recursive: true });
      const sink = await sinkOn(s);
      const atOpen = log.length;
      const n = 5;
      for (let i = 0; i < n; i++) await sink.put(packageOf(`p${i}.xml`, randomBytes(1000 + i)), signal());
      const puts = log.slice(atOpen);
      assert.equal(s.connections(), 1);
      // the first package asks SIZE (a single package costs no listing), the others find it in the listing
      assert.deepEqual(directives(puts.slice(0, 6)), ['SIZE', 'EPSV', 'STOR', 'SIZE', 'RNFR', 'RNTO']);
      assert.equal(count(puts, 'LIST') + count(puts, 'MLSD'), 1, 'one listing for the sink');
      assert.equal(count(puts, 'STOR'), n);
      assert.equal(count(puts, 'SIZE'), n + 1, 'the .part of each, plus the first package');
      assert.equal(count(puts, 'EPSV'), n + 1, 'one data connection per package and the listing');
      assert.equal(count(puts, 'RNFR') + count(puts, 'RNTO'), 2 * n);
      assert.equal(puts.length, 5 * n + 3, `commands: ${directives(puts).join(' ')}`);
      for (const d of ['CWD', 'PWD', 'FEAT', 'TYPE', 'USER', 'PASS', 'STRU']) assert.equal(count(puts, d), 0, d);
      // and the login: no STRU F, one OPTS UTF8 (after USER, the user name being ASCII)
      const login = directives(log.slice(0, atOpen));
      assert.deepEqual(login, ['USER', 'PASS', 'FEAT', 'TYPE', 'OPTS', 'PWD', 'CWD']);
    },
  );

  it('a second lane asks neither FEAT nor PWD again', T, async () => {
    const { s, log } = await serve();
    const sink = await sinkOn(s);
    const gate = barrier(2);
    await Promise.all(['a.xml', 'b.xml'].map((n) => sink.put(gatedPackage(n, randomBytes(100), gate), bounded())));
    assert.equal(s.connections(), 2);
    const second = log.filter((l) => l.connection === 2).map((l) => l.directive);
    assert.deepEqual(second.slice(0, 5), ['USER', 'PASS', 'TYPE', 'OPTS', 'CWD']);
    assert.equal(count(log, 'FEAT'), 1);
    assert.equal(count(log, 'PWD'), 1);
  });

  it(
    'what the listing found is still honoured: identical is left, different is refused, another case asks SIZE',
    T,
    async () => {
      const { s, log } = await serve();
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      const same = randomBytes(2000);
      await writeFile(join(dir, 'same.xml'), same);
      await writeFile(join(dir, 'other.xml'), randomBytes(2000));
      await writeFile(join(dir, 'CASE.XML'), randomBytes(10));
      const sink = await sinkOn(s);
      await sink.put(packageOf('first.xml', randomBytes(10)), signal());
      const listedAt = log.length;
      // same size and bytes: nothing written
      assert.equal((await sink.put(packageOf('same.xml', same), signal())).alreadyPresent, true);
      // same size, other bytes: refused without overwrite
      await rejectsWith(sink.put(packageOf('other.xml', randomBytes(2000)), signal()), 'exists');
      assert.equal(count(log.slice(listedAt), 'LIST') + count(log.slice(listedAt), 'MLSD'), 1);
      // a name the listing has in another case: the server decides (ftp-srv on Linux: another file)
      const before = log.length;
      const lower = randomBytes(20);
      assert.equal((await sink.put(packageOf('case.xml', lower), signal())).alreadyPresent, false);
      assert.deepEqual(
        log
          .slice(before)
          .filter((l) => l.directive === 'SIZE')
          .map((l) => l.arg),
        ['/in/azs017/case.xml', '/in/azs017/case.xml.part'],
      );
      // and a package written in this cycle is known: sent again, nothing is written
      const again = log.length;
      assert.equal((await sink.put(packageOf('case.xml', lower), signal())).alreadyPresent, true);
      assert.equal(count(log.slice(again), 'STOR'), 0);
      assert.deepEqual(await readFile(join(dir, 'case.xml')), lower);
      assert.deepEqual(await readFile(join(dir, 'same.xml')), same);
      assert.equal((await readdir(dir)).filter((f) => f.endsWith('.part')).length, 0);
    },
  );

  it('a file listed, then taken by the office before its name is put again: written, not refused', T, async () => {
    const { s } = await serve();
    const dir = join(s.root, 'in', 'azs017');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'stale.xml'), randomBytes(500));
    const sink = await sinkOn(s);
    await sink.put(packageOf('first.xml', randomBytes(10)), signal());
    await sink.put(packageOf('second.xml', randomBytes(10)), signal());
    await rm(join(dir, 'stale.xml'));
    const ours = randomBytes(700);
    assert.equal((await sink.put(packageOf('stale.xml', ours), signal())).alreadyPresent, false);
    assert.deepEqual(await readFile(join(dir, 'stale.xml')), ours);
  });

  it('a listing read only in part proves nothing: every name is asked with SIZE', T, async () => {
    const { s, log } = await serve();
    const dir = join(s.root, 'in', 'azs017');
    await mkdir(dir, { recursive: true });
    // a name with line breaks: its second line is no listing line basic-ftp can read (it skips it
    // without a word), its last one is, so that the listing's last line always picks a parser
    await writeFile(join(dir, 'odd\n?? not a listing line\n-rw-r--r-- 1 ftp ftp 1 Jan 01 00:00 tail.xml'), 'x');
    const sink = await sinkOn(s);
    await sink.put(packageOf('first.xml', randomBytes(10)), signal());
    const at = log.length;
    await sink.put(packageOf('second.xml', randomBytes(10)), signal());
    assert.equal(count(log.slice(at), 'LIST'), 1, 'listed');
    assert.deepEqual(
      log
        .slice(at)
        .filter((l) => l.directive === 'SIZE')
        .map((l) => l.arg),
      ['/in/azs017/second.xml', '/in/azs017/second.xml.part'],
    );
  });

  it('two puts of one name at once go one after the other: one writes, the other finds it', T, async () => {
    const { s, log } = await serve();
    const sink = await sinkOn(s);
    const bytes = randomBytes(50_000);
    const results = await Promise.all([
      sink.put(packageOf('twice.xml', bytes, 1024), signal()),
      sink.put(packageOf('twice.xml', bytes, 1024), signal()),
    ]);
    assert.deepEqual(results.map((r) => r.alreadyPresent).sort(), [false, true]);
    assert.equal(count(log, 'STOR'), 1);
    const other = await Promise.allSettled([
      sink.put(packageOf('clash.xml', randomBytes(100)), signal()),
      sink.put(packageOf('clash.xml', randomBytes(100)), signal()),
    ]);
    assert.deepEqual(other.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const refused = other.find((r) => r.status === 'rejected')!;
    assert.ok(refused.reason instanceof TransportError && refused.reason.code === 'exists');
    assert.deepEqual((await readdir(join(s.root, 'in', 'azs017'))).sort(), ['clash.xml', 'twice.xml']);
  });

  it('the source declares parallel and serves that many downloads and acknowledgements at once', T, async () => {
    const { s, log } = await serve();
    const dir = join(s.root, 'in', 'azs017');
    await mkdir(dir, { recursive: true });
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 4; i++) {
      // bigger than what a stream buffers: a download not read cannot finish and free its lane
      const b = randomBytes(3_000_000 + i);
      bodies.set(`in${i}.xml`, b);
      await writeFile(join(dir, `in${i}.xml`), b);
    }
    const src = await sourceOn(s);
    assert.ok((src.parallel ?? 1) >= 4, `parallel ${src.parallel}`);
    const entries = await src.list(signal());
    // all four opened before any is read: on one connection the second would wait for ever
    const streams = await Promise.all(entries.map((e) => src.open(e, bounded())));
    const got = await Promise.all(streams.map((st) => readAll(st)));
    entries.forEach((e, i) => assert.deepEqual(got[i], bodies.get(e.name)));
    await Promise.all(entries.map((e) => src.acknowledge(e, signal())));
    assert.deepEqual(await readdir(dir), []);
    assert.equal(s.connections(), 4);
    assert.equal(count(log, 'SIZE'), 0, 'RETR straight away: the listing said the size');
    assert.equal(count(log, 'RETR'), 4);
    assert.equal(count(log, 'DELE'), 4);
  });

  it('moves at once into one folder never pick the same name', T, async () => {
    const { s } = await serve();
    const dir = join(s.root, 'in', 'azs017');
    await mkdir(join(s.root, 'archive'), { recursive: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(s.root, 'archive', 'x.xml'), 'old');
    // x.xml moves as "x (2).xml", the name the other entry has
    await writeFile(join(dir, 'x.xml'), 'new x');
    await writeFile(join(dir, 'x (2).xml'), 'the other');
    const src = await sourceOn(s, { afterReceive: { kind: 'move', to: 'archive' } });
    const entries = await src.list(signal());
    assert.equal(entries.length, 2);
    await Promise.all(entries.map((e) => src.acknowledge(e, signal())));
    const archived = (await readdir(join(s.root, 'archive'))).sort();
    assert.equal(archived.length, 3, archived.join(', '));
    const contents = (await Promise.all(archived.map((f) => readFile(join(s.root, 'archive', f), 'utf8')))).sort();
    assert.deepEqual(contents, ['new x', 'old', 'the other']);
  });

  it('a download of a file gone since the listing fails open with not-found', T, async () => {
    const { s } = await serve();
    const dir = join(s.root, 'in', 'azs017');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'gone.xml'), '<a/>');
    const src = await sourceOn(s);
    const [entry] = await src.list(signal());
    await src.acknowledge(entry!, signal());
    await rejectsWith(src.open(entry!, signal()), 'not-found');
    // the connection is still in order
    await writeFile(join(dir, 'next.xml'), '<b/>');
    const [next] = await src.list(signal());
    assert.equal((await readAll(await src.open(next!, signal()))).toString(), '<b/>');
    assert.equal(s.connections(), 1);
  });

  describe('Lanes', () => {
    const session = (s: TestFtpServer) =>
      new FtpSession(profileFor(s), wireFor('utf8'), 5000, tlsOptionsFor(profileFor(s)));

    it('a lane the server will not open leaves the caller waiting for one that is there', T, async () => {
      const { s } = await serve();
      const first = session(s);
      let tried = 0;
      const lanes = new Lanes(first, 4, () => {
        tried++;
        return Promise.reject(new TransportError('unavailable', '421 too many connections'));
      });
      const a = await lanes.acquire(signal(), 'a');
      const waiting = lanes.acquire(signal(), 'b');
      await new Promise((resolve) => setImmediate(resolve));
      a.release();
      const b = await waiting;
      assert.equal(b.session, first);
      // no more tries in this pool: the server said how many it takes
      const c = lanes.acquire(signal(), 'c');
      b.release();
      (await c).release();
      assert.equal(tried, 1);
      lanes.close();
    });

    it('a caller waiting for a lane is aborted by its signal, and by close', T, async () => {
      const { s } = await serve();
      const lanes = new Lanes(session(s), 1, () => Promise.reject(new Error('not used')));
      const held = await lanes.acquire(signal(), 'a');
      const ctl = new AbortController();
      const aborted = lanes.acquire(ctl.signal, 'b');
      const closed = lanes.acquire(signal(), 'c');
      ctl.abort();
      await rejectsWith(aborted, 'aborted');
      lanes.close();
      await rejectsWith(closed, 'aborted');
      held.release();
      await rejectsWith(lanes.acquire(signal(), 'd'), 'aborted');
    });
  });
});
