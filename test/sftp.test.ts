// sftp-only rules: the pinned host key, authentication, what a dead, refusing, stalling or full
// server looks like, the rename/fsync paths with and without OpenSSH's extensions, and `check`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { TransportError } from '../transports/errors.js';
import { createSftpTransport } from '../transports/sftp/index.js';
import type { Endpoint, ProbeStep, SftpProfile } from '../transports/types.js';
import { packageOf, readAll, rejectsWith, sha256, slowPackage } from './conformance/suite.js';
import {
  sshKeyPair,
  startSftpServer,
  type SftpServerOptions,
  type SftpTestServer,
  sftpProfileOf,
} from './servers/sftp-server.js';
import { testEndpoint } from './helpers/endpoint.js';

const signal = () => new AbortController().signal;
const REMOTE = '/in/azs017';

describe('sftp transport', () => {
  const servers: SftpTestServer[] = [];
  const others: NetServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    for (const s of others.splice(0)) await new Promise((r) => s.close(r));
  });

  const start = async (options: SftpServerOptions = {}) => {
    const server = await startSftpServer(options);
    servers.push(server);
    return server;
  };
  const profileFor = (server: SftpTestServer, o: Partial<SftpProfile> = {}): SftpProfile => sftpProfileOf(server, o);
  const endpoint = (o: Partial<Endpoint> = {}): Endpoint => testEndpoint('sftp-test', REMOTE, o);
  const remotePath = (server: SftpTestServer, ...parts: string[]) => join(server.root, 'in', 'azs017', ...parts);
  const place = async (server: SftpTestServer, name: string, bytes: Buffer) => {
    await mkdir(remotePath(server), { recursive: true });
    await writeFile(remotePath(server, name), bytes);
  };
  const namesAt = (server: SftpTestServer) => readdir(remotePath(server)).catch(() => [] as string[]);
  const stepsOf = (steps: ProbeStep[]) => steps.map((s) => `${s.step}:${s.ok ? 'ok' : s.code}`);
  /** A port nothing listens on. */
  const closedPort = async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as { port: number };
    await new Promise((r) => srv.close(r));
    return port;
  };

  describe('host key', () => {
    it('a different pinned key is refused for good, naming the key the server offered', async () => {
      const server = await start();
      const pinned = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
      const sftp = createSftpTransport(profileFor(server, { hostKey: pinned }));
      for (const opening of [sftp.openSink(endpoint(), signal()), sftp.openSource(endpoint(), signal())]) {
        const err = await rejectsWith(opening, 'host-key');
        assert.equal(err.retryable, false);
        assert.ok(err.message.includes(server.hostKeyFingerprint), err.message);
        assert.ok(err.message.includes(pinned), err.message);
      }
      assert.deepEqual(await readdir(server.root), [], 'nothing was written before the key was checked');
    });

    it('a missing pin is refused, naming the fingerprint to pin', async () => {
      const server = await start();
      for (const hostKey of ['', '  ']) {
        const err = await rejectsWith(
          createSftpTransport(profileFor(server, { hostKey })).openSink(endpoint(), signal()),
          'host-key',
        );
        assert.match(err.message, /not pinned/);
        assert.ok(err.message.includes(`hostKey: ${server.hostKeyFingerprint}`), err.message);
      }
    });

    it('only the exact word any skips the check; a pin may carry base64 padding', async () => {
      const server = await start();
      for (const hostKey of ['ANY', 'Any', 'any ', server.hostKeyFingerprint.slice(7)]) {
        const err = await rejectsWith(
          createSftpTransport(profileFor(server, { hostKey })).openSink(endpoint(), signal()),
          'host-key',
        );
        assert.ok(err.message.includes(server.hostKeyFingerprint), err.message);
      }
      const padded = createSftpTransport(profileFor(server, { hostKey: `${server.hostKeyFingerprint}=` }));
      await (await padded.openSink(endpoint(), signal())).close();

      const any = createSftpTransport(profileFor(server, { hostKey: 'any' }));
      const sink = await any.openSink(endpoint(), signal());
      await sink.put(packageOf('with any.xml', Buffer.from('<a/>')), signal());
      await sink.close();
      assert.deepEqual(await namesAt(server), ['with any.xml']);
      const steps = await any.probe(endpoint(), 'out', signal());
      const hostKeyStep = steps.find((s) => s.step === 'host key');
      assert.equal(hostKeyStep?.ok, true);
      assert.match(hostKeyStep?.detail ?? '', /without a check/);
      assert.ok(hostKeyStep?.detail?.includes(server.hostKeyFingerprint));
    });
  });

  describe('authentication', () => {
    it('a wrong password is auth, permanent, and the password appears nowhere', async () => {
      const server = await start();
      const password = 'wrong-Passw0rd!';
      const err = await rejectsWith(
        createSftpTransport(profileFor(server, { password })).openSink(endpoint(), signal()),
        'auth',
      );
      assert.equal(err.retryable, false);
      assert.ok(!err.message.includes(password));
      assert.ok(!String(err.stack).includes(password));
    });

    it('a private key with a passphrase works; a wrong passphrase or an unknown key is auth', async () => {
      const passphrase = 'key pass phrase';
      const key = sshKeyPair(passphrase);
      const server = await start({ authorizedKey: key.public });
      const withKey = (o: Partial<SftpProfile>) =>
        createSftpTransport({ ...profileFor(server), password: undefined, privateKey: key.private, ...o });

      const sink = await withKey({ passphrase }).openSink(endpoint(), signal());
      await sink.put(packageOf('by key.xml', Buffer.from('<a/>')), signal());
      await sink.close();
      assert.deepEqual(await namesAt(server), ['by key.xml']);

      const wrong = 'not the passphrase';
      const err = await rejectsWith(withKey({ passphrase: wrong }).openSink(endpoint(), signal()), 'auth');
      assert.ok(!err.message.includes(wrong) && !err.message.includes(key.private), err.message);
      await rejectsWith(withKey({ passphrase: undefined }).openSink(endpoint(), signal()), 'auth');

      const stranger = sshKeyPair();
      const refused = await rejectsWith(
        withKey({ privateKey: stranger.private }).openSink(endpoint(), signal()),
        'auth',
      );
      assert.match(refused.message, /login refused \(tried: private key\)/, 'the same words as FTP, SMTP and IMAP');
    });
  });

  describe('reaching the server', () => {
    it('a refused port is network, retryable', async () => {
      const port = await closedPort();
      const sftp = createSftpTransport({
        type: 'sftp',
        host: '127.0.0.1',
        port,
        user: 'u',
        password: 'p1234',
        hostKey: 'any',
      });
      const err = await rejectsWith(sftp.openSource(endpoint(), signal()), 'network');
      assert.match(err.message, /refused/);
      assert.deepEqual(stepsOf(await sftp.probe(endpoint(), 'out', signal())), ['connect:network']);
    });

    it('a host name that does not resolve is dns', async () => {
      const sftp = createSftpTransport({
        type: 'sftp',
        host: 'no-such-host.invalid',
        port: 22,
        user: 'u',
        password: 'p1234',
        hostKey: 'any',
      });
      await rejectsWith(sftp.openSink(endpoint(), signal()), 'dns');
    });

    it('a server that accepts but never speaks SSH costs a timeout, and the socket is closed', async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => undefined);
        s.resume(); // read (and drop) the client's greeting, so its goodbye is seen
      });
      others.push(silent);
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      const { port } = silent.address() as { port: number };
      const sftp = createSftpTransport({
        type: 'sftp',
        host: '127.0.0.1',
        port,
        user: 'u',
        password: 'p1234',
        hostKey: 'any',
      });
      const startedAt = Date.now();
      await rejectsWith(sftp.openSink(endpoint({ timeoutMs: 400 }), signal()), 'timeout');
      assert.ok(Date.now() - startedAt < 3000, `gave up after ${Date.now() - startedAt} ms`);
      for (let i = 0; i < 50 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(sockets.size, 0, 'the connection was closed');
    });

    it('a connection lost mid-cycle fails the next calls as network, retryable, and close still works', async () => {
      const server = await start();
      await place(server, 'a.xml', Buffer.from('<a/>'));
      const uncaught: unknown[] = [];
      const onUncaught = (err: unknown) => uncaught.push(err);
      process.on('uncaughtException', onUncaught);
      try {
        const sftp = createSftpTransport(profileFor(server));
        const src = await sftp.openSource(endpoint(), signal());
        const sink = await sftp.openSink(endpoint(), signal());
        const [entry] = await src.list(signal());
        await server.suspend(); // every socket cut without a goodbye
        await new Promise((r) => setTimeout(r, 50));
        await rejectsWith(src.list(signal()), 'network');
        await rejectsWith(src.open(entry!, signal()), 'network');
        await rejectsWith(src.acknowledge(entry!, signal()), 'network');
        await rejectsWith(sink.put(packageOf('b.xml', Buffer.from('<b/>')), signal()), 'network');
        await src.close();
        await src.close();
        await sink.close();
        await server.resume();
      } finally {
        process.off('uncaughtException', onUncaught);
      }
      assert.deepEqual(uncaught, []);
    });
  });

  describe('stalls', () => {
    it('a server that stops answering READ mid-download: timeout within the deadline, connection closed', async () => {
      const server = await start({ stallReadsAfterBytes: 64 * 1024 });
      const bytes = randomBytes(1024 * 1024);
      await place(server, 'big.xml', bytes);
      const src = await createSftpTransport(profileFor(server)).openSource(endpoint({ timeoutMs: 500 }), signal());
      try {
        const [entry] = await src.list(signal());
        const stream = await src.open(entry!, signal());
        const startedAt = Date.now();
        const err = await rejectsWith(readAll(stream), 'timeout');
        assert.ok(err.retryable);
        assert.ok(Date.now() - startedAt < 2500, `failed after ${Date.now() - startedAt} ms with timeoutMs 500`);
        await server.waitForNoConnections(2000);
        await rejectsWith(src.list(signal()), 'network');
      } finally {
        await src.close();
      }
    });

    it('a server that stops acknowledging WRITE mid-upload: timeout, no final name, connection closed', async () => {
      const server = await start({ stallWritesAfterBytes: 64 * 1024 });
      const sink = await createSftpTransport(profileFor(server)).openSink(endpoint({ timeoutMs: 500 }), signal());
      try {
        const startedAt = Date.now();
        await rejectsWith(sink.put(packageOf('stuck.xml', randomBytes(512 * 1024)), signal()), 'timeout');
        assert.ok(Date.now() - startedAt < 2500, `failed after ${Date.now() - startedAt} ms with timeoutMs 500`);
        assert.ok(!(await namesAt(server)).includes('stuck.xml'));
        await server.waitForNoConnections(2000);
      } finally {
        await sink.close();
      }
    });

    it('an abort mid-download rejects at once with aborted and closes the connection', async () => {
      const server = await start({ stallReadsAfterBytes: 64 * 1024 });
      await place(server, 'big.xml', randomBytes(512 * 1024));
      const src = await createSftpTransport(profileFor(server)).openSource(endpoint(), signal());
      try {
        const [entry] = await src.list(signal());
        const ctl = new AbortController();
        const reading = readAll(await src.open(entry!, ctl.signal));
        const outcome = rejectsWith(reading, 'aborted');
        await new Promise((r) => setTimeout(r, 100));
        const abortedAt = Date.now();
        ctl.abort();
        await outcome;
        assert.ok(Date.now() - abortedAt < 500, `rejected ${Date.now() - abortedAt} ms after the abort`);
        await server.waitForNoConnections(2000);
      } finally {
        await src.close();
      }
    });

    it('a package stream that stalls costs a timeout, but the connection stays usable', async () => {
      const server = await start();
      const sink = await createSftpTransport(profileFor(server)).openSink(endpoint({ timeoutMs: 300 }), signal());
      try {
        const slow = slowPackage('stalled.xml', randomBytes(8 * 1024), 1024, null);
        await rejectsWith(sink.put(slow.pkg, signal()), 'timeout');
        assert.deepEqual(await namesAt(server), [], 'the .part was removed');
        await sink.put(packageOf('next.xml', Buffer.from('<a/>')), signal());
        assert.deepEqual(await namesAt(server), ['next.xml']);
        assert.equal(server.connections(), 1, 'still the one connection');
      } finally {
        await sink.close();
      }
    });
  });

  describe('names and directories', () => {
    it('Cyrillic and spaces in directories and names; mkdir -p of a relative remote', async () => {
      const server = await start();
      const remote = 'Входящие/АЗС 017/за сегодня'; // relative: under the login directory
      const name = 'Реализация топлива АЗС 17 за 11.05.2023.XML';
      const bytes = Buffer.from([0x3c, 0x61, 0xc0, 0xe1, 0xe2, 0x2f, 0x3e]);
      const sftp = createSftpTransport(profileFor(server));
      const sink = await sftp.openSink(endpoint({ remote }), signal());
      const result = await sink.put(packageOf(name, bytes), signal());
      await sink.close();
      assert.equal(result.remoteRef, `${remote}/${name}`);
      assert.deepEqual(await readFile(join(server.root, ...remote.split('/'), name)), bytes);

      const src = await sftp.openSource(endpoint({ remote: `${remote}/` }), signal());
      const [entry] = await src.list(signal());
      assert.equal(entry?.name, name);
      assert.equal(sha256(await readAll(await src.open(entry!, signal()))), sha256(bytes));
      await src.close();
    });

    it('refuses package names that leave the directory', async () => {
      const server = await start();
      const sink = await createSftpTransport(profileFor(server)).openSink(endpoint(), signal());
      for (const name of ['../escape.xml', 'a/b.xml', '..', 'back\\slash.xml']) {
        await rejectsWith(sink.put(packageOf(name, Buffer.from('<a/>')), signal()), 'invalid-name');
      }
      await sink.close();
      assert.deepEqual(await readdir(server.root), ['in']);
    });

    it('skips directories, .part and probe files when listing; a file that changed since listed is busy', async () => {
      const server = await start();
      await place(server, 'keep.xml', Buffer.from('<a/>'));
      await place(server, 'half.xml.part', Buffer.from('<a'));
      await place(server, '.sprelay-probe-1234.part', Buffer.from('x'));
      await mkdir(remotePath(server, 'sub.xml'));
      const src = await createSftpTransport(profileFor(server)).openSource(endpoint(), signal());
      const entries = await src.list(signal());
      assert.deepEqual(
        entries.map((e) => e.name),
        ['keep.xml'],
      );
      assert.ok(entries[0]!.modifiedAt instanceof Date);
      await writeFile(remotePath(server, 'keep.xml'), Buffer.from('<abc/>'));
      await rejectsWith(src.open(entries[0]!, signal()), 'busy');
      await src.close();
    });

    it('acknowledge (move) never replaces a file already in the move target', async () => {
      const server = await start();
      await place(server, 'pkg.xml', Buffer.from('<new/>'));
      await mkdir(join(server.root, 'done'));
      await writeFile(join(server.root, 'done', 'pkg.xml'), '<old/>');
      const src = await createSftpTransport(profileFor(server)).openSource(
        endpoint({ afterReceive: { kind: 'move', to: '/done' } }),
        signal(),
      );
      const [entry] = await src.list(signal());
      await src.acknowledge(entry!, signal());
      await src.acknowledge(entry!, signal());
      await src.close();
      assert.deepEqual((await readdir(join(server.root, 'done'))).sort(), ['pkg (2).xml', 'pkg.xml']);
      assert.equal(await readFile(join(server.root, 'done', 'pkg (2).xml'), 'utf8'), '<new/>');
      await rejectsWith(
        createSftpTransport(profileFor(server)).openSource(
          endpoint({ afterReceive: { kind: 'move', to: `${REMOTE}/` } }),
          signal(),
        ),
        'invalid-name',
      );
    });
  });

  describe('writing', () => {
    for (const openSshExtensions of [false, true]) {
      const how = openSshExtensions ? 'with posix-rename and fsync' : 'plain SFTP v3';
      it(`overwrite semantics, ${how}`, async () => {
        const server = await start({ openSshExtensions });
        const sink = await createSftpTransport(profileFor(server)).openSink(endpoint(), signal());
        const strict = await createSftpTransport(profileFor(server)).openSink(endpoint(), signal());
        const replacing = await createSftpTransport(profileFor(server)).openSink(
          endpoint({ overwrite: true }),
          signal(),
        );
        try {
          const first = Buffer.from('<DATAPACKET>first</DATAPACKET>');
          assert.equal((await sink.put(packageOf('pkg.xml', first), signal())).alreadyPresent, false);
          const before = await stat(remotePath(server, 'pkg.xml'));

          // the same name and bytes: nothing written
          assert.equal((await strict.put(packageOf('pkg.xml', first), signal())).alreadyPresent, true);
          assert.equal((await stat(remotePath(server, 'pkg.xml'))).ino, before.ino);

          // different bytes: refused unless overwrite, and nothing left behind
          const second = Buffer.from('<DATAPACKET>second, longer</DATAPACKET>');
          await rejectsWith(strict.put(packageOf('pkg.xml', second), signal()), 'exists');
          assert.deepEqual(await readFile(remotePath(server, 'pkg.xml')), first);
          const result = await replacing.put(packageOf('pkg.xml', second), signal());
          assert.equal(result.alreadyPresent, false);
          assert.equal(result.remoteRef, `${REMOTE}/pkg.xml`);
          assert.deepEqual(await readFile(remotePath(server, 'pkg.xml')), second);
          assert.deepEqual(await namesAt(server), ['pkg.xml']);

          if (openSshExtensions) {
            assert.equal(server.stats.renames, 0);
            assert.equal(server.stats.posixRenames, 2, 'posix-rename for every put');
            assert.equal(server.stats.fsyncs, 2, 'fsync for every put');
          } else {
            assert.equal(server.stats.posixRenames, 0);
            assert.equal(server.stats.fsyncs, 0);
            assert.equal(server.stats.renames, 2, 'plain rename; the overwrite removed the old file first');
          }
          assert.deepEqual(server.stats.setModes, [], 'no chmod of the new file (ssh2 streams would ask for 0666)');
        } finally {
          await sink.close();
          await strict.close();
          await replacing.close();
        }
      });
    }

    it('permission denied is permanent; a full disk is no-space, retryable; no .part stays', async () => {
      const server = await start({
        deny: (op, p) => op === 'write' && p.includes('forbidden'),
        noSpaceAfterBytes: 100 * 1024,
      });
      const sink = await createSftpTransport(profileFor(server)).openSink(endpoint(), signal());
      try {
        const denied = await rejectsWith(
          sink.put(packageOf('forbidden.xml', Buffer.from('<a/>')), signal()),
          'permission',
        );
        assert.equal(denied.retryable, false);
        const full = await rejectsWith(sink.put(packageOf('big.zip', randomBytes(300 * 1024)), signal()), 'no-space');
        assert.ok(full.retryable);
        assert.deepEqual(await namesAt(server), []);
        // the connection is still good for the next package
        await sink.put(packageOf('small.xml', Buffer.from('<a/>')), signal());
        assert.deepEqual(await namesAt(server), ['small.xml']);
      } finally {
        await sink.close();
      }
    });

    it('an existing file that cannot be read back (a drop box) is exists, or replaced with overwrite', async () => {
      const server = await start({ deny: (op, p) => op === 'open' && p.endsWith('/pkg.xml') });
      const bytes = Buffer.from('<same size/>');
      await place(server, 'pkg.xml', bytes);
      const strict = await createSftpTransport(profileFor(server)).openSink(endpoint(), signal());
      const err = await rejectsWith(strict.put(packageOf('pkg.xml', bytes), signal()), 'exists');
      assert.match(err.message, /cannot be read back/);
      await strict.close();
      const replacing = await createSftpTransport(profileFor(server)).openSink(endpoint({ overwrite: true }), signal());
      const newer = Buffer.from('<newer size/>');
      assert.equal((await replacing.put(packageOf('pkg.xml', newer), signal())).alreadyPresent, false);
      await replacing.close();
      assert.deepEqual(await readFile(remotePath(server, 'pkg.xml')), newer);
    });

    it('a same-size file taken away by its reader while we read it back: ours is written, not exists', async () => {
      // a resend after a crash finds the office's copy and reads it back; the office imports it meanwhile
      let server: SftpTestServer | undefined = undefined;
      server = await start({
        beforeOpen: (p, writing) => {
          if (!writing && p.endsWith('/pkg.xml')) rmSync(remotePath(server!, 'pkg.xml'), { force: true });
        },
      });
      await place(server, 'pkg.xml', Buffer.from('<the office copy/>'));
      const ours = Buffer.from('<the station one/>');
      assert.equal(ours.length, '<the office copy/>'.length);
      const strict = await createSftpTransport(profileFor(server)).openSink(endpoint(), signal());
      try {
        assert.equal((await strict.put(packageOf('pkg.xml', ours), signal())).alreadyPresent, false);
      } finally {
        await strict.close();
      }
      assert.deepEqual(await readFile(remotePath(server, 'pkg.xml')), ours);
      assert.deepEqual(await namesAt(server), ['pkg.xml']);
    });

    it('a remote directory that is missing and cannot be created: list is unavailable', async () => {
      const server = await start({ deny: (op) => op === 'mkdir' });
      const src = await createSftpTransport(profileFor(server)).openSource(endpoint(), signal());
      await rejectsWith(src.list(signal()), 'unavailable');
      await src.close();
      await rejectsWith(createSftpTransport(profileFor(server)).openSink(endpoint(), signal()), 'permission');
    });
  });

  describe('probe', () => {
    it('reports every step on a good server, for both directions, and leaves nothing', async () => {
      const server = await start({ openSshExtensions: true });
      const sftp = createSftpTransport(profileFor(server));
      const out = await sftp.probe(endpoint(), 'out', signal());
      assert.deepEqual(stepsOf(out), [
        'connect:ok',
        'host key:ok',
        'authenticate:ok',
        'list remote:ok',
        'write probe file:ok',
        'remove probe file:ok',
      ]);
      assert.match(out.find((s) => s.step === 'write probe file')?.detail ?? '', /fsync, posix-rename/);
      const inbound = await sftp.probe(endpoint({ afterReceive: { kind: 'move', to: '/done' } }), 'in', signal());
      assert.equal(inbound.at(-1)?.step, 'move target reachable');
      assert.ok(inbound.every((s) => s.ok));
      assert.deepEqual(await namesAt(server), []);
      await server.waitForNoConnections(2000);
    });

    it('says which step failed: host key, missing pin, password, permission', async () => {
      const server = await start({ deny: (op, p) => op === 'write' && p.includes('.sprelay-probe-') });
      const probe = (o: Partial<SftpProfile>) =>
        createSftpTransport(profileFor(server, o)).probe(endpoint(), 'out', signal());

      const wrongKey = await probe({ hostKey: `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}` });
      assert.deepEqual(stepsOf(wrongKey), ['connect:ok', 'host key:host-key']);
      assert.ok(wrongKey[1]!.detail?.includes(server.hostKeyFingerprint));

      const noPin = await probe({ hostKey: '' });
      assert.deepEqual(stepsOf(noPin), ['connect:ok', 'host key:host-key']);
      assert.ok(noPin[1]!.detail?.includes(server.hostKeyFingerprint));

      const badPassword = await probe({ password: 'not-it-at-all' });
      assert.deepEqual(stepsOf(badPassword), ['connect:ok', 'host key:ok', 'authenticate:auth']);
      assert.ok(badPassword.every((s) => !s.detail?.includes('not-it-at-all')));

      const unreadableKey = await probe({ password: undefined, privateKey: 'not a key at all' });
      assert.deepEqual(stepsOf(unreadableKey), ['authenticate:auth'], 'a key that cannot be read: nothing was sent');

      const noWrite = await probe({});
      assert.deepEqual(stepsOf(noWrite), [
        'connect:ok',
        'host key:ok',
        'authenticate:ok',
        'list remote:ok',
        'write probe file:permission',
      ]);
      assert.deepEqual(await namesAt(server), []);
      await server.waitForNoConnections(2000);
    });
  });

  it('errors are TransportErrors whatever the failure', async () => {
    const server = await start();
    const src = await createSftpTransport(profileFor(server)).openSource(endpoint(), signal());
    const err = await src.open({ name: 'nope.xml', size: 1, ref: 'nope.xml' }, signal()).catch((e: unknown) => e);
    assert.ok(err instanceof TransportError);
    assert.equal(err.code, 'not-found');
    await src.close();
  });
});
