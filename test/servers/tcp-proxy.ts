// A fault-injecting TCP proxy for tests: listens on a loopback address in front of target ports
// and forwards bytes untouched, until a test arms a fault for the next connection(s): a reset
// after N bytes, a stall after N bytes, a stall after the server's greeting, a stall at the end
// of a stream, a slow drip after N bytes (a few bytes every so often, for as long as the stream
// lasts), or the whole server gone (listeners closed) and back.
//
// FTP opens a second TCP connection per transfer, so a proxy that only sees the control port
// cannot break a transfer where it happens. The proxy therefore forwards a set of extra ports as
// the `data` channel: the FTP server listens (control and passive ports) on 127.0.0.1, the proxy
// on another loopback address (127.0.0.3) on the control port and on the same passive port
// numbers, and the server names 127.0.0.3 in its PASV replies (EPSV names no host at all). The
// client sees one host; every byte, control or data, passes the proxy. Nothing here parses a
// protocol, so TLS passes through as well (the certificate has to name the proxy's address).
//
// A stall freezes both directions of the connection and keeps both sockets open (a black hole:
// no byte, no FIN, no RST goes through), the way a hung server or a dead NAT entry looks to the
// client. Frozen connections are destroyed by close().
import { EventEmitter, once } from 'node:events';
import net from 'node:net';

/** `toServer`: client -> server (an upload's data); `toClient`: server -> client (a download's). */
export type Direction = 'toServer' | 'toClient';

/** Which listener a connection arrived on. */
export type Channel = 'control' | 'data';

export type Fault =
  | { kind: 'reset'; afterBytes: number; direction: Direction }
  | { kind: 'stall'; afterBytes: number; direction: Direction }
  | { kind: 'stall-after-greeting' }
  | { kind: 'stall-at-end'; direction: Direction; withholdLastChunk: boolean; minBytes: number }
  | { kind: 'drip'; afterBytes: number; direction: Direction; bytes: number; everyMs: number };

export interface ArmOptions {
  /** Which connections may take the fault (default `control`, or `any` when no data ports). */
  channel?: Channel | 'any';
  /** How many connections take it, one each (default 1). */
  times?: number;
  /** Connections to let through untouched on that channel before the fault applies (default 0). */
  skip?: number;
}

export interface ConnectionStats {
  id: number;
  channel: Channel;
  port: number;
  bytesToServer: number;
  bytesToClient: number;
  /** Sizes of the chunks forwarded, in order, with their direction. */
  chunks: Array<[Direction, number]>;
  fault: Fault | null;
  /** When the fault took effect (ms since the epoch), if it did. */
  triggeredAt: number | null;
  state: 'connecting' | 'open' | 'frozen' | 'reset' | 'closed';
}

export interface ProxyOptions {
  /** Where the control channel goes. */
  target: { host: string; port: number };
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port to listen on for the control channel (default: a free one). */
  port?: number;
  /** Extra ports, each forwarded to the same port number on `targetHost`, as the `data` channel. */
  dataPorts?: { ports: number[]; targetHost: string };
}

interface Listener {
  server: net.Server;
  port: number;
  channel: Channel;
  target: { host: string; port: number };
}

interface Armed {
  fault: Fault;
  channel: Channel | 'any';
  times: number;
  skip: number;
}

const DEFAULT_HOST = '127.0.0.1';
const RESET_DELAY_MS = 25;

export class TcpProxy extends EventEmitter {
  private readonly ports: Listener[] = [];
  private readonly links = new Set<Link>();
  private armed: Armed[] = [];
  private nextId = 1;
  private isDown = false;
  private listenHost = DEFAULT_HOST;
  /** Every connection seen, in order of arrival. */
  readonly connections: ConnectionStats[] = [];

  private constructor() {
    super();
  }

  static async start(opts: ProxyOptions): Promise<TcpProxy> {
    const proxy = new TcpProxy();
    proxy.listenHost = opts.host ?? DEFAULT_HOST;
    try {
      await proxy.listen({ port: opts.port ?? 0, channel: 'control', target: opts.target });
      for (const port of opts.dataPorts?.ports ?? []) {
        await proxy.listen({ port, channel: 'data', target: { host: opts.dataPorts!.targetHost, port } });
      }
    } catch (err) {
      await proxy.close();
      throw err;
    }
    return proxy;
  }

  /** The control channel's port on `host`: point the client here. */
  get port(): number {
    return this.ports[0]!.port;
  }

  get host(): string {
    return this.listenHost;
  }

  // ---- faults ---------------------------------------------------------------------------------

