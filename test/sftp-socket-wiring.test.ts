// The SFTP connection's socket is corked per turn of the event loop (corkEachTick, issue 11) and
// reached through ssh2's private `_sock`. test/sftp-pipeline.test.ts proves what corkEachTick does
// to a socket; this proves that a real connection gets it: an upload through the transport, the
// client socket's writes counted where they reach libuv. If an ssh2 upgrade renames `_sock` (or
// the wiring is lost), each piece goes out in a call of its own and this fails.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createSftpTransport } from '../transports/sftp/index.js';
import { packageOf } from './conformance/suite.js';
import { startSftpServer, type SftpTestServer, sftpProfileOf } from './servers/sftp-server.js';
import { testEndpoint } from './helpers/endpoint.js';

describe('sftp connection socket', () => {
  let server: SftpTestServer;
  before(async () => {
    server = await startSftpServer({ openSshExtensions: true });
  });
  after(() => server.close());

  it('the pieces ssh2 writes in one turn reach the kernel together (corked), not one call each', async () => {
    const proto = Socket.prototype as unknown as {
      write: (...a: unknown[]) => boolean;
      _write: (...a: unknown[]) => void;
      _writev: (...a: unknown[]) => void;
    };
    const { write, _write, _writev } = proto;
    const ours = (s: Socket) => s.remotePort === server.port;
    let pieces = 0;
    let calls = 0;
    proto.write = function (this: Socket, ...a: unknown[]) {
      if (ours(this)) pieces++;
      return write.apply(this, a);
    };
    proto._write = function (this: Socket, ...a: unknown[]) {
      if (ours(this)) calls++;
      return _write.apply(this, a);
    };
    proto._writev = function (this: Socket, ...a: unknown[]) {
      if (ours(this)) calls++;
      return _writev.apply(this, a);
    };
    const signal = new AbortController().signal;
    const sink = await createSftpTransport(sftpProfileOf(server)).openSink(testEndpoint('wiring', '/in'), signal);
    try {
      const before = { pieces, calls };
      await sink.put(packageOf('big.xml', randomBytes(8 * 1024 * 1024)), signal);
      const p = pieces - before.pieces;
      const c = calls - before.calls;
      assert.ok(p > 500, `ssh2 wrote the upload in many pieces (${p})`);
      assert.ok(c * 4 < p, `${p} pieces went to the kernel in ${c} calls: not corked per turn`);
    } finally {
      Object.assign(proto, { write, _write, _writev });
      await sink.close();
    }
  });
});
