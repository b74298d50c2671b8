// ftp-only rules, against ftp-srv on 127.0.0.1: what each kind of failure looks like (untrusted
// certificate, bad password, refused port, silent server, PASV to another host, stalled download),
// windows-1251 names, overwrite, the steps of a probe, implicit TLS, and the lanes of a sink or
// source (more in ftp-lanes.test.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { TransportError } from '../transports/errors.js';
import { createFtpTransport, ftpWireName } from '../transports/ftp/index.js';
import type { Endpoint, FtpProfile, ProbeStep, Sink, Source } from '../transports/types.js';
import { packageOf, readAll, rejectsWith, sha256 } from './conformance/suite.js';
import { startFtpServer, type FtpServerOptions, type TestFtpServer } from './servers/ftp-server.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { testEndpoint } from './helpers/endpoint.js';

const signal = () => new AbortController().signal;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Every case ends well within this; a hang fails the case instead of holding the run. */
const T = { timeout: 30_000 };
const CYRILLIC = 'Реализация топлива АЗС 17 за 11.05.2023.xml';
const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';

const endpoint = (o: Partial<Endpoint> = {}): Endpoint => testEndpoint('ftp-test', 'in/azs017', o);

const stepsOf = (steps: ProbeStep[]) => steps.map((s) => `${s.step}:${s.ok ? 'ok' : s.code}`);

