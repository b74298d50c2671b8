// `npm run bench`: sprelay's speed against the tools a person would use instead (issue 11), on the
// interop tier's Debian servers on loopback and through a 3G-like latency proxy. Needs root (it
// installs the servers and peers from apt and starts private server instances). Not part of
// `npm test`. See README.md ("Benchmark") and BENCH.md for the last run's table.
//
//   npm run bench -- [--quick] [--runs N] [--only W1,W2,W3,link,idle] [--out FILE] [--note TEXT]
//                    [--use-dist] [--allow-type-errors] [--keep] [--node-flags FLAGS]
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup } from './cleanup.js';
import { ftpRemote, lanRemote, runW1, runW2, sftpRemote } from './files.js';
import { runIdle } from './idle.js';
import { ONE_WAY_MS, runLink, startLinkProxies } from './link.js';
import { runW3, type MailAccounts } from './mail.js';
import { Results, type BenchContext } from './measure.js';
import { Rclone, writeKnownHosts, type FtpAccount, type SftpAccount } from './peers.js';
import { gitRevision, loadavg, table, writeBenchMd } from './report.js';
import { installAll, need, startFileServers, startMailServers } from './servers.js';
import { buildSprelay, PROJECT, routeDefaults } from './sprelay.js';

const FAMILIES = ['W1', 'W2', 'W3', 'link', 'idle'] as const;
type Family = (typeof FAMILIES)[number];

const MB = 1024 * 1024;
const SIZES = {
  full: { w1: 1000, w2: 200 * MB, w3: 200, linkCount: 100, linkBig: 20 * MB, idleRows: 100_000 },
  quick: { w1: 100, w2: 20 * MB, w3: 20, linkCount: 20, linkBig: 5 * MB, idleRows: 100_000 },
};

interface Options {
  quick: boolean;
  runs: number;
  only: Set<Family>;
  out: string;
  note: string | null;
  useDist: boolean;
  allowTypeErrors: boolean;
  keep: boolean;
  nodeFlags: string[];
}

const USAGE = `usage: npm run bench -- [options]   (as root: it installs and starts servers)
  --quick              small workloads (W1 100 files, W2 20 MB, W3 20 messages, link 20 files and 5 MB), 1 run per cell
  --runs N             runs per cell, the median is reported (default 3; 1 with --quick)
  --only LIST          some of ${FAMILIES.join(',')} (default: all)
  --out FILE           where the report goes (default BENCH.md in the project)
  --note TEXT          a line for the report's header (e.g. what else ran on the machine)
  --use-dist           run bin/sprelay.js on the project's dist/ as built (default: compile a snapshot into .cache/bench)
  --allow-type-errors  run what tsc emitted even if it reported errors
  --keep               keep the temp folder (packages, configs, logs, server logs)
  --node-flags FLAGS   extra flags for Node in every sprelay run, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
                       (a profile per run; its times then say little: the table notes the flags)`;

