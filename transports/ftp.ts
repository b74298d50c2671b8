// The `ftp` transport: FTP and FTPS (explicit AUTH TLS or implicit TLS) through basic-ftp. Owns
// what FTP makes hard to get right: one connection per route per cycle with every command on it
// serialized; an outer deadline on every call (basic-ftp's own timeout only runs while a command
// is active and its promises can stay unsettled, #123/#167/#209); passive data connections only to
// the host the control connection goes to; names in windows-1251 for old servers; and `.part`,
// SIZE, rename for every upload so that no reader sees a partial file under its final name.
import { createHash, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import path from 'node:path';
import { Readable, Transform, Writable, pipeline } from 'node:stream';
import { finished } from 'node:stream/promises';
import { rootCertificates, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { Client, FTPError, enterPassiveModeIPv6, type FTPContext, type FTPResponse, type FileInfo } from 'basic-ftp';
// Not re-exported by basic-ftp's index (the package has no exports map): the function basic-ftp
// itself uses to open every passive data connection, TLS session reuse included. We only replace
// the decision where it connects to (see `passive`).
import { connectForPassiveTransfer } from 'basic-ftp/dist/transfer.js';
import { IdleWatch, formatMs, withDeadline } from './deadline.js';
import {
  TRANSPORT_ERROR_CODES,
  TransportError,
  errnoCode,
  fromSystemError,
  isAbortError,
  LOGIN_REFUSED,
  missingInFolder,
  tlsWords,
  type TransportErrorCode,
} from './errors.js';
import type {
  Endpoint,
  FtpProfile,
  OutgoingPackage,
  ProbeStep,
  PutResult,
  RemoteEntry,
  Sink,
  Source,
  Transport,
} from './types.js';

const PART = '.part';
const HIDDEN_PREFIX = '.sprelay-';

export function createFtpTransport(profile: FtpProfile): Transport {
  const wire = wireFor(profile.encoding);

  /** Opens a session for an endpoint: connected, logged in, its directory there (created if missing). */
  async function openSession(ep: Endpoint, signal: AbortSignal): Promise<{ session: FtpSession; dir: string }> {
    const session = new FtpSession(profile, wire, ep.timeoutMs);
    try {
      const release = await session.lane.acquire(signal, `open ${ep.remote || '.'}`);
      try {
        await session.ready(signal);
        const dir = session.resolve(ep.remote);
        await session.enterDir(dir, true, signal);
        return { session, dir };
      } finally {
        release();
      }
    } catch (err) {
      session.close();
      throw session.classify(err, `open ${ep.remote || '.'}`, { missing: 'unavailable' });
    }
  }

  async function openSink(ep: Endpoint, signal: AbortSignal): Promise<Sink> {
    const { session, dir } = await openSession(ep, signal);
    const sink = {
      put: (pkg: OutgoingPackage, sig: AbortSignal) => put(session, ep, dir, pkg, sig),
      close: () => {
        session.close();
        return Promise.resolve();
      },
    } satisfies Sink;
    return sink;
  }

  async function put(
    session: FtpSession,
    ep: Endpoint,
    dir: string,
    pkg: OutgoingPackage,
    signal: AbortSignal,
  ): Promise<PutResult> {
    const name = plainName(pkg.name, 'package name', true);
    const what = `put ${name}`;
    const final = inDir(dir, name);
    const part = final + PART;
    const remoteRef = final;
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    // a name the server's charset cannot write is refused before anything is sent
    wire.out(name, what);
    const release = await session.lane.acquire(signal, what);
    let partStarted = false;
    let renamed = false;
    try {
      await session.ready(signal);
      await session.enterDir(dir, true, signal);
      let existing = await session.sizeOf(final, `${what}: look for ${final}`, signal);
      if (existing !== null) {
        // FTP has no portable remote hash (HASH / XSHA256 are rare extensions), and size alone
        // would take a different file of the same size for ours: a same-size file is read back
        // and hashed. That costs a download only when a package is sent again (after a crash).
        if (existing === pkg.size) {
          const sha = await session
            .hashOf(final, existing, `${what}: compare with ${final}`, signal)
            .catch((err: unknown) => {
              // taken away by its reader while we looked (the office imported it): write ours
              if (err instanceof TransportError && err.code === 'not-found') return null;
              throw err;
            });
          if (sha === pkg.sha256.toLowerCase()) return { remoteRef, alreadyPresent: true };
          if (sha === null) existing = null;
        }
      }
      if (existing !== null) {
        if (!ep.overwrite) {
          throw new TransportError('exists', `${what}: a different ${final} (${existing} bytes) is already there`);
        }
      }

      partStarted = true;
      await session.upload(pkg, part, what, signal);
      const stored = await session.sizeOf(part, `${what}: size of ${name}${PART}`, signal);
      if (stored !== pkg.size) {
        throw new TransportError(
          'corrupt',
          `${what}: the server holds ${stored ?? 'no'} bytes of ${name}${PART}, ${pkg.size} were sent`,
        );
      }
      await session.renameOnto(part, final, existing !== null, `${what}: rename ${name}${PART}`, signal);
      renamed = true;
      return { remoteRef, alreadyPresent: false };
    } catch (err) {
      // Best effort, and only while the connection is still good: after a timeout or an abort
      // the `.part` stays; readers skip it and the next put of this name overwrites it.
      if (partStarted && !renamed) await session.removeQuietly(part);
      throw session.classify(err, what, { missing: 'unavailable' });
    } finally {
      release();
    }
  }

  async function openSource(ep: Endpoint, signal: AbortSignal): Promise<Source> {
    const { session, dir } = await openSession(ep, signal);
    const moveTo = ep.afterReceive.kind === 'move' ? session.resolve(ep.afterReceive.to) : null;
    // moving into the listed directory would hand the same file back next cycle, forever
    if (moveTo === dir) {
      session.close();
      throw new TransportError(
        'invalid-name',
        `move target ${JSON.stringify(ep.afterReceive.kind === 'move' ? ep.afterReceive.to : '')} is the remote directory itself`,
      );
    }

    const source = {
      async list(sig: AbortSignal): Promise<RemoteEntry[]> {
        const what = `list ${dir}`;
        const release = await session.lane.acquire(sig, what);
        try {
          await session.ready(sig);
          await session.enterDir(dir, true, sig);
          return await session.listHere(what, sig);
        } catch (err) {
          throw session.classify(err, what, { missing: 'unavailable' });
        } finally {
          release();
        }
      },

      async open(entry: RemoteEntry, sig: AbortSignal): Promise<Readable> {
        const name = plainName(entry.ref, 'entry');
        const file = inDir(dir, name);
        const what = `read ${file}`;
        const release = await session.lane.acquire(sig, what);
        let handedOver = false;
        try {
          await session.ready(sig);
          const size = await session.sizeOf(file, what, sig);
          if (size === null) throw new TransportError('not-found', `${what}: no such file on the server`);
          if (size !== entry.size) {
            throw new TransportError('busy', `${what}: ${size} bytes now, ${entry.size} when listed (still changing)`);
          }
          const stream = session.download(file, entry.size, what, sig, release);
          handedOver = true;
          // The reader gets errors through its pipeline / for-await; this only keeps a reader that
          // has not attached its handler yet from turning a broken transfer into a crash.
          stream.on('error', () => undefined);
          return stream;
        } catch (err) {
          throw session.classify(err, what, { missing: 'not-found' });
        } finally {
          if (!handedOver) release();
        }
      },

      async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
        const name = plainName(entry.ref, 'entry');
        const file = inDir(dir, name);
        const what = `acknowledge ${file}`;
        const release = await session.lane.acquire(sig, what);
        try {
          await session.ready(sig);
          if (moveTo) {
            await session.enterDir(moveTo, true, sig);
            const free = await session.freeName(moveTo, name, sig);
            await session.moveOrGone(file, inDir(moveTo, free), `${what}: move to ${moveTo}`, sig);
          } else {
            await session.deleteOrGone(file, what, sig);
          }
        } catch (err) {
          throw session.classify(err, what, { missing: 'unavailable' });
        } finally {
          release();
        }
      },

      close: () => {
        session.close();
        return Promise.resolve();
      },
    } satisfies Source;
    return source;
  }

  async function probe(ep: Endpoint, direction: 'in' | 'out', signal: AbortSignal): Promise<ProbeStep[]> {
    const steps: ProbeStep[] = [];
    const session = new FtpSession(profile, wire, ep.timeoutMs);
    const step = async (name: string, fn: () => Promise<string | undefined>): Promise<boolean> => {
      try {
        const detail = await fn();
        steps.push(detail === undefined ? { step: name, ok: true } : { step: name, ok: true, detail });
        return true;
      } catch (err) {
        const e = session.classify(err, name, { missing: 'unavailable' });
        steps.push({ step: name, ok: false, detail: e.message, code: e.code });
        return false;
      }
    };
    try {
      // connect, TLS and login report themselves step by step
      try {
        await session.ready(signal, steps);
      } catch {
        return steps;
      }
      let dir = '';
      const listed = await step('list remote', async () => {
        dir = session.resolve(ep.remote);
        let created = false;
        try {
          await session.enterDir(dir, false, signal);
        } catch (err) {
          // vsftpd says "550 Failed to change directory." for a folder that is not there
          const missing =
            (err instanceof FTPError && err.code === 550) ||
            session.classify(err, `open ${dir}`, { missing: 'not-found' }).code === 'not-found';
          if (!missing) throw err;
          // an in-route never creates its remote folder: a typo there would be polled forever
          if (direction === 'in') throw missingInFolder(dir);
          await session.enterDir(dir, true, signal);
          created = true;
        }
        const entries = await session.listHere(`list ${dir}`, signal);
        return `${entries.length} file(s) in ${dir}${created ? ' (created: it was not there)' : ''}`;
      });
      if (!listed) return steps;
      const probeName = `${HIDDEN_PREFIX}probe-${randomBytes(6).toString('hex')}${PART}`;
      const probeFile = inDir(dir, probeName);
      const bytes = Buffer.from('sprelay probe\n');
      const written = await step('write probe file', async () => {
        await session.upload(
          { name: probeName, size: bytes.length, sha256: sha256(bytes), open: () => Readable.from([bytes]) },
          probeFile,
          'write probe file',
          signal,
        );
        return probeFile;
      });
      if (!written) {
        await session.removeQuietly(probeFile);
        return steps;
      }
      const removed = await step('remove probe file', async () => {
        await session.command('remove probe file', signal, (c) => c.remove(wire.out(probeFile, 'remove probe file')));
        return undefined;
      });
      if (!removed) await session.removeQuietly(probeFile);
      if (removed && direction === 'in' && ep.afterReceive.kind === 'move') {
        const to = ep.afterReceive.to;
        await step('move target reachable', async () => {
          const target = session.resolve(to);
          if (target === dir)
            throw new TransportError('invalid-name', `move target ${to} is the remote directory itself`);
          await session.enterDir(target, true, signal);
          return target;
        });
      }
      return steps;
    } finally {
      session.close();
    }
  }

  return { kind: 'ftp', openSink, openSource, probe } satisfies Transport;
}

// ---- one connection ----------------------------------------------------------------------------

interface ErrorContext {
  /** Code for a reply saying the file or directory is not there. Default 'not-found'. */
  missing?: TransportErrorCode;
  /** Code for any other 550 (basic "action not taken"). Default 'permission'. */
  refused?: TransportErrorCode;
}

/**
 * One FTP control connection and everything done on it. basic-ftp runs one command at a time:
 * every operation holds the lane for its whole length (a download until its stream is done).
 * A command that times out or is aborted costs the connection (there is no way to cancel a
 * command or a transfer in basic-ftp); the next operation then connects again with a fresh
 * Client, never the old one (a task left hanging in it would poison the next command).
 */
class FtpSession {
  readonly lane = new Lane();
  private client: Client | null = null;
  private home = '/';
  private closed = false;
  /** Whether the server does EPSV; learned on the first transfer. */
  private epsv: boolean | undefined;

  constructor(
    private readonly profile: FtpProfile,
    private readonly wire: Wire,
    readonly ms: number,
  ) {}

  private get where(): string {
    return `${this.profile.host}:${this.profile.port}`;
  }

  /** Connects and logs in unless a live connection is there. `steps` (probe) gets one entry per step. */
  async ready(signal: AbortSignal, steps?: ProbeStep[]): Promise<Client> {
    if (this.closed) throw new TransportError('aborted', `connection to ${this.where} already closed`);
    if (this.client && !this.client.closed) return this.client;
    this.drop();
    return this.connect(signal, steps);
  }

  private async connect(signal: AbortSignal, steps?: ProbeStep[]): Promise<Client> {
    const { host, port, security, user, password } = this.profile;
    const c = new Client(this.ms);
    // basic-ftp decodes and encodes the control connection with a Node Buffer encoding, which has
    // no windows-1251: latin1 keeps every byte as one char, and `wire` does the rest.
    c.ftp.encoding = this.wire.encoding;
    c.prepareTransfer = (ftp) => this.passive(ftp);
    this.client = c;

    const whats: Record<string, string> = {
      connect: `connect ${this.where}`,
      TLS: `TLS with ${this.where}`,
      login: `login as ${user} on ${this.where}`,
    };
    const step = async (name: string, fn: () => Promise<string | undefined>) => {
      try {
        const detail = await fn();
        steps?.push(detail === undefined ? { step: name, ok: true } : { step: name, ok: true, detail });
      } catch (err) {
        const e = this.classify(err, whats[name] ?? name, { missing: 'unavailable' });
        steps?.push({ step: name, ok: false, detail: e.message, code: e.code });
        this.drop();
        throw e;
      }
    };

    if (security === 'implicit') {
      let tlsFailed: TransportError | undefined;
      let tcpUp = false;
      await step('connect', async () => {
        try {
          await this.on(c, `connect ${this.where} (implicit TLS)`, signal, () => {
            const connecting = c.connectImplicitTLS(host, port, tlsOptionsFor(this.profile));
            c.ftp.socket.once('connect', () => (tcpUp = true));
            return connecting;
          });
        } catch (err) {
          const e = this.classify(err, `connect ${this.where}`, {});
          if (e.code !== 'tls' && !(e.code === 'timeout' && tcpUp)) throw e;
          // the TCP connection was made: what failed is the TLS handshake
          tlsFailed = this.classify(err, `TLS with ${this.where} (implicit)`, {});
        }
        return this.where;
      });
      await step('TLS', async () => {
        if (tlsFailed) throw tlsFailed;
        return tlsDetail(c);
      });
    } else {
      await step('connect', async () => {
        await this.on(c, `connect ${this.where}`, signal, () => c.connect(host, port));
        return this.where;
      });
      if (security === 'explicit') {
        await step('TLS', async () => {
          await this.on(c, `TLS with ${this.where}`, signal, () =>
            c.useTLS(tlsOptionsFor(this.profile)).catch((err: unknown) => {
              if (!(err instanceof FTPError)) throw err;
              throw new TransportError(
                'tls',
                `TLS with ${this.where}: the server refused AUTH TLS (${this.wire.in(err.message).trim()}); ` +
                  `it may not offer explicit FTPS (security: explicit)`,
                { cause: err },
              );
            }),
          );
          return tlsDetail(c);
        });
      }
    }

    await step('login', async () => {
      const login = `login as ${user}`;
      if (this.wire.encoding === 'utf8') await this.on(c, login, signal, () => c.sendIgnoringError('OPTS UTF8 ON'));
      await this.on(c, login, signal, () =>
        c.login(this.wire.secret(user, 'user'), this.wire.secret(password, 'password')),
      );
      await this.settings(c, signal);
      this.home = await this.on(c, `${login}: PWD`, signal, () => c.pwd())
        .then((p) => this.wire.in(p).replace(/""/g, '"') || '/')
        .catch(() => '/');
      return `as ${user}`;
    });
    return c;
  }

  /** What basic-ftp's useDefaultSettings does, minus `OPTS UTF8 ON` on a windows-1251 server, plus a refused PROT P being an error. */
  private async settings(c: Client, signal: AbortSignal): Promise<void> {
    const features = await this.on(c, 'FEAT', signal, () => c.features());
    const mlsd = features.has('MLST');
    c.availableListCommands = mlsd ? ['MLSD', 'LIST -a', 'LIST'] : ['LIST -a', 'LIST'];
    await this.on(c, 'TYPE I', signal, () => c.send('TYPE I'));
    await this.on(c, 'STRU F', signal, () => c.sendIgnoringError('STRU F'));
    if (this.wire.encoding === 'utf8')
      await this.on(c, 'OPTS UTF8 ON', signal, () => c.sendIgnoringError('OPTS UTF8 ON'));
    if (mlsd) await this.on(c, 'OPTS MLST', signal, () => c.sendIgnoringError('OPTS MLST type;size;modify;'));
    if (c.ftp.hasTLS) {
      await this.on(c, 'PBSZ 0', signal, () => c.sendIgnoringError('PBSZ 0'));
      // basic-ftp ignores a refusal here; the files would then travel in clear: not with us
      await this.on(c, 'PROT P', signal, () =>
        c.send('PROT P').catch((err: unknown) => {
          if (!(err instanceof FTPError)) throw err;
          throw new TransportError(
            'tls',
            `the server refused to encrypt data connections (PROT P: ${this.wire.in(err.message).trim()})`,
            { cause: err },
          );
        }),
      );
    }
  }

  /**
   * Passive mode, data connections only ever to the host of the control connection: EPSV (which
   * names a port only) while the server does it, else PASV, whose address must be that host.
   * A PASV reply naming another host is refused: following it is the FTP bounce attack, and it is
   * also what a server behind NAT with a wrong passive address sends; either way someone has to
   * fix the server. (basic-ftp's own check would let any loopback address stand for another and
   * hides its error inside a generic "no transfer strategy works".)
   */
  private async passive(ftp: FTPContext): Promise<FTPResponse> {
    if (this.epsv !== false) {
      try {
        const res = await enterPassiveModeIPv6(ftp);
        this.epsv = true;
        return res;
      } catch (err) {
        if (this.epsv === true || !(err instanceof FTPError) || ftp.closed) throw err;
        this.epsv = false;
      }
    }
    const res = await ftp.request('PASV');
    const m = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/.exec(res.message);
    if (!m) throw new TransportError('protocol', `PASV: cannot read the reply ${JSON.stringify(res.message.trim())}`);
    const [a, b, c, d, hi, lo] = m.slice(1).map((n) => Number.parseInt(n, 10)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const target = `${a}.${b}.${c}.${d}`;
    const port = hi * 256 + lo;
    const control = (ftp.socket.remoteAddress ?? '').replace(/^::ffff:/i, '');
    if (target !== control) {
      throw new TransportError(
        'protocol',
        `the server's PASV reply sends the data connection to ${target}:${port}, not to ${control}, the server we ` +
          `are connected to; refused (a server behind NAT needs its passive address set, or EPSV enabled)`,
      );
    }
    await connectForPassiveTransfer(control, port, ftp);
    return res;
  }

  /** Runs one call on `c` under the deadline; a timeout or an abort closes the connection. */
  private async on<T>(c: Client, what: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    try {
      return await withDeadline(what, this.ms, signal, fn);
    } catch (err) {
      if (err instanceof TransportError && (err.code === 'timeout' || err.code === 'aborted')) this.drop(c);
      else if (c.closed) this.drop(c);
      throw err;
    }
  }

  /** One command on the current connection (the caller holds the lane and called `ready`). */
  async command<T>(what: string, signal: AbortSignal, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = this.client;
    if (!c || c.closed) throw new TransportError('network', `${what}: the connection to ${this.where} was lost`);
    return this.on(c, what, signal, () => fn(c));
  }

  /** Closes the connection (or `only` that one, if it is still the current one). Never throws. */
  drop(only?: Client): void {
    const c = this.client;
    if (!c || (only && c !== only)) return;
    this.client = null;
    try {
      c.close();
    } catch {
      // already closed
    }
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  /** A `remote` / `move:` directory as an absolute server path; relative ones start at the login directory. */
  resolve(remote: string): string {
    const p = remote.replace(/\\/g, '/');
    const abs = p.startsWith('/') ? path.posix.normalize(p) : path.posix.join(this.home, p);
    return abs.length > 1 ? abs.replace(/\/+$/, '') : abs;
  }

  /** CWD into `dir`, creating it (level by level, as not every server creates parents) when missing. */
  async enterDir(dir: string, create: boolean, signal: AbortSignal): Promise<void> {
    const what = `open ${dir}`;
    const cd = () => this.command(what, signal, (c) => c.send(`CWD ${this.wire.out(dir, what)}`));
    try {
      await cd();
      return;
    } catch (err) {
      if (!create || !(err instanceof FTPError)) throw err;
    }
    let mkdError: unknown;
    let at = '';
    for (const segment of dir.split('/').filter((s) => s !== '')) {
      at += `/${segment}`;
      const res = await this.command(`create ${at}`, signal, (c) =>
        c.sendIgnoringError(`MKD ${this.wire.out(at, `create ${at}`)}`),
      );
      if (res.code >= 400) mkdError = new FTPError(res);
    }
    try {
      await cd();
    } catch (err) {
      // the directory is still not there: the MKD refusal says why better than the CWD does
      if (mkdError) throw this.classify(mkdError, `create ${dir}`, { missing: 'permission' });
      throw err;
    }
  }

  /** Files (not directories, not links) of the current directory, without `.part` and our own probe files. */
  async listHere(what: string, signal: AbortSignal, all = false): Promise<RemoteEntry[]> {
    const infos = await this.command(what, signal, (c) => c.list());
    const entries: RemoteEntry[] = [];
    for (const info of infos as FileInfo[]) {
      if (!info.isFile) continue;
      const name = this.wire.in(info.name);
      if (!all && !isVisible(name)) continue;
      const entry: RemoteEntry = { name, size: info.size, ref: name };
      // only MLSD gives a real timestamp; LIST's `May 11 08:01` has no year, zone or seconds
      if (info.modifiedAt && !Number.isNaN(info.modifiedAt.getTime())) entry.modifiedAt = info.modifiedAt;
      entries.push(entry);
    }
    return entries;
  }

  /**
   * SIZE of a file; null when the server says it is not there. From a listing when the server has
   * no SIZE, or answers it without a number (ftp-srv says `213 File status` for an empty file).
   */
  async sizeOf(file: string, what: string, signal: AbortSignal): Promise<number | null> {
    const res = await this.command(what, signal, (c) => c.sendIgnoringError(`SIZE ${this.wire.out(file, what)}`));
    const size = res.code === 213 ? /^213[ -](\d+)\s*$/.exec(res.message.trim())?.[1] : undefined;
    if (size !== undefined && Number.isSafeInteger(Number(size))) return Number(size);
    if (res.code === 550 || (res.code === 450 && MISSING_TEXT.test(this.wire.in(res.message)))) return null;
    if (res.code === 213 || res.code === 500 || res.code === 502 || res.code === 504) {
      const dir = path.posix.dirname(file);
      await this.enterDir(dir, false, signal);
      const found = (await this.listHere(`${what}: list ${dir}`, signal, true)).find(
        (e) => e.name === path.posix.basename(file),
      );
      return found ? found.size : null;
    }
    throw this.classify(new FTPError(res), what, {});
  }

  /** SHA-256 of a remote file, by reading it back (exactly `size` bytes or an error). */
  async hashOf(file: string, size: number, what: string, signal: AbortSignal): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of this.download(file, size, what, signal, () => undefined)) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }

  /**
   * RETR into a stream that ends only once the server confirmed the transfer and exactly `size`
   * bytes came, and errors otherwise (basic-ftp ends the destination it was given even after a
   * failed transfer, so the reader never gets that one). `onFree` runs once when the connection is
   * free again: the transfer settled, or it was cut (reader gone, stall, abort) and the connection
   * closed with it.
   */
  download(file: string, size: number, what: string, signal: AbortSignal, onFree: () => void): Readable {
    const c = this.client;
    const out = new IdleWatch(what, this.ms, signal);
    let freed = false;
    const free = () => {
      if (freed) return;
      freed = true;
      onFree();
    };
    if (!c || c.closed) {
      queueMicrotask(() => out.destroy(new TransportError('network', `${what}: the connection was lost`)));
      free();
      return out;
    }
    let received = 0;
    let settled = false;
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > size) return cb(new TransportError('busy', `${what}: more than the ${size} bytes listed`));
        if (out.destroyed) return cb(new TransportError('aborted', `${what}: the reader is gone`));
        if (out.write(chunk)) return cb();
        const onDrain = () => {
          out.off('close', onClose);
          cb();
        };
        const onClose = () => {
          out.off('drain', onDrain);
          cb(new TransportError('aborted', `${what}: the reader is gone`));
        };
        out.once('drain', onDrain);
        out.once('close', onClose);
      },
    });
    out.on('close', () => {
      if (settled) return;
      // cut mid-transfer: basic-ftp cannot abort a RETR, so the connection goes with it
      this.drop(c);
      free();
    });
    let wireName: string;
    try {
      wireName = this.wire.out(file, what);
    } catch (err) {
      settled = true;
      queueMicrotask(() => out.destroy(err as Error));
      free();
      return out;
    }
    c.downloadTo(destination, wireName).then(
      () => {
        settled = true;
        free();
        if (received === size) out.end();
        else out.destroy(new TransportError('busy', `${what}: ${received} bytes came, ${size} listed`));
      },
      (err: unknown) => {
        settled = true;
        // A refusal of RETR leaves the connection in order; anything else may leave the server's
        // late reply to the broken transfer waiting to be taken for the answer to our next command.
        if (!(err instanceof FTPError) || c.closed) this.drop(c);
        free();
        out.destroy(this.classify(err, what, { missing: 'not-found' }));
      },
    );
    return out;
  }

  /**
   * STOR of the package's bytes to `file`. The package stream goes through an IdleWatch (a stall
   * of ours or of the server fails it); an outer watchdog, fed by every byte, also covers the
   * wait for the data connection and for the server's final reply.
   */
  async upload(pkg: OutgoingPackage, file: string, what: string, signal: AbortSignal): Promise<void> {
    const c = this.client;
    if (!c || c.closed) throw new TransportError('network', `${what}: the connection to ${this.where} was lost`);
    const wireName = this.wire.out(file, what);
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    let source: Readable;
    try {
      source = pkg.open();
    } catch (err) {
      throw localReadError(err, what);
    }
    const dog = watchdog(what, this.ms, signal);
    const watch = new IdleWatch(what, this.ms, signal);
    const hash = createHash('sha256');
    let sent = 0;
    const tally = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        hash.update(chunk);
        dog.kick();
        cb(null, chunk);
      },
    });
    // the first cause wins: a stalled or broken package stream, not the "client closed" after it
    let streamError: TransportError | undefined;
    source.on('error', (err) => (streamError ??= localReadError(err, what)));
    watch.on('error', (err) => (streamError ??= err instanceof TransportError ? err : localReadError(err, what)));
    pipeline(source, watch, tally, (err) => {
      if (err) streamError ??= err instanceof TransportError ? err : localReadError(err, what);
    });
    let body: Readable = tally;
    try {
      if (pkg.size === 0 && c.ftp.hasTLS) {
        // the package is read (and checked empty) first; what goes out then waits for the TLS
        tally.resume();
        await Promise.race([finished(tally), dog.tripped]);
        if (sent !== 0) throw new TransportError('corrupt', `${what}: the package gave ${sent} bytes, 0 expected`);
        body = endAfterTlsTickets(c.ftp);
      }
      await Promise.race([c.uploadFrom(body, wireName), dog.tripped]);
    } catch (err) {
      if (!(err instanceof FTPError)) this.drop(c);
      source.destroy();
      tally.destroy();
      body.destroy();
      throw streamError ?? err;
    } finally {
      dog.stop();
    }
    if (streamError) throw streamError;
    if (sent !== pkg.size) {
      throw new TransportError('corrupt', `${what}: the package gave ${sent} bytes, ${pkg.size} expected`);
    }
    if (hash.digest('hex') !== pkg.sha256.toLowerCase()) {
      throw new TransportError('corrupt', `${what}: the package bytes do not match its SHA-256`);
    }
  }

  /**
   * RNFR/RNTO. Replacing an existing file: many servers rename over it (POSIX), some refuse
   * (Windows); those get the old file deleted first, a moment without either name.
   */
  async renameOnto(from: string, to: string, replacing: boolean, what: string, signal: AbortSignal): Promise<void> {
    const rename = () =>
      this.command(what, signal, (c) => c.rename(this.wire.out(from, what), this.wire.out(to, what)));
    try {
      await rename();
    } catch (err) {
      if (!replacing || !(err instanceof FTPError)) throw err;
      await this.command(`${what}: remove the old file`, signal, (c) => c.remove(this.wire.out(to, what)));
      await rename();
    }
  }

  /** DELE; a file that is already gone counts as done. */
  async deleteOrGone(file: string, what: string, signal: AbortSignal): Promise<void> {
    try {
      await this.command(what, signal, (c) => c.remove(this.wire.out(file, what)));
    } catch (err) {
      if (err instanceof FTPError && (await this.sizeOf(file, `${what}: check`, signal)) === null) return;
      throw err;
    }
  }

  /** Rename into the move target; a source that is already gone counts as done. */
  async moveOrGone(from: string, to: string, what: string, signal: AbortSignal): Promise<void> {
    try {
      await this.command(what, signal, (c) => c.rename(this.wire.out(from, what), this.wire.out(to, what)));
    } catch (err) {
      if (err instanceof FTPError && (await this.sizeOf(from, `${what}: check`, signal)) === null) return;
      throw err;
    }
  }

  /** `NAME.ext`, else `NAME (2).ext`, `NAME (3).ext`...: a move never replaces what is there. */
  async freeName(dir: string, name: string, signal: AbortSignal): Promise<string> {
    const ext = path.posix.extname(name);
    const stem = name.slice(0, name.length - ext.length);
    for (let n = 1; ; n++) {
      const candidate = n === 1 ? name : `${stem} (${n})${ext}`;
      if ((await this.sizeOf(inDir(dir, candidate), `look for ${candidate} in ${dir}`, signal)) === null) {
        return candidate;
      }
    }
  }

  /** DELE under its own short deadline, only on a live connection. Never throws. */
  async removeQuietly(file: string): Promise<void> {
    const c = this.client;
    if (!c || c.closed) return;
    try {
      await this.on(c, `remove ${file}`, new AbortController().signal, () =>
        c.remove(this.wire.out(file, 'remove'), true),
      );
    } catch {
      // best effort: a `.part` left behind is invisible to readers and overwritten next time
    }
  }

  /** Any failure as a TransportError: FTP replies by code, socket and TLS errors by their code. */
  classify(err: unknown, what: string, ctx: ErrorContext): TransportError {
    const e = classifyFtp(err, what, ctx, (s) => this.wire.in(s));
    const pw = this.profile.password;
    if (pw.length >= 3 && e.message.includes(pw)) {
      return new TransportError(e.code, e.message.split(pw).join('***'), { cause: e.cause });
    }
    return e;
  }
}

