// One FTP session: the control connection (connect, TLS, login, the settings basic-ftp would
// choose minus what old servers choke on), passive mode to the control host only, every command
// under a deadline, and the directory and file commands the transport needs.
import path from 'node:path';
import { isIP } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { Client, FTPError, type FileInfo } from 'basic-ftp';
import { freeName, isVisible } from '../common/names.js';
import { redactor } from '../common/redact.js';
import { clientSecureContext } from '../common/tls.js';
import { withDeadline, type MinRate } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { FtpProfile, ProbeStep, RemoteEntry } from '../types.js';
import { classifyFtp, MISSING_TEXT, type ErrorContext } from './errors.js';
import { BoundedClient } from './listing.js';
import { passive, type PassiveState } from './passive.js';
import type { Wire } from './wire.js';

/**
 * What one server told one session and holds for every other session of the same route and user
 * (a pool's lanes, a reconnect): FEAT's MLST, the login directory. Learned once, asked once.
 */
export interface ServerFacts {
  mlsd?: boolean;
  /** FEAT lists MDTM (RFC 3659): a file's modification time, asked one file at a time. */
  mdtm?: boolean;
  home?: string;
}

/**
 * One FTP control connection and everything done on it. basic-ftp runs one command at a time:
 * every operation holds the session (its lane, lane.ts) for its whole length (a download until
 * its stream is done).
 * A command that times out or is aborted costs the connection (there is no way to cancel a
 * command or a transfer in basic-ftp); the next operation then connects again with a fresh
 * Client, never the old one (a task left hanging in it would poison the next command).
 */
export class FtpSession {
  private readonly redact: (e: TransportError) => TransportError;
  private client: BoundedClient | null = null;
  private home = '/';
  /** The directory the current connection is in (CWD done), null when not known. */
  private cwd: string | null = null;
  private closed = false;
  /** Whether the server does EPSV; learned on the first transfer. */
  private readonly passiveState: PassiveState = {};

  constructor(
    private readonly profile: FtpProfile,
    readonly wire: Wire,
    readonly ms: number,
    /** Built once per profile: a data connection reuses it instead of parsing every CA again. */
    private readonly tls: () => ConnectionOptions,
    /** The slowest average a transfer may keep (the route's minRate); none if absent. */
    readonly minRate?: MinRate,
    /** Shared by the sessions of one sink or source: what one learned, the others need not ask. */
    private readonly facts: ServerFacts = {},
  ) {
    this.redact = redactor([profile.password]);
  }

  /** The connection now in use, if any (the caller holds the session). */
  get current(): Client | null {
    return this.client;
  }

  get where(): string {
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
    const c = new BoundedClient(this.ms);
    // basic-ftp decodes and encodes the control connection with a Node Buffer encoding, which has
    // no windows-1251: latin1 keeps every byte as one char, and `wire` does the rest.
    c.ftp.encoding = this.wire.encoding;
    c.prepareTransfer = (ftp) => passive(ftp, this.passiveState);
    this.client = c;
    this.cwd = null;

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
            const connecting = c.connectImplicitTLS(host, port, this.tls());
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
            c.useTLS(this.tls()).catch((err: unknown) => {
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
      // before USER only for a user name or password that is not ASCII (some servers take UTF-8
      // there only then; others, vsftpd among them, refuse OPTS before login); else once after it
      let utf8Done = this.wire.encoding !== 'utf8';
      if (!utf8Done && !/^[\x20-\x7e]*$/.test(user + password)) {
        const res = await this.on(c, login, signal, () => c.sendIgnoringError('OPTS UTF8 ON'));
        utf8Done = res.code >= 200 && res.code < 300;
      }
      await this.on(c, login, signal, () =>
        c.login(this.wire.secret(user, 'user'), this.wire.secret(password, 'password')),
      );
      await this.settings(c, signal, utf8Done);
      this.facts.home ??= await this.on(c, `${login}: PWD`, signal, () => c.pwd())
        .then((p) => this.wire.in(p).replace(/""/g, '"') || '/')
        .catch(() => '/');
      this.home = this.facts.home;
      return `as ${user}`;
    });
    return c;
  }

