// The table (stdout) and BENCH.md: the machine, the date, the versions, how it was measured, the
// table with the issue's targets beside each ratio, and every run's time.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { median, type Results, type Row } from './measure.js';
import { PROJECT } from './sprelay.js';

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: PROJECT });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : '';
}

const firstLine = (s: string) => s.split('\n')[0]?.trim() || 'unknown';
const dpkg = (pkg: string) => sh('dpkg-query', ['-W', '-f=${Version}', pkg]) || 'unknown';

export function machine(): string[] {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const memKB = Number(/MemTotal:\s*(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  return [
    `CPU: ${cpu}, ${os.cpus().length} cores`,
    `RAM: ${(memKB / 1024 / 1024).toFixed(1)} GB`,
    `OS: ${firstLine(sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']))}, kernel ${os.release()}`,
  ];
}

export function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** The commit the working tree is on, and whether it differs from it (read when sprelay is built). */
export function gitRevision(): string {
  const rev = sh('git', ['rev-parse', '--short', 'HEAD']) || 'unknown';
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no']) ? ' + uncommitted changes' : '';
  return `${rev}${dirty}`;
}

export function versions(sprelayRevision: string): string[] {
  return [
    `node ${process.version}`,
    `sprelay ${sprelayRevision}`,
    `vsftpd ${dpkg('vsftpd')}`,
    `OpenSSH ${dpkg('openssh-server')}`,
    `postfix ${sh('postconf', ['-d', '-h', 'mail_version']) || dpkg('postfix')}`,
    `dovecot ${firstLine(sh('dovecot', ['--version']))}`,
    `rclone ${firstLine(sh('rclone', ['version'])).replace(/^rclone\s+/, '')}`,
    `lftp ${/Version ([^\s|]+)/.exec(sh('lftp', ['--version']))?.[1] ?? 'unknown'}`,
    `mbsync (isync) ${firstLine(sh('mbsync', ['--version'])).replace(/^isync\s+/, '')}`,
    `swaks ${/version (\S+)/.exec(sh('swaks', ['--version']))?.[1] ?? 'unknown'}`,
    `munpack (mpack) ${dpkg('mpack')}`,
  ];
}

const sec = (s: number | null) => (s === null ? '—' : s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`);

function bestCell(row: Row): string {
  const best = row.best;
  const floors = row.peers
    .filter((p) => p.floor)
    .map((p) => `${p.name} ${sec(median(p.samples.map((s) => s.seconds)))}`);
  const others = row.peers
    .filter((p) => !p.floor && p.name !== best?.name)
    .map((p) => `${p.name} ${sec(median(p.samples.map((s) => s.seconds)))}`);
  if (!best) return floors.length ? `(${floors.join(', ')})` : '—';
  const extra = [...others, ...floors];
  return `${best.name} ${sec(best.seconds)}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

function targetCell(row: Row): string {
  const t = row.target;
  const parts: string[] = [];
  if (t.ratio !== undefined) {
    let text = `≤ ${t.ratio}x${t.vs ? ` ${t.vs}` : ''}`;
    const best = row.best;
    const s = row.sprelayMedian;
    if (t.vs && best && best.name !== t.vs && s !== null) {
      const vs = median(row.peers.find((p) => p.name === t.vs)?.samples.map((x) => x.seconds) ?? []);
      if (vs !== null) text += ` (is ${(s / vs).toFixed(2)}x)`;
    }
    parts.push(text);
  }
  if (t.rssMB !== undefined) parts.push(`RSS ≤ ${t.rssMB} MB`);
  if (t.seconds !== undefined) parts.push(`< ${t.seconds} s`);
  if (!parts.length) return '—';
  const met = row.met;
  return `${parts.join(', ')} ${met === null ? '' : met ? '✓' : '✗'}`.trim();
}

function ratioCell(row: Row): string {
  const r = row.ratio;
  return r === null ? '—' : r < 10 ? `${r.toFixed(2)}x` : `${r.toFixed(1)}x`;
}

export function table(results: Results): string {
  const lines = [
    '| workload | sprelay | best peer (which) | ratio | target | sprelay peak RSS |',
    '|---|---:|---|---:|---|---:|',
  ];
  for (const row of results.rows) {
    const rss = row.peakRssMB;
    lines.push(
      `| ${row.workload} | ${sec(row.sprelayMedian)} | ${bestCell(row)} | ${ratioCell(row)} | ${targetCell(row)} | ${rss === null ? '—' : `${rss.toFixed(0)} MB`} |`,
    );
  }
  return lines.join('\n');
}

function allRuns(results: Results): string {
  const lines = ['| workload | tool | median | runs |', '|---|---|---:|---|'];
  for (const row of results.rows) {
    const tools = [{ name: 'sprelay', samples: row.sprelay }, ...row.peers];
    for (const t of tools) {
      const runs = t.samples
        .map((s) => `${s.seconds.toFixed(2)}${s.rssMB === undefined ? '' : ` (${s.rssMB.toFixed(0)} MB)`}`)
        .join(', ');
      lines.push(`| ${row.workload} | ${t.name} | ${sec(median(t.samples.map((s) => s.seconds)))} | ${runs} |`);
    }
  }
  return lines.join('\n');
}

export interface RunInfo {
  command: string;
  started: Date;
  finishedAt: Date;
  runs: number;
  quick: boolean;
  settleMs: number;
  build: string;
  /** git revision of the tree that was built, read at build time. */
  revision: string;
  note: string | null;
  loadBefore: string;
  loadAfter: string;
  notes: string[];
  linkOneWayMs: number;
  /** What the link check measured, when the link ran. */
  linkCheck: string | null;
}

export function writeBenchMd(file: string, info: RunInfo, results: Results): void {
  const minutes = ((info.finishedAt.getTime() - info.started.getTime()) / 60000).toFixed(0);
  const md = [
    '# sprelay bench',
    '',
    `\`${info.command}\` (scripts/bench/, issue 11): sprelay against the tools a person would use instead, on the`,
    "interop tier's Debian servers on loopback, every run checked byte for byte (sha256 of every delivered file",
    'against its source). Regenerated by every run of the bench.',
    '',
    ...(info.note ? [`**${info.note}**`, ''] : []),
    `- Date: ${info.started.toISOString()} (${minutes} min)${info.quick ? ', **--quick** (the smoke variant: small workloads)' : ''}`,
    `- Machine: ${machine().join('; ')}; load average ${info.loadBefore} at the start, ${info.loadAfter} at the end`,
    `- Versions: ${versions(info.revision).join(', ')}`,
    `- sprelay: ${info.build}, run as the CLI (\`bin/sprelay.js --config F once\`), one config per run, a fresh dataDir,`,
    `  outbox/inbox and remote folder each run; default settings, settle ${info.settleMs / 1000} s (sprelay's default, included in its`,
    '  times as a person gets them: the package files are written a minute before each run, as a station exporter leaves them',
    '  before a cron tick, so the outbox takes them at once (settle by age); remote files are written 20 minutes before',
    "  each run, as the office's packages wait for a station's pull: older than settle + clockSkew (15 min), so they are",
    "  taken from one listing; vsftpd's listing has no usable file times (no MLSD): sprelay reads the times LIST prints",
    '  once MDTM of two files has said their zone (per file only where that fails, for at most half the settle)' +
      (info.notes.length ? '; set beyond the defaults:' : ''),
    ...info.notes.map((n) => `  - ${n}`),
    `- Times: wall time from spawn to exit of each command (Node's start included), median of ${info.runs} run${info.runs === 1 ? '' : 's'};`,
    "  sprelay's peak RSS: ru_maxrss of the node process from GNU time (`/usr/bin/time -f %M`), i.e. its VmHWM at exit,",
    '  the highest of the runs',
    "- Peers with their defaults (only server, account, CA and host key set; rclone's ftp backend also",
    "  `disable_tls13`, its workaround for vsftpd's TLS session reuse, without which it cannot connect): rclone copy, lftp mirror (-R),",
    '  OpenSSH sftp -b (put/get with a glob; key auth), swaks one message per package, mbsync (Sync Pull) + munpack per',
    "  message; cp and cp + sync (cp, then coreutils' sync, i.e. fsync, on every file and folder it wrote: a copy on disk",
    "  when it ends, as sprelay's are) and, on the lan rows, durable steps (scripts/bench/durable-steps.mjs: the spool copy,",
    '  fsyncs, renames and removals that the guarantees take, by a bare Node script with no ledger, check or hash) and, on',
    "  the ftp and sftp rows, library steps (scripts/bench/library-steps.mjs: the same local steps with sprelay's own",
    '  basic-ftp / ssh2-sftp-client used plainly for the server side: 4 packages at once, a .part renamed on the server going',
    "  out, the server's file deleted coming in; a reference, not a floor) are shown in brackets, never the ratio's peer.",
    '  The fetch rows refill the mailbox before every',
    "  run with the messages sprelay's first send run delivered.",
    `- Link: a latency proxy (scripts/bench/latency-proxy.ts) adds ${info.linkOneWayMs} ms each way (${2 * info.linkOneWayMs} ms of round trip, one more`,
    '  round trip per new connection); no bandwidth limit. FTP data goes through it as well: a second vsftpd listens on',
    '  127.0.0.2 and names 127.0.0.1 (the proxy, on the same passive port numbers) in its PASV replies.' +
      (info.linkCheck ? ` Check: ${info.linkCheck}.` : ''),
    '',
    table(results),
    '',
    '## Every run',
    '',
    allRuns(results),
    '',
  ].join('\n');
  writeFileSync(file, md);
}