// ---- errors ------------------------------------------------------------------------------------

const TLS_ERROR_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
function isTlsCode(code: string): boolean {
  return TLS_ERROR_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_');
}

const MISSING_TEXT = /no such|not found|does ?n[o']t exist|cannot find|can't find|ENOENT|not a valid directory/i;
const REFUSED_TEXT = /denied|permission|not allowed|forbidden|read-only|EACCES|EPERM/i;
const FULL_TEXT = /no space|disk full|quota|ENOSPC|EDQUOT|insufficient storage/i;

/** The code of an FTP reply. */
function replyCode(code: number, text: string, ctx: ErrorContext): TransportErrorCode {
  if (code === 530 || code === 532 || code === 332) return 'auth';
  // servers report a full disk under many codes (vsftpd 451, ProFTPD 450/550, IIS 452/552)
  if (code === 452 || code === 552 || (code >= 400 && FULL_TEXT.test(text))) return 'no-space';
  if (code === 425 || code === 426) return 'network';
  if (code === 421 || code === 450 || code === 451) return 'unavailable';
  if (code === 550 || code === 551 || code === 553) {
    if (REFUSED_TEXT.test(text)) return 'permission';
    if (MISSING_TEXT.test(text)) return ctx.missing ?? 'not-found';
    return ctx.refused ?? 'permission';
  }
  if (code === 522 || code === 533 || code === 534 || code === 431) return 'tls';
  if (code === 502 || code === 504) return 'unsupported';
  if (code >= 400 && code < 500) return 'unavailable';
  return 'protocol';
}

function classifyFtp(err: unknown, what: string, ctx: ErrorContext, text: (s: string) => string): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  if (err instanceof FTPError) {
    const reply = text(err.message).trim();
    const code = replyCode(err.code, reply, ctx);
    const words = code === 'auth' ? `${LOGIN_REFUSED}: ` : '';
    return new TransportError(code, `${what}: ${words}the server answered ${reply}`, { cause: err });
  }
  const message = err instanceof Error ? text(err.message) : String(err);
  const errno = errnoCode(err);
  if (errno && isTlsCode(errno)) {
    return new TransportError('tls', `${what}: ${tlsWords(errno)}: ${errno}: ${message}`, { cause: err });
  }
  // "Client is closed because <reason>": basic-ftp copies the reason's code, ours included
  if (errno && errno in TRANSPORT_ERROR_CODES) {
    return new TransportError(errno as TransportErrorCode, `${what}: ${message}`, { cause: err });
  }
  if (errno && errno !== '0') return fromSystemError(err, what);
  if (/^Timeout|Timeout when trying to open data connection/i.test(message)) {
    return new TransportError('timeout', `${what}: ${message}`, { cause: err });
  }
  if (/User closed client/.test(message))
    return new TransportError('aborted', `${what}: connection closed`, { cause: err });
  if (/SSL|TLS|certificate/.test(message)) return new TransportError('tls', `${what}: ${message}`, { cause: err });
  if (/can't parse|cannot parse|unexpected FTP response|exceeded maximum|Invalid command/i.test(message)) {
    return new TransportError('protocol', `${what}: ${message}`, { cause: err });
  }
  // closed connections, FIN from the server, transmission errors: try again later
  return new TransportError('network', `${what}: ${message}`, { cause: err });
}

