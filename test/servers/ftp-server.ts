// An in-process FTP/FTPS server for the tests (ftp-srv) on 127.0.0.1: one user, a temp root,
// plain / explicit (AUTH TLS) / implicit TLS, and the knobs the ftp transport's tests need (an
// EPSV-less server, a PASV reply naming another host, an old server speaking windows-1251).
// ftp-srv's own side effects are removed: it logs through bunyan to stdout and installs
// SIGINT/SIGTERM/SIGQUIT handlers that call process.exit; neither survives here. And one of its
// bugs is mended (see `waitForConnection` below): it kept a test process from ever exiting.
import type { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket, createSecureContext, type SecureContextOptions } from 'node:tls';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { FileSystem, FtpSrv, type FtpConnection } from 'ftp-srv';

export interface FtpServerOptions {
  user?: string;
  password?: string;
  /** 'explicit': AUTH TLS offered on a plain port; 'implicit': TLS from the first byte. Needs `tls`. */
  security?: 'none' | 'explicit' | 'implicit';
  tls?: { certPem: string; keyPem: string };
  /** Serve this folder (kept on close) instead of a fresh temp folder (removed on close). */
  root?: string;
  /** Listen on this port (to start a stopped server again); default a free one. */
  port?: number;
  /** Passive data ports. Default: 200 ports from a random base in 20000-29799 (below Linux's ephemeral range). */
  pasvRange?: [number, number];
  /** Address the server names in its PASV replies. Default: the address the client came from. */
  pasvHost?: string;
  /** Refuse EPSV (502), so clients have to use PASV and its address. */
  disableEpsv?: boolean;
  /** 'cp1251': names on the wire in windows-1251, like an old Windows server (OPTS refused too). */
  encoding?: 'utf8' | 'cp1251';
  /** Every download sends this many bytes, then nothing more and never finishes (a stalled server). */
  stallReadsAfter?: number;
  /** Every upload takes the bytes, then fails with this errno when the file is closed (disk full, no rights). */
  writeError?: 'ENOSPC' | 'EACCES';
  /** Every download finds its file taken away at that instant (by the office's reader): 550. */
  vanishOnRead?: boolean;
  /**
   * A hostile server: LIST sends made-up lines instead of the folder, each a 1-byte file with a
   * `nameBytes` long name (default 40): `bytes` of them, then 226; without `bytes`, lines never
   * stop coming until the client closes the data connection.
   */
  listing?: { bytes?: number; nameBytes?: number };
  /**
   * How LIST prints times: 'dos' (`12-02-26  04:13PM`, IIS style: no time a client can use), or a
   * Unix listing whose clock is `aheadMinutes` ahead of UTC (a server printing its local time);
   * files last written more than `before.ms` ago printed `before.aheadMinutes` ahead instead (the
   * offset of their date: daylight saving). Default: ftp-srv's own (Unix, UTC).
   */
  listTimes?: ListTimes;
  /** Listen (control and passive data ports) on this loopback address instead of 127.0.0.1. */
  host?: string;
  /**
   * Called with every command the server receives, before it is handled (PASS's argument masked),
   * and the number of the control connection it came on (1 for the first accepted).
   */
  onCommand?: (directive: string, arg: string | null, connection: number) => void;
}

export type ListTimes = 'dos' | { aheadMinutes: number; before?: { ms: number; aheadMinutes: number } };

export interface TestFtpServer {
  /** 127.0.0.1 unless `host` was given. */
  host: string;
  port: number;
  /** The folder the user sees as `/`. */
  root: string;
  user: string;
  password: string;
  /** Control connections accepted so far. */
  connections(): number;
  /** Stops listening and drops every connection; `start` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its temp root. Never throws. */
  close(): Promise<void>;
}

