// An in-process SFTP server for the tests: ssh2's `Server` over a temp directory, the directory
// standing in for the remote file system ("/" is the temp dir; nothing outside it is reachable).
// Password and public-key auth, a fresh ed25519 host key per server, and knobs for the fault
// cases (stalls, refusals, a full disk, an outage) and for the OpenSSH extensions that ssh2's
// server does not offer by itself.
import { createHash } from 'node:crypto';
import { promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ParsedKey, SFTPWrapper } from 'ssh2';
import type { SftpProfile } from '../../transports/types.js';

const { Server, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

export type SftpOp =
  'open' | 'read' | 'write' | 'stat' | 'opendir' | 'remove' | 'rename' | 'mkdir' | 'rmdir' | 'setstat' | 'fsync';

export interface SftpServerOptions {
  user?: string;
  /** Accepted password (default `secret pw`). */
  password?: string;
  /** OpenSSH public key line accepted for public-key auth. */
  authorizedKey?: string;
  /**
   * Offer `posix-rename@openssh.com` and `fsync@openssh.com` as OpenSSH does (ssh2's server offers
   * no extension at all; this patches its VERSION reply).
   */
  openSshExtensions?: boolean;
  /**
   * Offer `limits@openssh.com` too and answer it with these sizes, as OpenSSH does (255 KB READs and
   * WRITEs); without it ssh2's client keeps to ~31 KB per request on a server that is not OpenSSH.
   */
  limits?: { maxReadLen: number; maxWriteLen: number };
  /** Answer at most this many bytes per READ, whatever was asked (older OpenSSH: 64 KB). */
  readAnswerMax?: number;
  /** Stop answering READ once this many bytes were served on a connection (the session stays up). */
  stallReadsAfterBytes?: number;
  /** Stop answering WRITE once this many bytes were written on a connection. */
  stallWritesAfterBytes?: number;
  /** Answer WRITE with FAILURE "No space left on device" once this many bytes were written. */
  noSpaceAfterBytes?: number;
  /** Return true to refuse an operation with PERMISSION_DENIED (the tests run as root: chmod proves nothing). */
  deny?: (op: SftpOp, remotePath: string) => boolean;
  /** Runs before each OPEN is served (e.g. another client takes the file away at that instant). */
  beforeOpen?: (remotePath: string, writing: boolean) => void;
  /**
   * A hostile server: READDIR never says EOF. Every READDIR answers `batch` (default 500) entries
   * never seen before (regular files of 1 byte, `nameBytes` long names, default 40), for as long as
   * the client keeps asking.
   */
  endlessReaddir?: { batch?: number; nameBytes?: number };
  /**
   * A hostile server: STAT/LSTAT of a path this returns true for says "a regular file of 1 byte is
   * there", whether or not anything is (every free-name candidate of a move is "taken").
   */
  claimExists?: (remotePath: string) => boolean;
  /** Every STAT/LSTAT is answered after this many ms (a slow server; a loop of them takes a while). */
  statDelayMs?: number;
  /** Called as each STAT/LSTAT arrives (tests await a storm of them). */
  onStat?: (remotePath: string, count: number) => void;
  /** A hostile server: every READ is answered with `bytes` bytes (default 1), `everyMs` after it came. */
  dripReads?: { bytes?: number; everyMs: number };
}

export interface SftpServerStats {
  fsyncs: number;
  posixRenames: number;
  renames: number;
  /** Modes clients asked for with SETSTAT/FSETSTAT (ssh2's WriteStream asks for 0666). */
  setModes: number[];
  /** STAT and LSTAT requests served. */
  statCalls: number;
  /** READDIR requests served. */
  readdirCalls: number;
  /** Every SFTP request received, by type (OPEN, READ, WRITE, FSTAT, STAT, EXTENDED, ...). */
  requests: Record<string, number>;
  /** The most requests of a type (`*`: of any type) that were waiting for their answer at the same time. */
  maxInFlight: Record<string, number>;
  /** The least room the client's receive window left when a READ was answered (bytes; null before any). */
  minReadWindow: number | null;
}

export interface SftpTestServer {
  port: number;
  /** The temp dir behind "/". */
  root: string;
  user: string;
  password: string;
  /** `SHA256:<base64, no padding>` as OpenSSH prints it. */
  hostKeyFingerprint: string;
  stats: SftpServerStats;
  /** Connections currently open. */
  connections(): number;
  /** Resolves once no connection is open (or rejects after `ms`). */
  waitForNoConnections(ms: number): Promise<void>;
  /** Drop every connection without a goodbye and stop listening: the server is "down". */
  suspend(): Promise<void>;
  /** Listen again on the same port. */
  resume(): Promise<void>;
  /** Stops the server and removes the temp dir. */
  close(): Promise<void>;
}

interface FileEntryHandle {
  kind: 'file';
  fd: FileHandle;
  path: string;
}
interface DirEntryHandle {
  kind: 'dir';
  path: string;
  done: boolean;
}

const OPENSSH_EXTENSIONS = ['posix-rename@openssh.com', 'fsync@openssh.com'];
const LIMITS = 'limits@openssh.com';
/** ssh2's server VERSION reply: length 5, type 2 (VERSION), version 3, no extension. */
const PLAIN_VERSION = Buffer.from([0, 0, 0, 5, 2, 0, 0, 0, 3]);

/**
 * An ed25519 key pair in OpenSSH format. ssh2's keygen strips leading zero bytes off the public
 * key, so about one key in 256 comes out malformed (its own parser refuses it): draw again.
 */
/** A profile that logs in to `server` with its password and pins its host key (`o` overrides). */
export function sftpProfileOf(server: SftpTestServer, o: Partial<SftpProfile> = {}): SftpProfile {
  return {
    type: 'sftp',
    host: '127.0.0.1',
    port: server.port,
    user: server.user,
    password: server.password,
    hostKey: server.hostKeyFingerprint,
    ...o,
  };
}

export function sshKeyPair(passphrase?: string): { private: string; public: string } {
  for (;;) {
    const pair = passphrase
      ? utils.generateKeyPairSync('ed25519', { passphrase, cipher: 'aes256-ctr', rounds: 4 })
      : utils.generateKeyPairSync('ed25519');
    if (
      !(utils.parseKey(pair.private, passphrase) instanceof Error) &&
      !(utils.parseKey(pair.public) instanceof Error)
    ) {
      return pair;
    }
  }
}

export function sshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

export async function startSftpServer(options: SftpServerOptions = {}): Promise<SftpTestServer> {
  const user = options.user ?? 'azs017';
  const password = options.password ?? 'secret pw';
  const hostKey = sshKeyPair();
  const parsedHost = utils.parseKey(hostKey.private);
  if (parsedHost instanceof Error) throw parsedHost;
  const hostKeyFingerprint = sshFingerprint(parsedHost.getPublicSSH());
  const parsedAllowed = options.authorizedKey ? utils.parseKey(options.authorizedKey) : undefined;
  if (parsedAllowed instanceof Error) throw parsedAllowed;
  const allowedKey: ParsedKey | undefined = parsedAllowed;

  const root = await fsp.realpath(await fsp.mkdtemp(path.join(tmpdir(), 'sprelay-sftp-')));
  const stats: SftpServerStats = {
    fsyncs: 0,
    posixRenames: 0,
    renames: 0,
    setModes: [],
    statCalls: 0,
    readdirCalls: 0,
    requests: {},
    maxInFlight: {},
    minReadWindow: null,
  };
  const live = new Set<Connection>();
  const sockets = new Set<Socket>();

  const server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    live.add(client);
    client.on('error', () => undefined); // a client that vanishes mid-session is what the tests do
    client.on('close', () => live.delete(client));
    client.on('authentication', (ctx) => authenticate(ctx));
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('sftp', (acceptSftp) => serveSftp(acceptSftp()));
      });
    });
  });
  // ssh2's Server wraps a net.Server; the raw sockets are what an outage cuts
  const net = (server as unknown as { _srv: NetServer })._srv;
  net.on('connection', (socket: Socket) => {
    socket.setNoDelay(true); // else Nagle and delayed ACKs add ~90 ms to every round trip
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  function authenticate(ctx: AuthContext): void {
    if (ctx.username !== user) return ctx.reject(['password', 'publickey']);
    if (ctx.method === 'password' && ctx.password === password) return ctx.accept();
    if (ctx.method === 'publickey' && allowedKey) {
      const sameKey = ctx.key.algo === allowedKey.type && ctx.key.data.equals(allowedKey.getPublicSSH());
      if (sameKey) {
        if (!ctx.signature || !ctx.blob) return ctx.accept(); // the client asks whether this key would do
        if (allowedKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) return ctx.accept();
      }
    }
    return ctx.reject(['password', 'publickey']);
  }

  function serveSftp(sftp: SFTPWrapper): void {
    // counts every request by type as ssh2 emits it (requests are emitted in upper case, with the
    // request id first), and how many of a type were waiting for their answer at once
    const waiting = new Map<number, string>();
    const emit = sftp.emit.bind(sftp);
    sftp.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (typeof event === 'string' && /^[A-Z]+$/.test(event)) {
        stats.requests[event] = (stats.requests[event] ?? 0) + 1;
        waiting.set(args[0] as number, event);
        let now = 0;
        for (const type of waiting.values()) if (type === event) now++;
        stats.maxInFlight[event] = Math.max(stats.maxInFlight[event] ?? 0, now);
        stats.maxInFlight['*'] = Math.max(stats.maxInFlight['*'] ?? 0, waiting.size);
      }
      return emit(event, ...args);
    };
    for (const answer of ['status', 'handle', 'data', 'name', 'attrs'] as const) {
      const send = (sftp[answer] as (reqid: number, ...rest: unknown[]) => boolean).bind(sftp);
      (sftp as unknown as Record<string, unknown>)[answer] = (reqid: number, ...rest: unknown[]) => {
        waiting.delete(reqid);
        return send(reqid, ...rest);
      };
    }
    const handles = new Map<number, FileEntryHandle | DirEntryHandle>();
    let nextHandle = 1;
    let bytesRead = 0;
    let bytesWritten = 0;
    const internal = sftp as unknown as {
      outgoing: { id: number; window: number };
      _protocol: { channelData(id: number, data: Buffer): void };
    };
    if (options.openSshExtensions || options.limits) {
      // ssh2 answers INIT with a fixed VERSION packet; swap it for one that lists the extensions.
      const proto = internal._protocol;
      const send = proto.channelData.bind(proto);
      const names = [...(options.openSshExtensions ? OPENSSH_EXTENSIONS : []), ...(options.limits ? [LIMITS] : [])];
      proto.channelData = (id, data) =>
        send(id, id === internal.outgoing.id && data.equals(PLAIN_VERSION) ? versionWithExtensions(names) : data);
    }
    /** limits@openssh.com's EXTENDED_REPLY: max packet, READ and WRITE lengths, open handles. */
    const sendLimits = (reqid: number, limits: { maxReadLen: number; maxWriteLen: number }) => {
      const reply = Buffer.alloc(4 + 1 + 4 + 4 * 8);
      reply.writeUInt32BE(reply.length - 4, 0);
      reply[4] = 201; // SSH_FXP_EXTENDED_REPLY
      reply.writeUInt32BE(reqid, 5);
      reply.writeBigUInt64BE(256n * 1024n, 9);
      reply.writeBigUInt64BE(BigInt(limits.maxReadLen), 17);
      reply.writeBigUInt64BE(BigInt(limits.maxWriteLen), 25);
      reply.writeBigUInt64BE(0n, 33);
      waiting.delete(reqid);
      internal._protocol.channelData(internal.outgoing.id, reply);
    };

    const newHandle = (h: FileEntryHandle | DirEntryHandle): Buffer => {
      const id = nextHandle++;
      handles.set(id, h);
      const buf = Buffer.alloc(4);
      buf.writeUInt32BE(id);
      return buf;
    };
    const handleOf = (buf: Buffer) => (buf.length === 4 ? handles.get(buf.readUInt32BE()) : undefined);
    const fail = (reqid: number, err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      if (code === 'EACCES' || code === 'EPERM') return sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED);
      // OpenSSH says only "Failure" for everything else (EEXIST, ENOSPC, EIO, ...)
      return sftp.status(reqid, STATUS_CODE.FAILURE, 'Failure');
    };
    const denied = (reqid: number, op: SftpOp, p: string) => {
      if (!options.deny?.(op, p)) return false;
      sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'Permission denied');
      return true;
    };
    const run = (reqid: number, fn: () => Promise<void>) => {
      fn().catch((err: unknown) => fail(reqid, err));
    };
    let closed = false;
    let endlessNext = 0;
    const endlessBatch = (o: { batch?: number; nameBytes?: number }) => {
      const entries = [];
      for (let i = 0; i < (o.batch ?? 500); i++) {
        const n = `f${String(endlessNext++).padStart(9, '0')}`;
        const filename = `${n}${'x'.repeat(Math.max(0, (o.nameBytes ?? 40) - n.length - 4))}.xml`;
        entries.push({
          filename,
          longname: `-rw-r--r-- 1 sprelay sprelay 1 Jan  1 00:00 ${filename}`,
          attrs: ONE_BYTE_FILE,
        });
      }
      return entries;
    };

    sftp.on('OPEN', (reqid, filename, flags, attrs) =>
      run(reqid, async () => {
        const p = virtual(filename);
        const writing = (flags & utils.sftp.OPEN_MODE.WRITE) !== 0;
        if (denied(reqid, writing ? 'write' : 'open', p)) return;
        options.beforeOpen?.(p, writing);
        const mode = utils.sftp.flagsToString(flags);
        if (!mode) return sftp.status(reqid, STATUS_CODE.BAD_MESSAGE);
        const fd = await fsp.open(real(p), mode, typeof attrs?.mode === 'number' ? attrs.mode : 0o644);
        const st = await fd.stat();
        if (st.isDirectory()) {
          await fd.close();
          return sftp.status(reqid, STATUS_CODE.FAILURE, 'Is a directory');
        }
        sftp.handle(reqid, newHandle({ kind: 'file', fd, path: p }));
      }),
    );

    sftp.on('READ', (reqid, handle, offset, length) =>
      run(reqid, async () => {
        const h = handleOf(handle);
        if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
        if (options.stallReadsAfterBytes !== undefined && bytesRead >= options.stallReadsAfterBytes) return;
        const drip = options.dripReads;
        if (drip) {
          await new Promise((r) => setTimeout(r, drip.everyMs));
          if (!handles.has(handle.readUInt32BE())) return; // the client went meanwhile
        }
        const want = Math.min(drip ? Math.min(length, drip.bytes ?? 1) : length, options.readAnswerMax ?? Infinity);
        const buf = Buffer.alloc(want);
        // counted as the request is taken, not once the disk answered: a client with many READs in
        // flight meets the stall where a client with one at a time does
        bytesRead += want;
        const { bytesRead: n } = await h.fd.read(buf, 0, want, offset);
        bytesRead -= want - n;
        if (n === 0) return sftp.status(reqid, STATUS_CODE.EOF);
        stats.minReadWindow = Math.min(stats.minReadWindow ?? Infinity, internal.outgoing.window);
        sftp.data(reqid, buf.subarray(0, n));
      }),
    );

    sftp.on('WRITE', (reqid, handle, offset, data) =>
      run(reqid, async () => {
        const h = handleOf(handle);
        if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
        if (options.stallWritesAfterBytes !== undefined && bytesWritten >= options.stallWritesAfterBytes) return;
        if (options.noSpaceAfterBytes !== undefined && bytesWritten + data.length > options.noSpaceAfterBytes) {
          return sftp.status(reqid, STATUS_CODE.FAILURE, 'No space left on device');
        }
        bytesWritten += data.length; // as the request is taken (see READ)
        await h.fd.write(data, 0, data.length, offset);
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('FSTAT', (reqid, handle) =>
      run(reqid, async () => {
        const h = handleOf(handle);
        if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
        sftp.attrs(reqid, attrsOf(await h.fd.stat()));
      }),
    );

    const onSetstat = (reqid: number, p: string, mode: number | undefined) => {
      if (denied(reqid, 'setstat', p)) return;
      if (typeof mode === 'number') stats.setModes.push(mode & 0o7777);
      // modes are recorded, not applied: the tests look at what a client asks for
      sftp.status(reqid, STATUS_CODE.OK);
    };
    sftp.on('FSETSTAT', (reqid, handle, attrs) => {
      const h = handleOf(handle);
      if (!h) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
      onSetstat(reqid, h.path, attrs.mode);
    });
    sftp.on('SETSTAT', (reqid, p, attrs) => onSetstat(reqid, virtual(p), attrs.mode));

    for (const [event, follow] of [
      ['STAT', true],
      ['LSTAT', false],
    ] as const) {
      sftp.on(event, (reqid: number, p: string) =>
        run(reqid, async () => {
          const v = virtual(p);
          stats.statCalls++;
          options.onStat?.(v, stats.statCalls);
          if (options.statDelayMs) {
            await new Promise((r) => setTimeout(r, options.statDelayMs));
            if (closed) return; // the client went meanwhile
          }
          if (denied(reqid, 'stat', v)) return;
          if (options.claimExists?.(v)) return sftp.attrs(reqid, ONE_BYTE_FILE);
          sftp.attrs(reqid, attrsOf(await (follow ? fsp.stat(real(v)) : fsp.lstat(real(v)))));
        }),
      );
    }

    sftp.on('OPENDIR', (reqid, p) =>
      run(reqid, async () => {
        const v = virtual(p);
        if (denied(reqid, 'opendir', v)) return;
        const st = await fsp.stat(real(v));
        if (!st.isDirectory()) return sftp.status(reqid, STATUS_CODE.FAILURE, 'Not a directory');
        sftp.handle(reqid, newHandle({ kind: 'dir', path: v, done: false }));
      }),
    );

    sftp.on('READDIR', (reqid, handle) =>
      run(reqid, async () => {
        const h = handleOf(handle);
        if (h?.kind !== 'dir') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
        stats.readdirCalls++;
        if (options.endlessReaddir) return sftp.name(reqid, endlessBatch(options.endlessReaddir));
        if (h.done) return sftp.status(reqid, STATUS_CODE.EOF);
        h.done = true;
        const names = ['.', '..', ...(await fsp.readdir(real(h.path)))];
        const entries = [];
        for (const filename of names) {
          const st = await fsp.lstat(real(path.posix.join(h.path, filename))).catch(() => null);
          if (!st) continue;
          entries.push({ filename, longname: longname(filename, st), attrs: attrsOf(st) });
        }
        sftp.name(reqid, entries);
      }),
    );

    sftp.on('CLOSE', (reqid, handle) =>
      run(reqid, async () => {
        const h = handleOf(handle);
        if (!h) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
        handles.delete(handle.readUInt32BE());
        if (h.kind === 'file') await h.fd.close();
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('REMOVE', (reqid, p) =>
      run(reqid, async () => {
        const v = virtual(p);
        if (denied(reqid, 'remove', v)) return;
        await fsp.unlink(real(v));
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('RMDIR', (reqid, p) =>
      run(reqid, async () => {
        const v = virtual(p);
        if (denied(reqid, 'rmdir', v)) return;
        await fsp.rmdir(real(v));
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('MKDIR', (reqid, p) =>
      run(reqid, async () => {
        const v = virtual(p);
        if (denied(reqid, 'mkdir', v)) return;
        await fsp.mkdir(real(v)); // EEXIST -> FAILURE, as OpenSSH answers
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('REALPATH', (reqid, p) => {
      const v = virtual(p);
      sftp.name(reqid, [{ filename: v, longname: v, attrs: {} as never }]);
    });

    sftp.on('RENAME', (reqid, from, to) =>
      run(reqid, async () => {
        const [vf, vt] = [virtual(from), virtual(to)];
        if (denied(reqid, 'rename', vf) || denied(reqid, 'rename', vt)) return;
        // SFTP v3 RENAME never replaces: OpenSSH links the new name, then unlinks the old
        await fsp.link(real(vf), real(vt));
        await fsp.unlink(real(vf));
        stats.renames++;
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('EXTENDED', (reqid, name, data) =>
      run(reqid, async () => {
        if (name === LIMITS && options.limits) return sendLimits(reqid, options.limits);
        if (!options.openSshExtensions || !OPENSSH_EXTENSIONS.includes(name)) {
          return sftp.status(reqid, STATUS_CODE.OP_UNSUPPORTED);
        }
        const [first, second] = sshStrings(data);
        if (name === 'posix-rename@openssh.com') {
          const [vf, vt] = [virtual(first!.toString('utf8')), virtual(second!.toString('utf8'))];
          if (denied(reqid, 'rename', vf) || denied(reqid, 'rename', vt)) return;
          await fsp.rename(real(vf), real(vt));
          stats.posixRenames++;
        } else {
          const h = handleOf(first!);
          if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
          if (denied(reqid, 'fsync', h.path)) return;
          await h.fd.sync();
          stats.fsyncs++;
        }
        sftp.status(reqid, STATUS_CODE.OK);
      }),
    );

    sftp.on('close', () => {
      closed = true;
      for (const h of handles.values()) if (h.kind === 'file') void h.fd.close().catch(() => undefined);
      handles.clear();
    });
  }

  /** The client's path as a normalized absolute path under "/" (".." stops at "/"). */
  function virtual(p: string): string {
    return path.posix.normalize(`/${p}`).replace(/(.)\/$/, '$1');
  }
  function real(v: string): string {
    return path.join(root, ...v.split('/').filter(Boolean));
  }

  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen(port, '127.0.0.1', () => {
        net.off('error', reject);
        port = (net.address() as { port: number }).port;
        resolve();
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!net.listening) return resolve();
      net.close(() => resolve());
    });
  await listen();

  return {
    get port() {
      return port;
    },
    root,
    user,
    password,
    hostKeyFingerprint,
    stats,
    connections: () => live.size,
    async waitForNoConnections(ms) {
      const until = Date.now() + ms;
      while (live.size > 0) {
        if (Date.now() > until) throw new Error(`${live.size} connection(s) still open after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async suspend() {
      const closed = stopListening();
      for (const s of sockets) s.destroy();
      await closed;
    },
    resume: listen,
    async close() {
      const closed = stopListening();
      for (const s of sockets) s.destroy();
      await closed;
      await fsp.rm(root, { recursive: true, force: true });
    },
  };
}

/** What a hostile server says about a name it claims: a regular file of 1 byte. */
const ONE_BYTE_FILE = { mode: 0o100644, uid: 0, gid: 0, size: 1, atime: 0, mtime: 0 };

function versionWithExtensions(names: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from([2, 0, 0, 0, 3])];
  for (const name of names) parts.push(sshString(name), sshString('1'));
  const body = Buffer.concat(parts);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function sshString(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function sshStrings(data: Buffer | undefined): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (data && at + 4 <= data.length) {
    const len = data.readUInt32BE(at);
    out.push(data.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

function attrsOf(st: Stats) {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    atime: Math.floor(st.atimeMs / 1000),
    mtime: Math.floor(st.mtimeMs / 1000),
  };
}

function longname(name: string, st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '-';
  const bits = 'rwxrwxrwx'
    .split('')
    .map((c, i) => (st.mode & (1 << (8 - i)) ? c : '-'))
    .join('');
  return `${type}${bits} 1 sprelay sprelay ${st.size} Jan  1 00:00 ${name}`;
}