/** The package's own stream failed: that is our local disk, not the server. */
function localReadError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  return fromSystemError(err, `${what}: reading the package`);
}

// ---- TLS ---------------------------------------------------------------------------------------

/** Verified by default; `tls.ca` is trusted in addition to the public CAs Node ships. */
function tlsOptionsFor(profile: FtpProfile): ConnectionOptions {
  const opts: ConnectionOptions = { host: profile.host, rejectUnauthorized: profile.tls.rejectUnauthorized };
  // SNI carries names only (RFC 6066); an address is checked against the certificate's IP SANs
  if (!isIP(profile.host)) opts.servername = profile.host;
  if (profile.tls.ca) opts.ca = [...rootCertificates, profile.tls.ca];
  return opts;
}

function tlsDetail(c: Client): string | undefined {
  const socket = c.ftp.socket as Partial<TLSSocket>;
  return typeof socket.getProtocol === 'function' ? (socket.getProtocol() ?? undefined) : undefined;
}

// ---- names on the wire -------------------------------------------------------------------------

interface Wire {
  /** basic-ftp's control connection encoding. */
  encoding: 'utf8' | 'latin1';
  /** A name or path as basic-ftp must be given it; 'invalid-name' when the server cannot write it. */
  out(text: string, what: string): string;
  /** User or password: like `out`, but the refusal never shows the text. */
  secret(text: string, which: 'user' | 'password'): string;
  /** Text from the server (a listing, PWD, a reply) as the characters it means. */
  in(text: string): string;
}