  /**
   * What basic-ftp's useDefaultSettings does, minus what costs a round trip for nothing: `STRU F`
   * (file structure is FTP's default, RFC 959 3.1.2), a second `OPTS UTF8 ON` (`utf8Done`: the
   * server took the one before login, or the names are windows-1251), FEAT once per pool (the
   * facts); plus a refused PROT P being an error.
   */
  private async settings(c: Client, signal: AbortSignal, utf8Done: boolean): Promise<void> {
    if (this.facts.mlsd === undefined) {
      const feat = [...(await this.on(c, 'FEAT', signal, () => c.features())).keys()].map((k) => k.toUpperCase());
      this.facts.mlsd = feat.includes('MLST');
      this.facts.mdtm = feat.includes('MDTM');
    }
    const mlsd = this.facts.mlsd;
    c.availableListCommands = mlsd ? ['MLSD', 'LIST -a', 'LIST'] : ['LIST -a', 'LIST'];
    await this.on(c, 'TYPE I', signal, () => c.send('TYPE I'));
    if (!utf8Done) await this.on(c, 'OPTS UTF8 ON', signal, () => c.sendIgnoringError('OPTS UTF8 ON'));
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

  /** One command on the current connection (the caller holds the session and called `ready`). */
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
    this.cwd = null;
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

  /**
   * CWD into `dir`, creating it (level by level, as not every server creates parents) when missing.
   * Nothing is sent when the current connection is there already.
   */
  async enterDir(dir: string, create: boolean, signal: AbortSignal): Promise<void> {
    const what = `open ${dir}`;
    if (this.cwd === dir && this.client && !this.client.closed) return;
    const cd = async () => {
      this.cwd = null;
      await this.command(what, signal, (c) => c.send(`CWD ${this.wire.out(dir, what)}`));
      this.cwd = dir;
    };
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

  /**
   * Files (not directories, not links) of the current directory `dir`, without `.part` and our own
   * probe files. The listing is counted as it arrives (common/listing.ts): past a cap it is
   * refused with 'protocol', and the connection goes with the transfer that was cut.
   */
  async listHere(
    dir: string,
    what: string,
    signal: AbortSignal,
    all = false,
    printed?: Map<string, string>,
  ): Promise<RemoteEntry[]> {
    const infos = await this.infosHere(dir, what, signal);
    const entries: RemoteEntry[] = [];
    for (const info of infos) {
      if (!info.isFile) continue;
      const name = this.wire.in(info.name);
      if (!all && !isVisible(name)) continue;
      const entry: RemoteEntry = { name, size: info.size, ref: name };
      // only MLSD gives a real timestamp; LIST's `May 11 08:01` has no year, zone or seconds
      // (`printed` gets it as printed, by ref: listtimes.ts makes it a time with one MDTM)
      if (info.modifiedAt && !Number.isNaN(info.modifiedAt.getTime())) entry.modifiedAt = info.modifiedAt;
      else if (printed && info.rawModifiedAt) printed.set(entry.ref, info.rawModifiedAt);
      entries.push(entry);
    }
    return entries;
  }

  /**
   * Every name in `dir` (CWD there first unless the connection is there): size for a plain file,
   * else null. Null for all of it when the listing was not read whole (a line basic-ftp could not
   * parse): it cannot say that a name is not there.
   */
  async listNames(
    dir: string,
    what: string,
    signal: AbortSignal,
  ): Promise<{ name: string; size: number | null }[] | null> {
    await this.enterDir(dir, false, signal);
    const infos = await this.infosHere(dir, what, signal);
    if (!this.client?.lastListingWhole) return null;
    return infos.map((info) => ({ name: this.wire.in(info.name), size: info.isFile ? info.size : null }));
  }

  /** Every entry of the current directory `dir` as basic-ftp parsed it (bounded, as listHere). */
  async infosHere(dir: string, what: string, signal: AbortSignal): Promise<FileInfo[]> {
    let infos: FileInfo[];
    try {
      infos = await this.command(what, signal, (c) => {
        (c as BoundedClient).listingOf = `FTP listing of ${dir}`;
        return c.list();
      });
    } catch (err) {
      // the server may still be sending, and its reply to the cut LIST would be read as the
      // answer to our next command
      if (err instanceof TransportError && err.code === 'protocol') this.drop();
      throw err;
    }
    return infos;
  }

  /** Whether the server said in FEAT that it answers MDTM (known once a session has logged in). */
  get hasMdtm(): boolean {
    return this.facts.mdtm === true;
  }

  /**
   * MDTM of a file (RFC 3659: `213 YYYYMMDDHHMMSS[.sss]`, in UTC); null for any other answer (a
   * refusal, a file gone, a reply that is not a valid time): no time is no evidence, never an
   * error. Connection failures, the deadline and an abort reject as every command does. The path
   * is absolute, so a name with leading spaces is not taken apart, and a server that reads `MDTM
   * <time> <name>` as "set the time" (some do) never sees a time first.
   */
  async modifiedAt(file: string, what: string, signal: AbortSignal): Promise<Date | null> {
    const res = await this.command(what, signal, (c) => c.sendIgnoringError(`MDTM ${this.wire.out(file, what)}`));
    if (res.code !== 213) return null;
    return mdtmTime(res.message);
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
      const found = (await this.listHere(dir, `${what}: list ${dir}`, signal, true)).find(
        (e) => e.name === path.posix.basename(file),
      );
      return found ? found.size : null;
    }
    throw this.classify(new FTPError(res), what, {});
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

  /** A name in `dir` nothing has yet: a move never replaces what is there. */
  freeName(dir: string, name: string, signal: AbortSignal): Promise<string> {
    return freeName(
      name,
      async (candidate) =>
        (await this.sizeOf(inDir(dir, candidate), `look for ${candidate} in ${dir}`, signal)) !== null,
      dir,
    );
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
    return this.redact(classifyFtp(err, what, ctx, (s) => this.wire.in(s)));
  }
}

/**
 * Verified by default; `tls.ca` is trusted in addition to the public CAs Node ships. The context
 * (the CAs parsed) is made on first use and reused by the control and every data connection.
 */
export function tlsOptionsFor(profile: FtpProfile): () => ConnectionOptions {
  let opts: ConnectionOptions | undefined;
  return () => {
    if (opts) return opts;
    opts = {
      host: profile.host,
      rejectUnauthorized: profile.tls.rejectUnauthorized,
      secureContext: clientSecureContext(profile.tls),
    };
    // SNI carries names only (RFC 6066); an address is checked against the certificate's IP SANs
    if (!isIP(profile.host)) opts.servername = profile.host;
    return opts;
  };
}

function tlsDetail(c: Client): string | undefined {
  const socket = c.ftp.socket as Partial<TLSSocket>;
  return typeof socket.getProtocol === 'function' ? (socket.getProtocol() ?? undefined) : undefined;
}

/**
 * The time of an MDTM reply line (`213 20261202131800` or with a fraction, `213
 * 20261202131800.123`), read as UTC as RFC 3659 says (vsftpd's default, use_localtime=NO); null
 * when it is not exactly that or not a real date (month 13, 31 February). A server that answers
 * its local time instead is harmless when that zone is ahead of UTC (its files look younger and
 * wait for the second listing) and, behind UTC, within what the route's clockSkew allows, as for
 * an MLSD time.
 */
export function mdtmTime(reply: string): Date | null {
  const m = /^213 (\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?$/.exec(reply.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms));
  const same =
    t.getUTCFullYear() === y &&
    t.getUTCMonth() === mo - 1 &&
    t.getUTCDate() === d &&
    t.getUTCHours() === h &&
    t.getUTCMinutes() === mi &&
    t.getUTCSeconds() === s;
  return same ? t : null;
}

export function inDir(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
