// The fault-injecting proxy the fault tests stand on, checked with plain sockets: untouched bytes
// when no fault is armed, and each fault doing exactly what it says.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { freePortRange, TcpProxy } from './servers/tcp-proxy.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What one side of a connection saw. */
interface Seen {
  bytes: Buffer[];
  ended: boolean;
  error: string | null;
  closed: boolean;
  socket: net.Socket;
}

function watch(socket: net.Socket): Seen {
  const seen: Seen = { bytes: [], ended: false, error: null, closed: false, socket };
  socket.on('data', (b: Buffer) => seen.bytes.push(b));
  socket.on('end', () => (seen.ended = true));
  socket.on('error', (e: NodeJS.ErrnoException) => (seen.error = e.code ?? e.message));
  socket.on('close', () => (seen.closed = true));
  return seen;
}

const total = (s: Seen) => Buffer.concat(s.bytes);

/** A target server on `host` that remembers what each connection saw; `greet` is sent on connect. */
async function startTarget(host = '127.0.0.1', port = 0, greet?: Buffer) {
  const conns: Seen[] = [];
  let taken = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    conns.push(watch(socket));
    if (greet) socket.write(greet);
  });
  await new Promise<void>((resolve) => server.listen({ host, port }, resolve));
  /** The connections in order of arrival, one per call. */
  const nextConnection = async () => {
    await until('a connection at the target', () => conns.length > taken);
    return conns[taken++]!;
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    nextConnection,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function connect(port: number, host = '127.0.0.1'): Promise<Seen> {
  const socket = net.connect({ host, port, allowHalfOpen: true });
  const seen = watch(socket);
  await once(socket, 'connect');
  return seen;
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: { greet?: Buffer } = {}) {
  const target = await startTarget('127.0.0.1', 0, opts.greet);
  cleanups.push(target.close);
  const proxy = await TcpProxy.start({ target: { host: '127.0.0.1', port: target.port } });
  cleanups.push(() => proxy.close());
  return { target, proxy };
}

describe('tcp proxy', () => {
  it('passes bytes through unchanged both ways, and half-closes in order', async () => {
    const { target, proxy } = await setup();
    const up = randomBytes(3 * 1024 * 1024 + 17);
    const down = randomBytes(2 * 1024 * 1024 + 5);
    const client = await connect(proxy.port);
    const server = await target.nextConnection();
    client.socket.end(up);
    await until('the upload to arrive and end', () => server.ended);
    assert.equal(sha(total(server)), sha(up));
    assert.equal(client.ended, false, 'the server has not ended yet');
    server.socket.end(down);
    await until('the reply to arrive and end', () => client.ended);
    assert.equal(sha(total(client)), sha(down));
    await until('both closed', () => client.closed && server.closed);
    assert.equal(client.error, null);
    assert.equal(server.error, null);
    assert.equal(proxy.connections[0]!.bytesToServer, up.length);
    assert.equal(proxy.connections[0]!.bytesToClient, down.length);
    assert.equal(proxy.triggered, 0);
  });

  for (const direction of ['toServer', 'toClient'] as const) {
    it(`resetAfterBytes (${direction}) forwards at most n bytes, then both ends see a reset`, async () => {
      const { target, proxy } = await setup();
      proxy.resetAfterBytes(100_000, direction);
      const client = await connect(proxy.port);
      const server = await target.nextConnection();
      const [sender, receiver] = direction === 'toServer' ? [client, server] : [server, client];
      sender.socket.write(randomBytes(1024 * 1024));
      await until('both sockets closed', () => client.closed && server.closed);
      assert.ok(total(receiver).length <= 100_000, `received ${total(receiver).length}`);
      assert.equal(receiver.ended, false, 'no FIN: a reset, not an orderly end');
      assert.equal(client.error, 'ECONNRESET');
      assert.equal(server.error, 'ECONNRESET');
      assert.equal(proxy.triggered, 1);
      assert.equal(proxy.connections[0]!.state, 'reset');
      // the fault was for one connection only
      const again = await connect(proxy.port);
      const server2 = await target.nextConnection();
      again.socket.end(Buffer.from('fine'));
      await until('the second connection to pass', () => server2.ended);
      assert.equal(total(server2).toString(), 'fine');
    });
  }

  it('stallAfterBytes forwards exactly n bytes and then nothing either way, keeping both open', async () => {
    const { target, proxy } = await setup();
    proxy.stallAfterBytes(70_000, 'toServer');
    const client = await connect(proxy.port);
    const server = await target.nextConnection();
    const triggered = proxy.nextTrigger();
    client.socket.write(randomBytes(512 * 1024));
    await triggered;
    await until('70000 bytes at the server', () => total(server).length === 70_000);
    server.socket.write('reply that never arrives');
    client.socket.end();
    await sleep(300);
    assert.equal(total(server).length, 70_000, 'not one byte more');
    assert.equal(total(client).length, 0, 'nothing back either');
    assert.equal(server.ended, false, 'the FIN did not pass');
    assert.equal(client.closed || server.closed, false, 'both sockets are still open');
    assert.equal(proxy.connections[0]!.state, 'frozen');
    await proxy.close();
    await until('both let go once the proxy closed', () => client.closed && (server.ended || server.closed));
  });

  it('stallAfterGreeting forwards the greeting, then nothing', async () => {
    const { target, proxy } = await setup({ greet: Buffer.from('220 sprelay test\r\n') });
    proxy.stallAfterGreeting();
    const client = await connect(proxy.port);
    const server = await target.nextConnection();
    await until('the greeting', () => total(client).length > 0);
    assert.equal(total(client).toString(), '220 sprelay test\r\n');
    client.socket.write('USER azs017\r\n');
    await sleep(300);
    assert.equal(total(server).length, 0, 'the command never reached the server');
    assert.equal(client.closed, false);
  });

  it('stallAtEnd forwards every byte but not the end; withholdLastChunk keeps the last chunk too', async () => {
    const { target, proxy } = await setup();
    proxy.stallAtEnd('toClient');
    proxy.stallAtEnd('toClient', { withholdLastChunk: true });
    const payload = randomBytes(300_000);

    const client = await connect(proxy.port);
    const server = await target.nextConnection();
    server.socket.end(payload);
    await until('every byte', () => total(client).length === payload.length);
    await sleep(300);
    assert.equal(sha(total(client)), sha(payload));
    assert.equal(client.ended, false, 'the end never came');
    assert.equal(proxy.connections[0]!.state, 'frozen');

    const client2 = await connect(proxy.port);
    const server2 = await target.nextConnection();
    server2.socket.write(payload.subarray(0, 200_000));
    await sleep(100); // two separate chunks
    server2.socket.end(payload.subarray(200_000));
    await until('the stall', () => proxy.triggered === 2);
    await sleep(200);
    assert.ok(total(client2).length < payload.length, `got ${total(client2).length} of ${payload.length}`);
    assert.ok(total(client2).length >= 200_000, 'everything before the last chunk passed');
    assert.deepEqual(total(client2), payload.subarray(0, total(client2).length));
    assert.equal(client2.ended, false);
  });

  it('stallAtEnd with minBytes spares short streams and holds nothing back before minBytes', async () => {
    const { target, proxy } = await setup();
    proxy.stallAtEnd('toClient', { minBytes: 100_000, withholdLastChunk: true, times: 2 });
    // a short exchange in both directions (a listing, a handshake) passes and ends normally
    const short = await connect(proxy.port);
    const s1 = await target.nextConnection();
    s1.socket.write('hello');
    await until('the greeting, not held back', () => total(short).length === 5);
    short.socket.write('ok');
    await until('the reply', () => total(s1).length === 2);
    s1.socket.end('bye');
    await until('the end', () => short.ended);
    assert.equal(total(short).toString(), 'hellobye');
    // a long one loses its last chunk and its end
    const long = await connect(proxy.port);
    const s2 = await target.nextConnection();
    const payload = randomBytes(300_000);
    s2.socket.write(payload.subarray(0, 200_000));
    await until('the first 200000 bytes', () => total(long).length >= 100_000);
    await sleep(100);
    s2.socket.end(payload.subarray(200_000));
    await until('the stall', () => proxy.triggered === 1);
    await sleep(200);
    assert.ok(total(long).length < payload.length, `got ${total(long).length} of ${payload.length}`);
    assert.equal(long.ended, false);
    assert.deepEqual(
      proxy.connections.map((c) => c.triggeredAt !== null),
      [false, true],
      'the short stream took the fault but never met it',
    );
  });

  it('skip lets connections through before the fault applies', async () => {
    const { target, proxy } = await setup();
    proxy.resetAfterBytes(0, 'toServer', { skip: 1 });
    const first = await connect(proxy.port);
    const s1 = await target.nextConnection();
    first.socket.end('one');
    await until('first passes', () => s1.ended);
    const second = await connect(proxy.port);
    second.socket.write('two');
    await until('second reset', () => second.closed);
    assert.equal(second.error, 'ECONNRESET');
    assert.equal(proxy.pending, 0);
  });

  it('down refuses new connections and resets open ones; up listens again on the same port', async () => {
    const { target, proxy } = await setup();
    const port = proxy.port;
    const open = await connect(port);
    await target.nextConnection();
    await proxy.down();
    await until('the open connection reset', () => open.closed);
    assert.equal(open.error, 'ECONNRESET');
    const refused = net.connect({ host: '127.0.0.1', port });
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    await proxy.up();
    assert.equal(proxy.port, port);
    const back = await connect(port);
    const server = await target.nextConnection();
    back.socket.end('after the outage');
    await until('bytes pass again', () => server.ended);
    assert.equal(total(server).toString(), 'after the outage');
  });

  it('a target that refuses is a reset for the client', async () => {
    const { target, proxy } = await setup();
    await target.close();
    const client = await connect(proxy.port);
    await until('closed', () => client.closed);
    assert.equal(client.error, 'ECONNRESET');
  });

  it('forwards data ports to the same port on the target host; faults pick their channel', async () => {
    const control = await startTarget('127.0.0.1');
    cleanups.push(control.close);
    const [dataPort] = await freePortRange(1);
    const data = await startTarget('127.0.0.1', dataPort);
    cleanups.push(data.close);
    const proxy = await TcpProxy.start({
      host: '127.0.0.3',
      target: { host: '127.0.0.1', port: control.port },
      dataPorts: { ports: [dataPort!], targetHost: '127.0.0.1' },
    });
    cleanups.push(() => proxy.close());
    assert.equal(proxy.host, '127.0.0.3');
    proxy.resetAfterBytes(10, 'toServer', { channel: 'data' });

    const c = await connect(proxy.port, '127.0.0.3');
    const cs = await control.nextConnection();
    c.socket.end(randomBytes(1000));
    await until('control passes', () => cs.ended);
    assert.equal(total(cs).length, 1000, 'the control channel is not faulted');

    const d = await connect(dataPort!, '127.0.0.3');
    d.socket.write(randomBytes(1000));
    await until('the data connection reset', () => d.closed);
    assert.equal(d.error, 'ECONNRESET');
    assert.ok(total(await data.nextConnection()).length <= 10);
    assert.deepEqual(
      proxy.connections.map((x) => [x.channel, x.triggeredAt !== null]),
      [
        ['control', false],
        ['data', true],
      ],
    );
  });
});