function wireFor(encoding: FtpProfile['encoding']): Wire {
  if (encoding !== 'cp1251') {
    return { encoding: 'utf8', out: (text) => text, secret: (text) => text, in: (text) => text };
  }
  const table = cp1251Table();
  const encode = (text: string): string | null => {
    let out = '';
    for (const ch of text) {
      const code = ch.codePointAt(0)!;
      const byte = code < 0x80 ? code : table.get(ch);
      if (byte === undefined) return null;
      out += String.fromCharCode(byte);
    }
    return out;
  };
  return {
    encoding: 'latin1',
    out(text, what) {
      const encoded = encode(text);
      if (encoded === null) {
        throw new TransportError(
          'invalid-name',
          `${what}: ${JSON.stringify(text)} has characters windows-1251 cannot write (encoding: cp1251)`,
        );
      }
      return encoded;
    },
    secret(text, which) {
      const encoded = encode(text);
      if (encoded === null) {
        throw new TransportError('auth', `the ${which} has characters windows-1251 cannot write (encoding: cp1251)`);
      }
      return encoded;
    },
    in: (text) => CP1251.decode(Buffer.from(text, 'latin1')),
  };
}

const CP1251 = new TextDecoder('windows-1251');
let cp1251Bytes: Map<string, number> | undefined;

