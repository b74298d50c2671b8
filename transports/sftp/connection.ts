// One SSH connection with its SFTP channel (connected through ssh2-sftp-client, which also keeps
// ssh2's 'error' events from becoming uncaught exceptions, #579), the pinned host key, and every
// request under a deadline: a request the server never answers is never answered.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Client, ConnectConfig, SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { exactLength, watched } from '../common/streams.js';
import { answerWithin, withDeadline, type MinRate } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { SftpProfile } from '../types.js';
import { classify, connectError, type Level, type RequestKind } from './errors.js';
import { readPipelined } from './pipeline.js';

/** ssh2 sends no keepalive unless asked: a dead peer is noticed after interval x (countMax + 1). */
const KEEPALIVE_INTERVAL_MS = 10_000;
const KEEPALIVE_COUNT_MAX = 3;
/** How long close() waits for a polite goodbye before it cuts the socket. */
const CLOSE_GRACE_MS = 2000;
/** Cleanup after a failed put (close the handle, remove the `.part`) never takes longer than this. */
const CLEANUP_MS = 2000;

/**
 * The SFTP channel's receive window kept open while READs are in flight, and how much of it may
 * be used before it is opened again. ssh2 gives a channel 2 MB and opens it again only once half
 * of it is used: a server then holds its answers back every MB for an adjustment to reach it, and
 * 2 MB of READs in flight (pipeline.ts) never all answer at once. On a link with a round trip of
 * 100 ms the READs of a 20 MB file took 2.1-2.6 s with ssh2's window, 1.25-1.5 s with this one
 * (issue 11).
 * What the server sends is only ever the answers to our READs, in buffers we allocated before
 * asking (pipeline.ts): a wider window holds no more bytes in memory.
 */
const RECEIVE_WINDOW = 8 * 1024 * 1024;
const RECEIVE_TOP_UP = 1024 * 1024;

/** ssh2's SFTP channel state that openReceiveWindow uses (not part of its typed API). */
interface ChannelInternals {
  incoming?: { window?: unknown };
  outgoing?: { id?: unknown; state?: unknown };
  _protocol?: { channelWindowAdjust?: unknown };
}

/** What ssh2 allows per READ/WRITE on a server that is not OpenSSH (34000 - 2048). */
const SSH2_SAFE_LEN = 31_952;

export const neverAborted = new AbortController().signal;
// every cleanup request (a CLOSE sent and not waited for, one per transfer in flight) listens to it
// while it runs; it never fires, so its listeners hold nothing: no leak warning at 11 of them
setMaxListeners(1000, neverAborted);

export interface ConnectProgress {
  /** Fingerprint of the host key the server offered, once it has. */
  offered?: string;
  hostKeyOk: boolean;
  authenticated: boolean;
}

export const newProgress = (): ConnectProgress => ({ hostKeyOk: false, authenticated: false });

/** `SHA256:<base64 without padding>` of a host key blob, as `ssh-keygen -l` prints it. */
export function hostKeyFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * One SSH connection with its SFTP channel. Once it is lost (network, keepalive, or killed after a
 * timeout) every request fails at once with a retryable TransportError('network'); it never comes back.
 */
export class Connection {
  private lost: TransportError | undefined;
  private closing: Promise<void> | undefined;
  private readonly waiters = new Set<(err: TransportError) => void>();
  readonly canFsync: boolean;
  readonly canPosixRename: boolean;
  /** Largest READ / WRITE ssh2 sends as one request (it splits bigger ones into a sequence). */
  readonly maxReadLen: number;
  readonly maxWriteLen: number;

  private constructor(
    private readonly client: SftpClient,
    private readonly raw: Client,
    private readonly sftp: SFTPWrapper,
    private readonly label: string,
  ) {
    const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
    this.canFsync = extensions['fsync@openssh.com'] === '1';
    this.canPosixRename = extensions['posix-rename@openssh.com'] === '1';
    const limits = sftp as unknown as { _maxReadLen?: number; _maxWriteLen?: number };
    this.maxReadLen = limits._maxReadLen ?? SSH2_SAFE_LEN;
    this.maxWriteLen = limits._maxWriteLen ?? SSH2_SAFE_LEN;
    // The SFTP channel emits 'error' on a malformed packet and nobody else listens for it there.
    sftp.on('error', (err: Error) => this.markLost(`SFTP channel failed: ${err.message}`));
    sftp.on('close', () => this.markLost('SFTP channel closed'));
  }

