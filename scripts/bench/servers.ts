// The servers the bench talks to: the interop tier's own Debian instances on loopback high ports
// (scripts/interop: vsftpd with explicit TLS + OpenSSH's internal-sftp from start.sh, postfix +
// dovecot from mail-up.sh), plus a second vsftpd for the 3G-like link (below), and the peers
// from apt. Whatever is started is registered in `cleanup` and stopped on every way out.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { cleanup } from './cleanup.js';

const INTEROP = join(import.meta.dirname, '..', 'interop');

/** KEY=VALUE lines (the env files start.sh and mail-up.sh write). */
export function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  return env;
}

/** A value of an env file, or a clear error naming the file and the key. */
export function need(env: Record<string, string>, file: string, key: string): string {
  const v = env[key];
  if (!v) throw new Error(`${file} has no ${key}`);
  return v;
}

/** Runs a command to its end with its output shown; throws with its exit status otherwise. */
export function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${what} failed (${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal})`);
}

/** Debian packages of the peers (and GNU time, which measures sprelay's peak RSS), by a file each installs. */
const PEER_PACKAGES: Record<string, string> = {
  '/usr/bin/rclone': 'rclone',
  '/usr/bin/lftp': 'lftp',
  '/usr/bin/mbsync': 'isync',
  '/usr/bin/swaks': 'swaks',
  // swaks's STARTTLS (only a Recommends of swaks, which --no-install-recommends leaves out; it
  // pulls in Net::SSLeay): without it swaks says "TLS not available" and the e-mail rows fail
  '/usr/share/perl5/IO/Socket/SSL.pm': 'libio-socket-ssl-perl',
  '/usr/bin/munpack': 'mpack',
  '/usr/bin/sftp': 'openssh-client',
  '/usr/bin/time': 'time',
};

/** The servers (the interop tier's install scripts) and the peers, from apt where missing. */
export function installAll(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the bench needs root: it installs packages and starts vsftpd, sshd, postfix and dovecot');
  }
  run('bash', [join(INTEROP, 'install.sh')], 'scripts/interop/install.sh');
  run('bash', [join(INTEROP, 'mail-install.sh')], 'scripts/interop/mail-install.sh');
  const missing = Object.entries(PEER_PACKAGES)
    .filter(([bin]) => !existsSync(bin))
    .map(([, pkg]) => pkg);
  if (missing.length > 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () =>
      spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
    if (install().status !== 0) {
      run('apt-get', ['update', '-q'], 'apt-get update');
      if (install().status !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed`);
    }
  }
  for (const bin of Object.keys(PEER_PACKAGES)) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing after apt-get install`);
  }
}

export interface FileServers {
  dir: string;
  envFile: string;
  env: Record<string, string>;
  /** The link's vsftpd: listens on 127.0.0.2, names 127.0.0.1 (the latency proxy) in PASV. */
  linkFtp: { host: string; port: number; pasvPorts: number[] };
}

export interface MailServers {
  dir: string;
  envFile: string;
  env: Record<string, string>;
}

/** vsftpd + sshd (start.sh) into DIR, and the link's second vsftpd. */
export async function startFileServers(dir: string): Promise<FileServers> {
  cleanup.add('stop vsftpd and sshd (scripts/interop/stop.sh)', () => {
    spawnSync('bash', [join(INTEROP, 'stop.sh'), dir], { stdio: 'inherit' });
  });
  run('bash', [join(INTEROP, 'start.sh'), dir], 'scripts/interop/start.sh');
  const envFile = join(dir, 'env');
  const env = readEnvFile(envFile);
  const linkFtp = await startLinkFtp(dir);
  return { dir, envFile, env, linkFtp };
}

const LINK_FTP_HOST = '127.0.0.2';
const PASV_COUNT = 20;

/**
 * A second vsftpd from start.sh's own config, for the link: it listens on 127.0.0.2 and names
 * 127.0.0.1 in its PASV replies, where the latency proxy listens on the same port numbers (and
 * on a control port), so that every byte of the FTP runs on the link, control and data, passes
 * the proxy, and the client talks to 127.0.0.1 only (start.sh's certificate names 127.0.0.1).
 * vsftpd binds a passive socket to the address the client reached it on (127.0.0.2), so the
 * proxy's listeners on 127.0.0.1 do not clash with it.
 */
async function startLinkFtp(dir: string): Promise<FileServers['linkFtp']> {
  const ports = await freePorts(PASV_COUNT + 1, ['127.0.0.1', LINK_FTP_HOST]);
  const [control, ...pasvPorts] = ports;
  const base = readFileSync(join(dir, 'vsftpd.conf'), 'utf8');
  const set = (text: string, key: string, value: string | number): string => {
    const re = new RegExp(`^${key}=.*$`, 'm');
    if (!re.test(text)) throw new Error(`${dir}/vsftpd.conf has no ${key}= line (start.sh changed?)`);
    return text.replace(re, `${key}=${value}`);
  };
  let conf = base;
  conf = set(conf, 'listen_address', LINK_FTP_HOST);
  conf = set(conf, 'listen_port', control!);
  conf = set(conf, 'pasv_address', '127.0.0.1');
  conf = set(conf, 'pasv_min_port', pasvPorts[0]!);
  conf = set(conf, 'pasv_max_port', pasvPorts[pasvPorts.length - 1]!);
  conf = set(conf, 'vsftpd_log_file', join(dir, 'vsftpd-link.log'));
  const file = join(dir, 'vsftpd-link.conf');
  writeFileSync(file, `# the bench's link instance (scripts/bench/servers.ts), from start.sh's config\n${conf}`);
  chmodSync(file, 0o600);
  // its own session, as start.sh does, so that stopping it takes the per-connection children too
  const child = spawn('/usr/sbin/vsftpd', [file], { detached: true, stdio: 'ignore' });
  const pid = child.pid;
  child.unref();
  if (pid === undefined) throw new Error('vsftpd (link instance) did not start');
  cleanup.add('stop the link vsftpd', () => killGroup(pid));
  await waitListening(LINK_FTP_HOST, control!, 'vsftpd (link instance)', () => child.exitCode !== null);
  return { host: LINK_FTP_HOST, port: control!, pasvPorts };
}