  /** Arms `fault` for the next matching connection(s). Faults armed earlier are taken first. */
  arm(fault: Fault, opts: ArmOptions = {}): this {
    const hasData = this.ports.some((l) => l.channel === 'data');
    this.armed.push({
      fault,
      channel: opts.channel ?? (hasData ? 'control' : 'any'),
      times: opts.times ?? 1,
      skip: opts.skip ?? 0,
    });
    return this;
  }

  /** Forward `n` bytes in `direction`, then reset both sockets (RST, no FIN). */
  resetAfterBytes(n: number, direction: Direction, opts?: ArmOptions): this {
    return this.arm({ kind: 'reset', afterBytes: n, direction }, opts);
  }

  /** Forward `n` bytes in `direction`, then forward nothing more either way; sockets stay open. */
  stallAfterBytes(n: number, direction: Direction, opts?: ArmOptions): this {
    return this.arm({ kind: 'stall', afterBytes: n, direction }, opts);
  }

  /** Forward the server's first chunk (its greeting / banner), then freeze. */
  stallAfterGreeting(opts?: ArmOptions): this {
    return this.arm({ kind: 'stall-after-greeting' }, opts);
  }

  /**
   * When the sender in `direction` ends its stream, forward neither its FIN nor (with
   * `withholdLastChunk`) its last chunk, then freeze: the receiver has every byte, or all but the
   * last chunk, and waits for an end that never comes. Streams shorter than `minBytes` end
   * normally (so that, armed for every FTP data connection, it spares the listings), and chunks are
   * held back only after the first `minBytes` (a handshake before the transfer passes).
   * Over TLS the stream's end is its close_notify alert as much as its FIN: withhold the last
   * chunk there too.
   */
  stallAtEnd(direction: Direction, opts: ArmOptions & { withholdLastChunk?: boolean; minBytes?: number } = {}): this {
    const { withholdLastChunk = false, minBytes = 0, ...arm } = opts;
    return this.arm({ kind: 'stall-at-end', direction, withholdLastChunk, minBytes }, arm);
  }

  /**
   * Forward `n` bytes in `direction`, then only `bytes` bytes every `everyMs` ms (the sender is
   * held back meanwhile, nothing is lost; its end comes after the last byte). A peer that keeps a
   * transfer alive without ever finishing it.
   */
  dripAfterBytes(n: number, direction: Direction, drip: { bytes: number; everyMs: number }, opts?: ArmOptions): this {
    return this.arm({ kind: 'drip', afterBytes: n, direction, ...drip }, opts);
  }

  /** Back to plain pass-through for new connections (connections already faulted stay so). */
  passThrough(): this {
    this.armed = [];
    return this;
  }

  /** Faults armed but not yet taken by a connection. */
  get pending(): number {
    return this.armed.reduce((n, a) => n + a.times, 0);
  }

  /** How many connections have had their fault take effect. */
  get triggered(): number {
    return this.connections.filter((c) => c.triggeredAt !== null).length;
  }

  /** Resolves when the next fault takes effect. */
  async nextTrigger(): Promise<ConnectionStats> {
    const [stats] = (await once(this, 'triggered')) as [ConnectionStats];
    return stats;
  }

  // ---- outage ---------------------------------------------------------------------------------

  /**
   * The server is gone: every listener closes (new connections are refused) and, unless
   * `keepExisting`, every open connection is reset.
   */
  async down(opts: { keepExisting?: boolean } = {}): Promise<void> {
    this.isDown = true;
    if (!opts.keepExisting) for (const link of this.links) link.reset();
    await Promise.all(this.ports.map((l) => closeServer(l.server)));
  }

  /** The server is back, on the same ports. */
  async up(): Promise<void> {
    if (!this.isDown) return;
    for (const l of this.ports) {
      l.server = this.createServer(l);
      await listenOn(l.server, this.listenHost, l.port);
    }
    this.isDown = false;
  }

  /** Destroys every connection and listener. Safe to call twice. */
  async close(): Promise<void> {
    this.armed = [];
    for (const link of this.links) link.destroy();
    this.links.clear();
    await Promise.all(this.ports.map((l) => closeServer(l.server)));
  }

  // ---- plumbing -------------------------------------------------------------------------------

  private async listen(spec: Omit<Listener, 'server'>): Promise<void> {
    const l: Listener = { ...spec, server: undefined as unknown as net.Server };
    l.server = this.createServer(l);
    this.ports.push(l);
    l.port = await listenOn(l.server, this.listenHost, spec.port);
  }