describe('ftp transport', () => {
  let tls: TestTls;
  const servers: TestFtpServer[] = [];
  const opened: Array<Sink | Source> = [];
  const rawServers: Server[] = [];

  before(async () => {
    tls = await makeTestTls();
  });
  after(async () => {
    await tls.cleanup();
  });
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
    for (const s of servers.splice(0)) await s.close();
    for (const s of rawServers.splice(0)) await new Promise((resolve) => s.close(resolve));
  });

  const serve = async (opts: FtpServerOptions = {}) => {
    const withTls =
      opts.security && opts.security !== 'none' ? { tls: { certPem: tls.certPem, keyPem: tls.keyPem } } : {};
    const s = await startFtpServer({ ...withTls, ...opts });
    servers.push(s);
    return s;
  };
  const profileFor = (s: Pick<TestFtpServer, 'host' | 'port'>, o: Partial<FtpProfile> = {}): FtpProfile => ({
    type: 'ftp',
    host: s.host,
    port: s.port,
    security: 'none',
    user: 'azs017',
    password: 'station-secret',
    tls: { rejectUnauthorized: true },
    encoding: 'utf8',
    ...o,
  });
  const sinkOn = async (profile: FtpProfile, ep: Partial<Endpoint> = {}) => {
    const sink = await createFtpTransport(profile).openSink(endpoint(ep), signal());
    opened.push(sink);
    return sink;
  };
  const sourceOn = async (profile: FtpProfile, ep: Partial<Endpoint> = {}) => {
    const source = await createFtpTransport(profile).openSource(endpoint(ep), signal());
    opened.push(source);
    return source;
  };
  /** A TCP server on 127.0.0.1 that does `onSocket` with every connection (a broken FTP server). */
  const rawServer = async (onSocket: (socket: Socket) => void): Promise<number> => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      onSocket(socket);
    });
    server.on('close', () => sockets.forEach((s) => s.destroy()));
    const close = server.close.bind(server);
    server.close = (cb?: (err?: Error) => void) => {
      sockets.forEach((s) => s.destroy());
      return close(cb);
    };
    rawServers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  };
  /**
   * ftp-srv keeps an unconnected passive listener for 30 s with a timer that holds the process
   * open: connecting to it once (from the test, not the transport) clears that timer.
   */
  const releasePassivePort = async (err: TransportError) => {
    const port = Number(/:(\d+), not to/.exec(err.message)?.[1]);
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.destroy());
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
    });
  };
  const freePort = async () => {
    const port = await rawServer(() => undefined);
    await new Promise((resolve) => rawServers.pop()!.close(resolve));
    return port;
  };

  it('the test server leaves no SIGINT/SIGTERM handler behind (ftp-srv would exit the process)', T, async () => {
    const before = ['SIGINT', 'SIGTERM', 'SIGQUIT'].map((sig) => process.listenerCount(sig));
    const s = await serve();
    await s.stop();
    await s.start();
    assert.deepEqual(
      ['SIGINT', 'SIGTERM', 'SIGQUIT'].map((sig) => process.listenerCount(sig)),
      before,
    );
  });

  it('the test server gives up on a data connection that never comes, and stops waiting for it', T, async () => {
    // ftp-srv polled every 50 ms for it forever, which kept test processes from ever exiting;
    // the helper replaces its wait (a real client would leave ftp-srv's own 30 s idle timer too)
    await serve();
    const Passive = createRequire(import.meta.url)('ftp-srv/src/connector/passive.js') as {
      prototype: { waitForConnection(o: { timeout: number; delay: number }): Promise<unknown> };
    };
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const neverConnected = { dataServer: { listening: true }, dataSocket: null };
    await assert.rejects(
      Passive.prototype.waitForConnection.call(neverConnected, { timeout: 100, delay: 5 }),
      /timed out/,
    );
    await sleep(50);
    assert.ok(timers() <= before, 'no timer left polling for the data connection');
  });

  describe('TLS', () => {
    for (const security of ['explicit', 'implicit'] as const) {
      it(`${security}: a certificate from an untrusted CA is a permanent 'tls' error saying so`, T, async () => {
        const s = await serve({ security });
        const profile = profileFor(s, { security }); // no tls.ca
        const err = await rejectsWith(createFtpTransport(profile).openSink(endpoint(), signal()), 'tls');
        assert.equal(err.retryable, false);
        assert.match(err.message, /certificate is not trusted/);
        assert.match(err.message, /tls\.ca/);
        const steps = await createFtpTransport(profile).probe(endpoint(), 'out', signal());
        assert.deepEqual(stepsOf(steps), ['connect:ok', 'TLS:tls']);
      });

      it(
        `${security}: trusted through tls.ca, a round trip works and the data connection is encrypted too`,
        T,
        async () => {
          const s = await serve({ security });
          const profile = profileFor(s, { security, tls: { ca: tls.caPem, rejectUnauthorized: true } });
          const bytes = randomBytes(200 * 1024);
          await (await sinkOn(profile)).put(packageOf(SERVIO, bytes), signal());
          const src = await sourceOn(profile);
          const [entry] = await src.list(signal());
          assert.equal(entry?.name, SERVIO);
          assert.equal(sha256(await readAll(await src.open(entry!, signal()))), sha256(bytes));
          await src.acknowledge(entry!, signal());
          assert.deepEqual(await readdir(join(s.root, 'in', 'azs017')), []);
        },
      );
    }

    it('a certificate that does not name the host is a tls error', T, async () => {
      const other = await makeTestTls({ names: ['office.example'], caName: 'other CA' });
      try {
        const s = await serve({ security: 'explicit', tls: { certPem: other.certPem, keyPem: other.keyPem } });
        const profile = profileFor(s, { security: 'explicit', tls: { ca: other.caPem, rejectUnauthorized: true } });
        const err = await rejectsWith(createFtpTransport(profile).openSink(endpoint(), signal()), 'tls');
        assert.match(err.message, /does not name this host/);
      } finally {
        await other.cleanup();
      }
    });

    it('explicit TLS against a server without AUTH TLS is refused, never plaintext', T, async () => {
      const s = await serve(); // no TLS at all
      const err = await rejectsWith(
        createFtpTransport(
          profileFor(s, { security: 'explicit', tls: { ca: tls.caPem, rejectUnauthorized: true } }),
        ).openSink(endpoint(), signal()),
        'tls',
      );
      assert.match(err.message, /AUTH TLS/);
    });
  });

  describe('connection failures', () => {
    it("a bad password is a permanent 'auth' error that does not show the password", T, async () => {
      const s = await serve();
      const profile = profileFor(s, { password: 'wrong-Pa55word' });
      const err = await rejectsWith(createFtpTransport(profile).openSource(endpoint(), signal()), 'auth');
      assert.equal(err.retryable, false);
      assert.match(err.message, /login as azs017 on 127\.0\.0\.1:\d+: login refused: the server answered 530/);
      assert.ok(!err.message.includes('wrong-Pa55word'));
      const steps = await createFtpTransport(profile).probe(endpoint(), 'in', signal());
      assert.deepEqual(stepsOf(steps), ['connect:ok', 'login:auth']);
      assert.ok(steps.every((st) => !(st.detail ?? '').includes('wrong-Pa55word')));
    });

    it("a refused port is a retryable 'network' error", T, async () => {
      const port = await freePort();
      const profile = profileFor({ host: '127.0.0.1', port });
      const err = await rejectsWith(createFtpTransport(profile).openSink(endpoint(), signal()), 'network');
      assert.equal(err.retryable, true);
      assert.match(err.message, /ECONNREFUSED/);
      const steps = await createFtpTransport(profile).probe(endpoint(), 'out', signal());
      assert.deepEqual(stepsOf(steps), ['connect:network']);
    });

    it("an unknown host is a 'dns' error", T, async () => {
      const profile = profileFor({ host: 'ftp.sprelay-test.invalid', port: 21 } as unknown as TestFtpServer);
      const steps = await createFtpTransport(profile).probe(endpoint({ timeoutMs: 3000 }), 'out', signal());
      assert.deepEqual(stepsOf(steps), ['connect:dns']);
    });

    for (const [label, behaviour] of [
      ['accepts and never greets', () => undefined],
      ['greets and then never answers', (socket: Socket) => socket.write('220 hello\r\n')],
    ] as const) {
      it(`a server that ${label} costs a 'timeout' within the deadline, no hang`, T, async () => {
        const port = await rawServer(behaviour);
        const profile = profileFor({ host: '127.0.0.1', port });
        const startedAt = Date.now();
        const err = await rejectsWith(
          createFtpTransport(profile).openSink(endpoint({ timeoutMs: 400 }), signal()),
          'timeout',
        );
        assert.ok(Date.now() - startedAt < 3000, `gave up after ${Date.now() - startedAt} ms`);
        assert.equal(err.retryable, true);
      });
    }
  });

  describe('server refusals', () => {
    for (const [errno, code] of [
      ['ENOSPC', 'no-space'],
      ['EACCES', 'permission'],
    ] as const) {
      it(`an upload the server fails with ${errno} is '${code}', and no final name appears`, T, async () => {
        const s = await serve({ writeError: errno });
        const sink = await sinkOn(profileFor(s));
        const err = await rejectsWith(sink.put(packageOf('full.xml', randomBytes(10_000)), signal()), code);
        assert.match(err.message, /put full\.xml: the server answered 550/);
        assert.deepEqual(await readdir(join(s.root, 'in', 'azs017')), []);
        // the connection is still good after a refusal: the same sink goes on
        assert.equal(s.connections(), 1);
      });
    }

    it('reading a file that is gone is not-found; acknowledging it again is a no-op', T, async () => {
      const s = await serve();
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'once.xml'), '<a/>');
      const src = await sourceOn(profileFor(s), { afterReceive: { kind: 'move', to: 'archive' } });
      const [entry] = await src.list(signal());
      await src.acknowledge(entry!, signal());
      await src.acknowledge(entry!, signal());
      assert.deepEqual(await readdir(join(s.root, 'archive')), ['once.xml']);
      await rejectsWith(src.open(entry!, signal()), 'not-found');
      // a second file of the same name goes next to the first, never over it
      await writeFile(join(dir, 'once.xml'), '<b/>');
      await src.acknowledge(entry!, signal());
      assert.deepEqual((await readdir(join(s.root, 'archive'))).sort(), ['once (2).xml', 'once.xml']);
    });
  });

  describe('passive mode', () => {
    it('a PASV reply naming another host is refused with a clear protocol error', T, async () => {
      const s = await serve({ disableEpsv: true, pasvHost: '127.0.0.2' });
      const profile = profileFor(s);
      const sink = await sinkOn(profile);
      const err = await rejectsWith(sink.put(packageOf('a.xml', Buffer.from('<a/>')), signal()), 'protocol');
      assert.match(err.message, /PASV reply sends the data connection to 127\.0\.0\.2:\d+, not to 127\.0\.0\.1/);
      await releasePassivePort(err);
      assert.deepEqual(await readdir(join(s.root, 'in', 'azs017')), [], 'nothing was written');
      const src = await sourceOn(profile);
      await releasePassivePort(await rejectsWith(src.list(signal()), 'protocol'));
    });

    it('PASV naming the server itself works (server without EPSV)', T, async () => {
      const s = await serve({ disableEpsv: true });
      const profile = profileFor(s);
      await (await sinkOn(profile)).put(packageOf('a.xml', Buffer.from('<a/>')), signal());
      const src = await sourceOn(profile);
      assert.deepEqual(
        (await src.list(signal())).map((e) => e.name),
        ['a.xml'],
      );
    });
  });

  describe('names', () => {
    it('windows-1251 names: how a name travels', T, () => {
      const wire = ftpWireName('cp1251');
      const out = wire.out('Реализация АЗС.xml');
      assert.deepEqual(
        Buffer.from(out, 'latin1'),
        Buffer.from([
          0xd0,
          0xe5,
          0xe0,
          0xeb,
          0xe8,
          0xe7,
          0xe0,
          0xf6,
          0xe8,
          0xff,
          0x20,
          0xc0,
          0xc7,
          0xd1,
          ...Buffer.from('.xml'),
        ]),
      );
      assert.equal(wire.in(out), 'Реализация АЗС.xml');
      assert.equal(wire.in(wire.out('Ёё №5 «x»')), 'Ёё №5 «x»');
      assert.throws(
        () => wire.out('日本.xml'),
        (err: unknown) => err instanceof TransportError && err.code === 'invalid-name',
      );
      assert.equal(ftpWireName('utf8').out(CYRILLIC), CYRILLIC);
    });

    it(
      'encoding cp1251: names with Cyrillic letters and spaces round trip through a windows-1251 server',
      T,
      async () => {
        const s = await serve({ encoding: 'cp1251' });
        const profile = profileFor(s, { encoding: 'cp1251' });
        const ep = { remote: 'Обмен/из АЗС' };
        const bytes = Buffer.from('<DATAPACKET/>');
        const result = await (await sinkOn(profile, ep)).put(packageOf(CYRILLIC, bytes), signal());
        assert.equal(result.remoteRef, `/Обмен/из АЗС/${CYRILLIC}`);
        // the server decoded what it got as windows-1251: the names on its disk are right
        const dir = join(s.root, 'Обмен', 'из АЗС');
        assert.deepEqual(await readdir(dir), [CYRILLIC]);
        // and a file the office put there is listed under its real name
        await writeFile(join(dir, 'Приход 12.05.2023.xml'), Buffer.from('<a/>'));
        const src = await sourceOn(profile, ep);
        const listed = await src.list(signal());
        assert.deepEqual(listed.map((e) => e.name).sort(), [CYRILLIC, 'Приход 12.05.2023.xml'].sort());
        const entry = listed.find((e) => e.name === CYRILLIC)!;
        assert.deepEqual(await readAll(await src.open(entry, signal())), bytes);
        await src.acknowledge(entry, signal());
        assert.deepEqual(await readdir(dir), ['Приход 12.05.2023.xml']);
        // a name windows-1251 cannot write is refused before anything is sent
        await rejectsWith((await sinkOn(profile, ep)).put(packageOf('日本.xml', bytes), signal()), 'invalid-name');
      },
    );

    it('utf8 against the same windows-1251 server would garble the names (why the setting exists)', T, async () => {
      const s = await serve({ encoding: 'cp1251' });
      await mkdir(join(s.root, 'in', 'azs017'), { recursive: true });
      await writeFile(join(s.root, 'in', 'azs017', 'Приход.xml'), Buffer.from('<a/>'));
      const src = await sourceOn(profileFor(s, { encoding: 'utf8' }));
      const [entry] = await src.list(signal());
      assert.notEqual(entry?.name, 'Приход.xml');
    });

    it('a name with a slash or a line break is refused', T, async () => {
      const s = await serve();
      const sink = await sinkOn(profileFor(s));
      for (const name of ['../up.xml', 'a/b.xml', 'x\r\nDELE y.xml', '..', 'back\\slash.xml']) {
        await rejectsWith(sink.put(packageOf(name, Buffer.from('<a/>')), signal()), 'invalid-name');
      }
    });
  });

  describe('overwrite', () => {
    it(
      'overwrite: false refuses a different file and leaves it alone; an identical one is alreadyPresent',
      T,
      async () => {
        const s = await serve();
        const dir = join(s.root, 'in', 'azs017');
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, SERVIO), 'the office copy');
        const sink = await sinkOn(profileFor(s));
        const err = await rejectsWith(sink.put(packageOf(SERVIO, Buffer.from('<newer/>')), signal()), 'exists');
        assert.equal(err.scope, 'package');
        assert.match(err.message, /already there/);
        assert.equal(await readFile(join(dir, SERVIO), 'utf8'), 'the office copy');
        const same = await sink.put(packageOf(SERVIO, Buffer.from('the office copy')), signal());
        assert.deepEqual(same, { remoteRef: `/in/azs017/${SERVIO}`, alreadyPresent: true });
        assert.deepEqual(await readdir(dir), [SERVIO]);
      },
    );

    it('a same-size file taken away by its reader while we read it back: ours is written, not exists', T, async () => {
      // a resend after a crash finds the office's copy and reads it back; the office imports it meanwhile
      const s = await serve({ vanishOnRead: true });
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, SERVIO), '<the office copy/>');
      const ours = Buffer.from('<the station one/>');
      const sink = await sinkOn(profileFor(s));
      assert.equal((await sink.put(packageOf(SERVIO, ours), signal())).alreadyPresent, false);
      assert.deepEqual(await readFile(join(dir, SERVIO)), ours);
      assert.deepEqual(await readdir(dir), [SERVIO]);
    });

    it('overwrite: true replaces through .part and rename; an identical file is still alreadyPresent', T, async () => {
      const s = await serve();
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, SERVIO), 'the office copy');
      const sink = await sinkOn(profileFor(s), { overwrite: true });
      const bytes = randomBytes(50_000);
      assert.equal((await sink.put(packageOf(SERVIO, bytes), signal())).alreadyPresent, false);
      assert.deepEqual(await readFile(join(dir, SERVIO)), bytes);
      assert.equal((await sink.put(packageOf(SERVIO, bytes), signal())).alreadyPresent, true);
      assert.deepEqual(await readdir(dir), [SERVIO]);
    });
  });

  describe('probe', () => {
    for (const security of ['none', 'explicit', 'implicit'] as const) {
      it(`reports every step (${security})`, T, async () => {
        const s = await serve({ security });
        const profile = profileFor(s, { security, tls: { ca: tls.caPem, rejectUnauthorized: true } });
        await mkdir(join(s.root, 'in', 'azs017'), { recursive: true }); // the office made the in-route's folder
        const steps = await createFtpTransport(profile).probe(
          endpoint({ afterReceive: { kind: 'move', to: 'done/azs017' } }),
          'in',
          signal(),
        );
        assert.deepEqual(stepsOf(steps), [
          'connect:ok',
          ...(security === 'none' ? [] : ['TLS:ok']),
          'login:ok',
          'list remote:ok',
          'write probe file:ok',
          'remove probe file:ok',
          'move target reachable:ok',
        ]);
        if (security !== 'none') assert.match(steps[1]!.detail ?? '', /^TLSv1\.[23]$/);
        assert.match(steps.find((st) => st.step === 'list remote')!.detail ?? '', /0 file\(s\) in \/in\/azs017/);
        assert.deepEqual(await readdir(join(s.root, 'in', 'azs017')), [], 'the probe file is gone');
        assert.deepEqual(await readdir(join(s.root, 'done')), ['azs017']);
      });
    }

    it('a directory that cannot be created fails the list step with permission', T, async () => {
      const s = await serve();
      await writeFile(join(s.root, 'in'), 'a file where the directory should be');
      const steps = await createFtpTransport(profileFor(s)).probe(endpoint(), 'out', signal());
      assert.deepEqual(stepsOf(steps).slice(0, 2), ['connect:ok', 'login:ok']);
      assert.equal(steps[2]?.step, 'list remote');
      assert.equal(steps[2]?.ok, false);
      assert.ok(steps[2]?.code && ['permission', 'unavailable'].includes(steps[2].code), steps[2]?.code);
    });
  });

  describe('lanes: one connection per transfer under way, each serialized', () => {
    it('puts one after the other share one connection and all arrive', T, async () => {
      const s = await serve();
      const sink = await sinkOn(profileFor(s));
      const files = Array.from({ length: 6 }, (_, i) => [`pkg ${i}.xml`, randomBytes(20_000 + i)] as const);
      const results: boolean[] = [];
      for (const [n, b] of files) results.push((await sink.put(packageOf(n, b, 4096), signal())).alreadyPresent);
      assert.deepEqual(results, [false, false, false, false, false, false]);
      assert.equal(s.connections(), 1, 'one control connection for the whole sink');
      const dir = join(s.root, 'in', 'azs017');
      for (const [n, b] of files) assert.deepEqual(await readFile(join(dir, n)), b);
    });

    it('a put aborted while waiting for the connection leaves the others alone', T, async () => {
      const s = await serve();
      const sink = await sinkOn(profileFor(s));
      const first = sink.put(packageOf('first.xml', randomBytes(300_000), 1024), signal());
      const ctl = new AbortController();
      const second = sink.put(packageOf('second.xml', Buffer.from('<b/>')), ctl.signal);
      const third = sink.put(packageOf('third.xml', Buffer.from('<c/>')), signal());
      ctl.abort();
      await rejectsWith(second, 'aborted');
      await first;
      await third;
      assert.deepEqual((await readdir(join(s.root, 'in', 'azs017'))).sort(), ['first.xml', 'third.xml']);
    });

    it('a download that stalls errors with timeout; the source then reconnects and goes on', T, async () => {
      const s = await serve({ stallReadsAfter: 10_000 });
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'big.xml'), randomBytes(100_000));
      const src = await sourceOn(profileFor(s), { timeoutMs: 500 });
      const [entry] = await src.list(signal());
      const startedAt = Date.now();
      await rejectsWith(readAll(await src.open(entry!, signal())), 'timeout');
      assert.ok(Date.now() - startedAt < 3000, `gave up after ${Date.now() - startedAt} ms`);
      assert.deepEqual(
        (await src.list(signal())).map((e) => e.name),
        ['big.xml'],
      );
      assert.equal(s.connections(), 2, 'the stalled connection was replaced once');
    });

    it('a download cut short by the reader frees the connection', T, async () => {
      const s = await serve();
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'big.xml'), randomBytes(2_000_000));
      await writeFile(join(dir, 'small.xml'), '<a/>');
      const src = await sourceOn(profileFor(s));
      const entries = await src.list(signal());
      const big = entries.find((e) => e.name === 'big.xml')!;
      const stream = await src.open(big, signal());
      await new Promise((resolve) => stream.once('data', resolve));
      stream.destroy();
      const small = entries.find((e) => e.name === 'small.xml')!;
      assert.equal((await readAll(await src.open(small, signal()))).toString(), '<a/>');
    });

    it('an entry that changed size since listing is busy, not delivered', T, async () => {
      const s = await serve();
      const dir = join(s.root, 'in', 'azs017');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'growing.xml'), '<a>');
      const src = await sourceOn(profileFor(s));
      const [entry] = await src.list(signal());
      await writeFile(join(dir, 'growing.xml'), '<a></a>');
      await rejectsWith(src.open(entry!, signal()), 'busy');
    });
  });
});