  static async open(
    profile: SftpProfile,
    label: string,
    ms: number,
    signal: AbortSignal,
    progress: ConnectProgress,
  ): Promise<Connection> {
    // Our own callbacks: the defaults print to the console.
    const client = new SftpClient('sprelay', { error: () => undefined, end: () => undefined, close: () => undefined });
    const raw = (client as unknown as { client: Client }).client;
    let lastError: (Error & { level?: Level; code?: unknown }) | undefined;
    let conn: Connection | undefined;
    raw.on('error', (err: Error) => {
      lastError = err;
      conn?.markLost(err.message);
    });
    let closedEarly = false; // between the library's resolve and our constructor
    raw.on('end', () => conn?.markLost('the server ended the connection'));
    raw.on('close', () => {
      closedEarly = true;
      conn?.markLost('the connection closed');
    });
    raw.on('ready', () => (progress.authenticated = true));
    // ssh2 leaves Nagle on: every request/answer round trip then waits for delayed ACKs (~90 ms
    // each on loopback, a connect took ~500 ms instead of ~15 ms)
    raw.on('connect', () => {
      raw.setNoDelay(true);
      const sock = (raw as unknown as { _sock?: Socket })._sock;
      if (sock) corkEachTick(sock);
    });

    const config: ConnectConfig = {
      host: profile.host,
      port: profile.port,
      username: profile.user,
      readyTimeout: ms,
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      hostVerifier: (key: Buffer) => {
        const offered = hostKeyFingerprint(key);
        progress.offered = offered;
        progress.hostKeyOk = hostKeyMatches(profile.hostKey, offered);
        return progress.hostKeyOk;
      },
    };
    if (profile.password !== undefined) config.password = profile.password;
    if (profile.privateKey !== undefined) config.privateKey = profile.privateKey;
    if (profile.passphrase !== undefined) config.passphrase = profile.passphrase;

    try {
      const sftp = await withDeadline(`connect to ${label}`, ms, signal, () => client.connect(config));
      conn = new Connection(client, raw, sftp, label);
      if (closedEarly) conn.markLost('the connection closed');
      return conn;
    } catch (err) {
      hardClose(raw);
      throw connectError(err, lastError, profile, label, progress, ms);
    }
  }

  /**
   * Runs one SFTP request under the deadline (answerWithin: no AbortController and race per
   * request, a transfer sends thousands); a timeout or abort ends the connection.
   */
  async call<T>(
    what: string,
    ms: number,
    signal: AbortSignal,
    kind: RequestKind,
    fn: (sftp: SFTPWrapper, cb: (err: Error | null | undefined, value?: T) => void) => void,
  ): Promise<T> {
    if (this.lost) throw new TransportError('network', `${what}: ${this.lost.message}`);
    try {
      return await answerWithin<T>(what, ms, signal, (settle) => {
        const onLost = (err: TransportError) => settle(err);
        this.waiters.add(onLost);
        try {
          fn(this.sftp, (err, value) => settle(err ?? undefined, value));
        } catch (err) {
          settle(err ?? new Error(`${what}: failed`));
        }
        return () => this.waiters.delete(onLost);
      });
    } catch (err) {
      throw this.failure(err, what, kind);
    }
  }

  /**
   * Opens the SFTP channel's receive window to RECEIVE_WINDOW when more than RECEIVE_TOP_UP of it
   * was used (one WINDOW_ADJUST, sent with the next request). Called as READs are sent and
   * answered. Where ssh2's channel does not look as expected, nothing is done (ssh2 keeps its own
   * 2 MB window).
   */
  openReceiveWindow(): void {
    if (this.lost) return;
    const ch = this.sftp as unknown as ChannelInternals;
    const window = ch.incoming?.window;
    const id = ch.outgoing?.id;
    const adjust = ch._protocol?.channelWindowAdjust;
    if (typeof window !== 'number' || typeof id !== 'number' || typeof adjust !== 'function') return;
    if (ch.outgoing?.state !== 'open' || window > RECEIVE_WINDOW - RECEIVE_TOP_UP) return;
    ch.incoming!.window = RECEIVE_WINDOW;
    (adjust as (id: number, amount: number) => void).call(ch._protocol, id, RECEIVE_WINDOW - window);
  }