  private createServer(l: Listener): net.Server {
    return net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => this.accept(l, client));
  }

  private takeFault(channel: Channel): Fault | null {
    for (const a of this.armed) {
      if (a.channel !== 'any' && a.channel !== channel) continue;
      if (a.skip > 0) {
        a.skip--;
        return null;
      }
      a.times--;
      if (a.times <= 0) this.armed.splice(this.armed.indexOf(a), 1);
      return a.fault;
    }
    return null;
  }

  private accept(l: Listener, client: net.Socket): void {
    const stats: ConnectionStats = {
      id: this.nextId++,
      channel: l.channel,
      port: l.port,
      bytesToServer: 0,
      bytesToClient: 0,
      chunks: [],
      fault: this.takeFault(l.channel),
      triggeredAt: null,
      state: 'connecting',
    };
    this.connections.push(stats);
    const link = new Link(client, l.target, stats, () => this.emit('triggered', stats));
    this.links.add(link);
    link.onGone = () => this.links.delete(link);
  }
}

/** One client connection and its connection to the target. */
class Link {
  private readonly server: net.Socket;
  private held: Buffer | null = null;
  private gone = false;
  /** A drip under way: what waits to be forwarded, a few bytes per tick. */
  private drip: {
    direction: Direction;
    bytes: number;
    everyMs: number;
    queue: Buffer[];
    ended: boolean;
    timer: NodeJS.Timeout | null;
  } | null = null;
  onGone: () => void = () => undefined;

  constructor(
    private readonly client: net.Socket,
    target: { host: string; port: number },
    private readonly stats: ConnectionStats,
    private readonly onTrigger: () => void,
  ) {
    this.server = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    this.server.setNoDelay(true);
    this.server.once('connect', () => {
      if (this.gone) return;
      stats.state = 'open';
      client.resume();
    });
    this.pipe(client, 'toServer');
    this.pipe(this.server, 'toClient');
  }

  private socketOf(direction: Direction): { from: net.Socket; to: net.Socket } {
    return direction === 'toServer' ? { from: this.client, to: this.server } : { from: this.server, to: this.client };
  }

  private pipe(from: net.Socket, direction: Direction): void {
    from.on('data', (chunk: Buffer) => this.onData(direction, chunk));
    from.on('end', () => this.onEnd(direction));
    // A reset or error on one side is passed on as a reset of the other (unless frozen: then
    // nothing passes, not even that).
    from.on('error', () => this.onBroken());
    from.on('close', () => {
      if (this.stats.state !== 'frozen' && this.client.destroyed && this.server.destroyed) this.finish('closed');
    });
  }

  private onData(direction: Direction, chunk: Buffer): void {
    if (this.stats.state === 'frozen' || this.gone) return;
    if (this.drip?.direction === direction) return this.enqueue(chunk);
    const fault = this.stats.fault;
    const sent = direction === 'toServer' ? this.stats.bytesToServer : this.stats.bytesToClient;
    if (fault && this.stats.triggeredAt === null) {
      if (fault.kind === 'drip' && fault.direction === direction && chunk.length > fault.afterBytes - sent) {
        const room = Math.max(0, fault.afterBytes - sent);
        this.forward(direction, chunk.subarray(0, room));
        this.drip = { direction, bytes: fault.bytes, everyMs: fault.everyMs, queue: [], ended: false, timer: null };
        this.trigger('drip');
        return this.enqueue(chunk.subarray(room));
      }
      if ((fault.kind === 'reset' || fault.kind === 'stall') && fault.direction === direction) {
        const room = fault.afterBytes - sent;
        if (chunk.length >= room) {
          const part = chunk.subarray(0, Math.max(0, room));
          if (fault.kind === 'stall') {
            this.forward(direction, part);
            this.trigger('stall');
          } else {
            // Nothing else passes meanwhile. The reset follows once `part` is handed to the kernel
            // and the receiver had a moment to read it: an RST that arrives while data is still
            // unread makes Linux report a plain end-of-stream to the receiver instead of a reset.
            this.freeze();
            this.forward(direction, part, () => setTimeout(() => this.trigger('reset'), RESET_DELAY_MS));
          }
          return;
        }
      } else if (fault.kind === 'stall-after-greeting' && direction === 'toClient') {
        this.forward(direction, chunk);
        this.trigger('stall');
        return;
      } else if (
        fault.kind === 'stall-at-end' &&
        fault.withholdLastChunk &&
        fault.direction === direction &&
        // held back only once the stream is under way: holding a handshake chunk would stall the
        // connection long before its end
        sent + (this.held?.length ?? 0) >= fault.minBytes
      ) {
        const previous = this.held;
        this.held = chunk;
        if (previous) this.forward(direction, previous);
        return;
      }
    }
    this.forward(direction, chunk);
  }