/** postfix + dovecot (mail-up.sh) into DIR. */
export function startMailServers(dir: string): MailServers {
  cleanup.add('stop postfix and dovecot (scripts/interop/mail-down.sh)', () => {
    spawnSync('bash', [join(INTEROP, 'mail-down.sh'), dir], { stdio: 'inherit' });
  });
  run('bash', [join(INTEROP, 'mail-up.sh'), dir], 'scripts/interop/mail-up.sh');
  const envFile = join(dir, 'mail.env');
  return { dir, envFile, env: readEnvFile(envFile) };
}

/** TERM to a process group, KILL after 5 s. */
function killGroup(pid: number): void {
  // a zombie (our own child, not yet reaped: this runs synchronously) counts as gone
  const alive = () => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + 5000;
  while (alive() && Date.now() < until) spawnSync('sleep', ['0.1']);
  if (alive()) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** `count` consecutive ports, free on every host, below Linux's ephemeral range (32768+). */
export async function freePorts(count: number, hosts: string[]): Promise<number[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (12000 - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    let ok = true;
    for (const p of ports) {
      for (const h of hosts) {
        if (!(await canListen(h, p))) {
          ok = false;
          break;
        }
      }
      if (!ok) break;
    }
    if (ok) return ports;
  }
  throw new Error(`no run of ${count} free ports on ${hosts.join(', ')}`);
}

async function waitListening(host: string, port: number, what: string, exited: () => boolean): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return;
    if (exited()) throw new Error(`${what} exited at start`);
    if (Date.now() > until) throw new Error(`${what} does not listen on ${host}:${port} within 10 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
