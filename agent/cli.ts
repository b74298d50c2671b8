// The `sprelay` command. Thin: parse the arguments, load the config, call the agent, print, and
// exit with the contract's codes (once: 0 ok, 2 some package failed, 1 fatal; check: 0/1;
// resend: 1 when an id is unknown). Nothing here moves a file itself.
import { Command, CommanderError, Option } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent } from './agent.js';
import { checkRoute, checkText } from './check.js';
import { ConfigError, loadConfig, parseDuration, resolveConfigPath, type Config } from './config.js';
import { configTemplate } from './config-template.js';
import { purge, resend } from './maintenance.js';
import { hasProblems, type CycleResult } from './route-context.js';
import { isPackageState, list, listText, status, statusText } from './report.js';
import { Scheduler } from './scheduler.js';
import { makeScrubber } from './secrets.js';
import { ledgerDriverText, versionText } from './version.js';

/** Exit codes of the contract. */
export const EXIT = { ok: 0, fatal: 1, problems: 2 } as const;

class Exit extends Error {
  constructor(
    readonly code: number,
    message = '',
  ) {
    super(message);
  }
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

function parseIso(text: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new Exit(
      EXIT.fatal,
      `--since: not a date/time: ${JSON.stringify(text)} (use ISO, e.g. 2026-11-01 or 2026-11-01T08:00)`,
    );
  return t;
}

export function buildProgram(io: Io): { program: Command; exitCode: () => number } {
  const program = new Command('sprelay');
  let exitCode: number = EXIT.ok;

  const config = (): Config => loadConfig(resolveConfigPath(program.opts().config, io.env, io.cwd), io.env);
  const withAgent = async <T>(fn: (agent: Agent) => Promise<T> | T, quiet = false): Promise<T> => {
    const agent = new Agent(config(), { quiet });
    try {
      return await fn(agent);
    } finally {
      agent.close();
    }
  };

  program
    .description(
      'Relays SERVIO PUMP data packages between this station and head office (LAN share, FTP/SFTP, e-mail),\n' +
        'with a ledger that keeps every package traceable, deduplicated and retried until delivered.',
    )
    .option('-c, --config <file>', 'config file (default: $SPRELAY_CONFIG, else ./sprelay.yaml)')
    .option('-V, --version', 'print the version and the ledger driver, then exit')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  program
    .command('init')
    .argument('[dir]', 'folder for the new sprelay.yaml', '.')
    .description('write a commented sprelay.yaml (a working LAN-folder demo setup) and create the folders it names')
    .action((dir: string) => {
      const folder = resolve(io.cwd, dir);
      const file = join(folder, 'sprelay.yaml');
      if (existsSync(file)) throw new Exit(EXIT.fatal, `${file} already exists; not overwritten`);
      mkdirSync(folder, { recursive: true });
      writeFileSync(file, configTemplate(folder));
      const cfg = loadConfig(file, io.env);
      for (const dirToMake of foldersOf(cfg)) mkdirSync(dirToMake, { recursive: true });
      io.out(
        `wrote ${file}\ncreated ${foldersOf(cfg).join(', ')}\nnext: edit it, then run "sprelay check" and "sprelay once"`,
      );
    });

  program
    .command('check')
    .description(
      'validate the config, then for each route connect, log in, list and write-probe the remote (exit 1 if anything fails)',
    )
    .option('-r, --route <name>', 'only this route')
    .action(async (opts: { route?: string }) => {
      const cfg = config();
      const routes = opts.route ? cfg.routes.filter((r) => r.name === opts.route) : cfg.routes;
      if (opts.route && routes.length === 0) throw new Exit(EXIT.fatal, `no route named ${JSON.stringify(opts.route)}`);
      io.out(`config ${cfg.file}: ok (${cfg.routes.length} routes)`);
      const driver = ledgerDriverText(io.env);
      io.out(driver);
      if (driver.startsWith('ledger driver: NONE')) exitCode = EXIT.fatal;
      const scrub = makeScrubber(cfg.secrets);
      for (const r of routes) {
        const c = await checkRoute(r, cfg.station, scrub, AbortSignal.timeout(Math.max(r.timeoutMs * 4, 10_000)));
        io.out(checkText(c));
        if (!c.ok) exitCode = EXIT.fatal;
      }
    });

  program
    .command('run')
    .description(
      'run as a daemon: every route on its schedule (one cycle of each at start); Ctrl+C / SIGTERM finish the current file, then exit',
    )
    .action(async () =>
      withAgent(async (agent) => {
        const scheduler = new Scheduler(agent);
        await new Promise<void>((done) => {
          let signals = 0;
          const onSignal = (sig: string) => {
            signals++;
            if (signals === 1) {
              agent.log.info(`${sig}: finishing the file in hand, then exiting (again to abort transfers)`);
              scheduler.stop().then(done, done);
            } else {
              agent.abortTransfers();
            }
          };
          process.on('SIGINT', () => onSignal('SIGINT'));
          process.on('SIGTERM', () => onSignal('SIGTERM'));
          scheduler.start();
          agent.log.info(`sprelay running for station ${agent.config.station}: ${agent.config.routes.length} routes`);
        });
      }),
    );

  program
    .command('once')
    .description(
      'one cycle of the routes, then exit (for Windows Task Scheduler): exit 0 ok, 2 some package failed, 1 fatal',
    )
    .addOption(new Option('-r, --route <name...>', 'only these routes (repeatable)'))
    .action(async (opts: { route?: string[] }) =>
      withAgent(async (agent) => {
        const stopOnSignal = () => agent.requestStop();
        process.on('SIGINT', stopOnSignal);
        process.on('SIGTERM', stopOnSignal);
        try {
          const results = await agent.runOnce(opts.route ?? []);
          for (const r of results) io.err(summaryLine(r));
          if (results.some(hasProblems)) exitCode = EXIT.problems;
        } finally {
          process.off('SIGINT', stopOnSignal);
          process.off('SIGTERM', stopOnSignal);
        }
      }),
    );

  program
    .command('status')
    .description(
      'per route: packages by state, last run, last success, last error; then the failed/dead/quarantined packages',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) =>
      withAgent((agent) => {
        const v = status(agent.config, agent.ledger);
        io.out(opts.json ? JSON.stringify(v, null, 2) : statusText(v));
      }, true),
    );