/** A wrong command line: said with the usage, without a stack. */
class UsageError extends Error {}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    runs: 0,
    only: new Set(FAMILIES),
    out: join(PROJECT, 'BENCH.md'),
    note: null,
    useDist: false,
    allowTypeErrors: false,
    keep: false,
    nodeFlags: [],
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value\n${USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === '--use-dist') o.useDist = true;
    else if (a === '--allow-type-errors') o.allowTypeErrors = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--runs') {
      o.runs = Number(value(i++, a));
      if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 20)
        throw new UsageError(`--runs: expected 1 to 20\n${USAGE}`);
    } else if (a === '--only') {
      const picked = value(i++, a)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      o.only = new Set();
      for (const p of picked) {
        const f = FAMILIES.find((x) => x.toLowerCase() === p.toLowerCase());
        if (!f) throw new UsageError(`--only: unknown workload "${p}" (known: ${FAMILIES.join(', ')})\n${USAGE}`);
        o.only.add(f);
      }
    } else if (a === '--out') o.out = value(i++, a);
    else if (a === '--note') o.note = value(i++, a);
    else if (a === '--node-flags') {
      // its value starts with "--" itself
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`--node-flags needs a value\n${USAGE}`);
      o.nodeFlags = v.split(/\s+/).filter(Boolean);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown option ${a}\n${USAGE}`);
  }
  if (o.runs === 0) o.runs = o.quick ? 1 : 3;
  return o;
}

/** An argument as a shell would need it written (for the command line in BENCH.md). */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const sizes = opts.quick ? SIZES.quick : SIZES.full;
  const started = new Date();
  const loadBefore = loadavg();
  const has = (f: Family) => opts.only.has(f);

  installAll();
  const revision = gitRevision(); // of the tree about to be built: HEAD may move during a long run
  const build = buildSprelay({
    useDist: opts.useDist,
    allowTypeErrors: opts.allowTypeErrors,
    nodeFlags: opts.nodeFlags,
  });
  const defaults = await routeDefaults(build);
  process.stdout.write(
    `bench: sprelay ${build.describe}; settle ${defaults.settleMs / 1000} s (its default: the configs set none)\n`,
  );

  const root = mkdtempSync(join(tmpdir(), 'sprelay-bench-'));
  chmodSync(root, 0o755); // the servers' unprivileged processes reach their folders through it
  cleanup.add(`remove ${root}`, () => {
    if (opts.keep) process.stdout.write(`bench: kept ${root}\n`);
    else rmSync(root, { recursive: true, force: true });
  });
  const work = join(root, 'work');
  mkdirSync(join(work, 'share'), { recursive: true }); // the lan profile's root (the office share)

  const files = has('W1') || has('W2') || has('link') ? await startFileServers(join(root, 'servers')) : null;
  const mailServers = has('W3') || has('link') ? startMailServers(join(root, 'mail-tier')) : null;
  const mail: MailAccounts | null = mailServers
    ? (() => {
        const e = (k: string) => need(mailServers.env, mailServers.envFile, k);
        return {
          host: e('SMTP_HOST'),
          smtpPort: Number(e('SMTP_PORT')),
          imapPort: Number(e('IMAP_PORT')),
          ca: e('CA'),
          office: { user: e('OFFICE_USER'), password: e('OFFICE_PASSWORD'), address: e('OFFICE_ADDRESS') },
          station: { user: e('STATION_USER'), password: e('STATION_PASSWORD'), address: e('STATION_ADDRESS') },
        };
      })()
    : null;

  let linkCheck: string | null = null;
  const results = new Results();
  const ctx: BenchContext = { build, defaults, work, runs: opts.runs, results, notes: new Set() };

  if (files) {
    const e = (k: string) => need(files.env, files.envFile, k);
    const rclone = new Rclone(join(root, 'rclone.conf'), e('CA_PEM'));
    const owner = { uid: Number(e('TEST_UID')), gid: Number(e('TEST_GID')) };
    const ftp = (port: number): FtpAccount => ({
      host: '127.0.0.1',
      port,
      user: e('TEST_USER'),
      password: e('TEST_PASSWORD'),
      ca: e('CA_PEM'),
    });
    const knownHosts = join(root, 'known_hosts');
    const sftp = (port: number): SftpAccount => ({
      host: '127.0.0.1',
      port,
      user: e('TEST_USER'),
      password: e('TEST_PASSWORD'),
      clientKey: e('SFTP_CLIENT_KEY'),
      knownHosts,
    });
    const proxies = has('link') ? await startLinkProxies(files, mail) : null;
    if (proxies) {
      linkCheck = proxies.check;
      process.stdout.write(`bench: link check: ${linkCheck}\n`);
    }
    writeKnownHosts(knownHosts, join(files.dir, 'ssh_host_ed25519_key.pub'), [
      Number(e('SFTP_PORT')),
      ...(proxies ? [proxies.sftp.port] : []),
    ]);
    const directFtp = ftp(Number(e('FTP_PORT')));
    const directSftp = sftp(Number(e('SFTP_PORT')));
    const direct = {
      lan: lanRemote(join(work, 'share'), rclone),
      ftp: ftpRemote(
        directFtp,
        e('FTP_ROOT'),
        owner,
        { tool: rclone, remote: rclone.addFtp('ftp', directFtp) },
        { lftp: true, libraryReference: true },
      ),
      sftp: sftpRemote(
        directSftp,
        e('SFTP_HOST_KEY'),
        e('SFTP_ROOT'),
        owner,
        { tool: rclone, remote: rclone.addSftp('sftp', directSftp) },
        { openssh: true, libraryReference: true },
      ),
    };
    if (has('W1')) {
      process.stdout.write(`\nW1: ${sizes.w1} x 20 KB, lan / ftp / sftp, out and in\n`);
      await runW1(ctx, direct, sizes.w1);
    }
    if (has('W2')) {
      process.stdout.write(`\nW2: one ${sizes.w2 / MB} MB XML, lan / ftp / sftp, out and in\n`);
      await runW2(ctx, direct, sizes.w2);
    }
    if (proxies) {
      process.stdout.write(
        `\nlink: +${2 * ONE_WAY_MS} ms round trip, ${sizes.linkCount} x 20 KB and one ${sizes.linkBig / MB} MB\n`,
      );
      const linkFtp = ftp(proxies.ftp.port);
      const linkSftp = sftp(proxies.sftp.port);
      await runLink(
        ctx,
        proxies,
        {
          ftp: ftpRemote(
            linkFtp,
            e('FTP_ROOT'),
            owner,
            { tool: rclone, remote: rclone.addFtp('ftplink', linkFtp) },
            { lftp: true, libraryReference: false },
          ),
          sftp: sftpRemote(
            linkSftp,
            e('SFTP_HOST_KEY'),
            e('SFTP_ROOT'),
            owner,
            { tool: rclone, remote: rclone.addSftp('sftplink', linkSftp) },
            { openssh: false, libraryReference: false },
          ),
        },
        mail,
        { count: sizes.linkCount, bigBytes: sizes.linkBig },
      );
    }
  }
  if (has('W3') && mail) {
    process.stdout.write(`\nW3: ${sizes.w3} x 100 KB over e-mail, send and fetch\n`);
    await runW3(ctx, mail, sizes.w3);
  }
  if (has('idle')) {
    process.stdout.write(`\nidle: once with nothing to do, ${sizes.idleRows} ledger rows\n`);
    await runIdle(ctx, sizes.idleRows);
  }

  // the table in the families' order, whatever order they ran in
  results.rows.sort((a, b) => FAMILIES.indexOf(a.family as Family) - FAMILIES.indexOf(b.family as Family));
  process.stdout.write(`\n${table(results)}\n`);
  writeBenchMd(
    opts.out,
    {
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).map(shellQuote).join(' ')}` : ''}`,
      started,
      finishedAt: new Date(),
      runs: opts.runs,
      quick: opts.quick,
      settleMs: defaults.settleMs,
      build: build.describe,
      revision,
      note: opts.note,
      loadBefore,
      loadAfter: loadavg(),
      notes: [...ctx.notes],
      linkOneWayMs: ONE_WAY_MS,
      linkCheck,
    },
    results,
  );
  process.stdout.write(`\nbench: written to ${opts.out}\n`);
}

main().then(
  () => {
    cleanup.runAll();
    process.exit(0);
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n`);
      cleanup.runAll();
      process.exit(2);
    }
    process.stderr.write(`\nbench: FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanup.runAll();
    process.exit(1);
  },
);