  /** Maps a failure of a request on this connection; timeouts and aborts end the connection. */
  failure(err: unknown, what: string, kind: RequestKind): TransportError {
    if (err instanceof TransportError) {
      if (err.code === 'timeout' || err.code === 'aborted') this.kill(err);
      if (err.code === 'network' && this.lost && !err.message.startsWith(what)) {
        return new TransportError('network', `${what}: ${err.message}`, { cause: err });
      }
      return err;
    }
    if (this.lost) return new TransportError('network', `${what}: ${this.lost.message}`, { cause: err });
    return classify(err, what, kind);
  }

  /**
   * The entry's bytes: exactly `size` of them or an error, a stalled or dripping server (below
   * `minRate`) costs a 'timeout' (and the connection), and the handle is closed whichever way the
   * reader stops. Several READs are in flight at once (pipeline.ts).
   */
  readStream(handle: Buffer, size: number, what: string, ms: number, signal: AbortSignal, minRate?: MinRate): Readable {
    const remote = readPipelined(this, handle, size, what, ms, signal);
    const counted = exactLength(size, what);
    remote.on('error', (err: Error) => counted.destroy(this.failure(err, what, 'read')));
    counted.on('close', () => remote.destroy());
    return watched(remote.pipe(counted), what, ms, signal, {
      mapError: (err) => classify(err, what, 'read'),
      onStall: (err) => this.kill(err),
      minRate,
    });
  }

  async closeHandleQuietly(handle: Buffer): Promise<void> {
    if (this.lost) return;
    try {
      await this.call<void>('close handle', CLEANUP_MS, neverAborted, 'meta', (s, cb) => s.close(handle, cb));
    } catch {
      // the error that got us here is the one worth reporting
    }
  }

  async removeQuietly(file: string): Promise<void> {
    if (this.lost) return;
    try {
      await this.call<void>(`remove ${file}`, CLEANUP_MS, neverAborted, 'meta', (s, cb) => s.unlink(file, cb));
    } catch {
      // best effort: a `.part` left behind is invisible to readers and overwritten next time
    }
  }

  markLost(reason: string): void {
    if (this.lost) return;
    this.lost = new TransportError('network', `connection to ${this.label} lost: ${reason}`);
    for (const w of this.waiters) w(this.lost);
    this.waiters.clear();
    hardClose(this.raw);
  }

  /** Ends the connection at once: after a timeout or an abort nothing may be left waiting on it. */
  kill(reason: TransportError): void {
    if (this.lost) return;
    this.markLost(`closed after: ${reason.message}`);
  }

  /** Polite goodbye, cut short after CLOSE_GRACE_MS. Never throws; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.lost) {
        this.lost = new TransportError('network', `connection to ${this.label} was closed`);
        for (const w of this.waiters) w(this.lost);
        this.waiters.clear();
        try {
          await withDeadline('close', CLOSE_GRACE_MS, neverAborted, () => this.client.end());
        } catch {
          // cut below
        }
      }
      hardClose(this.raw);
    })();
    return this.closing;
  }
}

/**
 * Every write to `sock` in one turn of the event loop goes out in one system call. ssh2 writes each
 * SSH packet as three or four pieces (length, ciphertext, tag) and each request as its own packet,
 * each a write(2) of its own with Nagle off: 200 MB out took ~50,000 of them, the largest share of
 * the transfer's CPU (issue 11). Corked until the queued callbacks of this turn have run, then
 * sent together (writev); the order of the bytes is unchanged and nothing waits for a timer.
 */
export function corkEachTick(sock: Socket): void {
  const write = sock.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  sock.write = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    return (write as (...a: Parameters<Socket['write']>) => boolean).apply(this, args);
  } as Socket['write'];
}

/** Destroys the socket, also when ssh2 has already half-closed it (its destroy() then does nothing). */
function hardClose(raw: Client): void {
  try {
    raw.destroy();
    (raw as unknown as { _sock?: Socket })._sock?.destroy();
  } catch {
    // nothing left to close
  }
}

function hostKeyMatches(pin: string, offered: string): boolean {
  if (pin === 'any') return true;
  if (!pin.startsWith('SHA256:')) return false;
  return pin.replace(/=+$/, '') === offered;
}