  program
    .command('list')
    .description('ledger rows, oldest first')
    .option(
      '-s, --state <state>',
      'only this state (queued, sent, failed, dead, duplicate, delivered, waiting, quarantined)',
    )
    .option('-r, --route <name>', 'only this route')
    .option('--since <iso>', 'only rows changed since this date/time')
    .option('--json', 'machine-readable output')
    .action(async (opts: { state?: string; route?: string; since?: string; json?: boolean }) =>
      withAgent((agent) => {
        if (opts.state && !isPackageState(opts.state))
          throw new Exit(EXIT.fatal, `--state: unknown state ${JSON.stringify(opts.state)}`);
        const rows = list(agent.ledger, {
          ...(opts.state && isPackageState(opts.state) ? { states: [opts.state] } : {}),
          ...(opts.route ? { route: opts.route } : {}),
          ...(opts.since ? { since: parseIso(opts.since) } : {}),
        });
        io.out(opts.json ? JSON.stringify(rows, null, 2) : listText(rows));
      }, true),
    );

  program
    .command('resend')
    .description('queue packages again for the next cycle, by id or all failed/dead ones (exit 1 if an id is unknown)')
    .argument('[ids...]', 'package ids (see "sprelay list")')
    .option('--failed', 'all failed and dead outbound packages')
    .option('-r, --route <name>', 'with --failed: only this route')
    .option('--since <iso>', 'with --failed: only those changed since this date/time')
    .action(async (ids: string[], opts: { failed?: boolean; route?: string; since?: string }) =>
      withAgent(async (agent) => {
        if (!opts.failed && ids.length === 0) throw new Exit(EXIT.fatal, 'resend: give package ids or --failed');
        if (opts.failed && ids.length > 0) throw new Exit(EXIT.fatal, 'resend: give package ids or --failed, not both');
        const numeric = ids.map((s) => {
          if (!/^\d+$/.test(s)) throw new Exit(EXIT.fatal, `resend: not a package id: ${JSON.stringify(s)}`);
          return Number(s);
        });
        const outcome = await resend(
          agent.ledger,
          agent.spool,
          opts.failed
            ? {
                failed: true,
                ...(opts.route ? { route: opts.route } : {}),
                ...(opts.since ? { since: parseIso(opts.since) } : {}),
              }
            : { ids: numeric },
        );
        for (const r of outcome.requeued) io.out(`#${r.id} ${r.route} "${r.name}": queued for the next cycle`);
        for (const r of outcome.refused) io.err(`#${r.id}: not resent: ${r.why}`);
        if (outcome.requeued.length === 0 && outcome.refused.length === 0) io.out('nothing to resend');
        if (outcome.refused.length > 0) exitCode = EXIT.fatal;
      }, true),
    );

  program
    .command('purge')
    .description(
      'delete ledger rows of finished packages (sent, duplicate, delivered, quarantined) and their archive/quarantine files past retention',
    )
    .requiredOption('--older-than <duration>', 'retention, e.g. 30d')
    .action(async (opts: { olderThan: string }) =>
      withAgent(async (agent) => {
        let ms: number;
        try {
          ms = parseDuration(opts.olderThan);
        } catch (err) {
          throw new Exit(EXIT.fatal, `--older-than: ${(err as Error).message}`);
        }
        const r = await purge(agent.ledger, agent.spool, Date.now() - ms);
        io.out(`purged ${r.rows} ledger rows and ${r.files} files older than ${opts.olderThan}`);
      }, true),
    );

  return { program, exitCode: () => exitCode };
}

function foldersOf(cfg: Config): string[] {
  const dirs = new Set<string>([cfg.dataDir]);
  for (const r of cfg.routes) {
    dirs.add(r.local);
    if (r.profile.type === 'lan') dirs.add(join(r.profile.root, r.remote));
  }
  return [...dirs];
}

function summaryLine(r: CycleResult): string {
  const parts = Object.entries({
    taken: r.taken,
    sent: r.sent,
    delivered: r.delivered,
    duplicates: r.duplicates,
    waiting: r.waiting,
    failed: r.failed,
    dead: r.dead,
    quarantined: r.quarantined,
    'refused in outbox': r.refused,
  })
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  return `route ${r.route} (${r.direction}): ${parts.join(', ') || 'nothing to do'}${r.error ? ` — ERROR: ${r.error}` : ''}`;
}

/** Runs the CLI; returns the exit code instead of exiting (the bin exits). */
export async function main(argv: string[], io: Io): Promise<number> {
  const { program, exitCode } = buildProgram(io);
  // before any command: the version must print even where the config or the ledger cannot load
  if (argv.includes('--version') || argv.includes('-V')) {
    io.out(versionText(io.env));
    return EXIT.ok;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode();
  } catch (err) {
    if (err instanceof Exit) {
      if (err.message) io.err(`sprelay: ${err.message}`);
      return err.code;
    }
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors with 1
      return err.exitCode === 0 ? EXIT.ok : EXIT.fatal;
    }
    if (err instanceof ConfigError) {
      io.err(`sprelay: config error\n${err.message}`);
      return EXIT.fatal;
    }
    io.err(`sprelay: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.fatal;
  }
}