  /** Holds `chunk` for the drip; the sender waits until the queue is empty again. */
  private enqueue(chunk: Buffer): void {
    const d = this.drip!;
    if (chunk.length > 0) d.queue.push(chunk);
    this.socketOf(d.direction).from.pause();
    d.timer ??= setTimeout(() => this.dripTick(), d.everyMs);
  }

  private dripTick(): void {
    const d = this.drip!;
    d.timer = null;
    if (this.gone || this.stats.state === 'frozen') return;
    let want = d.bytes;
    while (want > 0 && d.queue.length > 0) {
      const head = d.queue[0]!;
      const part = head.subarray(0, want);
      this.forward(d.direction, part);
      want -= part.length;
      if (part.length === head.length) d.queue.shift();
      else d.queue[0] = head.subarray(part.length);
    }
    if (d.queue.length > 0) {
      d.timer = setTimeout(() => this.dripTick(), d.everyMs);
      return;
    }
    const { from, to } = this.socketOf(d.direction);
    if (d.ended) to.end();
    else from.resume();
  }

  private onEnd(direction: Direction): void {
    if (this.stats.state === 'frozen' || this.gone) return;
    if (this.drip?.direction === direction && (this.drip.queue.length > 0 || this.drip.timer)) {
      this.drip.ended = true; // ended once the queue is through
      return;
    }
    const fault = this.stats.fault;
    if (fault?.kind === 'stall-at-end' && fault.direction === direction && this.stats.triggeredAt === null) {
      const carried =
        (direction === 'toServer' ? this.stats.bytesToServer : this.stats.bytesToClient) + (this.held?.length ?? 0);
      if (carried >= fault.minBytes) {
        this.held = null; // withheld for good
        this.trigger('stall');
        return;
      }
    }
    if (this.held) {
      this.forward(direction, this.held);
      this.held = null;
    }
    this.socketOf(direction).to.end();
  }

  private forward(direction: Direction, chunk: Buffer, written?: () => void): void {
    const { from, to } = this.socketOf(direction);
    if (chunk.length > 0) {
      if (direction === 'toServer') this.stats.bytesToServer += chunk.length;
      else this.stats.bytesToClient += chunk.length;
      this.stats.chunks.push([direction, chunk.length]);
    }
    if (to.destroyed || chunk.length === 0) {
      if (written) queueMicrotask(written);
      return;
    }
    const ok = to.write(chunk, written ? () => written() : undefined);
    if (!ok) {
      from.pause();
      to.once('drain', () => {
        if (this.stats.state !== 'frozen' && !this.gone) from.resume();
      });
    }
  }

  /** Nothing passes either way from now on; both sockets stay open. */
  private freeze(): void {
    this.stats.state = 'frozen';
    this.client.pause();
    this.server.pause();
  }

  private trigger(what: 'reset' | 'stall' | 'drip'): void {
    if (this.stats.triggeredAt !== null) return;
    this.stats.triggeredAt = Date.now();
    if (what === 'reset') this.reset();
    else if (what === 'stall') this.freeze();
    this.onTrigger();
  }

  private onBroken(): void {
    if (this.stats.state === 'frozen') return;
    this.reset();
  }

  reset(): void {
    if (this.gone) return;
    for (const s of [this.client, this.server]) {
      if (s.destroyed) continue;
      // resetAndDestroy needs a fully open handle: on a half-closed one (Node 20) it can leave a handle that never closes
      if (s.readyState === 'open') s.resetAndDestroy();
      else s.destroy();
    }
    this.finish('reset');
  }

  destroy(): void {
    this.client.destroy();
    this.server.destroy();
    this.finish(this.stats.state === 'reset' ? 'reset' : 'closed');
  }

  private finish(state: 'reset' | 'closed'): void {
    if (this.gone) return;
    this.gone = true;
    if (this.drip?.timer) clearTimeout(this.drip.timer);
    this.stats.state = state;
    this.onGone();
  }
}

function listenOn(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** `count` consecutive ports, free on every one of `hosts`, for passive data ports. */
export async function freePortRange(count: number, hosts = ['127.0.0.1', '127.0.0.3']): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // below Linux's ephemeral range (32768+), so no outgoing connection takes one meanwhile
    const base = 20000 + Math.floor(Math.random() * 12000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const held: net.Server[] = [];
    try {
      for (const p of ports) {
        for (const host of hosts) {
          const s = net.createServer();
          held.push(s);
          await new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.listen({ host, port: p, exclusive: true }, () => resolve());
          });
        }
      }
      return ports;
    } catch {
      // taken: try another base
    } finally {
      await Promise.all(held.map(closeServer));
    }
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
