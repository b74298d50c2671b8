// A latency proxy for the bench's 3G-like link: listens on loopback in front of a server and
// delays every chunk by `oneWayMs` in each direction, in order, so that a round trip costs
// 2 x oneWayMs more than on plain loopback. Nothing is parsed, so TLS and SSH pass untouched.
//
// - Order: each direction is one delay line (a FIFO of chunks, each released oneWayMs after it
//   arrived); a sender's end (FIN) travels the same line behind its last chunk.
// - Connections: the upstream connection is opened 3 x oneWayMs after the client's arrives, so a
//   new connection costs what a TCP handshake costs on such a link: the first byte a server sends
//   reaches the client 2 RTT after connect(), the first byte a client sends reaches the server
//   1.5 RTT after.
// - No bandwidth limit: a line holds at most MAX_IN_FLIGHT bytes (the sender is paused beyond
//   that, the way a TCP window holds it back), which at 50 ms is far above what a 3G link carries;
//   the workloads measure round trips, not throughput.
// - FTP: `dataPorts` forwards each of those ports on the listen host to the same port on
//   `dataPorts.targetHost`, as test/servers/tcp-proxy.ts does: the bench's second vsftpd listens
//   on 127.0.0.2 and names 127.0.0.1 (this proxy) in its PASV replies, so every data connection
//   passes the proxy as well.
import net from 'node:net';

/** Bytes a delay line holds before it pauses its sender. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024;

export interface LatencyProxyOptions {
  /** Where the control (or only) port goes. */
  target: { host: string; port: number };
  /** Delay per direction, ms (the round trip grows by twice this). */
  oneWayMs: number;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port for the control channel (default: a free one). */
  port?: number;
  /** Extra ports, each forwarded to the same port number on targetHost. */
  dataPorts?: { ports: number[]; targetHost: string };
}

/** One direction of a connection: chunks released in order, each oneWayMs after it came in. */
class DelayLine {
  private readonly queue: Array<{ at: number; chunk: Buffer | null }> = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | null = null;
  private waitingForDrain = false;
  private started = false;
  private closed = false;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly delayMs: number,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => this.push(null));
    to.on('drain', () => {
      this.waitingForDrain = false;
      this.release();
    });
  }

  /** A chunk, or null for the sender's end. */
  private push(chunk: Buffer | null): void {
    if (this.closed) return;
    this.queue.push({ at: Date.now() + this.delayMs, chunk });
    if (chunk) {
      this.inFlight += chunk.length;
      if (this.inFlight > MAX_IN_FLIGHT) this.from.pause();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.waitingForDrain || this.closed || this.queue.length === 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.release();
      },
      Math.max(0, this.queue[0]!.at - Date.now()),
    );
  }

  /** Writes every chunk that is due, unless the receiver is full; then waits again. */
  private release(): void {
    if (this.closed || !this.started) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.at <= now) {
      const { chunk } = this.queue.shift()!;
      if (chunk === null) {
        this.to.end();
        continue;
      }
      this.inFlight -= chunk.length;
      if (this.inFlight <= MAX_IN_FLIGHT / 2 && this.from.isPaused()) this.from.resume();
      if (!this.to.write(chunk)) {
        this.waitingForDrain = true;
        return;
      }
    }
    this.schedule();
  }

  /** The upstream socket connected: release what waited for it. */
  start(): void {
    this.started = true;
    this.release();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }
}

export class LatencyProxy {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private controlPort = 0;
  /** Connections accepted so far on the control port and on the data ports (the bench checks that its clients really went through). */
  readonly accepted = { control: 0, data: 0 };

  private constructor(private readonly opts: LatencyProxyOptions) {}

  static async start(opts: LatencyProxyOptions): Promise<LatencyProxy> {
    const proxy = new LatencyProxy(opts);
    try {
      proxy.controlPort = await proxy.listen(opts.port ?? 0, opts.target, 'control');
      for (const port of opts.dataPorts?.ports ?? []) {
        await proxy.listen(port, { host: opts.dataPorts!.targetHost, port }, 'data');
      }
    } catch (err) {
      proxy.close();
      throw err;
    }
    return proxy;
  }

  get host(): string {
    return this.opts.host ?? '127.0.0.1';
  }

  get port(): number {
    return this.controlPort;
  }

  private listen(port: number, target: { host: string; port: number }, channel: 'control' | 'data'): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      this.accepted[channel]++;
      this.accept(client, target);
    });
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', (err: Error) =>
        reject(new Error(`latency proxy: cannot listen on ${this.host}:${port}: ${err.message}`)),
      );
      server.listen({ host: this.host, port, exclusive: true }, () => {
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private accept(client: net.Socket, target: { host: string; port: number }): void {
    const upstream = new net.Socket({ allowHalfOpen: true });
    this.sockets.add(client).add(upstream);
    client.setNoDelay(true);
    const lines = [
      new DelayLine(client, upstream, this.opts.oneWayMs),
      new DelayLine(upstream, client, this.opts.oneWayMs),
    ];
    const done = (): void => {
      for (const line of lines) line.close();
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    // half-closes travel the lines and each socket closes once both its halves are done; an error
    // on either side (a reset, a refused upstream) ends the pair at once
    let closed = 0;
    for (const s of [client, upstream]) {
      s.on('error', done);
      s.on('close', () => {
        if (++closed === 2) done();
      });
    }
    client.resume();
    setTimeout(() => {
      if (client.destroyed) return done();
      upstream.connect({ host: target.host, port: target.port }, () => {
        upstream.setNoDelay(true);
        for (const line of lines) line.start();
      });
    }, 3 * this.opts.oneWayMs);
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const server of this.servers) server.close();
  }
}
