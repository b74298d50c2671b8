// The peers sprelay is measured against, each with its default settings (only what a connection
// needs is set: server, account, the interop CA, the pinned host key): rclone copy, lftp mirror,
// OpenSSH's sftp in batch mode, cp, swaks (one message per package), mbsync + munpack.
// Passwords reach them through config files (0600) or the environment, never the command line,
// except swaks, which has no other way (loopback test accounts only).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { cleanup } from './cleanup.js';
import type { Sample } from './measure.js';

/**
 * Runs a command to its end, timed from spawn to exit; anything but exit 0 fails the bench with
 * the end of its output (written to `log`).
 */
export async function timed(
  cmd: string,
  args: string[],
  log: string,
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Sample> {
  const fd = openSync(log, 'a');
  const started = performance.now();
  const code = await exitOf(cmd, args, fd, opts);
  const seconds = (performance.now() - started) / 1000;
  closeSync(fd);
  if (code !== 0) throw new Error(`${cmd} exited ${code}; the end of its output (${log}):\n${tail(log)}`);
  return { seconds };
}

/** Runs several commands one after another and times them as one. */
export async function timedSeries(
  steps: Array<{ cmd: string; args: string[]; cwd?: string }>,
  log: string,
  env?: Record<string, string>,
): Promise<Sample> {
  const fd = openSync(log, 'a');
  const started = performance.now();
  for (const s of steps) {
    const code = await exitOf(s.cmd, s.args, fd, { env, cwd: s.cwd });
    if (code !== 0) {
      closeSync(fd);
      throw new Error(`${s.cmd} exited ${code}; the end of its output (${log}):\n${tail(log)}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  closeSync(fd);
  return { seconds };
}

function exitOf(
  cmd: string,
  args: string[],
  fd: number,
  opts: { env?: Record<string, string>; cwd?: string },
): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', fd, fd],
      detached: true,
      env: { ...process.env, ...opts.env },
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    cleanup.track(child);
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
}

function tail(file: string): string {
  return readFileSync(file, 'utf8').split('\n').slice(-25).join('\n');
}

// ---- rclone ---------------------------------------------------------------------------------------

export interface FtpAccount {
  host: string;
  port: number;
  user: string;
  password: string;
  ca: string;
}

export interface SftpAccount {
  host: string;
  port: number;
  user: string;
  password: string;
  /** For OpenSSH's sftp: the key the interop tier authorised for the account (no sshpass needed). */
  clientKey: string;
  /** An OpenSSH known_hosts file naming the host key for every port the bench uses. */
  knownHosts: string;
}

/** An rclone config file with one remote per server the bench uses (passwords obscured). */
export class Rclone {
  private readonly sections: string[] = [];

  constructor(
    private readonly file: string,
    private readonly ca: string,
  ) {}

  private obscure(password: string): string {
    const r = spawnSync('rclone', ['obscure', '-'], { input: password, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`rclone obscure failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  /**
   * explicit TLS, and `disable_tls13`: rclone's own workaround for servers whose TLS 1.3 session
   * reuse on the data connection it cannot do (vsftpd's require_ssl_reuse; without it every
   * connection ends in "tls: illegal parameter").
   */
  addFtp(name: string, a: FtpAccount): string {
    this.sections.push(
      `[${name}]\ntype = ftp\nhost = ${a.host}\nport = ${a.port}\nuser = ${a.user}\npass = ${this.obscure(a.password)}\nexplicit_tls = true\ndisable_tls13 = true\n`,
    );
    this.write();
    return name;
  }

  addSftp(name: string, a: SftpAccount): string {
    this.sections.push(
      `[${name}]\ntype = sftp\nhost = ${a.host}\nport = ${a.port}\nuser = ${a.user}\npass = ${this.obscure(a.password)}\nknown_hosts_file = ${a.knownHosts}\n`,
    );
    this.write();
    return name;
  }

  private write(): void {
    writeFileSync(this.file, this.sections.join('\n'), { mode: 0o600 });
  }

  /**
   * `rclone copy FROM TO` (a remote path is `name:path`), with rclone's defaults. Its ftp backend
   * verifies the server's certificate against the system roots (it has no CA option): Go reads
   * those from SSL_CERT_FILE, here the interop CA alone.
   */
  copy(from: string, to: string, log: string): Promise<Sample> {
    return timed('rclone', ['copy', from, to], log, { env: { RCLONE_CONFIG: this.file, SSL_CERT_FILE: this.ca } });
  }
}

// ---- lftp -------------------------------------------------------------------------------------------

/** `lftp -f SCRIPT`: explicit TLS for login and data, the interop CA, then one mirror. */
export function lftpMirror(a: FtpAccount, mirror: string, script: string, log: string): Promise<Sample> {
  const quote = (s: string) => `"${s.replace(/(["\\])/g, '\\$1')}"`;
  writeFileSync(
    script,
    [
      'set cmd:fail-exit yes',
      'set ftp:ssl-allow yes',
      'set ftp:ssl-force yes',
      'set ftp:ssl-protect-data yes',
      'set ssl:verify-certificate yes',
      `set ssl:ca-file ${quote(a.ca)}`,
      'set net:max-retries 2',
      `open -u ${quote(a.user)},${quote(a.password)} -p ${a.port} ftp://${a.host}`,
      mirror,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return timed('lftp', ['-f', script], log);
}

export function lftpQuote(path: string): string {
  return `"${path.replace(/(["\\])/g, '\\$1')}"`;
}

// ---- OpenSSH sftp -------------------------------------------------------------------------------------

/** `sftp -b BATCH` with the interop client key and the pinned host key. */
export function opensshSftp(a: SftpAccount, batch: string[], batchFile: string, log: string): Promise<Sample> {
  writeFileSync(batchFile, batch.join('\n') + '\n');
  return timed(
    'sftp',
    [
      '-b',
      batchFile,
      '-i',
      a.clientKey,
      '-P',
      String(a.port),
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${a.knownHosts}`,
      `${a.user}@${a.host}`,
    ],
    log,
  );
}

/** A name in an sftp batch line, quoted. */
export function sftpQuote(path: string): string {
  return `"${path.replace(/(["\\])/g, '\\$1')}"`;
}

/** A known_hosts file pinning `hostKeyPub` (an OpenSSH .pub line) for 127.0.0.1 on each port. */
export function writeKnownHosts(file: string, hostKeyPub: string, ports: number[]): void {
  const [type, key] = readFileSync(hostKeyPub, 'utf8').trim().split(/\s+/);
  writeFileSync(file, ports.map((p) => `[127.0.0.1]:${p} ${type} ${key}\n`).join(''));
}

/** `cp -R SRC/. DST` (a floor for the lan rows: no courier is faster). */
export function cpTree(src: string, dst: string, log: string): Promise<Sample> {
  return timed('cp', ['-R', `${src}/.`, dst], log);
}

/**
 * `cp -R SRC/. DST`, then `sync` on every file and folder it wrote (coreutils' sync fsyncs each
 * one named): the floor of a copy that is on disk when it ends, as sprelay's are (it fsyncs each
 * package twice, spool and destination, and each folder once per batch). Shown beside cp.
 */
export function cpSyncTree(src: string, dst: string, log: string): Promise<Sample> {
  return timedSeries(
    [
      { cmd: 'cp', args: ['-R', `${src}/.`, dst] },
      { cmd: 'find', args: [dst, '-exec', 'sync', '--', '{}', '+'] },
    ],
    log,
  );
}