/** Character -> byte for the upper half of windows-1251 (the WHATWG table Node's decoder uses). */
function cp1251Table(): Map<string, number> {
  if (!cp1251Bytes) {
    cp1251Bytes = new Map();
    for (let b = 0x80; b <= 0xff; b++) cp1251Bytes.set(CP1251.decode(Uint8Array.of(b)), b);
  }
  return cp1251Bytes;
}

/** For tests: how a name travels to and from a server with `encoding`. */
export function ftpWireName(encoding: FtpProfile['encoding']): { out(name: string): string; in(wire: string): string } {
  const w = wireFor(encoding);
  return { out: (name) => w.out(name, 'name'), in: (text) => w.in(text) };
}

// ---- names and paths ---------------------------------------------------------------------------

/** A name listing shows: not a transfer in progress, not one of our own probe files. */
function isVisible(name: string): boolean {
  const lower = name.toLowerCase();
  return !lower.endsWith(PART) && !lower.startsWith(HIDDEN_PREFIX);
}

/**
 * A single path component: not empty, `.` or `..`, no `/`, no CR/LF/NUL (they would end the FTP
 * command). A `\` is refused in names we write (a Windows server takes it for a separator) but
 * allowed in names a listing offers, so the pipeline can see and quarantine them.
 */
function plainName(name: string, what: string, forWriting = false): string {
  const bad =
    name === '' ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    /[\r\n\0]/.test(name) ||
    (forWriting && name.includes('\\'));
  if (bad) throw new TransportError('invalid-name', `${what} ${JSON.stringify(name)} refused: not a plain file name`);
  return name;
}