/** A command as ftp-srv parses it. */
interface Cmd {
  directive: string;
  arg: string | null;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const;

// ---- ftp-srv's passive wait, mended --------------------------------------------------------------

interface BluebirdLike {
  new <T>(executor: (resolve: (v: T) => void, reject: (e: unknown) => void) => void): Promise<T>;
  reject(err: unknown): Promise<never>;
  TimeoutError: new (message: string) => Error;
}
interface PassiveConnector {
  dataServer: { listening: boolean } | null;
  dataSocket: { connected?: boolean } | null;
  waitForConnection(opts?: { timeout?: number; delay?: number }): Promise<unknown>;
}

/**
 * ftp-srv waits for a passive data connection by polling every 50 ms, and gives up after 5 s with a
 * bluebird `.timeout()` that rejects the wait but does not stop the polling: a client that sends
 * RETR/STOR/LIST and never completes its data connection (killed, or its connection closed after
 * a timeout, or stuck in the TLS handshake) leaves a 50 ms timer running for as long as the process
 * lives, and the process never exits. Same contract (a bluebird promise, bluebird's TimeoutError,
 * which the command handlers turn into `425`), but the polling ends with the wait.
 */
function mendPassiveWait(): void {
  const fromFtpSrv = createRequire(createRequire(import.meta.url).resolve('ftp-srv'));
  const Bluebird = fromFtpSrv('bluebird') as BluebirdLike;
  const { ConnectorError } = fromFtpSrv('./src/errors') as { ConnectorError: new (message: string) => Error };
  const Passive = fromFtpSrv('./src/connector/passive') as { prototype: PassiveConnector };
  Passive.prototype.waitForConnection = function (this: PassiveConnector, { timeout = 5000, delay = 50 } = {}) {
    if (!this.dataServer) return Bluebird.reject(new ConnectorError('Passive server not setup'));
    const giveUpAt = Date.now() + timeout;
    return new Bluebird((resolve, reject) => {
      const check = () => {
        if (this.dataServer?.listening && this.dataSocket?.connected) return resolve(this.dataSocket);
        if (!this.dataServer || Date.now() >= giveUpAt) return reject(new Bluebird.TimeoutError('operation timed out'));
        setTimeout(check, delay);
      };
      check();
    });
  };
}
mendPassiveWait();

/**
 * ftp-srv's AUTH TLS answers 234 and only once that write has completed wraps the control socket in
 * TLS: a client that starts its handshake at once (ours does) can have its ClientHello read in that
 * window by the plain command parser, which answers in plain text, and the client's handshake fails
 * with "wrong version number" (seen under load in the kill -9 FTP suite). Here the plain socket
 * stops reading before the 234 goes out and the TLS socket takes over the same handle. pause()
 * alone does not stop the handle reading: a ClientHello that arrives before the TLS socket starts
 * sits in the plain socket's buffer, and Node's TLS socket takes it from there with read(), which
 * emits it as a plain 'data' event too: the command parser answered "502 Command not allowed:
 * \x16\x03..." to the client's login (seen in the FTP kill -9 suite). So the parser's listeners
 * are taken off the plain socket and fed only what the TLS socket decrypts. The rest of the
 * handler is ftp-srv's.
 */
function mendAuthTls(): void {
  const fromFtpSrv = createRequire(createRequire(import.meta.url).resolve('ftp-srv'));
  const registry = fromFtpSrv('./src/commands/registry') as Record<string, { handler: (this: AuthThis) => unknown }>;
  interface AuthThis {
    server: { options: { tls?: SecureContextOptions } };
    secure: boolean;
    commandSocket: Socket;
    reply(code: number): PromiseLike<unknown>;
  }
  const auth = registry.AUTH!;
  const original = auth.handler;
  auth.handler = function (this: AuthThis, ...args: unknown[]) {
    const arg = (args[0] as { command?: { arg?: string } } | undefined)?.command?.arg ?? '';
    if (arg.trim().toUpperCase() !== 'TLS' || !this.server.options.tls || this.secure)
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    const plain = this.commandSocket;
    plain.pause();
    return this.reply(234).then(() => {
      const secureSocket = new TLSSocket(plain, {
        isServer: true,
        secureContext: createSecureContext(this.server.options.tls),
      });
      const parsers = plain.listeners('data') as ((chunk: Buffer) => void)[];
      plain.removeAllListeners('data');
      secureSocket.on('data', (chunk: Buffer) => {
        for (const parse of parsers) parse.call(plain, chunk);
      });
      for (const event of ['timeout', 'end', 'close', 'drain', 'error']) {
        secureSocket.on(event, (...a: unknown[]) => plain.emit(event, ...a));
      }
      this.commandSocket = secureSocket;
      this.secure = true;
    });
  };
}
mendAuthTls();

/**
 * ftp-srv's RETR builds the promise of the transfer's end before it replies 150, and only awaits it
 * after the 150 went out: a client killed at that instant (the kill -9 suites do it) loses both
 * sockets, the 150 fails, and the transfer's promise (its data socket already gone: a TypeError)
 * rejects with nobody listening, an unhandled rejection that fails whatever test runs. The same
 * handler, with the data socket checked when the transfer starts and that promise always observed.
 */
function mendRetr(): void {
  const fromFtpSrv = createRequire(createRequire(import.meta.url).resolve('ftp-srv'));
  const Bluebird = fromFtpSrv('bluebird') as BluebirdLike & { try<T>(fn: () => T): Promise<Awaited<T>> };
  const registry = fromFtpSrv('./src/commands/registry') as Record<string, { handler: (this: RetrThis) => unknown }>;
  interface RetrThis {
    fs?: { read?: (path: string, opts: { start: number }) => unknown };
    restByteCount: number;
    commandSocket: Socket;
    connector: { waitForConnection(): PromiseLike<unknown>; socket: Socket | null; end(): void };
    reply(code: number, message?: string): PromiseLike<unknown>;
    emit(event: string, ...args: unknown[]): void;
  }
  registry.RETR!.handler = function (this: RetrThis, ...args: unknown[]) {
    const { command } = (args[0] ?? {}) as { command: { arg: string } };
    if (!this.fs) return this.reply(550, 'File system not instantiated');
    if (!this.fs.read) return this.reply(402, 'Not supported by file system');
    const read = this.fs.read.bind(this.fs);
    const filePath = command.arg;
    const start = this.restByteCount;
    this.restByteCount = 0;
    return Promise.resolve(this.connector.waitForConnection())
      .then(() => this.commandSocket.pause())
      .then(() => Bluebird.try(() => read(filePath, { start })))
      .then((fsResponse) => {
        const r = fsResponse as { stream?: Readable; clientPath?: string } & Readable;
        const stream: Readable = r.stream ?? r;
        const clientPath = r.clientPath ?? filePath;
        const socket = this.connector.socket;
        if (!socket) {
          stream.destroy();
          throw new Error('the data connection is gone');
        }
        const ended = new Promise<void>((resolve, reject) => {
          stream.on('data', (data: Buffer) => {
            stream.pause();
            socket.write(data, () => stream.resume());
          });
          stream.once('end', () => resolve());
          stream.once('error', (err) => {
            socket.destroy(err);
            reject(err);
          });
          socket.once('error', (err) => {
            stream.destroy(err);
            reject(err);
          });
          socket.once('close', () => reject(new Error('the data connection closed')));
        });
        ended.catch(() => undefined); // observed below when the 150 went out; else dropped
        return this.reply(150)
          .then(() => {
            stream.resume();
            socket.resume();
          })
          .then(() => ended)
          .then(() => this.emit('RETR', null, filePath))
          .then(() => this.reply(226, clientPath))
          .then(() => stream.destroy());
      })
      .catch((err: unknown) => {
        const e = err as Error;
        this.emit('RETR', e);
        return (
          e.name === 'TimeoutError' ? this.reply(425, 'No connection established') : this.reply(551, e.message)
        ).then(
          () => undefined,
          () => undefined,
        );
      })
      .then(() => {
        this.connector.end();
        this.commandSocket.resume();
      });
  };
}
mendRetr();

// ---- a hostile LIST ------------------------------------------------------------------------------

/** The `listing` knob of each running server (ftp-srv's command registry is one for the process). */
const listingKnobs = new WeakMap<object, { bytes?: number; nameBytes?: number }>();

/**
 * LIST on a server started with `listing`: made-up lines, as many as the knob says or endless, on
 * the data connection as fast as the client takes them (the socket's backpressure respected).
 * Servers without the knob keep ftp-srv's own LIST.
 */
function hostileList(): void {
  const fromFtpSrv = createRequire(createRequire(import.meta.url).resolve('ftp-srv'));
  const registry = fromFtpSrv('./src/commands/registry') as Record<string, { handler: (this: ListThis) => unknown }>;
  interface ListThis {
    server: object;
    commandSocket: Socket;
    connector: { waitForConnection(): PromiseLike<unknown>; socket: Socket; end(): void };
    reply(code: number, message?: string): PromiseLike<unknown>;
  }
  const list = registry.LIST!;
  const original = list.handler;
  list.handler = function (this: ListThis, ...args: unknown[]) {
    const knob = listingKnobs.get(this.server);
    if (!knob) return (original as (...a: unknown[]) => unknown).apply(this, args);
    let n = 0;
    const line = () => {
      const name = `f${String(n++).padStart(9, '0')}`;
      const long = `${name}${'x'.repeat(Math.max(0, (knob.nameBytes ?? 40) - name.length - 4))}.xml`;
      return `-rw-r--r-- 1 ftp ftp 1 Jan 01 00:00 ${long}\r\n`;
    };
    return Promise.resolve(this.connector.waitForConnection())
      .then(() => {
        this.commandSocket.pause();
        return this.reply(150);
      })
      .then(
        () =>
          new Promise<void>((resolve) => {
            const socket = this.connector.socket;
            let sent = 0;
            socket.on('error', () => undefined);
            socket.once('close', () => resolve());
            const pump = () => {
              while (!socket.destroyed && (knob.bytes === undefined || sent < knob.bytes)) {
                let chunk = '';
                while (chunk.length < 64 * 1024) chunk += line();
                sent += chunk.length;
                if (!socket.write(chunk)) return void socket.once('drain', pump);
              }
              if (!socket.destroyed) socket.end(resolve);
            };
            pump();
          }),
      )
      .then(() => this.reply(226))
      .catch(() => this.reply(426))
      .then(() => {
        this.connector.end();
        this.commandSocket.resume();
      });
  };
}
hostileList();

const silentLog = {
  child: () => silentLog,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  fatal: () => undefined,
};

export async function startFtpServer(opts: FtpServerOptions = {}): Promise<TestFtpServer> {
  const user = opts.user ?? 'azs017';
  const password = opts.password ?? 'station-secret';
  const security = opts.security ?? 'none';
  if (security !== 'none' && !opts.tls) throw new Error(`an FTP server with ${security} TLS needs opts.tls`);
  const ownRoot = opts.root === undefined;
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), 'sprelay-ftp-')));
  const base = 20000 + Math.floor(Math.random() * 9800);
  const [pasvMin, pasvMax] = opts.pasvRange ?? [base, base + 199];
  const cp1251 = opts.encoding === 'cp1251';
  const host = opts.host ?? '127.0.0.1';

  let srv: FtpSrv | null = null;
  let port = opts.port ?? 0;
  let connections = 0;
  const fsOptions = {
    cp1251,
    stallReadsAfter: opts.stallReadsAfter,
    writeError: opts.writeError,
    vanishOnRead: opts.vanishOnRead === true,
  };
  const customFs =
    cp1251 || opts.stallReadsAfter !== undefined || opts.writeError !== undefined || fsOptions.vanishOnRead;

  const start = async () => {
    if (srv) return;
    const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
    const server = new FtpSrv({
      url: `${security === 'implicit' ? 'ftps' : 'ftp'}://${host}:${port}`,
      pasv_min: pasvMin,
      pasv_max: pasvMax,
      // A function, because ftp-srv replaces a fixed pasv_url by the client's own address when
      // the client is on 127.0.0.1, and the tests want to name another host.
      pasv_url: (clientIp: string) => opts.pasvHost ?? clientIp,
      tls: security === 'none' ? false : { cert: opts.tls!.certPem, key: opts.tls!.keyPem },
      blacklist: [...(opts.disableEpsv ? ['EPSV'] : []), ...(cp1251 ? ['OPTS'] : [])],
      ...(opts.listTimes ? { file_format: listLine(opts.listTimes) } : {}),
      log: silentLog,
    } as unknown as ConstructorParameters<typeof FtpSrv>[0]);
    for (const s of SIGNALS) {
      for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.removeListener(s, l);
    }
    if (opts.listing) listingKnobs.set(server, opts.listing);
    // ftp-srv answers slowly without this (Nagle + delayed ACK on every small reply).
    (server as unknown as EventEmitter).on('connect', ({ connection }: { connection: FtpConnection }) => {
      const number = ++connections;
      const onCommand = opts.onCommand;
      if (onCommand) {
        const commands = (connection as unknown as { commands: { handle(c: unknown): unknown; parse(m: string): Cmd } })
          .commands;
        const handle = commands.handle.bind(commands);
        commands.handle = (command: unknown) => {
          const c = typeof command === 'string' ? commands.parse(command) : (command as Cmd);
          onCommand(c.directive, c.directive === 'PASS' ? '********' : c.arg, number);
          return handle(c);
        };
      }
      const socket = (connection as unknown as { commandSocket: import('node:net').Socket }).commandSocket;
      socket.setNoDelay(true);
      if (cp1251) connection.encoding = 'latin1';
    });
    server.on('login', ({ username, password: given, connection }, resolve, reject) => {
      if (username !== user || given !== password) return reject(new Error('Login incorrect'));
      resolve({ root, ...(customFs ? { fs: new TestFileSystem(connection, { root, cwd: '/' }, fsOptions) } : {}) });
    });
    // Errors of single client connections (a client that hung up mid-transfer) are the tests' business.
    server.on('client-error', () => undefined);
    await server.listen();
    const inner = (server as unknown as { server: import('node:net').Server }).server;
    port = (inner.address() as AddressInfo).port;
    srv = server;
  };

  const stop = async () => {
    const server = srv;
    srv = null;
    if (!server) return;
    await Promise.resolve(server.close()).catch(() => undefined);
  };

  await start();
  return {
    host,
    get port() {
      return port;
    },
    root,
    user,
    password,
    connections: () => connections,
    stop,
    start,
    async close() {
      await stop();
      if (ownRoot) await rm(root, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

// ---- an old server speaking windows-1251, a server that stalls -------------------------------

const decoder1251 = new TextDecoder('windows-1251');
const encoder1251 = (() => {
  const table = new Map<string, number>();
  for (let b = 0x80; b <= 0xff; b++) table.set(decoder1251.decode(Uint8Array.of(b)), b);
  return (text: string): Buffer =>
    Buffer.from(
      Array.from(text, (ch) => {
        const code = ch.codePointAt(0)!;
        if (code < 0x80) return code;
        const b = table.get(ch);
        if (b === undefined) throw new Error(`${JSON.stringify(ch)} has no windows-1251 byte`);
        return b;
      }),
    );
})();

/** Wire text (latin1: one char per byte) in windows-1251 -> the real name, and back. */
const fromWire = (s: string) => decoder1251.decode(Buffer.from(s, 'latin1'));
const toWire = (s: string) => encoder1251(s).toString('latin1');

type Resolver = { _resolvePath(path?: string): { clientPath: string; fsPath: string } };
const baseResolve = (FileSystem.prototype as unknown as Resolver)._resolvePath;

/**
 * ftp-srv's file system with two test knobs. `cp1251`: names on the wire in windows-1251 (the
 * connection's encoding is latin1, bytes in and out; every path the client sends is decoded from
 * windows-1251, every name the server lists or reports encoded into it; files on disk keep their
 * real names). `stallReadsAfter`: downloads send that many bytes and then hang. `writeError`:
 * uploads fail with that errno once all bytes are in (ftp-srv answers 550 with its message).
 */
class TestFileSystem extends FileSystem {
  constructor(
    connection: FtpConnection,
    where: { root: string; cwd: string },
    private readonly knobs: {
      cp1251: boolean;
      stallReadsAfter: number | undefined;
      writeError: 'ENOSPC' | 'EACCES' | undefined;
      vanishOnRead: boolean;
    },
  ) {
    super(connection, where);
  }

  _resolvePath(path = '.') {
    return baseResolve.call(this, this.knobs.cp1251 ? fromWire(path) : path);
  }

  override currentDirectory(): string {
    return this.knobs.cp1251 ? toWire(super.currentDirectory()) : super.currentDirectory();
  }

  override async list(path = '.'): Promise<Array<{ name: string }>> {
    const stats = (await super.list(path)) as Array<{ name: string }>;
    if (this.knobs.cp1251) for (const st of stats) st.name = toWire(st.name);
    return stats;
  }

  override write(fileName: string, opts?: { append?: boolean; start?: number }) {
    const errno = this.knobs.writeError;
    if (errno === undefined) return super.write(fileName, opts) as unknown;
    const message = errno === 'ENOSPC' ? 'no space left on device' : 'permission denied';
    const stream = new Writable({
      write: (_chunk, _enc, cb) => cb(),
      final: (cb) => cb(Object.assign(new Error(`${errno}: ${message}, write`), { code: errno })),
    });
    return { stream, clientPath: fileName };
  }

  override async read(fileName: string, opts?: { start?: number }): Promise<{ stream: Readable; clientPath: string }> {
    if (this.knobs.vanishOnRead) await rm(this._resolvePath(fileName).fsPath, { force: true });
    const res = (await super.read(fileName, opts)) as { stream: Readable; clientPath: string };
    const limit = this.knobs.stallReadsAfter;
    if (limit === undefined) return res;
    let sent = 0;
    const stalled = new PassThrough();
    res.stream.on('data', (chunk: Buffer) => {
      const room = limit - sent;
      if (room > 0) stalled.write(chunk.subarray(0, room));
      sent += chunk.length;
    });
    stalled.on('close', () => res.stream.destroy());
    return { stream: stalled, clientPath: res.clientPath };
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number) => String(n).padStart(2, '0');

/** A LIST line maker for ftp-srv's `file_format` (FtpServerOptions.listTimes). */
function listLine(
  how: ListTimes,
): (st: { name: string; size: number; mtime: Date | number; isDirectory(): boolean }) => string {
  return (st) => {
    const mtime = new Date(st.mtime).getTime();
    if (how === 'dos') {
      const t = new Date(mtime);
      const h = t.getUTCHours();
      const date = `${pad2(t.getUTCMonth() + 1)}-${pad2(t.getUTCDate())}-${pad2(t.getUTCFullYear() % 100)}`;
      const time = `${pad2(h % 12 || 12)}:${pad2(t.getUTCMinutes())}${h < 12 ? 'AM' : 'PM'}`;
      return `${date}  ${time}  ${st.isDirectory() ? '     <DIR>' : String(st.size).padStart(10)} ${st.name}`;
    }
    // as `ls -l`: the time of day for the last six months, else the year
    const ahead = how.before && Date.now() - mtime > how.before.ms ? how.before.aheadMinutes : how.aheadMinutes;
    const t = new Date(mtime + ahead * 60_000);
    const recent = Date.now() - mtime < 182 * 24 * 3_600_000;
    const when = recent ? `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}` : ` ${t.getUTCFullYear()}`;
    const date = `${MONTHS[t.getUTCMonth()]} ${pad2(t.getUTCDate())} ${when}`;
    return `${st.isDirectory() ? 'drwxr-xr-x' : '-rw-r--r--'} 1 1 1 ${String(st.size).padStart(12)} ${date} ${st.name}`;
  };
}