function inDir(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// ---- serialization and watchdogs ---------------------------------------------------------------

/**
 * A queue of one: FTP runs one command at a time per connection. `acquire` waits its turn (or
 * rejects with 'aborted' when the signal fires first, passing its turn on) and returns `release`.
 */
class Lane {
  private tail: Promise<void> = Promise.resolve();

  async acquire(signal: AbortSignal, what: string): Promise<() => void> {
    if (signal.aborted) throw new TransportError('aborted', `${what}: aborted`);
    let free!: () => void;
    const mine = new Promise<void>((resolve) => (free = resolve));
    const before = this.tail;
    this.tail = before.then(() => mine);
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onAbort = () => reject(new TransportError('aborted', `${what}: aborted while waiting for the connection`));
        signal.addEventListener('abort', onAbort, { once: true });
        void before.then(resolve);
      });
    } catch (err) {
      void before.then(free);
      throw err;
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      free();
    };
  }
}

/**
 * The body of an empty upload over TLS. vsftpd (TLS 1.3) fails an upload whose data connection
 * closes right after its handshake, before the server's session tickets are through: "DATA
 * connection terminated without SSL shutdown", 426, and a TLS alert for us (the TLS 1.3 FTPS
 * race behind curl#13556 and proftpd#959). With bytes to send the timing works out by itself; an
 * empty body ends only once a ticket came (or 100 ms passed), and 10 ms later. basic-ftp starts
 * reading the body once the data connection's TLS is up.
 */
function endAfterTlsTickets(ftp: FTPContext): Readable {
  const timers: NodeJS.Timeout[] = [];
  let started = false;
  return new Readable({
    read() {
      if (started) return;
      started = true;
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        timers.push(setTimeout(() => this.push(null), 10));
      };
      timers.push(setTimeout(end, 100));
      ftp.dataSocket?.once('session', end);
    },
    destroy(err, cb) {
      timers.forEach(clearTimeout);
      cb(err);
    },
  });
}

/** Rejects `tripped` with 'timeout' once `kick` was not called for `ms`, or 'aborted' when `signal` fires. */
function watchdog(what: string, ms: number, signal: AbortSignal) {
  let trip!: (err: TransportError) => void;
  const tripped = new Promise<never>((_, reject) => (trip = reject));
  tripped.catch(() => undefined);
  const timer = setTimeout(() => trip(new TransportError('timeout', `${what}: no progress for ${formatMs(ms)}`)), ms);
  const onAbort = () => trip(new TransportError('aborted', `${what}: aborted`));
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    tripped,
    kick: () => void timer.refresh(),
    stop: () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    },
  };
}
